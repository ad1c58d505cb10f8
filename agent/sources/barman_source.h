#pragma once
// BackupSource "barman": the backups a Barman server keeps (barman 3.4, local, no ssh).
// Catalogue: `barman -c CONFIG -f json list-backups SERVER` (status, end time, size; only DONE
// backups are complete) and `show-backup` for the newest (begin time, WAL and LSN bounds,
// timeline, version), run as backup.run_as with a timeout.
// A drill (the restore contract of agent/backup_source.h, like the basebackup source):
//  fetch     `barman check SERVER`, `barman verify-backup SERVER ID` (pg_verifybackup against the
//            backup's manifest), then `barman recover --no-get-wal [--target-time T |
//            --target-immediate --target-action promote] SERVER ID DATADIR` into the sandbox's
//            empty data directory. --no-get-wal makes Barman copy every WAL segment recovery
//            needs into the copy (pg_wal for "latest", barman_wal/ with restore_command
//            'cp barman_wal/%f %p' for a target): the copy never calls back into Barman, and with
//            archive_mode forced off by the sandbox (and Barman's own archive_command = false)
//            it can never write into Barman's archive. The copied WAL is checked for
//            continuity from the backup's start: a gap names the missing segment.
//  recovery  the shared FollowRecovery() and DescribeDatabases() (physical_recovery.h).
// Failures quote barman: a failed check line, verify-backup's error, recover's error (a WAL
// segment missing from Barman's archive is a finding naming it); barman missing from PATH, an
// unknown server or config are errors naming barman and quoting it. barman writes the sandbox's
// data directory, which belongs to agent.run_as: backup.run_as must be that user (when the agent
// is not root, barman runs as the agent's own user). Every wait is bounded by the drill's timeout
// and cancel.
#include <memory>

#include "agent/backup_source.h"
#include "agent/sources/barman_options.h"

namespace rw {

std::unique_ptr<BackupSource> MakeBarmanSource(const Environment& env, const TargetConfig& target);

}  // namespace rw
