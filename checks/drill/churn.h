#pragma once
// The churn rule shared by row_count and checksum: how far a table of the live source may have
// moved away from a backup taken at time T. With a counter sample s0 at or before T and the
// counters read from the source at scan time, a table gained at most Δn_tup_ins and lost at most
// Δn_tup_del rows since T (PostgreSQL counts every inserted and deleted row, also of aborted
// transactions, so these are upper bounds); a table whose counters did not move is untouched and
// must match exactly. Without such a sample (or after a stats reset) the table's churn is
// unknown: a table that still matches exactly passes, but a difference that no evidence explains
// leaves the table *unverified*, which is an error (never a pass or a warning): the agent cannot
// tell a broken backup from later writes. Known blind spot: TRUNCATE does not count deleted rows,
// so a table truncated after T shows as a count mismatch.
// Pure functions, thread-safe.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "agent/config.h"
#include "agent/model.h"
#include "agent/state.h"

namespace rw {

struct ChurnBasis {
  bool covered = false;    // a sample at or before the backup time exists
  double sample_ts = 0;    // that sample's time (when covered)
  double counters_ts = 0;  // when the source's current counters were read
  // The source's pg_current_snapshot() recorded with that sample (empty when not recorded): every
  // transaction it sees as committed is in the backup. The evidence of row-level proof.
  std::string snapshot;
  // Why not covered, with what would supply the evidence, e.g. "no activity history covers
  // 2026-12-01T03:00:00Z (the samples start at ...); run the daemon before the next backup".
  std::string note;
  std::map<std::string, std::optional<TableChurn>> tables;  // from ActivityStore::Churn
  // Tables in the current counters but not in the sample before the backup: created since, so
  // legitimately absent from the restored copy.
  std::set<std::string> created_since;
  // The table's churn since the backup, or nullopt when unknown (not covered, stats reset, or
  // the table is absent from the current counters).
  std::optional<TableChurn> For(const std::string& table) const;
};

// Reads the sample at or before `backup_time` from `store` (may be null) and computes the churn up
// to `now` (the counters read from the source). An unreadable store is reported in note, never
// thrown: tables that differ are then unverified.
ChurnBasis ComputeChurn(ActivityStore* store, double backup_time, const ActivitySample& now);

// The allowed difference source_rows - restored_rows, as [-below, +above].
// kUnknown: no evidence of the table's churn; only equality proves anything.
enum class BoundKind { kExact, kChurn, kUnknown };
struct RowCountBound {
  BoundKind kind = BoundKind::kExact;
  std::int64_t below = 0;  // rows the source may have lost since the backup
  std::int64_t above = 0;  // rows the source may have gained
  std::optional<TableChurn> churn;
};

// exact mode: [0, 0]. churn mode with known churn: untouched tables [0, 0]; touched tables
// [-(deleted + slack), +(inserted + slack)]. Unknown churn: kUnknown, [0, 0].
RowCountBound RowCountBoundFor(std::int64_t source_rows, const std::optional<TableChurn>& churn,
                               const ChecksConfig& config);

// pass when equal, or within a churn bound; fail outside a known bound; error ("unverified") when
// different and the churn is unknown. message is empty on a plain pass.
struct RowCountVerdict {
  Outcome outcome = Outcome::kPass;
  std::string message;
};
RowCountVerdict JudgeRowCount(std::int64_t source_rows, std::int64_t restored_rows,
                              const RowCountBound& bound, const ChecksConfig& config);

// What checksum does with a table.
enum class ChecksumPlan {
  kCompare,         // exact mode, or untouched since the backup: hashes must match
  kAppendOnly,      // declared append-only: compare rows with key <= the restored max(key)
  kSkipTouched,     // changed since the backup: not compared
  kCompareUnknown,  // churn unknown: compared; a match passes, a mismatch leaves it unverified
};
ChecksumPlan PlanChecksum(const std::string& table, const std::optional<TableChurn>& churn,
                          const ChecksConfig& config);

// The configured append-only entry of a table, if any.
const AppendOnlyTable* FindAppendOnly(const std::string& table, const ChecksConfig& config);

}  // namespace rw
