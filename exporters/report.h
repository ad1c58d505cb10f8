#pragma once
// Human and machine renderings of drill reports and the agent status. Pure functions of their
// inputs; thread-safe.
#include <string>

#include "agent/model.h"
#include "agent/status.h"

namespace rw {

// A readable multi-line report: result, backup, stages with durations, checks, failing tables.
std::string RenderReportText(const DrillReport& report);
// The JSON document of /api/v1/status.
std::string RenderStatusJson(const AgentStatus& status);

}  // namespace rw
