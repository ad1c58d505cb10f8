#pragma once
// BackupSource: where a target's backups come from. One implementation per file in agent/sources/
// (pg_dump now; base backup + WAL, pgBackRest, Barman, command later), picked by backup.type
// through the table in agent/backup_source.cpp. Catalogue() is cheap (file listing, no restore) and
// runs on the monitor thread; Restore() runs on the drill thread. Implementations hold no mutable
// shared state, so one instance may serve both threads.
#include <memory>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"
#include "agent/model.h"
#include "agent/sandbox.h"

namespace rw {

struct RestoreOptions {
  int jobs = 2;
  std::vector<std::string> allow_errors;  // substrings of error lines accepted as harmless
  std::string database;                   // wanted database name in the sandbox
  Duration timeout = std::chrono::hours(2);
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
  // Restores `backup` into the (started) sandbox. Throws Error(kBadInput) quoting the restore
  // tool's own error lines, or kProcess/kIo/kCancelled.
  virtual RestoreOutcome Restore(const BackupInfo& backup, Sandbox& sandbox,
                                 const RestoreOptions& options, CancelToken& cancel) = 0;
};

// Throws Error(kConfig) for an unknown type.
std::unique_ptr<BackupSource> MakeBackupSource(const Environment& env, const TargetConfig& target);
// The registered type names (for config validation and --help).
std::vector<std::string> BackupSourceTypes();

}  // namespace rw
