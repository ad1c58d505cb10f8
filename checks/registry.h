#pragma once
// The tables of drill checks and live collectors. The drill runner and the monitor (agent/runtime)
// build their lists here; adding a check or collector means adding one file and one row.
#include <memory>
#include <string>
#include <vector>

#include "agent/check.h"
#include "agent/collector.h"
#include "agent/config.h"

namespace rw {

// Which of a check's CheckResult numbers are exported as restorewatch_drill_* metrics, declared
// in the check's row of the table (so the metrics read data, not check names).
struct CheckMetrics {
  bool tables = false;            // tables_compared / tables_mismatched{check}
  bool rows_checksummed = false;  // rows_checksummed (restored side), when the check judged
  bool coverage = false;          // rows_verified, rows_unverified, tables_unverified
  bool indexes = false;           // indexes_checked{check}
};
// The row's declaration for a check name ("sql:..." and unknown names: none).
CheckMetrics MetricsOfCheck(const std::string& name);

// Drill checks enabled by the config, in run order (schema, row_count, checksum, freshness,
// amcheck, sql).
std::vector<std::unique_ptr<Check>> MakeDrillChecks(const ChecksConfig& config);
// Live collectors for a target (source, archiver, replication, slots, standby, table_activity,
// backup_catalogue).
std::vector<std::unique_ptr<Collector>> MakeCollectors(const TargetConfig& target);

}  // namespace rw
