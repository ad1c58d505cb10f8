#pragma once
// The running agent: owns the config, the per-target state that outlives reloads (activity
// samples, drill history, the running flag: TargetState), the monitoring jobs (one per collector
// per target, rebuilt on every reload, run by the shared MonitorPool with the /metrics
// pre-render), the drill scheduler (each target's cron with its jitter;
// at most agent.max_concurrent_drills drills at once and never two of one target), the metrics
// board and the HTTP endpoint.
//
// Ownership: a drill holds shared_ptrs to the config it started with and to its target's state,
// so a reload (or a reload removing the target) never frees what a running drill uses, and
// restorewatch_drill_running stays 1 across it. Every thread the agent starts is joined by Stop().
//
// Start() once; Reload() and ReloadFailed() from the signal thread; Stop() from the thread that
// owns the Agent. All other public methods are thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"
#include "agent/metrics_model.h"
#include "agent/model.h"
#include "agent/status.h"

namespace rw {

class HttpServer;
struct HttpAnswer;
class MetricsCache;
class MetricsExporter;
class MonitorPool;
class NotificationHub;
class TargetRuntime;
class TargetState;

struct AgentOptions {
  bool serve_http = true;     // false: no listener (verify)
  bool run_scheduler = true;  // false: drills only on RunDrillNow (demo)
};

class Agent {
 public:
  Agent(Config config, AgentOptions options = {});
  // Calls Stop(); if Stop() reported threads still running, waits for them (callers that cannot
  // wait end the process with _exit() instead of destroying the Agent).
  ~Agent();
  // Resolves the environment, starts monitors, scheduler and HTTP. Throws Error on a fatal
  // start-up problem (no PostgreSQL binaries, cannot listen).
  void Start();
  // Applies a new config (already validated): collectors restart with it; per-target state is
  // kept for targets that remain. A running drill finishes with the config it started with.
  void Reload(Config config);
  // Records a rejected reload (restorewatch_config_last_reload_successful 0).
  void ReloadFailed();
  // Runs one drill for `target` on the calling thread, once that target has no drill running and
  // a drill slot is free (waits for both). Throws Error(kConfig) for an unknown target and
  // Error(kCancelled) when the agent stops while waiting.
  DrillReport RunDrillNow(const std::string& target);
  // Stops HTTP and the scheduler, cancels running drills (each removes its sandbox) and in-flight
  // collector queries, and joins every thread, waiting at most agent.shutdown_timeout for drills
  // and collectors. Returns true when everything was joined. False means a thread was still stuck
  // past the bound (it is left running, not detached): the daemon then ends with _exit(0) so no
  // exit handler runs under it. Idempotent.
  bool Stop();

  // ---- HTTP API (agent/runtime/agent_api.cpp) ----
  enum class DrillRequestResult { kStarted, kUnknownTarget, kAlreadyRunning, kStopping };
  // Starts RunDrillNow(target) on a thread the agent owns (joined at Stop) and returns at once.
  // kAlreadyRunning when a drill of `target` runs here or in `verify` (its drill lock is held)
  // or was already requested; *detail then says which.
  DrillRequestResult RequestDrill(const std::string& target, std::string* detail);
  // The JSON of /api/v1/targets/NAME/history (the newest `last` drills); nullopt: no such target.
  std::optional<std::string> HistoryJson(const std::string& target, int last) const;
  // GET /api/v1/targets/NAME/ledger (agent_api.cpp); nullopt: no such target.
  std::optional<std::string> LedgerJson(const std::string& target) const;
  // GET /api/v1/targets/NAME/runbook: 200 text/markdown, the same text as `restorewatch
  // runbook`; 404 for an unknown target or when no drill of it passed yet (the reason as text).
  HttpAnswer RunbookApi(const std::string& target) const;

  int http_port() const;
  bool Ready() const;
  AgentStatus Status() const;
  std::string RenderMetrics() const;
  const Environment& environment() const { return *env_; }

 private:
  struct DrillThread;
  struct ScheduledTarget;
  void StartTargets();
  void SyncStates(bool at_start);
  void SchedulerLoop();
  void ScheduleOnce(std::map<std::string, ScheduledTarget>& sched);
  void WakeScheduler();
  // Reserves a drill slot for `name` when AdmitDrill allows it (drill_mu_ held by the caller).
  bool TryReserveDrillLocked(const std::string& name, int* why);
  void ReleaseDrill(const std::string& name);
  void LaunchDrillLocked(const std::string& name, std::time_t slot);
  void ReapDrillThreads(bool wait_all);
  // The drill itself, on the calling thread, with a slot already reserved.
  DrillReport ExecuteDrill(const std::string& name);
  void PublishAgentMetrics();
  // agent_api.cpp: POST /api/v1/targets/NAME/drill as an HTTP answer; joins request threads.
  HttpAnswer DrillApi(const std::string& target);
  void JoinDrillRequests(std::chrono::steady_clock::time_point deadline);

  AgentOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> config_;                           // guarded by mu_
  std::map<std::string, std::shared_ptr<TargetState>> states_;     // guarded by mu_
  std::map<std::string, std::unique_ptr<TargetRuntime>> targets_;  // guarded by mu_
  std::vector<std::unique_ptr<TargetRuntime>> unjoined_;           // stuck collectors
  std::unique_ptr<Environment> env_;
  MetricsBoard board_;
  // The agent's own notifications ([[notifier]], exporters/notifier.h); after board_, which it
  // publishes into. Created in Start(), reconfigured by Reload(), drained and stopped by Stop().
  std::unique_ptr<NotificationHub> notify_;
  std::unique_ptr<MetricsExporter> exporter_;
  // The worker threads of every collector and of the /metrics pre-render (monitor_pool.h); made
  // in Start(), stopped by Stop() once the runtimes are joined, freed last by ~Agent.
  std::unique_ptr<MonitorPool> monitor_;
  std::unique_ptr<MetricsCache> metrics_cache_;  // what /metrics serves (metrics_cache.h)
  std::uint64_t render_job_ = 0;                 // the pool job refreshing metrics_cache_
  // The board generation once every collector had run (0: not yet, or reloaded since): ready
  // only when the page /metrics serves covers it, so a scrape after /readyz sees the collectors.
  mutable std::atomic<std::uint64_t> ready_generation_{0};
  std::unique_ptr<HttpServer> http_;

  // Drill slots: which targets run a drill, how many run, and the threads the scheduler started.
  std::mutex drill_mu_;
  std::condition_variable drill_cv_;      // a slot was released, or stop
  std::set<std::string> drilling_;        // guarded by drill_mu_
  int active_drills_ = 0;                 // guarded by drill_mu_ (includes RunDrillNow callers)
  std::list<DrillThread> drill_threads_;  // guarded by drill_mu_
  std::atomic<int> max_concurrent_drills_{1};

  CancelToken stop_;  // agent shutdown
  std::mutex sched_mu_;
  std::condition_variable sched_cv_;
  bool sched_wake_ = false;  // guarded by sched_mu_
  std::thread scheduler_;
  bool scheduled_once_ = false;  // scheduler thread only
  std::atomic<bool> last_reload_ok_{true};
  double started_at_ = 0;
  double config_loaded_at_ = 0;
  bool stopped_ = false;
  // Drills requested through the API, one per target at most (agent_api.cpp).
  struct RequestedDrill {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex requests_mu_;
  std::map<std::string, RequestedDrill> requested_;
};

}  // namespace rw
