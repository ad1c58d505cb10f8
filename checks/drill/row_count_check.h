#pragma once
// row_count: per table (leaf partitions separately), rows in the restored copy vs rows on the
// live source, within the churn since the backup (checks/drill/churn.h): untouched tables must match
// exactly; touched ones may differ by what their counters say they gained and lost, plus
// slack_rows; without activity samples covering the backup time, a table that matches exactly
// passes and one that differs is unverified: an error naming the missing evidence, never a pass
// or a warning. compare = "exact":
// every table must match. Before failing a table on churn grounds, the source's counters are
// re-read once after ChecksConfig::stats_settle (statistics of recent writes may still be
// pending). Large objects are compared by count (a difference is a warning in churn mode: there
// are no activity counters for them).
// Counts come from the scan shared with checksum (checks/drill/table_scan.h); BeforeRestore() starts
// the source side's scan during the restore. Threads: as Check.
#include "agent/check.h"

namespace rw {

class RowCountCheck : public Check {
 public:
  std::string name() const override { return "row_count"; }
  void BeforeRestore(CheckContext& ctx) override;
  CheckResult Run(CheckContext& ctx) override;
};

}  // namespace rw
