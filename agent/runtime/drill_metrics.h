#pragma once
// The restorewatch_drill_* families (METRICS.md) from a target's persisted drill history, so they
// survive restarts. Pure function; thread-safe.
#include <vector>

#include "agent/config.h"
#include "agent/metrics_model.h"
#include "agent/state.h"

namespace rw {

std::vector<MetricFamilyData> DrillFamilies(const TargetConfig& target,
                                            const DrillHistorySummary& history, bool running);

}  // namespace rw
