#pragma once
// One restore drill: discover the latest backup, start a sandbox, restore, run the checks, clean
// up. Every stage is timed; a stage that could not run is reported as error or skipped, never as
// pass. Never throws: operational failures end up in DrillReport::result/reason. The sandbox is
// removed on every path (success, failure, exception, cancellation, timeout). Runs on the calling
// thread (plus one helper thread for source-side work during the restore and a watchdog).
#include <functional>
#include <string>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"
#include "agent/model.h"
#include "agent/state.h"

namespace rw {

// Called with the report after each stage, for live status (may be empty).
using DrillProgress = std::function<void(const DrillReport&)>;

DrillReport RunDrill(const Environment& env, const TargetConfig& target, ActivityStore* activity,
                     CancelToken& cancel, const DrillProgress& progress = {});

// "20261125T031504Z-3f2a": sortable, unique enough per target.
std::string NewRunId();

}  // namespace rw
