#pragma once
// checksum: per table, an order-independent hash of every row's content (checks/drill/table_scan.h),
// restored copy vs source, for every table untouched since the backup (checks/drill/churn.h) and, in
// compare = "exact", for every table. Append-only tables (ChecksumConfig::append_only) are
// compared over the rows whose key is at most the restored copy's max(key). Tables touched since
// the backup are not compared and are listed in the message (and counted as unverified). Where
// the churn is unknown (no activity samples) tables are compared anyway: a match passes, a
// mismatch leaves the table unverified, an error. The result carries the coverage: rows and
// tables verified and unverified.
// On a mismatch of a table with a primary key, the difference is narrowed down by key ranges
// (16-way splits from the side holding more rows, one grouped count+hash query per side and
// split, bounded per table) down to ranges of a few hundred rows whose per-row hashes are
// compared: the finding says how many rows differ and lists up to sample_keys keys. Before
// failing a table that looked untouched, the source's counters are re-read after stats_settle.
// Threads: as Check.
#include "agent/check.h"

namespace rw {

class ChecksumCheck : public Check {
 public:
  std::string name() const override { return "checksum"; }
  void BeforeRestore(CheckContext& ctx) override;
  CheckResult Run(CheckContext& ctx) override;
};

}  // namespace rw
