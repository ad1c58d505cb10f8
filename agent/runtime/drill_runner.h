#pragma once
// One restore drill, an explicit stage list run through one helper: discover the latest backup,
// fetch, restore and recovery (one call of the source's Restore(), which asks the sandbox host for
// what it needs and reports its sub-stages), checks, cleanup, then "total". Every stage is timed;
// a stage that failed is fail/error, one that did not run is listed in DrillReport::not_run as
// skipped with the reason, never as pass. Never throws: operational failures end up in
// DrillReport::result/reason. The sandbox is removed on every path (success, failure, exception,
// cancellation, timeout). Runs on the calling thread (plus one helper thread for source-side work
// during the restore and a watchdog).
#include <functional>
#include <string>

#include "agent/backup_source.h"
#include "agent/cancel.h"
#include "agent/check.h"
#include "agent/config.h"
#include "agent/drill_progress.h"
#include "agent/environment.h"
#include "agent/model.h"
#include "agent/state.h"

namespace rw {

// `progress` (may be null) is kept up to date while the drill runs: the stage, the step and what
// is done (agent/drill_progress.h), for the status API, the ticker's log line and verify.
DrillReport RunDrill(const Environment& env, const TargetConfig& target, ActivityStore* activity,
                     CancelToken& cancel, DrillProgress* progress = nullptr);

// What a drill is built from. Each empty member means the table: MakeBackupSource, MakeSandbox,
// MakeDrillChecks. Tests put their own parts in.
struct DrillParts {
  std::function<std::unique_ptr<BackupSource>(const Environment&, const TargetConfig&)> source;
  std::function<std::unique_ptr<Sandbox>(const Environment&, const TargetConfig&,
                                         const std::string& run_id,
                                         const std::string& source_system_id)>
      sandbox;
  std::function<std::vector<std::unique_ptr<Check>>(const ChecksConfig&)> checks;
};
DrillReport RunDrill(const Environment& env, const TargetConfig& target, ActivityStore* activity,
                     CancelToken& cancel, DrillProgress* progress, const DrillParts& parts);

// "20261125T031504Z-3f2a": sortable, unique enough per target.
std::string NewRunId();

}  // namespace rw
