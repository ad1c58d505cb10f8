#pragma once
// The restorewatch_drill_* families (METRICS.md) from a target's persisted drill history, so they
// survive restarts. Pure function; thread-safe.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/metrics_model.h"
#include "agent/state.h"

namespace rw {

std::vector<MetricFamilyData> DrillFamilies(const TargetConfig& target,
                                            const DrillHistorySummary& history, bool running);

// restorewatch_drill_skipped_total{reason}: scheduled slots not run, by reason (still_running,
// concurrency_limit; every reason present from the start, so rate() works). Counts since the
// agent started, as counters do.
MetricFamilyData DrillSkippedFamily(const std::map<std::string, std::int64_t>& skipped_by_reason);

}  // namespace rw
