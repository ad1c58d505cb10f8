#pragma once
// Row-level proof for a table written since the backup (issue "honest verdicts", rule 3).
//
// Evidence: a snapshot S of the source, pg_current_snapshot() recorded by the daemon at or before
// the backup's time T (agent/state.h). Every transaction S saw as committed is in the backup.
// A source row is *unchanged since S* when its xmin precedes S's xmin (so its inserting
// transaction had finished before S, and since the row is visible now it committed) and it is
// still visible now (no committed xmax). Such a row must be in the copy with the same content.
// Only xmin < S.xmin counts, not "xmin visible in S": pg_current_snapshot() lists top-level
// transactions only, so a subtransaction's xid inside [S.xmin, S.xmax) cannot be judged; rows
// committed in that short window are treated as changed (fewer rows proven, never a false proof).
//
// In one REPEATABLE READ READ ONLY transaction on the source: U = the unchanged rows (count and
// hash), C = the keys of every other visible row (changed or inserted since S). The copy, in one
// transaction, gets C in a temporary table and hashes its rows whose key is not in C. Equal:
// every unchanged row is proven. Different: the two sides are bisected by key ranges
// (checks/drill/narrower.h) and each differing key is classified:
//  - in U but missing from the copy, or in U with other content in the copy: unexplained (fail);
//  - in the copy, absent from the source and not in C: the row was deleted since; explained only
//    up to the deletes the activity counters recorded since the sample (more: fail).
// Known limits, stated where they apply: a key update looks like a delete plus an insert, and
// TRUNCATE is not counted as deletes, so both can only produce false failures, never a false pass.
// Thread-safe (no shared state); one call per table.
#include <cstdint>
#include <pqxx/pqxx>
#include <string>

#include "agent/cancel.h"
#include "checks/drill/catalog.h"
#include "checks/drill/narrower.h"
#include "checks/drill/table_scan.h"

namespace rw {

// A pg_current_snapshot() text "xmin:xmax:xip,..." parsed; nullopt when malformed.
struct SnapshotText {
  std::uint64_t xmin = 0;
  std::uint64_t xmax = 0;
};
std::optional<SnapshotText> ParseSnapshotText(const std::string& text);

struct RowProofInput {
  RowProofInput(const TableInfo& s, const TableInfo& r) : source_table(s), restored_table(r) {}
  const TableInfo& source_table;
  const TableInfo& restored_table;
  HashMethod method = HashMethod::kRecord;
  std::string snapshot;            // S as text
  std::int64_t deletes_since = 0;  // rows deleted on the source since the sample (upper bound)
  NarrowLimits limits;
  std::int64_t max_changed_keys = 2'000'000;  // more changed rows than this: not attempted
};

enum class ProofVerdict { kProven, kFail, kUnverified };

struct RowProof {
  ProofVerdict verdict = ProofVerdict::kUnverified;
  std::int64_t unchanged_rows = 0;  // |U|: rows unchanged since S (verified when kProven)
  std::int64_t changed_rows = 0;    // |C|: rows changed or inserted since S (not compared)
  std::int64_t extra_rows = 0;      // copy rows deleted since on the source (explained)
  NarrowResult diff;                // when the first comparison differed
  std::string message;              // one line: what was proven, or why not / what differs
};

// Throws Error (kCancelled, kQuery via WithPgErrors) when the work cannot be done; the caller
// decides what that means for the table.
RowProof ProveRows(pqxx::connection& source, pqxx::connection& restored, const RowProofInput& in,
                   CancelToken& cancel);

}  // namespace rw
