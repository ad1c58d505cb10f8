#include "agent/runtime/agent.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "agent/backup_source.h"
#include "agent/drill_log.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/runtime/drill_metrics.h"
#include "agent/runtime/drill_record.h"
#include "agent/runtime/drill_runner.h"
#include "agent/runtime/monitor_pool.h"
#include "agent/runtime/schedule.h"
#include "agent/sandboxes/scratch.h"
#include "agent/state.h"
#include "agent/state_lock.h"
#include "checks/live/collector_util.h"
#include "checks/registry.h"
#include "exporters/http_server.h"
#include "exporters/metrics_cache.h"
#include "exporters/metrics_exporter.h"
#include "exporters/notifier.h"
#include "exporters/report.h"
#include "exporters/web_config.h"
#include "version.h"

namespace rw {

using SteadyClock = std::chrono::steady_clock;

// What a target keeps for as long as it exists, across reloads: its activity samples, its drill
// history (and the cache the API and metrics serve), whether a drill runs, the skip counters, and
// the config its metrics describe. Shared by the target's collectors, its running drill and the
// agent; a drill keeps it alive even when a reload removed the target. Thread-safe.
class TargetState {
 public:
  TargetState(std::string name, const std::string& dir, MetricsBoard& board,
              NotificationHub* notify)
      : name_(std::move(name)),
        dir_(dir),
        board_(board),
        notify_(notify),
        activity_(dir),
        recorder_(dir) {
    cache_ = recorder_.history().Load();
    // What hangs off a recorded drill here: the status cache and the drill metrics.
    recorder_.OnRecorded([this](const DrillReport&, const DrillHistorySummary& h) {
      std::lock_guard<std::mutex> lk(mu_);
      cache_ = h;
      running_ = false;
      PublishLocked();
    });
    // Notifications (exporters/notifier.h): only updates a small state file and enqueues.
    if (notify_ != nullptr)
      recorder_.OnRecorded([notify = notify_](const DrillReport& r, const DrillHistorySummary&) {
        notify->OnDrill(r);
      });
  }

  const std::string& name() const { return name_; }
  NotificationHub* notify() const { return notify_; }
  const std::string& dir() const { return dir_; }
  ActivityStore& activity() { return activity_; }

  // The config the target now has (it describes the drill metrics: rto); un-retires.
  void SetConfig(std::shared_ptr<const Config> config) {
    std::lock_guard<std::mutex> lk(mu_);
    config_ = std::move(config);
    retired_ = false;
    PublishLocked();
  }
  // The target left the config: its series are gone and stay gone.
  void Retire() {
    std::lock_guard<std::mutex> lk(mu_);
    retired_ = true;
  }
  bool retired() const {
    std::lock_guard<std::mutex> lk(mu_);
    return retired_;
  }

  void BeginDrill() {
    recorder_.Begin(NowUnix());  // a crash now is recorded as an interrupted drill
    std::lock_guard<std::mutex> lk(mu_);
    running_ = true;
    PublishLocked();
  }
  // Records the drill (DrillRecorder: drills.jsonl, the history, then the cache and metrics
  // through the listener) and clears the running flag.
  void FinishDrill(const DrillReport& report) { recorder_.Finish(report); }
  bool running() const {
    std::lock_guard<std::mutex> lk(mu_);
    return running_;
  }

  void CountSkip(SkipReason reason) {
    std::lock_guard<std::mutex> lk(mu_);
    ++skipped_[SkipReasonName(reason)];
    PublishLocked();
  }
  void SetNextDrill(std::optional<double> at) {
    std::lock_guard<std::mutex> lk(mu_);
    next_drill_ = at;
  }

  // Fills the drill part of a status snapshot.
  // The running drill's progress (read by the status API, updated by the drill and its ticker).
  DrillProgress& progress() { return progress_; }

  void FillStatus(TargetStatus* s) const {
    if (ProgressSnapshot p = progress_.Get(); p.running) s->drill_progress = p;
    std::lock_guard<std::mutex> lk(mu_);
    s->drill_running = running_;
    s->history = cache_;
    s->next_drill = next_drill_;
  }

 private:
  void PublishLocked() {
    if (retired_ || !config_) return;
    const TargetConfig* t = config_->FindTarget(name_);
    if (!t) return;
    board_.Set(name_, "drill", DrillFamilies(*t, cache_, running_));
    board_.Set(name_, "schedule", {DrillSkippedFamily(skipped_)});
  }

  const std::string name_;
  const std::string dir_;
  MetricsBoard& board_;
  NotificationHub* const notify_;  // owned by the agent, outlives every state
  ActivityStore activity_;
  DrillRecorder recorder_;
  DrillProgress progress_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> config_;         // guarded by mu_
  bool retired_ = false;                         // guarded by mu_
  bool running_ = false;                         // guarded by mu_
  DrillHistorySummary cache_;                    // guarded by mu_
  std::map<std::string, std::int64_t> skipped_;  // guarded by mu_
  std::optional<double> next_drill_;             // guarded by mu_
};

// The collectors of one [[target]] under one config, each a periodic job of the agent's
// MonitorPool. Rebuilt on reload; what must survive lives in the TargetState it shares.
// RequestStop() cancels the jobs and their in-flight queries; Join() waits, within a deadline,
// until none of them runs.
class TargetRuntime {
 public:
  TargetRuntime(std::shared_ptr<const Config> config, const TargetConfig& target,
                const Environment& env, MetricsBoard& board, std::shared_ptr<TargetState> state,
                MonitorPool& pool)
      : pool_(pool),
        config_(std::move(config)),
        target_(target),
        board_(board),
        state_(std::move(state)),
        env_(env),
        state_dir_(env.state_dir + "/" + target.name) {
    try {
      backup_source_ = MakeBackupSource(env, target_);
    } catch (const Error& e) {
      LogError("backup source unavailable", {{"target", target_.name}, {"error", e.what()}});
    }
    collectors_ = MakeCollectors(target_);
    for (auto& c : collectors_) statuses_[c->name()] = CollectorStatus{};
  }

  // Only destroyed once joined (the agent keeps unjoined runtimes alive); waits to be sure.
  ~TargetRuntime() {
    RequestStop();
    while (!pool_.Wait(jobs_, SteadyClock::now() + std::chrono::hours(1))) {
    }
  }

  // first_delay: when the first runs are due (the agent spreads targets over a second, so the
  // ticks of many targets do not all fall on the same instant).
  void Start(Duration first_delay) {
    for (std::size_t i = 0; i < collectors_.size(); ++i)
      jobs_.push_back(
          pool_.Add([this, i] { return CollectorTurn(collectors_[i].get()); }, first_delay));
  }

  void RequestStop() {
    cancel_.Cancel();
    CancelMonitorQueries(cancel_);
    for (auto id : jobs_) pool_.Cancel(id);
  }

  // Waits until no collector of this runtime runs, up to `deadline`; true when none does.
  bool Join(SteadyClock::time_point deadline) { return pool_.Wait(jobs_, deadline); }

  std::vector<std::string> collector_names() const {
    std::vector<std::string> names;
    for (const auto& c : collectors_) names.push_back(c->name());
    return names;
  }

  bool AllCollectedOnce() const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, s] : statuses_)
      if (s.last_run == 0) return false;
    return true;
  }

  TargetStatus Status() const {
    TargetStatus s;
    s.name = target_.name;
    s.source = target_.source.Redacted();
    s.backup_type = target_.backup.type;
    if (target_.drill.schedule) s.schedule = target_.drill.schedule->text();
    state_->FillStatus(&s);
    if (!target_.drill.schedule) s.next_drill.reset();
    std::lock_guard<std::mutex> lk(mu_);
    s.collectors = statuses_;
    return s;
  }

 private:
  // One run of a collector; returns the delay until its next run (zero once stopped).
  Duration CollectorTurn(Collector* c) {
    const std::string name = c->name();
    {
      if (cancel_.cancelled()) return Duration::zero();
      auto t0 = SteadyClock::now();
      CollectorStatus st;
      std::vector<MetricFamilyData> fams;
      try {
        CollectContext ctx{target_, cancel_, &state_->activity(), backup_source_.get(), state_dir_};
        ctx.env = &env_;
        fams = c->Collect(ctx);
        st.notes = std::move(ctx.notes);
        st.success = true;
      } catch (const std::exception& e) {
        st.success = false;
        st.error = e.what();
      }
      st.duration_seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
      st.last_run = NowUnix();
      if (cancel_.cancelled()) return Duration::zero();
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
      // The backup freshness objective, for notifications (the catalogue is what it reads).
      if (st.success && name == "backup_catalogue" && state_->notify() != nullptr)
        if (auto f = FreshnessFromCatalogue(fams, target_.backup.max_age, NowUnix()))
          state_->notify()->OnFreshness(target_.name, *f, NowUnix());
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
      return interval;
    }
  }

  MonitorPool& pool_;                     // the agent's, outlives every runtime
  std::shared_ptr<const Config> config_;  // keeps target_ alive
  const TargetConfig& target_;
  MetricsBoard& board_;
  std::shared_ptr<TargetState> state_;
  const Environment& env_;       // the agent's, outlives every runtime
  const std::string state_dir_;  // env.state_dir/<target>
  std::unique_ptr<BackupSource> backup_source_;
  std::vector<std::unique_ptr<Collector>> collectors_;
  std::vector<MonitorPool::JobId> jobs_;  // one per collector; set by Start()
  CancelToken cancel_;
  mutable std::mutex mu_;
  std::map<std::string, CollectorStatus> statuses_;  // guarded by mu_
};

// A drill the scheduler started on its own thread.
struct Agent::DrillThread {
  std::string target;
  std::thread thread;
  bool done = false;  // guarded by drill_mu_; set as the thread's last step
};

// The scheduler's view of one scheduled target (scheduler thread only).
struct Agent::ScheduledTarget {
  std::string schedule_text;
  std::time_t handled = 0;  // newest slot dealt with (persisted in schedule.toml)
};

namespace {

// Raises the calling thread's nice value by `delta` for its lifetime (0: nothing); processes it
// forks meanwhile inherit it. Put back at the end when allowed (as root), else the thread stays
// nicer, which only a drill's own thread ever is.
class NiceThread {
 public:
  explicit NiceThread(int delta) {
    if (delta <= 0) return;
    tid_ = static_cast<pid_t>(syscall(SYS_gettid));
    errno = 0;
    old_ = getpriority(PRIO_PROCESS, static_cast<id_t>(tid_));
    if (errno != 0) return;
    applied_ = setpriority(PRIO_PROCESS, static_cast<id_t>(tid_), std::min(19, old_ + delta)) == 0;
  }
  ~NiceThread() {
    if (applied_) setpriority(PRIO_PROCESS, static_cast<id_t>(tid_), old_);
  }
  NiceThread(const NiceThread&) = delete;
  NiceThread& operator=(const NiceThread&) = delete;

 private:
  pid_t tid_ = 0;
  int old_ = 0;
  bool applied_ = false;
};

std::vector<std::string> TargetNames(const Config& c) {
  std::vector<std::string> names;
  for (const auto& t : c.targets) names.push_back(t.name);
  return names;
}

}  // namespace

Agent::Agent(Config config, AgentOptions options)
    : options_(options), config_(std::make_shared<const Config>(std::move(config))) {}

Agent::~Agent() {
  Stop();
  // Only when Stop() gave up on a stuck thread and the owner still destroys the Agent: the
  // threads use it, so wait for them rather than free it under them.
  ReapDrillThreads(/*wait_all=*/true);
  unjoined_.clear();  // ~TargetRuntime joins
  board_.OnChange(nullptr);
  monitor_.reset();  // after every runtime: they run on it
}

void Agent::Start() {
  started_at_ = NowUnix();
  config_loaded_at_ = started_at_;
  max_concurrent_drills_ = config_->agent.max_concurrent_drills;
  env_ = std::make_unique<Environment>(Environment::FromConfig(config_->agent));
  RemoveOrphanedWorkDirs(env_->work_dir);
  exporter_ = std::make_unique<MetricsExporter>(board_);
  MonitorPool::Options pool_options;
  pool_options.cpu_saturated = [watch = std::make_shared<HostCpuWatch>()] {
    return watch->Saturated();
  };
  monitor_ = std::make_unique<MonitorPool>(pool_options);
  if (options_.serve_http) {
    // /metrics is rendered here, not by scrapes: 200 ms after the board changes (the changes of
    // one tick coalesce) and every second (process_* families).
    metrics_cache_ = std::make_unique<MetricsCache>([this] { return exporter_->Render(); });
    render_job_ = monitor_->Add([this] {
      metrics_cache_->Refresh(board_.generation());
      return Duration(std::chrono::seconds(1));
    });
    board_.OnChange([this] { monitor_->Kick(render_job_, std::chrono::milliseconds(200)); });
  }
  // Freed heap pages go back to the system every 10 s (the collectors' result sets and the
  // renders come and go; glibc otherwise keeps what it freed in the middle of the heap).
  monitor_->Add(
      [] {
        malloc_trim(0);
        return Duration(std::chrono::seconds(10));
      },
      std::chrono::seconds(10));
  PublishAgentMetrics();
  notify_ = std::make_unique<NotificationHub>(
      env_->state_dir,
      [this](std::vector<MetricFamilyData> f) { board_.Set("", "notifier", std::move(f)); });
  notify_->Configure(config_->notifiers, TargetNames(*config_));
  {
    std::lock_guard<std::mutex> lk(mu_);
    SyncStates(/*at_start=*/true);
  }
  StartTargets();
  if (options_.serve_http) {
    HttpHandlers h;
    h.metrics = [this] { return RenderMetrics(); };
    h.metrics_page = [this] { return metrics_cache_->Get(); };
    h.ready = [this] { return Ready(); };
    h.status_json = [this] { return RenderStatusJson(Status()); };
    // History and drill-now API, TLS and basic auth (agent_api.cpp, exporters/web_config.h).
    h.history_json = [this](const std::string& t, int last) { return HistoryJson(t, last); };
    h.runbook = [this](const std::string& t) { return RunbookApi(t); };
    h.ledger_json = [this](const std::string& t) { return LedgerJson(t); };
    if (config_->agent.enable_drill_api)
      h.drill_request = [this](const std::string& t) { return DrillApi(t); };
    // The first page served holds everything published so far (the drill history loaded from
    // the state dir, the agent's own series), not a render from before the targets were set up.
    metrics_cache_->Refresh(board_.generation());
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

// Makes states_ match config_ (mu_ held): a state per configured target, kept when the target
// stays; a removed target's series go, and its state with them unless a drill still holds it.
void Agent::SyncStates(bool at_start) {
  for (const auto& t : config_->targets) {
    auto it = states_.find(t.name);
    if (it == states_.end()) {
      try {
        it =
            states_
                .emplace(t.name, std::make_shared<TargetState>(
                                     t.name, env_->state_dir + "/" + t.name, board_, notify_.get()))
                .first;
      } catch (const Error& e) {
        // At start an unusable state dir is fatal (exit 2). On reload the running agent keeps
        // going: the new target is left out (logged) and the others run.
        if (at_start) throw;
        LogError("target state unavailable; target not started",
                 {{"target", t.name}, {"error", e.what()}});
        continue;
      }
    }
    it->second->SetConfig(config_);
  }
  for (auto it = states_.begin(); it != states_.end();) {
    if (config_->FindTarget(it->first)) {
      ++it;
      continue;
    }
    board_.EraseTarget(it->first);
    it->second->Retire();
    // A running drill finishes into the retired state (ExecuteDrill drops it then).
    if (it->second->running())
      ++it;
    else
      it = states_.erase(it);
  }
}

void Agent::StartTargets() {
  std::lock_guard<std::mutex> lk(mu_);
  std::size_t index = 0;
  for (const auto& t : config_->targets) {
    auto st = states_.find(t.name);
    if (st == states_.end()) continue;  // its state could not be opened (logged)
    auto rt = std::make_unique<TargetRuntime>(config_, t, *env_, board_, st->second, *monitor_);
    rt->Start(std::chrono::milliseconds(100 * (index++ % 10)));
    targets_[t.name] = std::move(rt);
  }
}

void Agent::Reload(Config config) {
  auto next = std::make_shared<const Config>(std::move(config));
  if (next->agent.listen != config_->agent.listen ||
      next->agent.state_dir != config_->agent.state_dir ||
      next->agent.work_dir != config_->agent.work_dir)
    LogWarn("agent.listen, state_dir and work_dir changes take effect after a restart");
  // Collectors restart with the new config; drills and per-target state are not touched.
  std::map<std::string, std::unique_ptr<TargetRuntime>> old;
  {
    std::lock_guard<std::mutex> lk(mu_);
    old.swap(targets_);
  }
  for (auto& [name, rt] : old) rt->RequestStop();
  // Bounded by connect_timeout (a connect cannot be interrupted); statements are cancelled.
  std::map<std::string, std::vector<std::string>> old_collectors;
  for (auto& [name, rt] : old) {
    old_collectors[name] = rt->collector_names();
    const TargetConfig* t = config_->FindTarget(name);
    auto bound =
        SteadyClock::now() + (t ? t->connect_timeout : Duration::zero()) + std::chrono::seconds(5);
    if (!rt->Join(bound)) {
      LogError("collectors of a target did not stop; they are left to finish", {{"target", name}});
      unjoined_.push_back(std::move(rt));
    }
  }
  old.clear();
  {
    std::lock_guard<std::mutex> lk(mu_);
    config_ = next;
    SyncStates(/*at_start=*/false);
  }
  max_concurrent_drills_ = next->agent.max_concurrent_drills;
  if (notify_)
    notify_->Configure(next->notifiers, TargetNames(*next));  // queues of kept notifiers survive
  InitLogging(next->agent.log_format, next->agent.log_level);
  last_reload_ok_ = true;
  ready_generation_ = 0;  // the new collectors' first runs decide readiness again
  config_loaded_at_ = NowUnix();
  PublishAgentMetrics();
  StartTargets();
  // Series of collectors the new config no longer runs (a standby list emptied, ...).
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, names] : old_collectors) {
      auto it = targets_.find(name);
      if (it == targets_.end()) continue;
      auto now_running = it->second->collector_names();
      for (const auto& c : names)
        if (std::find(now_running.begin(), now_running.end(), c) == now_running.end()) {
          board_.Set(name, "c/" + c, {});
          board_.Set(name, "s/" + c, {});
        }
    }
  }
  WakeScheduler();
  drill_cv_.notify_all();  // max_concurrent_drills may have grown
  LogInfo("configuration reloaded", {{"targets", static_cast<int64_t>(next->targets.size())}});
}

void Agent::ReloadFailed() {
  last_reload_ok_ = false;
  PublishAgentMetrics();
}

void Agent::WakeScheduler() {
  {
    std::lock_guard<std::mutex> lk(sched_mu_);
    sched_wake_ = true;
  }
  sched_cv_.notify_all();
}

bool Agent::TryReserveDrillLocked(const std::string& name, int* why) {
  Admission a = AdmitDrill(drilling_.count(name) > 0, active_drills_, max_concurrent_drills_);
  if (why) *why = static_cast<int>(a);
  if (a != Admission::kStart) return false;
  drilling_.insert(name);
  ++active_drills_;
  return true;
}

void Agent::ReleaseDrill(const std::string& name) {
  {
    std::lock_guard<std::mutex> lk(drill_mu_);
    drilling_.erase(name);
    --active_drills_;
  }
  drill_cv_.notify_all();
  WakeScheduler();  // a waiting slot may start now
}

DrillReport Agent::ExecuteDrill(const std::string& name) {
  std::shared_ptr<const Config> cfg;
  std::shared_ptr<TargetState> st;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
    if (auto it = states_.find(name); it != states_.end()) st = it->second;
  }
  // cfg keeps *target alive and st the activity store and history, whatever a reload does.
  const TargetConfig* target = cfg->FindTarget(name);
  if (!target || !st) throw Error(ErrorKind::kConfig, "no target named '" + name + "'");
  if (stop_.cancelled()) throw Error(ErrorKind::kCancelled, "the agent is stopping");
  // Never the same target twice at once, across processes (`verify` takes it too).
  std::string busy;
  auto drill_lock = TryLockDrill(env_->state_dir, name, &busy);
  if (!drill_lock) throw Error(ErrorKind::kCancelled, busy);
  st->BeginDrill();
  DrillReport r;
  {
    // The daemon's drills yield the CPU to scrapes and collectors: this thread and every process
    // it starts (sandbox server, pg_restore, psql) run at nice +10.
    NiceThread nice(options_.run_scheduler ? 10 : 0);
    // A "drill progress" log line every interval (10 s) while the drill runs.
    ProgressTicker ticker(st->progress(), ProgressInterval(), LogProgress);
    r = RunDrill(*env_, *target, &st->activity(), stop_, &st->progress());
  }
  st->FinishDrill(r);
  // What the drill allocated (results, logs, check data) goes back to the system.
  malloc_trim(0);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (auto it = states_.find(name); it != states_.end() && it->second == st && st->retired())
      states_.erase(it);
  }
  return r;
}

DrillReport Agent::RunDrillNow(const std::string& name) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!config_->FindTarget(name))
      throw Error(ErrorKind::kConfig, "no target named '" + name + "'");
  }
  {
    std::unique_lock<std::mutex> lk(drill_mu_);
    drill_cv_.wait(lk, [&] { return stop_.cancelled() || TryReserveDrillLocked(name, nullptr); });
    if (stop_.cancelled()) {
      // The predicate may have reserved on the same pass that saw the stop.
      if (drilling_.count(name)) {
        lk.unlock();
        ReleaseDrill(name);
      }
      throw Error(ErrorKind::kCancelled, "the agent is stopping");
    }
  }
  struct Release {
    Agent* agent;
    const std::string& name;
    ~Release() { agent->ReleaseDrill(name); }
  } release{this, name};
  return ExecuteDrill(name);
}

void Agent::LaunchDrillLocked(const std::string& name, std::time_t slot) {
  drill_threads_.emplace_back();
  DrillThread* dt = &drill_threads_.back();
  dt->target = name;
  dt->thread = std::thread([this, name, slot, dt] {
    try {
      ExecuteDrill(name);
    } catch (const std::exception& e) {
      LogError("scheduled drill could not start",
               {{"target", name},
                {"slot", FormatTimestamp(static_cast<double>(slot))},
                {"error", e.what()}});
    }
    ReleaseDrill(name);
    std::lock_guard<std::mutex> lk(drill_mu_);
    dt->done = true;
    drill_cv_.notify_all();
  });
}

void Agent::ReapDrillThreads(bool wait_all) {
  std::list<DrillThread> finished;
  {
    std::unique_lock<std::mutex> lk(drill_mu_);
    if (wait_all)
      drill_cv_.wait(lk, [this] {
        return std::all_of(drill_threads_.begin(), drill_threads_.end(),
                           [](const DrillThread& d) { return d.done; });
      });
    for (auto it = drill_threads_.begin(); it != drill_threads_.end();) {
      auto cur = it++;
      if (cur->done) finished.splice(finished.end(), drill_threads_, cur);
    }
  }
  for (auto& d : finished) d.thread.join();
}

void Agent::ScheduleOnce(std::map<std::string, ScheduledTarget>& sched) {
  std::shared_ptr<const Config> cfg;
  std::map<std::string, std::shared_ptr<TargetState>> states;
  {
    std::lock_guard<std::mutex> lk(mu_);
    cfg = config_;
    states = states_;
  }
  const std::time_t now = std::time(nullptr);
  const bool at_start = !scheduled_once_;
  scheduled_once_ = true;
  // Targets that left the config, or lost their schedule, are forgotten (and start afresh).
  for (auto it = sched.begin(); it != sched.end();) {
    const TargetConfig* t = cfg->FindTarget(it->first);
    it = (t && t->drill.schedule) ? std::next(it) : sched.erase(it);
  }
  struct Due {
    const TargetConfig* target;
    std::vector<std::time_t> slots;
  };
  std::vector<Due> due;
  for (const auto& t : cfg->targets) {
    if (!t.drill.schedule || !states.count(t.name)) continue;
    const std::string dir = env_->state_dir + "/" + t.name;
    auto found = sched.find(t.name);
    if (found == sched.end() || found->second.schedule_text != t.drill.schedule->text()) {
      // Catch-up is for slots missed while the agent was down: only at start. A target a reload
      // adds or reschedules starts from now.
      const bool fresh = found != sched.end() || !at_start;
      std::string problem;
      std::optional<std::time_t> persisted = LoadScheduleState(dir, &problem);
      if (!problem.empty())
        LogWarn("schedule state unreadable; starting from now",
                {{"target", t.name}, {"error", problem}});
      ScheduledTarget st{t.drill.schedule->text(), InitialHandled(persisted, fresh, now)};
      if (st.handled != persisted.value_or(-1)) {
        try {
          SaveScheduleState(dir, st.handled);
        } catch (const Error& e) {
          LogWarn("cannot save schedule state", {{"target", t.name}, {"error", e.what()}});
        }
      }
      found = sched.insert_or_assign(t.name, st).first;
    }
    auto slots = DueSlots(*t.drill.schedule, t.name, t.drill.jitter, found->second.handled, now);
    if (!slots.empty()) due.push_back({&t, std::move(slots)});
  }
  // Oldest due slot first, so one busy target cannot starve the others.
  std::sort(due.begin(), due.end(),
            [](const Due& a, const Due& b) { return a.slots.front() < b.slots.front(); });
  for (const auto& d : due) {
    if (stop_.cancelled()) return;
    const std::string& name = d.target->name;
    ScheduledTarget& st = sched.at(name);
    SlotPlan plan;
    {
      std::lock_guard<std::mutex> lk(drill_mu_);
      int why = 0;
      bool reserved = TryReserveDrillLocked(name, &why);
      plan = PlanSlots(d.slots, reserved ? Admission::kStart : static_cast<Admission>(why),
                       st.handled);
      if (reserved) LaunchDrillLocked(name, *plan.start);
    }
    for (const auto& [slot, reason] : plan.skipped) {
      states.at(name)->CountSkip(reason);
      LogWarn("scheduled drill skipped", {{"target", name},
                                          {"slot", FormatTimestamp(static_cast<double>(slot))},
                                          {"reason", SkipReasonName(reason)}});
    }
    if (plan.start) {
      const std::time_t fire = SlotFireTime(name, *plan.start, d.target->drill.jitter);
      if (static_cast<double>(fire) < started_at_)
        LogInfo("catch-up drill for a slot missed while the agent was down",
                {{"target", name},
                 {"slot", FormatTimestamp(static_cast<double>(*plan.start))},
                 {"last_handled", FormatTimestamp(static_cast<double>(st.handled))}});
      else
        LogInfo("scheduled drill starting",
                {{"target", name},
                 {"slot", FormatTimestamp(static_cast<double>(*plan.start))},
                 {"collapsed_slots", static_cast<int64_t>(plan.collapsed)}});
    }
    if (plan.handled != st.handled) {
      st.handled = plan.handled;
      try {
        SaveScheduleState(env_->state_dir + "/" + name, st.handled);
      } catch (const Error& e) {
        LogWarn("cannot save schedule state", {{"target", name}, {"error", e.what()}});
      }
    }
  }
  // When each target's next drill is due, for the status API.
  for (const auto& t : cfg->targets) {
    auto s = sched.find(t.name);
    auto state = states.find(t.name);
    if (s == sched.end() || state == states.end()) continue;
    std::optional<double> next;
    if (auto n = t.drill.schedule->Next(s->second.handled))
      next = static_cast<double>(SlotFireTime(t.name, *n, t.drill.jitter));
    state->second->SetNextDrill(next);
  }
}

void Agent::SchedulerLoop() {
  std::map<std::string, ScheduledTarget> sched;
  while (!stop_.cancelled()) {
    ReapDrillThreads(/*wait_all=*/false);
    if (monitor_) monitor_->Maintain();  // a worker more when every one is stuck
    try {
      ScheduleOnce(sched);
    } catch (const std::exception& e) {
      LogError("scheduler error", {{"error", e.what()}});
    }
    // Slots have minute resolution and jitter whole seconds: a look every second is plenty,
    // and follows wall-clock jumps. Reloads and finished drills wake it early.
    std::unique_lock<std::mutex> lk(sched_mu_);
    sched_cv_.wait_for(lk, std::chrono::seconds(1),
                       [this] { return sched_wake_ || stop_.cancelled(); });
    sched_wake_ = false;
  }
}

bool Agent::Stop() {
  if (stopped_ || !env_) return true;
  stopped_ = true;
  const auto deadline = SteadyClock::now() + config_->agent.shutdown_timeout;
  stop_.Cancel();
  WakeScheduler();
  drill_cv_.notify_all();
  if (http_) http_->Stop();
  if (scheduler_.joinable()) scheduler_.join();  // it never waits for a drill
  JoinDrillRequests(deadline);                   // API-requested drills (agent_api.cpp)
  std::map<std::string, std::unique_ptr<TargetRuntime>> runtimes;
  {
    std::lock_guard<std::mutex> lk(mu_);
    runtimes.swap(targets_);
  }
  // Cancel everything first, then wait: collectors stop while drills clean up.
  for (auto& [name, rt] : runtimes) rt->RequestStop();
  bool clean = true;
  {
    // Running drills (scheduled or RunDrillNow) see stop_ and remove their sandboxes.
    std::unique_lock<std::mutex> lk(drill_mu_);
    if (!drill_cv_.wait_until(lk, deadline, [this] {
          return active_drills_ == 0 && std::all_of(drill_threads_.begin(), drill_threads_.end(),
                                                    [](const DrillThread& d) { return d.done; });
        }))
      clean = false;
  }
  ReapDrillThreads(/*wait_all=*/false);
  for (auto& [name, rt] : runtimes)
    if (!rt->Join(deadline)) unjoined_.push_back(std::move(rt));
  for (auto& rt : unjoined_) rt->Join(deadline);
  if (!unjoined_.empty()) {
    // Kept alive, never detached: the threads still use them.
    clean = false;
  }
  runtimes.clear();
  // The render job and the pool's workers (a collector still stuck keeps its worker).
  board_.OnChange(nullptr);
  if (monitor_ && !monitor_->Stop(deadline)) clean = false;
  // What the drills just recorded (a resolve, say) gets the rest of the bound to go out.
  if (notify_)
    notify_->Stop(std::max<Duration>(
        Duration::zero(), std::chrono::duration_cast<Duration>(deadline - SteadyClock::now())));
  if (!clean)
    LogWarn("a drill or collector did not stop within agent.shutdown_timeout",
            {{"shutdown_timeout", FormatDuration(config_->agent.shutdown_timeout)}});
  LogInfo("agent stopped");
  return clean;
}

int Agent::http_port() const { return http_ ? http_->port() : 0; }

bool Agent::Ready() const {
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, rt] : targets_)
      if (!rt->AllCollectedOnce()) return false;
  }
  if (env_ == nullptr) return false;
  if (!metrics_cache_) return true;
  std::uint64_t want = ready_generation_.load();
  const bool first = want == 0;
  if (first) {
    const std::uint64_t now = board_.generation();
    ready_generation_.compare_exchange_strong(want, now);
    want = ready_generation_.load();
    monitor_->Kick(render_job_);  // no need to wait for the debounce
  }
  auto covered = [&] {
    auto page = metrics_cache_->Peek();
    return page && page->tag >= want;
  };
  if (covered()) return true;
  if (!first) return false;
  // The first look since the start or a reload has just kicked the render: give it a moment
  // (bounded) rather than answer 503 to a probe whose collectors have all run.
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (covered()) return true;
  }
  return false;
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
