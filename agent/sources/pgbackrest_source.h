#pragma once
// BackupSource "pgbackrest": the backup sets of one pgBackRest stanza (full, diff, incr), read
// with the real `pgbackrest` binary as [target.backup] run_as, with its own pgbackrest.conf
// ([target.backup] config; the agent never reads or prints that file: it may hold S3 keys).
//
// Catalogue()/Latest(): `pgbackrest --config=F --stanza=S [--repo=N] info --output=json`
// (bounded), every listed backup set by kind; the newest complete one of any kind is the latest.
// Called by the backup_catalogue collector on backup.catalogue_interval (never on the scrape
// path: the board keeps its last result) and by a drill's discover stage; nothing is cached.
//
// Restore() (a physical restore, like basebackup_source.h):
//   fetch:    "pgbackrest verify" of the backup set (--set): judged from its output, not only its
//             exit code (it exits 0 after reporting a missing or corrupt file); then
//             "pgbackrest restore" into the sandbox's empty data directory (--pg1-path) with
//             --type/--target from recovery_target, --target-action=promote, --archive-mode=off
//             and every tablespace mapped into the sandbox (--tablespace-map-all), so nothing of
//             the source's paths is ever written. pgBackRest writes its restore_command
//             (`pgbackrest ... archive-get`, read-only) into postgresql.auto.conf; the source
//             checks that it reads with archive-get and nothing else.
//   recovery: FollowRecovery() (agent/sources/physical_recovery.h) with archive_mode off on the
//             sandbox's command line: the copy can never archive-push into the repository.
// A backup found missing or corrupt (a file the verify or the restore names, a recovery to
// "latest" that stops before the newest archived segment) is RestoredCopy{usable = false,
// reason} quoting pgBackRest; the tool missing, an unknown stanza or an unreachable repository
// is Error(kProcess/kIo) naming pgbackrest and quoting its own error line.
//
// Users: the sandbox's data directory belongs to agent.run_as and its restore_command runs
// pgbackrest archive-get as that user, so a drill needs backup.run_as == agent.run_as (the
// default; usually `postgres`); Restore() refuses otherwise with Error(kConfig).
#include <memory>

#include "agent/backup_source.h"
#include "agent/sources/pgbackrest_options.h"

namespace rw {

std::unique_ptr<BackupSource> MakePgbackrestSource(const Environment& env,
                                                   const TargetConfig& target);

}  // namespace rw
