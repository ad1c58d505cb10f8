#pragma once
// The one place a finished drill is recorded, for the daemon (scheduled drills, the drill API)
// and `verify` alike: the interrupted-drill marker while it runs, then drills.jsonl (DrillLog),
// the verification ledger (agent/ledger.h: the drilled backup's verdict),
// then the summary history (DrillHistory: last_drill.toml, run counters, last success), then
// whatever hangs off a recorded drill (the daemon's metrics and status cache, notifications):
// listeners called with the report and the new summary. A recorder belongs to one target's state
// dir; Finish() may run on any thread, one drill at a time per target (the drill lock).
#include <functional>
#include <string>
#include <vector>

#include "agent/model.h"
#include "agent/state.h"

namespace rw {

class DrillRecorder {
 public:
  using Listener = std::function<void(const DrillReport&, const DrillHistorySummary&)>;
  // dir: state_dir/<target>. Throws Error(kIo) when it cannot be created (DrillHistory).
  explicit DrillRecorder(const std::string& dir);
  DrillHistory& history() { return history_; }
  // Called after every recorded drill, in the order added; a listener that throws is logged and
  // the others still run.
  void OnRecorded(Listener l) { listeners_.push_back(std::move(l)); }
  // A drill starts: a crash from now on is recorded as an interrupted drill. Never throws.
  void Begin(double started_at);
  // Records `report` (drills.jsonl, then the history), tells the listeners, and returns the new
  // summary. Never throws: a state file that cannot be written is logged (the drill's result is
  // still returned to the caller and reported).
  DrillHistorySummary Finish(const DrillReport& report);

 private:
  std::string dir_;
  DrillHistory history_;
  std::vector<Listener> listeners_;
};

}  // namespace rw
