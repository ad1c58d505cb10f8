#pragma once
// What every physical source (basebackup, pgBackRest, Barman, a command fetching a base backup)
// does once the files are in the sandbox's data directory: start PostgreSQL in archive recovery,
// follow recovery until it promotes (bounded by the drill's deadline and `cancel`), and describe
// the copy: the LSN and timeline reached, the last replayed commit (the copy's point), the
// databases it holds. Shared so each source stays one file pair.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/cancel.h"
#include "agent/drill_progress.h"
#include "agent/restored_copy.h"
#include "agent/sandbox.h"

namespace rw {

// A postgresql.conf string value: 'it''s'.
std::string ConfQuote(const std::string& s);

struct RecoveryFollowOptions {
  // The LSN the backup starts at ("0/2000028"), to count the bytes replayed; empty = unknown.
  std::string start_lsn;
  // The copy's point when recovery replayed no transaction (the backup's own end), Unix seconds.
  double fallback_consistent_at = 0;
  // Recovery stops on a commit record named by recovery_target_lsn (inclusive): that commit's
  // time, Unix seconds. PostgreSQL does not count the commit it stops at by LSN in
  // pg_last_xact_replay_timestamp() (recoveryStopsAfter returns before SetLatestXTime), so without
  // it the copy's point would read as the commit before, or the backup's end.
  std::optional<double> stop_commit_time;
  std::chrono::steady_clock::time_point deadline;
  // Told the step and the WAL bytes replayed so far while recovery runs (may be null).
  DrillProgress* progress = nullptr;
};

// Starts `data_dir` with `how` and waits until the copy has promoted. Appends the sub-stages
// "consistency" and "wal replay" (recovery) to copy->stages and sets copy->lsn, timeline,
// consistent_at and data_dir. Throws Error(kTimeout) when recovery does not end before the
// deadline, and what StartDataDirectory throws (the server's own reason) when it exits.
void FollowRecovery(SandboxHost& host, const std::string& data_dir, const DataDirStart& how,
                    const RecoveryFollowOptions& options, CancelToken& cancel, RestoredCopy* copy);

// Fills copy->databases (user databases; `wanted` first when given) and copy->conninfo. Returns
// false with copy->reason set when `wanted` is not in the copy.
bool DescribeDatabases(SandboxHost& host, const std::string& wanted, RestoredCopy* copy);

// The WAL segments in an archive at one moment (names and sizes), taken before recovery starts:
// every one of them was there for recovery to read.
struct ArchiveSnapshot {
  std::vector<std::pair<std::string, std::uint64_t>> segments;
};
// Lists `archive_dir` (names only, one stat each). Throws Error(kIo) when it cannot be listed.
ArchiveSnapshot SnapshotArchive(const std::string& archive_dir);
// Recovery to the end of the archive stops early, and still promotes, at the first record it
// cannot read (a corrupt segment): empty when the copy's LSN `reached` is in, or past, the newest
// whole segment of `before` (compressed ones count as whole; a shorter uncompressed one is still
// being written); else one line naming the LSN and that segment.
std::string ReplayShortOfArchive(const ArchiveSnapshot& before, const std::string& reached,
                                 std::uint32_t segment_size);

}  // namespace rw
