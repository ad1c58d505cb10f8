#pragma once
// The tables of drill checks and live collectors. The drill runner and the monitor (agent/runtime)
// build their lists here; adding a check or collector means adding one file and one row.
#include <memory>
#include <vector>

#include "agent/check.h"
#include "agent/collector.h"
#include "agent/config.h"

namespace rw {

// Drill checks enabled by the config, in run order (schema, row_count, checksum, freshness, sql).
std::vector<std::unique_ptr<Check>> MakeDrillChecks(const ChecksConfig& config);
// Live collectors for a target (source, archiver, replication, slots, standby, table_activity,
// backup_catalogue).
std::vector<std::unique_ptr<Collector>> MakeCollectors(const TargetConfig& target);

}  // namespace rw
