#include "agent/runtime/agent.h"

#include <algorithm>
#include <chrono>

#include "agent/backup_source.h"
#include "agent/drill_log.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/runtime/drill_metrics.h"
#include "agent/runtime/drill_runner.h"
#include "agent/sandboxes/scratch.h"
#include "agent/state.h"
#include "agent/state_lock.h"
#include "checks/registry.h"
#include "exporters/http_server.h"
#include "exporters/metrics_exporter.h"
#include "exporters/report.h"
#include "exporters/web_config.h"
#include "version.h"

namespace rw {

// Everything the agent runs for one [[target]]: its collectors (each on its own thread) and its
// persisted state. Rebuilt on reload; the state files carry over.
class TargetRuntime {
 public:
  TargetRuntime(std::shared_ptr<const Config> config, const TargetConfig& target,
                const Environment& env, MetricsBoard& board)
      : config_(std::move(config)),
        target_(target),
        board_(board),
        activity_(env.state_dir + "/" + target.name),
        history_(env.state_dir + "/" + target.name) {
    try {
      backup_source_ = MakeBackupSource(env, target_);
    } catch (const Error& e) {
      LogError("backup source unavailable", {{"target", target_.name}, {"error", e.what()}});
    }
    collectors_ = MakeCollectors(target_);
    for (auto& c : collectors_) statuses_[c->name()] = CollectorStatus{};
    RefreshDrillMetrics();
  }

  ~TargetRuntime() { Stop(); }

  void Start() {
    for (auto& c : collectors_) {
      Collector* col = c.get();
      threads_.emplace_back([this, col] { CollectorLoop(col); });
    }
  }

  void Stop() {
    cancel_.Cancel();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

  // Collector threads that are stuck in a database call are left behind on shutdown rather than
  // holding the process; the process exits right after.
  void Detach() {
    cancel_.Cancel();
    for (auto& t : threads_)
      if (t.joinable()) t.detach();
    threads_.clear();
  }

  bool AllCollectedOnce() const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, s] : statuses_)
      if (s.last_run == 0) return false;
    return true;
  }

  // Re-reads the persisted history (at start, when a drill starts and after it is recorded) and
  // republishes the drill metrics; scrapes and the status API use what this cached.
  void RefreshDrillMetrics() {
    DrillHistorySummary h = history_.Load();
    board_.Set(target_.name, "drill", DrillFamilies(target_, h, running_.load()));
    std::lock_guard<std::mutex> lk(mu_);
    history_cache_ = std::move(h);
  }

  TargetStatus Status() const {
    TargetStatus s;
    s.name = target_.name;
    s.source = target_.source.Redacted();
    s.backup_type = target_.backup.type;
    if (target_.drill.schedule) {
      s.schedule = target_.drill.schedule->text();
      if (auto n = target_.drill.schedule->Next(std::time(nullptr)))
        s.next_drill = static_cast<double>(*n);
    }
    s.drill_running = running_.load();
    std::lock_guard<std::mutex> lk(mu_);
    s.history = history_cache_;
    s.collectors = statuses_;
    return s;
  }

  const TargetConfig& target() const { return target_; }
  std::shared_ptr<const Config> config() const { return config_; }
  ActivityStore& activity() { return activity_; }
  DrillHistory& history() { return history_; }
  std::atomic<bool>& running() { return running_; }
  std::optional<std::time_t> next_drill;  // guarded by Agent::sched_mu_

 private:
  void CollectorLoop(Collector* c) {
    const std::string name = c->name();
    while (!cancel_.cancelled()) {
      auto t0 = std::chrono::steady_clock::now();
      CollectorStatus st;
      std::vector<MetricFamilyData> fams;
      try {
        CollectContext ctx{target_, cancel_, &activity_, backup_source_.get()};
        fams = c->Collect(ctx);
        st.success = true;
      } catch (const std::exception& e) {
        st.success = false;
        st.error = e.what();
      }
      st.duration_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      st.last_run = NowUnix();
      if (cancel_.cancelled()) break;
      if (!st.success) {
        std::string prev;
        {
          std::lock_guard<std::mutex> lk(mu_);
          prev = statuses_[name].error;
        }
        if (prev != st.error)
          LogWarn("collector failed",
                  {{"target", target_.name}, {"collector", name}, {"error", st.error}});
      }
      board_.Set(target_.name, "c/" + name, std::move(fams));
      board_.Set(
          target_.name, "s/" + name,
          {Gauge("restorewatch_collector_success", "1 if the collector's last run succeeded.",
                 st.success ? 1 : 0, {{"collector", name}}),
           Gauge("restorewatch_collector_duration_seconds", "Duration of the collector's last run.",
                 st.duration_seconds, {{"collector", name}})});
      {
        std::lock_guard<std::mutex> lk(mu_);
        statuses_[name] = st;
      }
      Duration interval = c->interval(target_);
      if (interval.count() <= 0) interval = std::chrono::seconds(15);
      cancel_.SleepFor(interval);
    }
  }

  std::shared_ptr<const Config> config_;  // keeps target_ alive
  const TargetConfig& target_;
  MetricsBoard& board_;
  ActivityStore activity_;
  DrillHistory history_;
  std::unique_ptr<BackupSource> backup_source_;
  std::vector<std::unique_ptr<Collector>> collectors_;
  std::vector<std::thread> threads_;
  CancelToken cancel_;
  mutable std::mutex mu_;
  std::map<std::string, CollectorStatus> statuses_;
  DrillHistorySummary history_cache_;  // guarded by mu_
  std::atomic<bool> running_{false};
};

Agent::Agent(Config config, AgentOptions options)
    : options_(options), config_(std::make_shared<const Config>(std::move(config))) {}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  started_at_ = NowUnix();
  config_loaded_at_ = started_at_;
  env_ = std::make_unique<Environment>(Environment::FromConfig(config_->agent));
  RemoveOrphanedWorkDirs(env_->work_dir);
  exporter_ = std::make_unique<MetricsExporter>(board_);
  PublishAgentMetrics();
  StartTargets();
  if (options_.serve_http) {
    HttpHandlers h;
    h.metrics = [this] { return RenderMetrics(); };
    h.ready = [this] { return Ready(); };
    h.status_json = [this] { return RenderStatusJson(Status()); };
    // History and drill-now API, TLS and basic auth (agent_api.cpp, exporters/web_config.h).
    h.history_json = [this](const std::string& t, int last) { return HistoryJson(t, last); };
    if (config_->agent.enable_drill_api)
      h.drill_request = [this](const std::string& t) { return DrillApi(t); };
    http_ = std::make_unique<HttpServer>(config_->agent.listen, h, AgentWebConfig(*config_));
    http_->Start();
    LogInfo("listening", {{"address", http_->host() + ":" + std::to_string(http_->port())}});
  }
  SweepScratchServers(*config_);  // crash cleanup on scratch servers (bounded by connect_timeout)
  if (options_.run_scheduler) scheduler_ = std::thread([this] { SchedulerLoop(); });
  LogInfo("agent started", {{"version", kVersion},
                            {"targets", static_cast<int64_t>(config_->targets.size())},
                            {"pg_bin_dir", env_->pg.bin_dir}});
}

void Agent::PublishAgentMetrics() {
  board_.Set("", "agent",
             {Gauge("restorewatch_build_info", "Build of the running agent.", 1,
                    {{"version", kVersion}, {"revision", kRevision}}),
              Gauge("restorewatch_config_last_reload_successful",
                    "1 if the last configuration (re)load was accepted.", last_reload_ok_ ? 1 : 0),
              Gauge("restorewatch_config_last_reload_success_timestamp_seconds",
                    "When the configuration was last loaded successfully.", config_loaded_at_),
              Gauge("restorewatch_start_time_seconds", "When the agent started.", started_at_)});
}

void Agent::StartTargets() {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& t : config_->targets) {
    auto rt = std::make_unique<TargetRuntime>(config_, t, *env_, board_);
    rt->Start();
    targets_[t.name] = std::move(rt);
  }
}

void Agent::StopTargets() {
  std::map<std::string, std::unique_ptr<TargetRuntime>> old;
  {
    std::lock_guard<std::mutex> lk(mu_);
    old.swap(targets_);
  }
  for (auto& [name, rt] : old) {
    rt->Stop();
    board_.EraseTarget(name);
  }
}

void Agent::Reload(Config config) {
  auto next = std::make_shared<const Config>(std::move(config));
  if (next->agent.listen != config_->agent.listen ||
      next->agent.state_dir != config_->agent.state_dir ||
      next->agent.work_dir != config_->agent.work_dir)
    LogWarn("agent.listen, state_dir and work_dir changes take effect after a restart");
  StopTargets();
  {
    std::lock_guard<std::mutex> lk(mu_);
    config_ = next;
  }
  InitLogging(next->agent.log_format, next->agent.log_level);
  last_reload_ok_ = true;
  config_loaded_at_ = NowUnix();
  PublishAgentMetrics();
  StartTargets();
  {
    std::lock_guard<std::mutex> lk(sched_mu_);
    sched_wake_ = true;
  }
  sched_cv_.notify_all();
  LogInfo("configuration reloaded", {{"targets", static_cast<int64_t>(next->targets.size())}});
}

void Agent::ReloadFailed() {
  last_reload_ok_ = false;
  PublishAgentMetrics();
}

void Agent::RecordDrill(const TargetConfig& target, const DrillReport& report) {
  DrillLog(env_->state_dir + "/" + target.name).Append(report);  // history (never throws)
  std::lock_guard<std::mutex> lk(mu_);
  auto it = targets_.find(target.name);
  if (it == targets_.end()) {
    DrillHistory(env_->state_dir + "/" + target.name).Record(report);
    return;
  }
  try {
    it->second->history().Record(report);
  } catch (const Error& e) {
    LogError("cannot record drill", {{"target", target.name}, {"error", e.what()}});
  }
  it->second->RefreshDrillMetrics();
}

DrillReport Agent::RunDrillNow(const std::string& name) {
  std::lock_guard<std::mutex> one_at_a_time(drill_mu_);
  std::shared_ptr<const Config> cfg;
  TargetRuntime* rt = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
    auto it = targets_.find(name);
    if (it != targets_.end()) rt = it->second.get();
  }
  const TargetConfig* target = cfg->FindTarget(name);
  if (!target || !rt) throw Error(ErrorKind::kConfig, "no target named '" + name + "'");
  if (stop_.cancelled()) throw Error(ErrorKind::kCancelled, "the agent is stopping");
  // Never the same target twice at once, across processes (`verify` takes it too).
  std::string busy;
  auto drill_lock = TryLockDrill(env_->state_dir, name, &busy);
  if (!drill_lock) throw Error(ErrorKind::kCancelled, busy);
  rt->history().BeginDrill(NowUnix());  // a crash now is recorded as an interrupted drill
  rt->running() = true;
  rt->RefreshDrillMetrics();
  DrillReport r = RunDrill(*env_, *target, &rt->activity(), stop_);
  rt->running() = false;
  RecordDrill(*target, r);
  return r;
}

void Agent::SchedulerLoop() {
  // Next due time per target, recomputed after every drill and on reload.
  std::map<std::string, std::time_t> due;
  while (!stop_.cancelled()) {
    std::shared_ptr<const Config> cfg;
    {
      std::lock_guard<std::mutex> lk(mu_);
      cfg = config_;
    }
    std::time_t now = std::time(nullptr);
    std::map<std::string, std::time_t> next_due;
    for (const auto& t : cfg->targets) {
      if (!t.drill.schedule) continue;
      auto it = due.find(t.name);
      if (it != due.end()) {
        next_due[t.name] = it->second;
      } else if (auto n = t.drill.schedule->Next(now)) {
        next_due[t.name] = *n;
      }
    }
    due = next_due;
    // Run whatever is due, oldest first.
    std::string pick;
    std::time_t pick_at = 0;
    for (const auto& [name, at] : due)
      if (at <= now && (pick.empty() || at < pick_at)) {
        pick = name;
        pick_at = at;
      }
    if (!pick.empty()) {
      try {
        DrillReport r = RunDrillNow(pick);
        (void)r;
      } catch (const std::exception& e) {
        LogError("scheduled drill could not start", {{"target", pick}, {"error", e.what()}});
      }
      if (const TargetConfig* t = cfg->FindTarget(pick); t && t->drill.schedule) {
        // A drill that overran its next slot skips it rather than running back to back.
        if (auto n = t->drill.schedule->Next(std::time(nullptr))) due[pick] = *n;
      }
      continue;
    }
    std::time_t earliest = now + 60;
    for (const auto& [name, at] : due) earliest = std::min(earliest, at);
    std::unique_lock<std::mutex> lk(sched_mu_);
    sched_cv_.wait_for(lk, std::chrono::seconds(std::max<std::time_t>(1, earliest - now)),
                       [this] { return sched_wake_ || stop_.cancelled(); });
    if (sched_wake_) {
      sched_wake_ = false;
      due.clear();
    }
  }
}

void Agent::Stop() {
  if (stopped_ || !env_) return;
  stopped_ = true;
  auto deadline = std::chrono::steady_clock::now() + config_->agent.shutdown_timeout;
  stop_.Cancel();
  sched_cv_.notify_all();
  if (http_) http_->Stop();
  // Wait for the scheduler (and so any running drill, which removes its sandbox) within the bound.
  if (scheduler_.joinable()) {
    bool idle = false;
    while (!idle && std::chrono::steady_clock::now() < deadline) {
      if (drill_mu_.try_lock()) {
        drill_mu_.unlock();
        idle = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (idle) {
      scheduler_.join();
    } else {
      // A drill stuck in a database call past the bound: leave it; its children die with the
      // process (PR_SET_PDEATHSIG) and crash cleanup removes its marked dir at the next start.
      LogWarn("drill did not stop within the shutdown timeout; exiting anyway");
      scheduler_.detach();
    }
  }
  JoinDrillRequests(deadline);
  std::map<std::string, std::unique_ptr<TargetRuntime>> old;
  {
    std::lock_guard<std::mutex> lk(mu_);
    old.swap(targets_);
  }
  for (auto& [name, rt] : old) rt->Detach();
  // Detached collector threads still reference their runtime; keep it alive until exit.
  for (auto& [name, rt] : old) rt.release();
  LogInfo("agent stopped");
}

int Agent::http_port() const { return http_ ? http_->port() : 0; }

bool Agent::Ready() const {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [name, rt] : targets_)
    if (!rt->AllCollectedOnce()) return false;
  return env_ != nullptr;
}

AgentStatus Agent::Status() const {
  AgentStatus s;
  s.version = kVersion;
  s.revision = kRevision;
  s.started_at = started_at_;
  s.config_last_reload_successful = last_reload_ok_;
  s.config_loaded_at = config_loaded_at_;
  s.ready = Ready();
  std::lock_guard<std::mutex> lk(mu_);
  s.config_path = config_->path;
  for (const auto& [name, rt] : targets_) s.targets.push_back(rt->Status());
  return s;
}

std::string Agent::RenderMetrics() const { return exporter_ ? exporter_->Render() : std::string(); }

}  // namespace rw
