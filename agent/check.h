#pragma once
// Check: one drill check (schema, row_count, checksum, freshness, sql), one class per file in
// checks/, built from config by the table in checks/registry.cpp. A check returns findings as data
// (CheckResult); it throws only for operational failures (rw::Error), which the runner turns into
// outcome `error`. A check that could not prove its claim never returns `pass`.
// Threads: BeforeRestore() runs on a helper thread while the restore is in progress (source-only
// work); Run() runs after the restore on the drill thread. `cache` lets checks share work (a
// table scan computing counts and hashes in one pass) and is guarded by cache_mu.
#include <any>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/drill_progress.h"
#include "agent/model.h"
#include "agent/state.h"

namespace rw {

struct CheckContext {
  const TargetConfig& target;
  const BackupInfo& backup;
  std::string restored_conninfo;      // empty during BeforeRestore
  ActivityStore* activity = nullptr;  // churn samples; may be null (differences unverified)
  CancelToken& cancel;
  std::mutex cache_mu;
  std::map<std::string, std::any> cache;
  // The point the restored copy represents (RestoredCopy::consistent_at), set before Run(); empty
  // during BeforeRestore.
  std::optional<double> consistent_at = std::nullopt;
  // The copy is recovered to the point of a snapshot the drill took of the live source
  // (recovery_target = "snapshot"): row counts and checksums compare every table exactly against
  // that snapshot's reference (checks/drill/reference.h, adopted by the runner), not with churn
  // bounds. Set before BeforeRestore.
  bool exact_point = false;
  // The copy's point when known, else the backup's snapshot time (BeforeRestore, callers that
  // build a context without a copy). Checks measure "since the backup" from here.
  double CopyPoint() const { return consistent_at ? *consistent_at : backup.started_at; }
  // The drill's progress (may be null): a check reports what it has done ("tables hashed").
  DrillProgress* progress = nullptr;
};

class Check {
 public:
  virtual ~Check() = default;
  virtual std::string name() const = 0;
  // Optional source-side preparation, concurrent with the restore. Exceptions are kept and
  // reported by Run() as `error`.
  virtual void BeforeRestore(CheckContext&) {}
  virtual CheckResult Run(CheckContext& ctx) = 0;
};

}  // namespace rw
