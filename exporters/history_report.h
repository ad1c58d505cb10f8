#pragma once
// Renderings of the drill log (agent/drill_log.h) for `restorewatch history` and
// /api/v1/targets/NAME/history: the last N drills with their stages and outcomes, the pass rate,
// and the RTO (the total stage's duration) min/median/max with its trend. Pure functions;
// thread-safe.
#include <cstddef>
#include <string>
#include <vector>

#include "agent/drill_log.h"

namespace rw {

struct DrillHistoryView {
  std::string target;
  std::size_t window = 0;             // N asked for
  std::size_t unreadable = 0;         // log lines skipped (a torn last line, corruption)
  std::vector<DrillLogEntry> drills;  // oldest first, at most `window`
};

// A readable block: header with pass rate and RTO, then one line per drill (newest first)
// with its stages, and the reason of drills that did not pass.
std::string RenderHistoryText(const DrillHistoryView& view);
// One JSON object:
//   {"target","window","drills_shown","unreadable_lines","passed","pass_rate",
//    "rto_seconds":{"samples","min","median","max"},
//    "rto_trend":{"older_median_seconds","newer_median_seconds","change_ratio","direction"},
//    "drills":[{run_id, started_at, finished_at, result, reason, rto_seconds, backup, stages,
//               checks}, ...newest first]}
std::string RenderHistoryJson(const DrillHistoryView& view);

}  // namespace rw
