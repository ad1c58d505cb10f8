#pragma once
// What /api/v1/status shows: a plain snapshot assembled by the runtime and rendered by exporters.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/drill_progress.h"
#include "agent/state.h"

namespace rw {

struct CollectorStatus {
  bool success = false;
  double duration_seconds = 0;
  double last_run = 0;             // Unix seconds
  std::string error;               // one line when !success
  std::vector<std::string> notes;  // CollectContext::notes of the last run
};

struct TargetStatus {
  std::string name;
  std::string source;  // redacted conninfo
  std::string backup_type;
  std::optional<double> next_drill;  // Unix seconds; absent when unscheduled
  std::string schedule;              // cron text or empty
  bool drill_running = false;
  // While a drill runs: its stage, how long it has run, what is done (agent/drill_progress.h).
  std::optional<ProgressSnapshot> drill_progress;
  DrillHistorySummary history;
  std::map<std::string, CollectorStatus> collectors;
};

struct AgentStatus {
  std::string version;
  std::string revision;
  double started_at = 0;
  std::string config_path;
  bool config_last_reload_successful = true;
  double config_loaded_at = 0;
  bool ready = false;
  std::vector<TargetStatus> targets;
};

}  // namespace rw
