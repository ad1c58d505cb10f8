#pragma once
// The running agent: owns the config, the monitor threads (one per collector per target), the
// drill scheduler (one drill at a time, on each target's cron), the metrics board and the HTTP
// endpoint. Start() once; Reload() from the signal thread; Stop() cancels in-flight work
// (removing its sandbox) and joins threads within agent.shutdown_timeout. All public methods are
// thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
class MetricsExporter;
class TargetRuntime;

struct AgentOptions {
  bool serve_http = true;     // false: no listener (verify)
  bool run_scheduler = true;  // false: drills only on RunDrillNow (demo)
};

class Agent {
 public:
  Agent(Config config, AgentOptions options = {});
  ~Agent();
  // Resolves the environment, starts monitors, scheduler and HTTP. Throws Error on a fatal
  // start-up problem (no PostgreSQL binaries, cannot listen).
  void Start();
  // Applies a new config (already validated). Monitors restart; a running drill finishes with the
  // config it started with.
  void Reload(Config config);
  // Records a rejected reload (restorewatch_config_last_reload_successful 0).
  void ReloadFailed();
  // Runs one drill for `target` on the calling thread (one drill at a time across the agent).
  DrillReport RunDrillNow(const std::string& target);
  void Stop();

  // ---- HTTP API (agent/runtime/agent_api.cpp) ----
  enum class DrillRequestResult { kStarted, kUnknownTarget, kAlreadyRunning, kStopping };
  // Starts RunDrillNow(target) on a thread the agent owns (joined at Stop) and returns at once.
  // kAlreadyRunning when a drill of `target` runs here or in `verify` (its drill lock is held)
  // or was already requested; *detail then says which.
  DrillRequestResult RequestDrill(const std::string& target, std::string* detail);
  // The JSON of /api/v1/targets/NAME/history (the newest `last` drills); nullopt: no such target.
  std::optional<std::string> HistoryJson(const std::string& target, int last) const;

  int http_port() const;
  bool Ready() const;
  AgentStatus Status() const;
  std::string RenderMetrics() const;
  const Environment& environment() const { return *env_; }

 private:
  void StartTargets();
  void StopTargets();
  void SchedulerLoop();
  void PublishAgentMetrics();
  void RecordDrill(const TargetConfig& target, const DrillReport& report);
  // agent_api.cpp: POST /api/v1/targets/NAME/drill as an HTTP answer; joins request threads.
  HttpAnswer DrillApi(const std::string& target);
  void JoinDrillRequests(std::chrono::steady_clock::time_point deadline);

  AgentOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<Environment> env_;
  MetricsBoard board_;
  std::unique_ptr<MetricsExporter> exporter_;
  std::unique_ptr<HttpServer> http_;
  std::map<std::string, std::unique_ptr<TargetRuntime>> targets_;
  std::mutex drill_mu_;  // one drill at a time
  CancelToken stop_;     // agent shutdown
  std::mutex sched_mu_;
  std::condition_variable sched_cv_;
  bool sched_wake_ = false;
  std::thread scheduler_;
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
