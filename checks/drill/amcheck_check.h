#pragma once
// amcheck: PostgreSQL's own structural verification of the restored copy (contrib amcheck, part
// of the server package). On the compared database of the copy: CREATE EXTENSION IF NOT EXISTS
// amcheck (dropped again when the check created it), then bt_index_check(index, heapallindexed =>
// true) for every valid B-tree index and verify_heapam for every table and materialized view
// (their TOAST included), system catalogs included, exclude_tables honoured. Unlogged and
// temporary relations are skipped (a physical copy resets unlogged ones; temporary ones belong to
// other sessions); partitioned parents hold no storage (their partitions are checked).
//
// Writes to the copy only: before creating the extension it proves the restored session does not
// reach the source server itself (system identifier, postmaster start time and port all equal),
// on top of the sandbox's own guarantee (an ephemeral sandbox is the agent's cluster on its own
// socket; a scratch server is refused when it is the source).
//
// fail when a relation is corrupt (names it, quotes amcheck's message); error when a relation
// could not be checked (no extension package, permission, a lock) or the extension cannot be
// created; pass otherwise. Numbers: tables_compared = tables verified, indexes_checked = B-tree
// indexes verified, tables_mismatched = relations found corrupt.
// Cost: every table is read once, and each index's table once more for heapallindexed (a table
// with three indexes is read four times), plus the indexes themselves; bounded by the checks
// stage timeout and the drill's cancel. Off by default ([target.checks] amcheck = true).
// Runs after the restore only. Threads: as Check.
#include "agent/check.h"

namespace rw {

class AmcheckCheck : public Check {
 public:
  std::string name() const override { return "amcheck"; }
  CheckResult Run(CheckContext& ctx) override;
};

}  // namespace rw
