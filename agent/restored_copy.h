#pragma once
// RestoredCopy: what BackupSource::Restore() hands back to the drill, whatever the kind of
// backup: whether the backup proved usable (a finding, with its reason, when not), how to reach
// the copy, which databases it holds, the point in time it represents, and the sub-stages the
// source ran with their durations. Plain value; copy it across threads.
#include <optional>
#include <string>
#include <vector>

#include "agent/model.h"

namespace rw {

struct RestoredCopy {
  // False when the backup itself proved unusable: a finding (the drill fails with `reason`),
  // not an operational error (those are thrown as rw::Error).
  bool usable = false;
  std::string reason;  // one line naming the file or LSN; empty when usable

  // How to reach the copy: libpq conninfo for in-process connections (ConnectSandbox) to
  // databases.front(). May carry a password (scratch server): never log it.
  std::string conninfo;
  // The databases that hold restored data; the first is the one the checks compare.
  std::vector<std::string> databases;

  // The point the copy represents: Unix seconds of the snapshot (pg_dump: the dump's snapshot;
  // a physical copy: the recovery point reached). 0 when unknown.
  double consistent_at = 0;
  bool consistent_at_exact = false;  // from the backup or the server itself, not a file's mtime
  std::optional<std::string> lsn;    // physical copies: the LSN recovery reached, e.g. "0/3000148"
  std::optional<int> timeline;       // physical copies: the timeline it reached
  // The copy holds exactly the transactions RestoreOptions::source_point's snapshot sees: its
  // tables must equal the source's in that snapshot, row for row.
  bool at_source_point = false;
  // Physical copies: the data directory the sandbox started (StartDataDirectory), for the offline
  // check after the server stops (data_checksums). Empty for logical copies.
  std::string data_dir;

  // Sub-stages the source ran, in order.
  std::vector<SubStage> stages;
  // Why a drill stage the source did not need did not run ("pg_dump reads the file in place"),
  // per stage name (fetch, recovery). A stage neither run (in `stages`) nor named here is
  // reported as skipped with a generic reason.
  std::vector<std::pair<std::string, std::string>> not_run;

  std::string summary;  // e.g. "pg_restore -j 2 (custom format)"
  // Roles the source created in the sandbox before loading (a plain dump's owners, NOLOGIN), so
  // the runbook can list them as prerequisites.
  std::vector<std::string> roles_created;
  std::vector<std::string> accepted_errors;  // tool errors matched by allow_restore_errors

  // The seconds of all sub-stages of a drill stage.
  double SecondsIn(const std::string& stage) const {
    double s = 0;
    for (const auto& st : stages)
      if (st.stage == stage) s += st.duration_seconds;
    return s;
  }
  const SubStage* Find(const std::string& name) const {
    for (const auto& st : stages)
      if (st.name == name) return &st;
    return nullptr;
  }
};

}  // namespace rw
