#include "agent/runtime/drill_runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "agent/backup_source.h"
#include "agent/copies.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/path_guard.h"
#include "agent/pg/pg_conn.h"
#include "agent/runtime/drill_pick.h"
#include "agent/sandbox.h"
#include "agent/state.h"
#include "agent/units.h"
#include "checks/drill/data_checksums_check.h"
#include "checks/drill/reference.h"
#include "checks/registry.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Maps an operational failure to the drill result: a backup a source could only report by
// throwing Error(kBadInput) (discovery's "no backup matches") is a failure of the backup; anything
// that stopped us from judging it is an error.
DrillResult ResultFor(ErrorKind k) {
  return k == ErrorKind::kBadInput ? DrillResult::kFailure : DrillResult::kError;
}

// The drill's stage list, in order. "total" follows them in DrillReport::stages.
const char* const kStageList[] = {"discover", "fetch", "restore", "recovery", "checks", "cleanup"};

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
                     CancelToken& cancel, DrillProgress* progress) {
  return RunDrill(env, target, activity, cancel, progress, DrillParts{});
}

DrillReport RunDrill(const Environment& env, const TargetConfig& target, ActivityStore* activity,
                     CancelToken& cancel, DrillProgress* progress, const DrillParts& parts) {
  DrillReport r;
  r.target = target.name;
  r.run_id = NewRunId();
  r.started_at = NowUnix();
  r.sandbox = target.drill.sandbox == SandboxKind::kScratch ? "scratch" : "ephemeral";
  r.result = DrillResult::kSuccess;
  auto t_total = Clock::now();
  CancelToken drill_cancel;
  Watchdog watchdog(cancel, drill_cancel, target.drill.timeout);
  DrillProgress own_progress;  // when the caller watches none, sources still have one to update
  DrillProgress& live = progress ? *progress : own_progress;
  live.Begin(target.name, r.run_id);
  struct EndProgress {
    DrillProgress& p;
    ~EndProgress() { p.End(); }
  } end_progress{live};
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
  auto stage_limit = [&](const std::string& name) {
    if (name == "discover") return target.drill.stage_timeouts.discover;
    // fetch and recovery are part of what drill.stage_timeouts.restore has always bounded.
    if (name == "fetch" || name == "restore" || name == "recovery")
      return target.drill.stage_timeouts.restore;
    if (name == "checks") return target.drill.stage_timeouts.checks;
    return Duration::zero();
  };
  std::set<std::string> ran;  // stages appended to r.stages
  auto append = [&](StageResult st) {
    ran.insert(st.name);
    r.stages.push_back(std::move(st));
  };
  auto add_result = [&](const StageResult& st, DrillResult res) {
    if (st.outcome == Outcome::kFail || st.outcome == Outcome::kError)
      fail(res, st.name + ": " + st.message);
  };
  // The one way a stage runs: begins it on the watchdog, times it, turns what it throws into the
  // stage's outcome and the drill's result (refine may rewrite the kind and message first), and
  // always appends the stage. The body fills `st` (outcome pass unless it says otherwise) and
  // may append other stages itself (the restore call also reports fetch and recovery).
  using Refine = std::function<void(ErrorKind&, std::string&)>;
  auto run_stage = [&](const std::string& name, const std::function<void(StageResult&)>& body,
                       const Refine& refine = {}) {
    StageResult st{name, Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage(name, stage_limit(name));
    live.Stage(name);
    try {
      body(st);
    } catch (const Error& e) {
      ErrorKind kind = e.kind();
      st.message = error_reason(e);
      if (refine) refine(kind, st.message);
      if (timed_out()) kind = ErrorKind::kTimeout;
      st.outcome = kind == ErrorKind::kBadInput ? Outcome::kFail : Outcome::kError;
      fail(ResultFor(kind), st.name + ": " + st.message);
    } catch (const std::exception& e) {
      st.outcome = Outcome::kError;
      st.message = e.what();
      fail(DrillResult::kError, st.name + ": " + st.message);
    }
    if (st.duration_seconds == 0) st.duration_seconds = Since(t0);
    append(st);
  };
  LogInfo("drill started", {{"target", target.name}, {"run_id", r.run_id}});

  // discover
  std::optional<TargetConfig> picked_target;  // outlives `source`, which may read it
  std::unique_ptr<BackupSource> source;
  BackupInfo backup;
  SourceFacts facts;
  run_stage("discover", [&](StageResult& st) {
    source = parts.source ? parts.source(env, target) : MakeBackupSource(env, target);
    // drill.pick (agent/runtime/drill_pick.h): the backup, and the target it recovers to.
    DrillChoice choice = PickDrillBackup(target, *source, env.state_dir + "/" + target.name,
                                         drill_cancel, std::random_device{}());
    backup = choice.backup;
    r.pick = choice.pick;
    if (choice.recovery_target) {
      picked_target = target;
      picked_target->drill.recovery_target = *choice.recovery_target;
      source =
          parts.source ? parts.source(env, *picked_target) : MakeBackupSource(env, *picked_target);
    }
    // drill.from = "offsite": the same backup, read from the first offsite copy (agent/copies.h).
    backup = BackupForDrill(target, backup, drill_cancel);
    r.backup = backup;
    st.message = backup.id + ", taken " + FormatTimestamp(backup.started_at) +
                 (backup.location.empty() ? "" : ", from copy \"" + backup.location + "\"");
    if (r.pick != "latest") st.message += " (picked " + r.pick + ")";
    // The source's identity guards the sandbox (it must never be the source) and catches a dump
    // of the wrong database. An unreachable source does not stop the restore: the restore alone
    // proves something, and the comparing checks report their own errors.
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
      LogWarn("source unreachable at drill start", {{"target", target.name}, {"error", e.what()}});
    }
  });

  std::unique_ptr<Sandbox> sandbox;
  std::optional<RestoredCopy> copy;
  std::vector<std::pair<std::string, std::string>> not_run_reasons;  // RestoredCopy::not_run
  auto checks = parts.checks ? parts.checks(target.checks) : MakeDrillChecks(target.checks);
  CheckContext ctx{target, backup, "", activity, drill_cancel, {}, {}};
  ctx.progress = &live;
  std::future<std::map<Check*, std::exception_ptr>> before;
  // recovery_target = "snapshot": the live source's reference, hashed beside the restore in the
  // snapshot the copy is recovered to (checks/drill/reference.h TakeLiveReference).
  std::future<Reference> live_reference;

  // fetch, restore, recovery: one call of the source's Restore(), which asks the sandbox host for
  // what it needs (a running cluster, or a data dir to fill and start in recovery) and reports
  // the sub-stages it ran. Everything up to a usable copy counts toward the measured RTO.
  if (r.result == DrillResult::kSuccess) {
    ctx.exact_point = source && source->WantsSourcePoint();
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
    std::string current = "restore";  // the stage the source said it is in
    // The stages the source began, in order, with when (a source that throws loses its
    // sub-stages, but the stages it finished before the failing one still ran).
    std::vector<std::pair<std::string, Clock::time_point>> begun;
    auto t_restore = Clock::now();
    // A restore that broke off because the sandbox server died or ran out of disk is the
    // sandbox's problem, not the backup's: say what the server said, and judge nothing.
    Refine refine = [&](ErrorKind& kind, std::string& message) {
      const std::string server = sandbox && !timed_out() ? sandbox->ServerProblem() : std::string();
      if (!server.empty() && kind != ErrorKind::kCancelled) {
        message += " (" + server + ")";
        if (kind == ErrorKind::kBadInput) kind = ErrorKind::kProcess;
      }
      if (sandbox && sandbox->capabilities().uses_work_dir && LooksLikeDiskFull(message)) {
        message = "the sandbox ran out of disk space in work_dir " + env.work_dir + ": " + message;
        kind = ErrorKind::kIo;
      }
    };
    // The sub-stages of one drill stage, as one line.
    auto sub_message = [&](const std::string& stage) {
      std::string m;
      for (const auto& sub : copy->stages)
        if (sub.stage == stage)
          m += (m.empty() ? "" : "; ") + sub.name + " " + FormatSeconds(sub.duration_seconds) +
               (sub.message.empty() ? "" : ": " + sub.message);
      return m;
    };
    auto has_sub = [&](const std::string& stage) {
      return std::any_of(copy->stages.begin(), copy->stages.end(),
                         [&](const SubStage& x) { return x.stage == stage; });
    };
    // The finding of an unusable copy, as the stage it was found in.
    auto unusable = [&](StageResult& st) {
      ErrorKind kind = ErrorKind::kBadInput;
      st.message = copy->reason;
      refine(kind, st.message);
      if (timed_out()) {
        kind = ErrorKind::kTimeout;
        st.message = timeout_reason();
      }
      st.outcome = kind == ErrorKind::kBadInput ? Outcome::kFail : Outcome::kError;
      add_result(st, ResultFor(kind));
    };
    std::string found_unusable_in;  // the stage an unusable copy was found in
    run_stage(
        "restore",
        [&](StageResult& st) {
          sandbox = parts.sandbox ? parts.sandbox(env, target, r.run_id, facts.system_id)
                                  : MakeSandbox(env, target, r.run_id, facts.system_id);
          r.sandbox = sandbox->kind();
          if (sandbox->capabilities().uses_work_dir) CheckRoomForRestore(env, target, backup);
          RestoreOptions opts;
          opts.jobs = target.drill.jobs;
          opts.allow_errors = target.drill.allow_restore_errors;
          opts.database = target.drill.database.empty()
                              ? (facts.database.empty() ? backup.database : facts.database)
                              : target.drill.database;
          opts.timeout = target.drill.timeout;
          opts.progress = &live;
          opts.begin_stage = [&](const std::string& stage) {
            begun.emplace_back(stage, Clock::now());
            current = stage;
            watchdog.BeginStage(stage, stage_limit(stage));
            live.Stage(stage);
          };
          if (ctx.exact_point) {
            // The snapshot first (the source recovers the copy to its point), then its tables
            // are hashed in it while the restore runs.
            auto point = std::make_shared<std::promise<SourcePoint>>();
            auto told = std::make_shared<std::atomic<bool>>(false);
            std::future<SourcePoint> point_f = point->get_future();
            live_reference = std::async(std::launch::async, [&target, &drill_cancel, point, told] {
              try {
                return TakeLiveReference(target, drill_cancel, [&](const Reference& h) {
                  point->set_value(
                      SourcePoint{h.horizon, h.lsn, h.system_identifier, h.snapshot_time});
                  *told = true;
                });
              } catch (...) {
                if (!*told) point->set_exception(std::current_exception());
                throw;
              }
            });
            opts.source_point = point_f.get();
          }
          SandboxHost& host = *sandbox;
          try {
            copy = source->Restore(backup, host, opts, drill_cancel);
          } catch (...) {
            st.name = current;  // the error belongs to the stage the source was in
            for (std::size_t i = 0; i + 1 < begun.size(); ++i) {
              const std::string& name = begun[i].first;
              if (name == "restore" || name == current || ran.count(name)) continue;
              append(StageResult{
                  name, Outcome::kPass, "completed before " + current + " failed",
                  std::chrono::duration<double>(begun[i + 1].second - begun[i].second).count()});
            }
            throw;
          }
          // What the source ran before and after the restore proper are stages of their own
          // (a fetch that found the backup unusable is reported once, as failed, below).
          const bool unusable_in_fetch = !copy->usable && current == "fetch";
          if (has_sub("fetch") && !unusable_in_fetch)
            append(StageResult{"fetch", Outcome::kPass, sub_message("fetch"),
                               copy->SecondsIn("fetch")});
          st.duration_seconds = std::max(
              1e-6, Since(t_restore) - copy->SecondsIn("fetch") - copy->SecondsIn("recovery"));
          if (!copy->usable) {
            found_unusable_in = current;
            if (current != "recovery") {
              st.name = current == "fetch" ? "fetch" : "restore";
              if (unusable_in_fetch)
                st.duration_seconds =
                    std::max(1e-6, Since(t_restore) - copy->SecondsIn("recovery"));
              unusable(st);
              return;
            }
          }
          const SubStage* ready = copy->Find("sandbox start");
          st.message = copy->summary + " into " + r.sandbox + " sandbox" +
                       (ready ? " (ready in " + FormatSeconds(ready->duration_seconds) + ")" : "");
          if (!copy->accepted_errors.empty())
            st.message += ", " + std::to_string(copy->accepted_errors.size()) + " allowed error(s)";
        },
        refine);
    // recovery: after the restore proper, from the source's sub-stages.
    if (copy && (has_sub("recovery") || found_unusable_in == "recovery")) {
      StageResult st{"recovery", Outcome::kPass, sub_message("recovery"),
                     copy->SecondsIn("recovery")};
      if (found_unusable_in == "recovery") unusable(st);
      append(st);
    }
    if (copy) {
      // What the source ran, step by step, for the runbook (also when the copy proved unusable).
      not_run_reasons = copy->not_run;
      r.steps = copy->stages;
      r.roles_created = copy->roles_created;
      try {
        if (sandbox) r.sandbox_major = sandbox->ServerMajor();
      } catch (const std::exception&) {
      }
    }
    if (copy && (!copy->usable || r.result != DrillResult::kSuccess)) copy.reset();
    if (copy) {
      r.copy_consistent_at = copy->consistent_at;
      r.copy_lsn = copy->lsn.value_or("");
      r.copy_timeline = copy->timeline.value_or(0);
      try {
        std::uint64_t total = 0;
        for (const auto& db : copy->databases) {
          auto c = ConnectSandbox(db == copy->databases.front() ? copy->conninfo
                                                                : sandbox->LibpqConnInfo(db));
          pqxx::nontransaction tx(*c);
          total += tx.exec1("select pg_database_size(current_database())")[0].as<std::uint64_t>();
        }
        r.restored_size_bytes = total;
      } catch (const std::exception&) {
      }
    }
  }

  // checks
  std::map<Check*, std::exception_ptr> before_errors;
  if (before.valid()) {
    if (!copy) drill_cancel.Cancel();  // stop source-side work nobody will use
    before_errors = before.get();
  }
  if (copy && ctx.exact_point) {
    auto state = ReferenceState::For(ctx);
    try {
      Reference ref = live_reference.get();
      if (!copy->at_source_point)
        throw Error(ErrorKind::kUnsupported,
                    "the copy was not recovered to the point of the source's snapshot");
      const std::string label = "source snapshot " + ref.horizon + " taken at WAL " + ref.lsn +
                                ", the copy recovered to it at " + copy->lsn.value_or("?");
      state->Adopt(std::move(ref), label);
    } catch (...) {
      state->AdoptError(std::current_exception());
    }
  }
  if (live_reference.valid()) {
    if (!copy) drill_cancel.Cancel();  // nobody will compare with it
    try {
      live_reference.get();
    } catch (...) {
    }
  }
  if (copy) {
    run_stage("checks", [&](StageResult& st) {
      ctx.restored_conninfo = copy->conninfo;
      if (copy->consistent_at > 0) ctx.consistent_at = copy->consistent_at;
      int passed = 0, failed = 0, errors = 0, skipped = 0;
      // Runs one check and accounts for it.
      auto run_check = [&](const std::string& name, const std::function<CheckResult()>& run) {
        auto tc = Clock::now();
        live.Step(name);
        CheckResult res;
        res.name = name;
        try {
          res = run();
        } catch (const Error& e) {
          res.outcome = Outcome::kError;
          res.message = error_reason(e);
        } catch (const std::exception& e) {
          res.outcome = Outcome::kError;
          res.message = e.what();
        }
        if (res.name.empty()) res.name = name;
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
      };
      for (auto& c : checks) {
        Check* check = c.get();
        run_check(c->name(), [&] {
          if (auto it = before_errors.find(check); it != before_errors.end())
            std::rethrow_exception(it->second);
          return check->Run(ctx);
        });
        if (drill_cancel.cancelled()) break;
      }
      // A physical copy's data checksums, offline and so last: it shuts the copy down.
      if (!copy->data_dir.empty() && !drill_cancel.cancelled())
        run_check("data_checksums", [&] {
          return CheckDataChecksums(*sandbox, copy->conninfo, env.run_as, target.drill.timeout,
                                    drill_cancel);
        });
      st.message = std::to_string(passed) + " passed, " + std::to_string(failed) + " failed, " +
                   std::to_string(errors) + " error, " + std::to_string(skipped) + " skipped";
      if (r.checks.empty()) st.message = "no checks enabled";
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
    });
  }

  // cleanup (always)
  {
    StageResult st{"cleanup", Outcome::kPass, "", 0};
    auto t0 = Clock::now();
    watchdog.BeginStage("cleanup", Duration::zero());
    live.Stage("cleanup");
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
    append(st);
  }
  if (timed_out()) {
    // The bound is the cause, whatever the cut-short work reported first.
    r.result = DrillResult::kError;
    r.reason = timeout_reason();
  } else if (drill_cancel.cancelled() && r.result == DrillResult::kSuccess) {
    fail(DrillResult::kError, "drill cancelled");
  }

  // Every stage of the list that did not run, with why.
  std::string ended_by;  // the first stage that did not succeed
  for (const auto& st : r.stages)
    if (st.outcome == Outcome::kFail || st.outcome == Outcome::kError) {
      ended_by = st.name;
      break;
    }
  for (const char* name : kStageList) {
    if (ran.count(name)) continue;
    std::string why;
    for (const auto& [stage, reason] : not_run_reasons)
      if (stage == name) why = reason;
    if (why.empty()) why = ended_by.empty() ? "not run" : "not run: " + ended_by + " did not pass";
    r.not_run.push_back(StageResult{name, Outcome::kSkipped, why, 0});
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
  return r;
}

}  // namespace rw
