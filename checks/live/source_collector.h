#pragma once
// SourceCollector ("source"): is the target's source reachable, and is it a primary or a standby.
// Exports restorewatch_source_up (always: 1 when a monitoring session could be opened and
// queried, else 0) and restorewatch_pg_in_recovery{server="source"} (only when up). Unlike the
// other collectors it never throws for an unreachable or failing source: "down" is its finding,
// and the series must stay present so alerts can fire on it. The wait for a dead server is bounded
// by the target's connect_timeout (and statement_timeout for a hung one). Only cancellation
// escapes, as Error(kCancelled). Logs a warning when the source goes down and a note when it comes
// back. Called by one thread at a time (the monitor's thread for this collector).
#include "agent/collector.h"

namespace rw {

class SourceCollector : public Collector {
 public:
  std::string name() const override { return "source"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;

 private:
  bool was_up_ = true;  // for logging transitions only
};

}  // namespace rw
