#pragma once
// freshness: for each configured "schema.table" = "column" (a timestamp or date column), the
// newest value in the restored copy against the backup's snapshot time (a restored maximum far
// older than the backup means data had stopped arriving before it) and against the newest value
// on the source now: the backup's real data age. Sets CheckResult::recovered_timestamp to the
// newest restored value across tables (restorewatch_drill_recovered_timestamp_seconds).
// pass with the ages in the message; warn when a table has no rows; fail when the table or column
// is missing from the restored copy; throws (error) when a value cannot be read.
// Runs after the restore only. Threads: as Check.
#include "agent/check.h"

namespace rw {

class FreshnessCheck : public Check {
 public:
  std::string name() const override { return "freshness"; }
  CheckResult Run(CheckContext& ctx) override;
};

}  // namespace rw
