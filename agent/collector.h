#pragma once
// Collector: one live-monitoring probe (archiver, replication, slots, standby, table_activity,
// backup_catalogue, source, wal_archive), one class per file in checks/, built by the table in
// checks/live/collectors.cpp. The monitor runs each collector as a job of the agent's shared
// MonitorPool (agent/runtime/monitor_pool.h) every monitor_interval (or its own interval), times
// it and exports restorewatch_collector_success and _duration_seconds; a collector throws
// rw::Error when it cannot collect, and then its series are dropped until the next success. Each
// collector opens its own read-only session with timeouts, so a hung database holds one pool
// worker at most that long (the pool adds a worker when the others are all held) and blocks
// only that collector. Families come without the `target` label.
#include <memory>
#include <string>
#include <vector>

#include "agent/backup_source.h"
#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"
#include "agent/metrics_model.h"
#include "agent/state.h"

namespace rw {

struct CollectContext {
  const TargetConfig& target;
  CancelToken& cancel;
  ActivityStore* activity = nullptr;      // table_activity writes samples here
  BackupSource* backup_source = nullptr;  // backup_catalogue reads it
  std::string state_dir;                  // state_dir/<target>: what a collector must remember
  const Environment* env = nullptr;       // tools and dirs (copies: a source per copy)
  // Out: one line per thing worth knowing that no metric label can carry (copies: why a copy is
  // not present); shown with the collector in /api/v1/status.
  std::vector<std::string> notes = {};
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual std::string name() const = 0;
  // Interval between runs; default: the target's monitor_interval.
  virtual Duration interval(const TargetConfig& t) const { return t.monitor_interval; }
  virtual std::vector<MetricFamilyData> Collect(CollectContext& ctx) = 0;
};

}  // namespace rw
