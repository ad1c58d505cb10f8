#pragma once
// BackupSource "basebackup": pg_basebackup outputs (plain or tar, agent/sources/
// basebackup_catalogue.h) plus the WAL archive (`[target.backup] wal_archive`). A drill is a
// physical restore: the backup is copied or extracted into an empty data directory of the sandbox
// and verified against its manifest with pg_verifybackup (fetch), started in archive recovery with
// a restore_command reading the archive and archive_mode off (recovery), followed until it
// promotes at the recovery target or the end of the archive, all waits bounded by the drill's
// timeout. The copy's point is the last commit it replayed (pg_last_xact_replay_timestamp()),
// with the LSN and timeline reached. Recovery to "latest" that stops before the newest archived
// segment is a finding: a segment after the backup is missing or unreadable.
// [target.drill] recovery_target: "latest" (default), "immediate" (consistency), or a time
// ("2026-11-24 03:00:00+00").
#include <memory>
#include <string>

#include "agent/backup_source.h"
#include "agent/sources/basebackup_options.h"

namespace rw {

std::unique_ptr<BackupSource> MakeBasebackupSource(const Environment& env,
                                                   const TargetConfig& target);

}  // namespace rw
