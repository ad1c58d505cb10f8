#pragma once
// Why the last drill did not pass, as two bounded labels an alert can route on: the stage that
// ended it and a kind from a small closed set (kDrillFailureKinds). Derived from the recorded
// DrillReport alone (stages, checks, reason), so it works for drills recorded by any version and
// for interrupted drills. Used by restorewatch_drill_last_failure_info (drill_metrics.cpp) and by
// the agent's own notifications (exporters/notifier.h). Pure functions, thread-safe.
#include <optional>
#include <string>

#include "agent/model.h"

namespace rw {

// The closed set of kinds, in the order documented in docs/METRICS.md:
//   no_backup        discover found no usable backup at all
//   backup_unusable  a backup was found but is corrupt or of the wrong database (a finding)
//   restore_failed   the restore (or fetch) could not run: a tool or the sandbox failed
//   recovery_failed  the restored copy did not recover to a consistent state
//   check_failed     the copy was restored and a check found a difference (a finding)
//   unverified       the copy was restored but a check could not run, so it is not proven
//   timeout          drill.timeout or a drill.stage_timeouts limit cut the drill short
//   cancelled        the agent stopped during the drill (shutdown, or a crash: interrupted)
//   environment      anything else that kept the drill from running (state dir, permissions)
inline constexpr const char* kDrillFailureKinds[] = {
    "no_backup",  "backup_unusable", "restore_failed", "recovery_failed", "check_failed",
    "unverified", "timeout",         "cancelled",      "environment"};

struct DrillFailure {
  std::string stage;  // discover, fetch, restore, recovery, checks, cleanup; "unknown" if none
  std::string kind;   // one of kDrillFailureKinds
};

// nullopt when the drill passed (result success); otherwise its stage and kind.
std::optional<DrillFailure> ClassifyDrillFailure(const DrillReport& report);

}  // namespace rw
