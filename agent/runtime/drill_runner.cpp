#include "agent/runtime/drill_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "agent/backup_source.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/path_guard.h"
#include "agent/pg_conn.h"
#include "agent/sandbox.h"
#include "agent/state.h"
#include "agent/units.h"
#include "checks/registry.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Maps an operational failure to the drill result: a backup that is unusable is a failure of the
// backup; anything that stopped us from judging it is an error.
DrillResult ResultFor(ErrorKind k) {
  return k == ErrorKind::kBadInput ? DrillResult::kFailure : DrillResult::kError;
}

struct SourceFacts {
  std::string system_id;
  std::string database;
};

SourceFacts ProbeSource(const TargetConfig& target) {
  SourceFacts f;
  auto conn = Connect(target.source, MonitorLimits(target));
  WithPgErrors("reading source identity", [&] {
    pqxx::read_transaction tx(*conn);
    auto row = tx.exec1(
        "select (select system_identifier::text from pg_control_system()), current_database()");
    f.system_id = row[0].is_null() ? "" : row[0].as<std::string>();
    f.database = row[1].as<std::string>();
  });
  return f;
}

// Cancels `drill` when `parent` is cancelled, the drill's deadline passes, or the current stage
// runs past its own limit (drill.stage_timeouts). Whatever fired first is remembered, so the
// reason can say which bound it was.
class Watchdog {
 public:
  Watchdog(CancelToken& parent, CancelToken& drill, Duration timeout)
      : deadline_(Clock::now() + timeout), thread_([&parent, &drill, this] {
          while (!stop_.cancelled()) {
            if (parent.cancelled()) {
              drill.Cancel();
              return;
            }
            auto now = Clock::now();
            if (now >= deadline_) {
              std::lock_guard<std::mutex> lk(mu_);
              timed_out_in_ = stage_;
              timed_out_ = true;
              drill.Cancel();
              return;
            }
            {
              std::lock_guard<std::mutex> lk(mu_);
              if (stage_deadline_ && now >= *stage_deadline_) {
                stage_timed_out_ = stage_;
                drill.Cancel();
                return;
              }
            }
            stop_.SleepFor(std::chrono::milliseconds(50));
          }
        }) {}
  ~Watchdog() {
    stop_.Cancel();
    thread_.join();
  }
  // The stage that runs from now on, and its limit (zero: none but the drill's).
  void BeginStage(const std::string& stage, Duration limit) {
    std::lock_guard<std::mutex> lk(mu_);
    stage_ = stage;
    if (limit.count() > 0)
      stage_deadline_ = Clock::now() + limit;
    else
      stage_deadline_.reset();
    stage_limit_ = limit;
  }
  bool timed_out() const { return timed_out_; }
  // The stage that was running when the drill's own timeout fired.
  std::string timed_out_in() const {
    std::lock_guard<std::mutex> lk(mu_);
    return timed_out_in_;
  }
  // The stage whose own limit fired, or empty.
  std::string stage_timed_out() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stage_timed_out_;
  }
  Duration stage_limit() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stage_limit_;
  }

 private:
  const Clock::time_point deadline_;
  mutable std::mutex mu_;
  std::string stage_;                                // guarded by mu_
  std::optional<Clock::time_point> stage_deadline_;  // guarded by mu_
  Duration stage_limit_{0};                          // guarded by mu_
  std::string stage_timed_out_;                      // guarded by mu_
  std::string timed_out_in_;                         // guarded by mu_
  CancelToken stop_;
  std::atomic<bool> timed_out_{false};
  std::thread thread_;
};

// Fails early (Error kIo, so the drill is an error: nothing was learnt about the backup) when
// work_dir lacks room for the restored copy, naming both numbers.
void CheckRoomForRestore(const Environment& env, const TargetConfig& target,
                         const BackupInfo& backup) {
  std::uint64_t last_restored = 0;
  try {
    DrillHistorySummary h = DrillHistory(env.state_dir + "/" + target.name).Load();
    if (h.last_report) last_restored = h.last_report->restored_size_bytes;
  } catch (const std::exception&) {
    // No usable history: estimate from the backup's size.
  }
  std::optional<std::uint64_t> free_bytes = FreeBytes(env.work_dir);
  if (!free_bytes) return;  // cannot tell; the restore itself will say if the disk fills
  SpaceNeed need = RestoreSpaceNeed(backup.size_bytes, backup.format, last_restored);
  if (auto why = ShortOfSpace(env.work_dir, *free_bytes, need)) throw Error(ErrorKind::kIo, *why);
}

}  // namespace

std::string NewRunId() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(rng() & 0xffff));
  return std::string(buf) + "-" + suffix;
}

DrillReport RunDrill(const Environment& env, const TargetConfig& target, ActivityStore* activity,
                     CancelToken& cancel, const DrillProgress& progress) {
  DrillReport r;
  r.target = target.name;
  r.run_id = NewRunId();
  r.started_at = NowUnix();
  r.sandbox = target.drill.sandbox == SandboxKind::kScratch ? "scratch" : "ephemeral";
  r.result = DrillResult::kSuccess;
  auto t_total = Clock::now();
  CancelToken drill_cancel;
  Watchdog watchdog(cancel, drill_cancel, target.drill.timeout);
  auto notify = [&] {
    if (progress) progress(r);
  };
  auto fail = [&](DrillResult res, const std::string& reason) {
    if (r.result == DrillResult::kSuccess ||
        (res == DrillResult::kError && r.result == DrillResult::kFailure && r.reason.empty())) {
      r.result = res;
      r.reason = reason;
    }
  };
  // Why the drill was cancelled, when a bound fired: one line naming it and its limit.
  auto timeout_reason = [&]() -> std::string {
    if (watchdog.timed_out())
      return "drill timed out after " + FormatDuration(target.drill.timeout) +
             " (drill.timeout) during " + watchdog.timed_out_in();
    const std::string stage = watchdog.stage_timed_out();
    if (!stage.empty())
      return stage + " stage timed out after " + FormatDuration(watchdog.stage_limit()) +
             " (drill.stage_timeouts." + stage + ")";
    return "";
  };
  auto timed_out = [&] { return drill_cancel.cancelled() && !timeout_reason().empty(); };
  // A stage cut short by a bound may fail with whatever the cancelled work threw (a killed
  // pg_restore, a cancelled query): the bound is the cause, so it is what the reason names.
  auto error_reason = [&](const Error& e) {
    if (drill_cancel.cancelled()) {
      std::string t = timeout_reason();
      if (!t.empty()) return t;
    }
    return std::string(e.what());
  };
  LogInfo("drill started", {{"target", target.name}, {"run_id", r.run_id}});

  // discover
  std::unique_ptr<BackupSource> source;
  BackupInfo backup;
  SourceFacts facts;
  {
    StageResult st{"discover", Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage("discover", target.drill.stage_timeouts.discover);
    try {
      source = MakeBackupSource(env, target);
      backup = source->Latest(drill_cancel);
      r.backup = backup;
      st.message = backup.id + ", taken " + FormatTimestamp(backup.started_at);
    } catch (const Error& e) {
      st.outcome =
          e.kind() == ErrorKind::kBadInput && !timed_out() ? Outcome::kFail : Outcome::kError;
      st.message = error_reason(e);
      fail(timed_out() ? DrillResult::kError : ResultFor(e.kind()), "discover: " + st.message);
    }
    // The source's identity guards the sandbox (it must never be the source) and catches a dump
    // of the wrong database. An unreachable source does not stop the restore: the restore alone
    // proves something, and the comparing checks report their own errors.
    if (st.outcome == Outcome::kPass) {
      try {
        facts = ProbeSource(target);
        if (!backup.database.empty() && !facts.database.empty() &&
            backup.database != facts.database) {
          st.outcome = Outcome::kFail;
          st.message = "backup " + backup.id + " is a dump of database '" + backup.database +
                       "' but the source is '" + facts.database + "'";
          fail(DrillResult::kFailure, st.message);
        }
      } catch (const Error& e) {
        LogWarn("source unreachable at drill start",
                {{"target", target.name}, {"error", e.what()}});
      }
    }
    st.duration_seconds = Since(t0);
    r.stages.push_back(st);
    notify();
  }

  std::unique_ptr<Sandbox> sandbox;
  std::string restored_conninfo;
  bool restored = false;
  auto checks = MakeDrillChecks(target.checks);
  CheckContext ctx{target, backup, "", activity, drill_cancel, {}, {}};
  std::future<std::map<Check*, std::exception_ptr>> before;

  // restore (sandbox start + restore: both count toward the measured RTO)
  if (r.result == DrillResult::kSuccess) {
    StageResult st{"restore", Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage("restore", target.drill.stage_timeouts.restore);
    // Source-side preparation runs beside the restore.
    before = std::async(std::launch::async, [&checks, &ctx] {
      std::map<Check*, std::exception_ptr> errs;
      for (auto& c : checks) {
        try {
          c->BeforeRestore(ctx);
        } catch (...) {
          errs[c.get()] = std::current_exception();
        }
      }
      return errs;
    });
    try {
      if (target.drill.sandbox == SandboxKind::kEphemeral) CheckRoomForRestore(env, target, backup);
      sandbox = MakeSandbox(env, target, r.run_id, facts.system_id);
      sandbox->Start(backup.server_major, drill_cancel);
      double sandbox_s = Since(t0);
      RestoreOptions opts;
      opts.jobs = target.drill.jobs;
      opts.allow_errors = target.drill.allow_restore_errors;
      opts.database = target.drill.database.empty()
                          ? (facts.database.empty() ? backup.database : facts.database)
                          : target.drill.database;
      opts.timeout = target.drill.timeout;
      RestoreOutcome out = source->Restore(backup, *sandbox, opts, drill_cancel);
      restored_conninfo = sandbox->LibpqConnInfo(out.database);
      restored = true;
      st.message = out.tool_summary + " into " + r.sandbox + " sandbox (ready in " +
                   FormatSeconds(sandbox_s) + ")";
      if (!out.accepted_errors.empty())
        st.message += ", " + std::to_string(out.accepted_errors.size()) + " allowed error(s)";
      try {
        auto c = ConnectSandbox(restored_conninfo);
        pqxx::nontransaction tx(*c);
        r.restored_size_bytes =
            tx.exec1("select pg_database_size(current_database())")[0].as<std::uint64_t>();
      } catch (const std::exception&) {
      }
    } catch (const Error& e) {
      ErrorKind kind = e.kind();
      st.message = error_reason(e);
      // A restore that broke off because the sandbox server died or ran out of disk is the
      // sandbox's problem, not the backup's: say what the server said, and judge nothing.
      const std::string server = sandbox && !timed_out() ? sandbox->ServerProblem() : std::string();
      if (!server.empty() && kind != ErrorKind::kCancelled) {
        st.message += " (" + server + ")";
        if (kind == ErrorKind::kBadInput) kind = ErrorKind::kProcess;
      }
      if (target.drill.sandbox == SandboxKind::kEphemeral && LooksLikeDiskFull(st.message)) {
        st.message =
            "the sandbox ran out of disk space in work_dir " + env.work_dir + ": " + st.message;
        kind = ErrorKind::kIo;
      }
      if (timed_out()) kind = ErrorKind::kTimeout;
      st.outcome = kind == ErrorKind::kBadInput ? Outcome::kFail : Outcome::kError;
      fail(ResultFor(kind), "restore: " + st.message);
    } catch (const std::exception& e) {
      st.outcome = Outcome::kError;
      st.message = e.what();
      fail(DrillResult::kError, "restore: " + st.message);
    }
    st.duration_seconds = Since(t0);
    r.stages.push_back(st);
    notify();
  }

  // checks
  std::map<Check*, std::exception_ptr> before_errors;
  if (before.valid()) {
    if (!restored) drill_cancel.Cancel();  // stop source-side work nobody will use
    before_errors = before.get();
  }
  if (restored) {
    StageResult st{"checks", Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage("checks", target.drill.stage_timeouts.checks);
    ctx.restored_conninfo = restored_conninfo;
    int passed = 0, failed = 0, errors = 0, skipped = 0;
    for (auto& c : checks) {
      auto tc = Clock::now();
      CheckResult res;
      res.name = c->name();
      try {
        if (auto it = before_errors.find(c.get()); it != before_errors.end())
          std::rethrow_exception(it->second);
        res = c->Run(ctx);
      } catch (const Error& e) {
        res.outcome = Outcome::kError;
        res.message = error_reason(e);
      } catch (const std::exception& e) {
        res.outcome = Outcome::kError;
        res.message = e.what();
      }
      if (res.name.empty()) res.name = c->name();
      // A check cut short by a bound could not judge, whatever it concluded from half its work.
      if (timed_out() && res.outcome == Outcome::kFail) {
        res.outcome = Outcome::kError;
        res.message = timeout_reason();
      }
      res.duration_seconds = Since(tc);
      switch (res.outcome) {
        case Outcome::kPass:
        case Outcome::kWarn:
          ++passed;
          break;
        case Outcome::kFail:
          ++failed;
          break;
        case Outcome::kError:
          ++errors;
          break;
        case Outcome::kSkipped:
          ++skipped;
          break;
      }
      st.outcome = Worse(st.outcome, res.outcome);
      LogInfo("check finished", {{"target", target.name},
                                 {"stage", "checks"},
                                 {"check", res.name},
                                 {"duration_seconds", res.duration_seconds},
                                 {"outcome", OutcomeName(res.outcome)},
                                 {"message", res.message}});
      r.checks.push_back(std::move(res));
      notify();
      if (drill_cancel.cancelled()) break;
    }
    st.message = std::to_string(passed) + " passed, " + std::to_string(failed) + " failed, " +
                 std::to_string(errors) + " error, " + std::to_string(skipped) + " skipped";
    if (checks.empty()) st.message = "no checks enabled";
    if (st.outcome == Outcome::kWarn) st.outcome = Outcome::kPass;
    for (const auto& c : r.checks) {
      if (c.outcome == Outcome::kFail) {
        fail(DrillResult::kFailure, "check " + c.name + " failed: " + c.message);
        break;
      }
    }
    for (const auto& c : r.checks) {
      if (c.outcome == Outcome::kError) {
        fail(DrillResult::kError, "check " + c.name + " could not run: " + c.message);
        break;
      }
    }
    st.duration_seconds = Since(t0);
    r.stages.push_back(st);
  }

  // cleanup (always)
  {
    StageResult st{"cleanup", Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage("cleanup", Duration::zero());
    if (sandbox) {
      std::string problem = sandbox->Cleanup();
      if (!problem.empty()) {
        st.outcome = Outcome::kError;
        st.message = problem;
        LogError("sandbox cleanup failed", {{"target", target.name}, {"error", problem}});
      } else {
        st.message = "sandbox removed";
      }
      sandbox.reset();
    } else {
      st.outcome = Outcome::kSkipped;
      st.message = "nothing to clean";
    }
    st.duration_seconds = Since(t0);
    r.stages.push_back(st);
  }
  if (timed_out()) {
    // The bound is the cause, whatever the cut-short work reported first.
    r.result = DrillResult::kError;
    r.reason = timeout_reason();
  } else if (drill_cancel.cancelled() && r.result == DrillResult::kSuccess) {
    fail(DrillResult::kError, "drill cancelled");
  }

  r.finished_at = NowUnix();
  r.stages.push_back(StageResult{"total",
                                 r.result == DrillResult::kSuccess   ? Outcome::kPass
                                 : r.result == DrillResult::kFailure ? Outcome::kFail
                                                                     : Outcome::kError,
                                 "", Since(t_total)});
  LogInfo("drill finished", {{"target", target.name},
                             {"run_id", r.run_id},
                             {"stage", "total"},
                             {"duration_seconds", r.total_seconds()},
                             {"outcome", DrillResultName(r.result)},
                             {"reason", r.reason}});
  notify();
  return r;
}

}  // namespace rw
