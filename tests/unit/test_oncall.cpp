// What on-call reads: DrillProgress (stage, step, counters, probe, ticker), the runbook's
// rendering from a recorded report, and the report's steps surviving the state file.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "agent/drill_progress.h"
#include "agent/secrets.h"
#include "agent/state.h"
#include "exporters/report.h"
#include "exporters/runbook.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

TEST_CASE("DrillProgress keeps the stage, the step and what is done", "[unit][progress]") {
  DrillProgress p;
  CHECK_FALSE(p.Get().running);
  std::vector<std::string> stages;
  p.OnStage([&](const ProgressSnapshot& s) { stages.push_back(s.stage); });
  p.Begin("t1", "run-1");
  CHECK(p.Get().running);
  CHECK(ProgressLine(p.Get()) == "starting");
  p.Stage("restore");
  p.Stage("restore");  // announced again by the source: no second line
  p.Step("pg_restore");
  p.Bytes(3u << 20, std::nullopt, "restored");
  p.Note("COPY public.items 1200 rows");
  ProgressSnapshot s = p.Get();
  CHECK(s.target == "t1");
  CHECK(s.stage == "restore");
  CHECK(s.step == "pg_restore");
  CHECK(*s.bytes_done == 3u << 20);
  CHECK(s.drill_elapsed_seconds >= s.stage_elapsed_seconds);
  const std::string line = ProgressLine(s);
  CHECK_THAT(line, Catch::StartsWith("restore (pg_restore) for "));
  CHECK_THAT(line, Catch::Contains("3 MiB restored; COPY public.items 1200 rows"));

  // A new stage clears what was done in the last one.
  p.Stage("checks");
  p.Step("checksum");
  p.Items(3, 12, "tables hashed in the copy");
  s = p.Get();
  CHECK_FALSE(s.bytes_done);
  CHECK(s.note.empty());
  CHECK_THAT(ProgressLine(s), Catch::Contains("3 of 12 tables hashed in the copy"));
  CHECK(stages == std::vector<std::string>{"restore", "checks"});
  p.End();
  CHECK_FALSE(p.Get().running);
}

TEST_CASE("the progress ticker runs the probe and reports while a drill runs", "[unit][progress]") {
  DrillProgress p;
  p.Begin("t1", "run-1");
  p.Stage("restore");
  std::atomic<int> probes{0};
  p.SetProbe(
      [&] {
        ++probes;
        DrillProgress::Probed r;
        r.bytes_done = 1000u * static_cast<unsigned>(probes.load());
        return r;
      },
      "restored");
  std::atomic<int> lines{0};
  std::string last;
  std::mutex mu;
  {
    ProgressTicker ticker(p, 20ms, [&](const ProgressSnapshot& s) {
      std::lock_guard<std::mutex> lk(mu);
      last = ProgressLine(s);
      ++lines;
    });
    REQUIRE(test::Eventually([&] { return lines.load() >= 3; }, 10));
  }
  CHECK(probes.load() >= 3);
  {
    std::lock_guard<std::mutex> lk(mu);
    CHECK_THAT(last, Catch::Contains("restored"));
  }
  // A probe that throws leaves the values alone; a new stage drops the probe.
  p.SetProbe([]() -> DrillProgress::Probed { throw std::runtime_error("gone"); }, "restored");
  const auto before = p.Get().bytes_done;
  p.RunProbe();
  CHECK(p.Get().bytes_done == before);
  p.Stage("checks");
  p.RunProbe();
  CHECK_FALSE(p.Get().bytes_done);
}

TEST_CASE("the progress interval comes from RESTOREWATCH_PROGRESS_INTERVAL", "[unit][progress]") {
  unsetenv("RESTOREWATCH_PROGRESS_INTERVAL");
  CHECK(ProgressInterval() == 10s);
  setenv("RESTOREWATCH_PROGRESS_INTERVAL", "250ms", 1);
  CHECK(ProgressInterval() == 250ms);
  setenv("RESTOREWATCH_PROGRESS_INTERVAL", "soon", 1);
  CHECK(ProgressInterval() == 10s);
  unsetenv("RESTOREWATCH_PROGRESS_INTERVAL");
}

TEST_CASE("the status JSON shows a running drill's progress", "[unit][progress]") {
  AgentStatus st;
  TargetStatus t;
  t.name = "t1";
  t.drill_running = true;
  ProgressSnapshot p;
  p.running = true;
  p.stage = "checks";
  p.step = "checksum";
  p.stage_elapsed_seconds = 2.5;
  p.drill_elapsed_seconds = 9;
  p.items_done = 4;
  p.items_total = 10;
  p.items_what = "tables hashed in the copy";
  t.drill_progress = p;
  st.targets.push_back(t);
  const std::string json = RenderStatusJson(st);
  CHECK_THAT(json, Catch::Contains("\"drill_progress\""));
  CHECK_THAT(json,
             Catch::Contains("\"stage\" : \"checks\"") || Catch::Contains("\"stage\":\"checks\""));
  CHECK_THAT(json, Catch::Contains("4 of 10 tables hashed in the copy"));
}

namespace {

DrillReport PhysicalReport() {
  DrillReport r;
  r.target = "phys";
  r.run_id = "20261204T120000Z-abcd";
  r.started_at = 1'800'000'000;
  r.finished_at = r.started_at + 42;
  r.result = DrillResult::kSuccess;
  r.sandbox = "ephemeral";
  r.sandbox_major = 15;
  r.restored_size_bytes = 50u << 20;
  BackupInfo b;
  b.id = "b1";
  b.kind = "full";
  b.tool = "pg_basebackup";
  b.format = "plain";
  b.path = "/backups/b1";
  b.server_major = 15;
  b.started_at = r.started_at - 3600;
  r.backup = b;
  r.copy_consistent_at = r.started_at - 600;
  r.copy_lsn = "0/5000100";
  r.copy_timeline = 1;
  r.steps.push_back({"fetch",
                     "pg_verifybackup",
                     1.5,
                     "files match",
                     {{"/usr/lib/postgresql/15/bin/pg_verifybackup", "-m",
                       "/backups/b1/backup_manifest", "/backups/b1"}}});
  r.steps.push_back({"recovery",
                     "consistency",
                     2.0,
                     "accepting connections",
                     {},
                     {{"restore_command", "'cp ''/archive/%f'' %p'"},
                      {"recovery_target_time", "'2026-12-04 11:50:00+00'"},
                      {"recovery.signal", ""}}});
  r.stages.push_back({"fetch", Outcome::kPass, "ok", 1.5});
  r.stages.push_back({"recovery", Outcome::kPass, "ok", 2.0});
  r.stages.push_back({"total", Outcome::kPass, "", 42});
  CheckResult c;
  c.name = "checksum";
  c.outcome = Outcome::kPass;
  c.tables_compared = 3;
  c.rows_verified = 1234567;
  r.checks.push_back(c);
  return r;
}

}  // namespace

TEST_CASE("the runbook renders what a physical drill ran", "[unit][runbook_cmd]") {
  RegisterSecret("S3cretRunbookPw");
  RunbookInput in;
  in.target = "phys";
  in.backup_type = "basebackup";
  in.proven = PhysicalReport();
  in.proven.steps[0].message = "connected with password=S3cretRunbookPw";
  in.now = in.proven.finished_at + 7200;
  in.version = "test";
  DrillLogEntry failed;
  failed.run_id = "later";
  failed.finished_at = in.proven.finished_at + 100;
  failed.result = "failure";
  failed.reason = "restore: checksum mismatch";
  DrillLogEntry passed = EntryFromReport(in.proven);
  in.recent = {passed, failed};
  const std::string md = RenderRunbook(in);
  INFO(md);
  CHECK_THAT(md, Catch::StartsWith("# Restore runbook: phys\n"));
  CHECK_THAT(md, Catch::Contains("(2h ago)"));
  CHECK_THAT(md, Catch::Contains("**Warning:** the newest drill (`later`"));
  CHECK_THAT(md, Catch::Contains("/usr/lib/postgresql/15/bin/pg_verifybackup -m "
                                 "/backups/b1/backup_manifest /backups/b1"));
  CHECK_THAT(md, Catch::Contains("restore_command = 'cp ''/archive/%f'' %p'\n"));
  CHECK_THAT(md, Catch::Contains("recovery_target_time = '2026-12-04 11:50:00+00'\n"));
  CHECK_THAT(md, Catch::Contains("With an empty `recovery.signal` file"));
  CHECK_THAT(md, Catch::Contains("LSN 0/5000100, timeline 1"));
  CHECK_THAT(md, Catch::Contains("that point was **10m** old"));
  CHECK_THAT(md, Catch::Contains("1,234,567 rows verified"));
  CHECK_THAT(md, Catch::Contains("a physical copy needs this same major version"));
  CHECK_THAT(md, Catch::Contains("1 of the last 2 drills passed"));
  CHECK(md.find("S3cretRunbookPw") == std::string::npos);
}

TEST_CASE("runbook command lines are quoted for a shell", "[unit][runbook_cmd]") {
  CHECK(ShellCommand({"pg_restore", "-j", "2", "/b/x.dump"}) == "pg_restore -j 2 /b/x.dump");
  CHECK(ShellCommand({"psql", "-d", "host=/tmp/s port=5 dbname=app"}) ==
        "psql -d 'host=/tmp/s port=5 dbname=app'");
  CHECK(ShellCommand({"echo", "it's", ""}) == "echo 'it'\\''s' ''");
}

TEST_CASE("the report's steps survive the state file; the last pass is kept apart",
          "[unit][runbook_cmd][verify_json]") {
  test::TestDir dir;
  const std::string tdir = dir / "phys";
  CHECK_FALSE(LoadLastSuccessReport(tdir));
  DrillReport ok = PhysicalReport();
  {
    DrillHistory h(tdir);
    h.Record(ok);
    DrillReport bad = ok;
    bad.run_id = "later";
    bad.result = DrillResult::kFailure;
    bad.reason = "checks: failed";
    bad.finished_at += 100;
    h.Record(bad);
    REQUIRE(h.Load().last_report);
    CHECK(h.Load().last_report->run_id == "later");
  }
  auto back = LoadLastSuccessReport(tdir);
  REQUIRE(back);
  CHECK(back->run_id == ok.run_id);
  CHECK(back->sandbox_major == 15);
  REQUIRE(back->steps.size() == 2);
  CHECK(back->steps[0].commands == ok.steps[0].commands);
  CHECK(back->steps[1].settings == ok.steps[1].settings);
  CHECK(back->steps[1].duration_seconds == Approx(2.0));
  const std::string json = ReportToJson(ok);
  CHECK_THAT(json, Catch::Contains("\"steps\""));
  CHECK_THAT(json, Catch::Contains("\"recovery.signal\""));
}

TEST_CASE("the runbook of a compressed plain dump shows the pipeline and the roles it needed",
          "[unit][runbook_cmd]") {
  RunbookInput in;
  in.target = "blog";
  in.backup_type = "pg_dump";
  DrillReport& r = in.proven;
  r.run_id = "r1";
  r.started_at = 1'800'000'000;
  r.finished_at = r.started_at + 5;
  r.result = DrillResult::kSuccess;
  r.sandbox = "ephemeral";
  r.roles_created = {"app_owner", "reporting"};
  r.steps.push_back({"restore", "sandbox start", 1.0, "ephemeral sandbox ready"});
  r.steps.push_back({"restore",
                     "psql",
                     2.0,
                     "gzip -dc | psql (plain.gz format)",
                     {{"/usr/bin/gzip", "-dc", "/b/blog.sql.gz"},
                      {"/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                       "host=/s port=1 dbname=blog", "-f", "-"}}});
  in.now = r.finished_at + 1;
  const std::string md = RenderRunbook(in);
  INFO(md);
  CHECK_THAT(md, Catch::Contains("/usr/bin/gzip -dc /b/blog.sql.gz \\\n  | "
                                 "/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -d "
                                 "'host=/s port=1 dbname=blog' -f -\n"));
  CHECK_THAT(md, Catch::Contains("the drill created them (NOLOGIN): `app_owner`, `reporting`"));
  CHECK_THAT(md, Catch::Contains("### 1. restore: sandbox start (1.000s)"));
  CHECK_THAT(md, Catch::Contains("No checks were enabled"));
  CHECK_THAT(md, Catch::Contains("Not measured: the drill did not record the copy's point."));
}
