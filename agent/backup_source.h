#pragma once
// BackupSource: where a target's backups come from. One implementation per file in agent/sources/
// (pg_dump now; base backup + WAL, pgBackRest, Barman, command later), picked by backup.type
// through the table in agent/backup_source.cpp. Catalogue() is cheap (file listing, no restore) and
// runs on the monitor thread; Restore() runs on the drill thread. Implementations hold no mutable
// shared state, so one instance may serve both threads.
//
// The restore contract: Restore(backup, host, options, cancel) turns a backup into a RestoredCopy
// using what the SandboxHost offers: a logical source asks it for a fresh running cluster
// (host.Start) and loads into it; a physical source asks for an empty data directory
// (host.NewDataDirectory), fills it and starts it in recovery (host.StartDataDirectory). The
// drill does not start the sandbox: the source asks for what it needs, after checking
// host.capabilities() (a missing capability is Error(kUnsupported) naming it). A backup that
// proves unusable comes back as RestoredCopy{usable = false, reason}; errors of the environment
// (tools, disk, server, cancel) are thrown as rw::Error.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/drill_progress.h"
#include "agent/environment.h"
#include "agent/model.h"
#include "agent/restored_copy.h"
#include "agent/sandbox.h"

namespace rw {

// A snapshot the drill took of the live source, for a copy recovered to exactly its point
// (recovery_target = "snapshot"): the source's pg_current_snapshot() ("xmin:xmax:xip,..."), its
// WAL insert position read right after the snapshot (every commit the snapshot sees is before
// it), its system identifier (empty when unreadable) and the time.
struct SourcePoint {
  std::string snapshot;
  std::string lsn;
  std::string system_identifier;
  double time = 0;
};

struct RestoreOptions {
  int jobs = 2;                           // pg_dump: pg_restore -j
  std::vector<std::string> allow_errors;  // pg_dump: substrings of error lines accepted as harmless
  std::string database;                   // wanted database name in the sandbox
  Duration timeout = std::chrono::hours(2);
  // Called by the source, on the drill thread, when it moves on to drill stage "fetch", "restore"
  // or "recovery", so the stage's own limit (drill.stage_timeouts) and an error name the right
  // stage. May be empty; a source that never calls it runs wholly in "restore".
  std::function<void(const std::string& stage)> begin_stage;
  // Set when the source asked for it (WantsSourcePoint()): recover to exactly this snapshot.
  std::optional<SourcePoint> source_point;
  // Where the source says what it is doing and what is done (may be null): steps, bytes, and a
  // probe the progress ticker calls (agent/drill_progress.h).
  DrillProgress* progress = nullptr;
};

struct RestoreOutcome {
  std::string database;                      // the database the data now lives in
  std::vector<std::string> accepted_errors;  // errors matched by allow_errors
  std::string tool_summary;                  // e.g. "pg_restore -j 2 (custom format)"
};

class BackupSource {
 public:
  virtual ~BackupSource() = default;
  virtual std::string type() const = 0;
  // Every complete backup by kind. Throws Error(kIo) when the location cannot be read.
  virtual BackupCatalogue Catalogue(CancelToken& cancel) = 0;
  // The newest complete backup. Throws Error(kBadInput) "no backup matches ..." when none.
  virtual BackupInfo Latest(CancelToken& cancel) = 0;
  // A backup of Catalogue().backups as Restore() wants it (drill.pick = "random" picks from the
  // catalogue). The default returns it as listed; a source whose listing is a summary reads the
  // rest (Barman: show-backup).
  virtual BackupInfo Describe(const BackupInfo& listed, CancelToken& cancel) {
    (void)cancel;
    return listed;
  }
  // True when Restore() needs RestoreOptions::source_point: the drill then takes a snapshot of the
  // live source first and compares the copy with it exactly (a physical source configured with
  // recovery_target = "snapshot").
  virtual bool WantsSourcePoint() const { return false; }
  // The contract (see above). The default throws Error(kUnsupported): every source the table
  // lists implements it.
  virtual RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host,
                               const RestoreOptions& options, CancelToken& cancel);
  // Logical sources only: loads `backup` into a database of the already started cluster of
  // `sandbox` (the step the contract's Restore() runs after host.Start()). Throws
  // Error(kBadInput) quoting the restore tool's own error lines when the backup is unusable, or
  // kProcess/kIo/kCancelled. The default throws Error(kUnsupported) (physical sources).
  virtual RestoreOutcome Restore(const BackupInfo& backup, Sandbox& sandbox,
                                 const RestoreOptions& options, CancelToken& cancel);
};

// Throws Error(kConfig) for an unknown type.
std::unique_ptr<BackupSource> MakeBackupSource(const Environment& env, const TargetConfig& target);
// The registered type names (for config validation and --help).
std::vector<std::string> BackupSourceTypes();

namespace config {
class Reader;
}
// A source's own config keys, read by its row of the table: `backup` reads [target.backup]
// beyond the generic keys, `drill` reads [target.drill]'s source keys. Either may be null.
struct SourceOptionReaders {
  void (*backup)(config::Reader& r, BackupConfig* out) = nullptr;
  void (*drill)(config::Reader& r, DrillConfig* out) = nullptr;
};
// The readers of `type`, or nullptr for an unknown type.
const SourceOptionReaders* BackupSourceOptionReaders(const std::string& type);

}  // namespace rw
