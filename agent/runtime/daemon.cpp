#include "agent/runtime/daemon.h"

#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "agent/drill_log.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/runtime/agent.h"
#include "agent/runtime/drill_record.h"
#include "agent/runtime/drill_runner.h"
#include "agent/runtime/signals.h"
#include "agent/state.h"
#include "agent/state_lock.h"
#include "agent/units.h"
#include "exporters/history_report.h"
#include "exporters/report.h"
#include "exporters/runbook.h"
#include "exporters/web_config.h"

namespace rw {

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

void BlockShutdownSignals() {
  sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {

bool PrintConfigErrors(const ConfigLoad& load) {
  for (const auto& e : load.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
  return load.errors.empty();
}

}  // namespace

int RunCheckConfig(const std::string& path) {
  ConfigLoad load = LoadConfig(path);
  if (!PrintConfigErrors(load)) {
    std::fprintf(stderr, "%s: %zu error(s)\n", path.c_str(), load.errors.size());
    return 2;
  }
  WebConfigLoad web = LoadAgentWebConfig(*load.config);
  if (!web.config) {
    for (const auto& e : web.errors) std::fprintf(stderr, "%s\n", e.c_str());
    std::fprintf(stderr, "%s: %zu error(s)\n", path.c_str(), web.errors.size());
    return 2;
  }
  std::printf("%s: ok, %zu target(s)\n", path.c_str(), load.config->targets.size());
  if (!load.config->agent.web_config_file.empty())
    std::printf("  http: %s, tls %s, basic auth %s (%zu user(s)), drill api %s\n",
                load.config->agent.listen.c_str(), web.config->tls() ? "on" : "off",
                web.config->auth() ? "on" : "off", web.config->users.size(),
                load.config->agent.enable_drill_api ? "on" : "off");
  for (const auto& t : load.config->targets)
    std::printf("  %s: source %s, backup %s, drill %s\n", t.name.c_str(),
                t.source.Redacted().c_str(), t.backup.type.c_str(),
                t.drill.schedule ? t.drill.schedule->text().c_str() : "on demand");
  return 0;
}

int RunDaemon(const std::string& path) {
  // Two malloc arenas, not one per thread that ever allocated (8 x cores by default): the
  // daemon's threads allocate little and briefly, and each arena kept its own freed pages.
  mallopt(M_ARENA_MAX, 2);
  // Big transient blocks (a rendered page, its gzip, a result set's buffers) stay in mmap and go
  // back whole when freed. Setting the thresholds fixes them: glibc otherwise raises the mmap
  // threshold to the largest block freed so far, and those blocks then land in (and fragment)
  // the heap for good.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
  BlockShutdownSignals();
  ConfigLoad load = LoadConfig(path);
  if (!PrintConfigErrors(load)) return 2;
  // The web config is part of the config: a broken one (or the drill API without basic auth) is
  // a config error, reported before anything starts.
  WebConfigLoad web = LoadAgentWebConfig(*load.config);
  if (!web.config) {
    for (const auto& e : web.errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 2;
  }
  InitLogging(load.config->agent.log_format, load.config->agent.log_level);
  // One daemon per state dir: a second one would run every drill twice.
  std::unique_ptr<FileLock> state_lock;
  try {
    state_lock = LockStateDir(load.config->agent.state_dir);
  } catch (const Error& e) {
    LogError("cannot start", {{"error", e.what()}, {"hint", e.hint()}});
    return 2;
  }
  Agent agent(std::move(*load.config));
  try {
    agent.Start();
  } catch (const Error& e) {
    LogError("cannot start", {{"error", e.what()}, {"hint", e.hint()}});
    return 2;
  }
  sigset_t set = ShutdownSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      ConfigLoad next = LoadConfig(path);
      if (!next.errors.empty()) {
        for (const auto& e : next.errors) LogError("reload rejected", {{"error", e.ToString()}});
        agent.ReloadFailed();
        continue;
      }
      agent.Reload(std::move(*next.config));
      continue;
    }
    LogInfo("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    break;
  }
  if (!agent.Stop()) {
    // A drill stuck past shutdown_timeout still runs on its thread: exit handlers (OpenSSL's,
    // libpq's) must not run under it. Its children die with us (parent-death signal) and the
    // next start removes its sandbox. Still a clean stop for systemd: exit 0.
    LogWarn("exiting without waiting for the stuck work");
    spdlog::default_logger()->flush();
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  return 0;
}

int RunVerify(const std::string& path, const std::string& target_name, bool json) {
  BlockShutdownSignals();
  ConfigLoad load = LoadConfig(path);
  if (!PrintConfigErrors(load)) return 2;
  const Config& cfg = *load.config;
  InitLogging(cfg.agent.log_format, json ? "warn" : cfg.agent.log_level);
  std::vector<const TargetConfig*> targets;
  for (const auto& t : cfg.targets)
    if (target_name.empty() || t.name == target_name) targets.push_back(&t);
  if (targets.empty()) {
    std::fprintf(stderr, "verify: %s\n",
                 target_name.empty() ? "the config has no targets"
                                     : ("no target named '" + target_name + "'").c_str());
    return 2;
  }
  std::unique_ptr<Environment> env;
  try {
    env = std::make_unique<Environment>(Environment::FromConfig(cfg.agent));
  } catch (const Error& e) {
    std::fprintf(stderr, "verify: %s\n", e.what());
    return 2;
  }
  RemoveOrphanedWorkDirs(env->work_dir);  // safe beside a daemon: live owners' dirs are kept
  // Ctrl-C / SIGTERM cancel the drill, which then removes its sandbox.
  CancelToken cancel;
  std::atomic<bool> done{false};
  std::thread signals([&] {
    sigset_t set = ShutdownSignals();
    timespec ts{0, 200 * 1000 * 1000};
    while (!done) {
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) cancel.Cancel();
    }
  });
  int worst = 0;
  // One shape whatever the number of targets (docs/verify-json.md).
  std::string out = json ? "{\"schema_version\":1,\"drills\":[" : "";
  // Progress on stderr (stdout is the report, or pure JSON): a line as each stage starts, and on
  // a terminal also the running stage with what is done, every progress interval.
  DrillProgress progress;
  progress.OnStage([](const ProgressSnapshot& p) {
    std::fprintf(stderr, "restorewatch verify: %s: %s started (drill %s)\n", p.target.c_str(),
                 p.stage.c_str(), FormatSeconds(p.drill_elapsed_seconds).c_str());
  });
  // Not on a terminal, the periodic line is the daemon's "drill progress" log line (at info, so
  // --json, which logs warnings only, keeps stderr to the stage lines).
  std::unique_ptr<ProgressTicker> ticker;
  if (isatty(STDERR_FILENO))
    ticker = std::make_unique<ProgressTicker>(
        progress, ProgressInterval(), [](const ProgressSnapshot& p) {
          std::fprintf(stderr, "restorewatch verify: %s: %s\n", p.target.c_str(),
                       ProgressLine(p).c_str());
        });
  else
    ticker = std::make_unique<ProgressTicker>(progress, ProgressInterval(), LogProgress);
  for (size_t i = 0; i < targets.size(); ++i) {
    const TargetConfig& t = *targets[i];
    ActivityStore activity(env->state_dir + "/" + t.name);
    // Never restore a target the daemon (or another verify) is drilling right now.
    std::string busy;
    std::unique_ptr<FileLock> drill_lock;
    try {
      drill_lock = TryLockDrill(env->state_dir, t.name, &busy);
    } catch (const Error& e) {
      busy = e.what();
    }
    DrillReport r;
    if (!drill_lock) {
      // Not a drill that ran: reported, not recorded (the history and counters stay as they are).
      r.target = t.name;
      r.started_at = r.finished_at = NowUnix();
      r.result = DrillResult::kError;
      r.reason = busy;
    } else {
      DrillRecorder recorder(env->state_dir + "/" + t.name);
      recorder.Begin(NowUnix());  // a crash now is recorded as an interrupted drill
      r = RunDrill(*env, t, &activity, cancel, &progress);
      recorder.Finish(r);
    }
    if (json) {
      out += (i ? "," : "") + ReportToJson(r);
    } else {
      out += RenderReportText(r) + "\n";
    }
    int code = r.result == DrillResult::kSuccess ? 0 : r.result == DrillResult::kFailure ? 1 : 2;
    worst = std::max(worst, code);
    if (cancel.cancelled()) break;
  }
  ticker.reset();
  if (json) out += "]}";
  done = true;
  signals.join();
  std::cout << out << (json ? "\n" : "") << std::flush;
  return worst;
}

int RunRunbook(const std::string& path, const std::string& target_name, const std::string& output) {
  ConfigLoad load = LoadConfig(path);
  if (!PrintConfigErrors(load)) return 2;
  const Config& cfg = *load.config;
  if (target_name.empty()) {
    std::fprintf(stderr, "runbook: --target NAME is required\n");
    return 2;
  }
  const TargetConfig* t = cfg.FindTarget(target_name);
  if (!t) {
    std::fprintf(stderr, "runbook: no target named '%s'\n", target_name.c_str());
    return 2;
  }
  RunbookResult rb = BuildRunbook(t->name, t->backup.type, t->source.Redacted(),
                                  cfg.agent.state_dir + "/" + t->name, NowUnix());
  if (!rb.found) {
    std::fprintf(stderr, "runbook: %s\n", rb.text.c_str());
    return 1;
  }
  if (output.empty() || output == "-") {
    std::cout << rb.text << std::flush;
    return 0;
  }
  // Written beside PATH and renamed, so a reader never sees half a runbook.
  const std::string tmp = output + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << rb.text;
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      std::fprintf(stderr, "runbook: cannot write %s: %s\n", tmp.c_str(), std::strerror(errno));
      return 2;
    }
  }
  if (std::rename(tmp.c_str(), output.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    std::fprintf(stderr, "runbook: cannot write %s: %s\n", output.c_str(), std::strerror(err));
    return 2;
  }
  return 0;
}

int RunHistory(const std::string& path, const std::string& target_name, bool json, int last) {
  ConfigLoad load = LoadConfig(path);
  if (!PrintConfigErrors(load)) return 2;
  const Config& cfg = *load.config;
  std::vector<const TargetConfig*> targets;
  for (const auto& t : cfg.targets)
    if (target_name.empty() || t.name == target_name) targets.push_back(&t);
  if (targets.empty()) {
    std::fprintf(stderr, "history: %s\n",
                 target_name.empty() ? "the config has no targets"
                                     : ("no target named '" + target_name + "'").c_str());
    return 2;
  }
  std::string out = json && targets.size() > 1 ? "[" : "";
  for (size_t i = 0; i < targets.size(); ++i) {
    DrillHistoryView v;
    v.target = targets[i]->name;
    v.window = static_cast<std::size_t>(last);
    v.drills = DrillLog(cfg.agent.state_dir + "/" + v.target).Read(v.window, &v.unreadable);
    if (json) {
      out += (i ? "," : "") + RenderHistoryJson(v);
    } else {
      out += (i ? "\n" : "") + RenderHistoryText(v);
    }
  }
  if (json && targets.size() > 1) out += "]";
  std::cout << out << (json ? "\n" : "") << std::flush;
  return 0;
}

}  // namespace rw
