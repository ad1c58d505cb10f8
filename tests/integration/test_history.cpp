// The drill log (agent/drill_log.h) and what reads it: `restorewatch history` and
// /api/v1/targets/NAME/history. Unit cases for the file (torn lines, compaction, summary math);
// end to end with real drills against a real source.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/drill_log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "exporters/history_report.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::ReadFile;
using test::WriteFile;

void AppendRaw(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

std::size_t CountLines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

DrillReport Report(int i, DrillResult result, double total) {
  DrillReport r;
  r.target = "t1";
  r.run_id = "run-" + std::to_string(i);
  r.started_at = 1764000000 + i * 3600;
  r.finished_at = r.started_at + total;
  r.result = result;
  r.reason = result == DrillResult::kSuccess ? "" : "row count of public.items: \"quoted\"\n";
  r.sandbox = "ephemeral";
  BackupInfo b;
  b.id = "db-" + std::to_string(i) + ".dump";
  b.kind = "logical";
  b.tool = "pg_dump";
  b.completed_at = r.started_at - 60;
  b.size_bytes = 1234;
  r.backup = b;
  r.stages = {
      {"discover", Outcome::kPass, "", 0.01},
      {"restore", Outcome::kPass, "restored 1 table", total * 0.7},
      {"checks", result == DrillResult::kSuccess ? Outcome::kPass : Outcome::kFail, r.reason,
       total * 0.3},
      {"total", result == DrillResult::kSuccess ? Outcome::kPass : Outcome::kFail, "", total}};
  CheckResult c;
  c.name = "row_count";
  c.outcome = result == DrillResult::kSuccess ? Outcome::kPass : Outcome::kFail;
  c.message = "1 table, ünïcode";
  r.checks = {c};
  return r;
}

// Runs python3's json module over `path` and returns its stdout (independent of our parser).
ProcessResult PyJson(const std::string& path, const std::string& expr) {
  ProcessSpec spec;
  spec.argv = {"python3", "-c",
               "import json,sys\nd=json.load(open(sys.argv[1]))\nprint(" + expr + ")", path};
  spec.timeout = std::chrono::seconds(30);
  return RunProcess(spec);
}

}  // namespace

TEST_CASE("drill log: lines round-trip, a torn last line is skipped and not glued to the next",
          "[unit][history]") {
  test::TestDir dir;
  DrillLog log(dir / "t1");
  log.Append(Report(1, DrillResult::kSuccess, 10));
  log.Append(Report(2, DrillResult::kFailure, 20));
  std::size_t bad = 99;
  auto entries = log.Read(500, &bad);
  CHECK(bad == 0);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].run_id == "run-1");
  CHECK(entries[1].result == "failure");
  CHECK(entries[1].reason == Report(2, DrillResult::kFailure, 20).reason);
  REQUIRE(entries[1].stages.size() == 4);
  CHECK(entries[1].stages[1].name == "restore");
  CHECK(entries[1].stages[1].message == "restored 1 table");
  CHECK(entries[1].stages[1].duration_seconds == Approx(14));
  CHECK(entries[1].rto_seconds() == Approx(20));
  REQUIRE(entries[1].checks.size() == 1);
  CHECK(entries[1].checks[0].message == "1 table, ünïcode");
  REQUIRE(entries[1].backup);
  CHECK(entries[1].backup->id == "db-2.dump");
  CHECK(entries[1].backup->size_bytes == 1234);

  // A crash mid-append leaves half a line.
  AppendRaw(log.path(), "{\"v\":1,\"run_id\":\"torn\",\"stag");
  entries = log.Read(500, &bad);
  CHECK(entries.size() == 2);
  CHECK(bad == 1);
  log.Append(Report(3, DrillResult::kSuccess, 12));
  entries = log.Read(500, &bad);
  REQUIRE(entries.size() == 3);
  CHECK(entries[2].run_id == "run-3");
  CHECK(bad == 1);
  CHECK(log.Read(1).at(0).run_id == "run-3");  // the newest N, oldest first
}

TEST_CASE("drill log: compaction keeps the last 500", "[unit][history]") {
  test::TestDir dir;
  DrillLog log(dir / "t1");
  const std::size_t n = DrillLog::kKeep + DrillLog::kSlack + 5;
  for (std::size_t i = 1; i <= n; ++i)
    log.Append(Report(static_cast<int>(i), DrillResult::kSuccess, 1));
  const std::size_t lines = CountLines(ReadFile(log.path()));
  CHECK(lines >= DrillLog::kKeep);
  CHECK(lines <= DrillLog::kKeep + DrillLog::kSlack);
  auto entries = log.Read();
  REQUIRE(entries.size() == DrillLog::kKeep);
  CHECK(entries.back().run_id == "run-" + std::to_string(n));
  CHECK(entries.front().run_id == "run-" + std::to_string(n - DrillLog::kKeep + 1));
}

TEST_CASE("drill log: pass rate, RTO min/median/max and trend", "[unit][history]") {
  std::vector<DrillLogEntry> e;
  // Successful drills at 10, 12, 11, 30, 32 s (getting slower), one failure in between.
  int i = 0;
  for (double t : {10.0, 12.0, 11.0})
    e.push_back(EntryFromReport(Report(++i, DrillResult::kSuccess, t)));
  e.push_back(EntryFromReport(Report(++i, DrillResult::kFailure, 99)));
  for (double t : {30.0, 32.0}) e.push_back(EntryFromReport(Report(++i, DrillResult::kSuccess, t)));
  DrillLogSummary s = SummarizeDrills(e);
  CHECK(s.drills == 6);
  CHECK(s.passed == 5);
  CHECK(s.pass_rate == Approx(5.0 / 6));
  CHECK(s.rto_samples == 5);
  CHECK(*s.rto_min == Approx(10));
  CHECK(*s.rto_median == Approx(12));
  CHECK(*s.rto_max == Approx(32));
  CHECK(*s.rto_older_median == Approx(11));  // {10, 12}
  CHECK(*s.rto_newer_median == Approx(31));  // {30, 32}
  CHECK(s.rto_trend == "slower");
  CHECK(SummarizeDrills({}).rto_trend.empty());
  CHECK_FALSE(SummarizeDrills({}).rto_median);

  DrillHistoryView v{"t1", 20, 0, e};
  const std::string text = RenderHistoryText(v);
  CHECK(text.find("pass rate 83% (5 of 6 passed)") != std::string::npos);
  CHECK(text.find("slower") != std::string::npos);
  CHECK(text.find("run-6") < text.find("run-1"));  // newest first
  CHECK(text.find("restore=pass") != std::string::npos);
}

TEST_CASE("history: two verify runs on a real source show with their stages, in text and JSON",
          "[integration][history]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql(
      "create table items(id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
                     (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                     "\"\nlog_format = \"json\"\n\n[[target]]\nname = \"t1\"\nsource = \"" +
                     cluster->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                     "stats_settle = \"1s\"\n");

  auto before = test::RunAgent({"history", "-c", cfg});
  CHECK(before.exit_code == 0);
  CHECK(before.out.find("no drills recorded yet") != std::string::npos);

  for (int i = 0; i < 2; ++i) {
    auto v = test::RunAgent({"verify", "-c", cfg});
    INFO(v.out << v.err);
    REQUIRE(v.exit_code == 0);
  }
  auto h = test::RunAgent({"history", "-c", cfg});
  INFO(h.out << h.err);
  CHECK(h.exit_code == 0);
  CHECK(h.out.find("2 drill(s) shown") != std::string::npos);
  CHECK(h.out.find("pass rate 100% (2 of 2 passed)") != std::string::npos);
  CHECK(h.out.find("RTO (total stage duration, passed drills): min") != std::string::npos);
  CHECK(h.out.find("RTO trend:") != std::string::npos);
  // Both drills, each with its stages.
  std::size_t stage_lines = 0;
  for (std::size_t p = h.out.find("stages: discover=pass"); p != std::string::npos;
       p = h.out.find("stages: discover=pass", p + 1))
    ++stage_lines;
  CHECK(stage_lines == 2);
  CHECK(h.out.find("restore=pass") != std::string::npos);
  CHECK(h.out.find("checks=pass") != std::string::npos);

  auto j = test::RunAgent({"history", "-c", cfg, "--target", "t1", "--json", "--last", "5"});
  REQUIRE(j.exit_code == 0);
  WriteFile(dir / "history.json", j.out);
  auto py = PyJson(dir / "history.json",
                   "d['target'], d['window'], d['drills_shown'], d['pass_rate'], "
                   "len(d['drills']), [s['name'] for s in d['drills'][0]['stages']], "
                   "d['rto_seconds']['samples'], 'direction' in d['rto_trend']");
  INFO(j.out << py.err);
  REQUIRE(py.ok());
  CHECK(py.out == "t1 5 2 1.0 2 ['discover', 'restore', 'checks', 'cleanup', 'total'] 2 True\n");

  auto last1 = test::RunAgent({"history", "-c", cfg, "--json", "--last", "1"});
  WriteFile(dir / "last1.json", last1.out);
  auto py1 = PyJson(dir / "last1.json", "len(d['drills'])");
  REQUIRE(py1.ok());
  CHECK(py1.out == "1\n");
  CHECK(test::RunAgent({"history", "-c", cfg, "--target", "nope"}).exit_code == 2);
  CHECK(test::RunAgent({"history", "-c", cfg, "--last", "0"}).exit_code == 2);

  // The same through the daemon's API.
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  auto api = test::HttpGet(port, "/api/v1/targets/t1/history?last=10");
  REQUIRE(api.status == 200);
  CHECK(api.content_type.find("application/json") != std::string::npos);
  WriteFile(dir / "api.json", api.body);
  auto pya = PyJson(dir / "api.json", "d['drills_shown'], d['passed'], d['drills'][0]['result']");
  REQUIRE(pya.ok());
  CHECK(pya.out == "2 2 success\n");
  CHECK(test::HttpGet(port, "/api/v1/targets/nope/history").status == 404);
  CHECK(test::HttpGet(port, "/api/v1/targets/t1/history?last=abc").status == 400);
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
}
