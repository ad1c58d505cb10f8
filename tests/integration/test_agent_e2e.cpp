// End to end through the real binary: CLI exit codes, /metrics, reload, shutdown, verify, demo.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "agent/orphans.h"
#include "agent/pg/pg_cluster.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::WriteFile;

std::string AgentConfig(const test::TestDir& dir, int port, const std::string& target_toml) {
  return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
         (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") + "\"\nlog_format = \"json\"\n\n" +
         target_toml;
}

std::string Target(const std::string& conninfo, const std::string& backups,
                   const std::string& extra = "") {
  return "[[target]]\nname = \"t1\"\nsource = \"" + conninfo +
         "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
         "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\nstats_settle = "
         "\"1s\"\n" +
         extra;
}

// A source with a little data and one custom-format dump of it.
struct Source {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::string backups;
  Source() {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(
        "create table items(id int primary key, name text, price numeric);"
        "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 20000) g;",
        "app");
    backups = dir / "backups";
    MakeDirs(backups);
    auto r = test::RunPgTool("pg_dump",
                             {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"});
    REQUIRE(r.ok());
  }
};

}  // namespace

TEST_CASE("check-config reports every mistake with its line and exits 2", "[unit][cli]") {
  test::TestDir dir;
  std::string path = dir / "bad.toml";
  WriteFile(path,
            "[agent]\n"
            "listen = \"127.0.0.1:9847\"\n"
            "colour = \"blue\"\n"  // line 3: unknown key
            "\n"
            "[[target]]\n"
            "name = \"t1\"\n"
            "source = \"host=/tmp dbname=x\"\n"
            "monitor_interval = 42.5\n"  // line 8: wrong type
            "[target.drill]\n"
            "jobs = 500\n");  // line 10: out of range
  auto r = test::RunAgent({"check-config", "-c", path});
  CHECK(r.exit_code == 2);
  INFO(r.err);
  CHECK(r.err.find(":3:") != std::string::npos);
  CHECK(r.err.find("colour") != std::string::npos);
  CHECK(r.err.find(":8:") != std::string::npos);
  CHECK(r.err.find("monitor_interval") != std::string::npos);
  CHECK(r.err.find(":10:") != std::string::npos);
  CHECK(r.err.find("jobs") != std::string::npos);
}

TEST_CASE("--help on every verb documents the exit codes", "[unit][cli]") {
  for (const char* verb : {"run", "verify", "check-config", "demo"}) {
    auto r = test::RunAgent({verb, "--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("exit codes") != std::string::npos);
  }
  auto v = test::RunAgent({"--version"});
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("restorewatch") != std::string::npos);
  CHECK(test::RunAgent({"frobnicate"}).exit_code == 2);
  CHECK(test::RunAgent({"verify"}).exit_code == 2);
}

TEST_CASE("the daemon serves /metrics, survives a broken reload and stops on SIGTERM",
          "[integration][agent]") {
  Source src;
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  std::string good = AgentConfig(src.dir, port, Target(src.cluster->ConnInfo("app"), src.backups));
  WriteFile(cfg, good);
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/readyz").status == 200; }, 20));

  auto m = test::HttpGet(port, "/metrics");
  CHECK(m.status == 200);
  CHECK(m.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(test::MetricValue(m.body, "restorewatch_build_info").value_or(0) == 1);
  CHECK(test::MetricValue(m.body, "restorewatch_config_last_reload_successful") == 1);
  CHECK(m.body.find("restorewatch_collector_success") != std::string::npos);
  if (auto promtool = FindProgram("promtool")) {
    WriteFile(src.dir / "metrics.txt", m.body);
    ProcessSpec spec;
    spec.argv = {*promtool, "check", "metrics"};
    spec.stdin_path = src.dir / "metrics.txt";
    auto r = RunProcess(spec);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
  } else {
    WARN("promtool not installed: metrics lint skipped");
  }

  auto s = test::HttpGet(port, "/api/v1/status");
  CHECK(s.status == 200);
  CHECK(s.content_type.find("application/json") != std::string::npos);
  CHECK(s.body.find("\"t1\"") != std::string::npos);

  // A broken config is rejected and the old one keeps running.
  WriteFile(cfg, good + "\nnonsense = = 1\n");
  agent.Signal(SIGHUP);
  CHECK(Eventually(
      [&] {
        return test::MetricValue(test::HttpGet(port, "/metrics").body,
                                 "restorewatch_config_last_reload_successful") == 0;
      },
      10));
  CHECK(test::HttpGet(port, "/healthz").status == 200);
  CHECK(test::HttpGet(port, "/metrics").body.find("target=\"t1\"") != std::string::npos);

  // A good config is accepted again.
  WriteFile(cfg, good);
  agent.Signal(SIGHUP);
  CHECK(Eventually(
      [&] {
        return test::MetricValue(test::HttpGet(port, "/metrics").body,
                                 "restorewatch_config_last_reload_successful") == 1;
      },
      10));

  // The source goes away: source_up drops to 0 and scrapes keep answering at once.
  src.cluster->Stop();
  CHECK(Eventually(
      [&] {
        return test::MetricValue(test::HttpGet(port, "/metrics").body, "restorewatch_source_up") ==
               0;
      },
      15));
  for (int i = 0; i < 5; ++i) {
    auto scrape = test::HttpGet(port, "/metrics");
    CHECK(scrape.status == 200);
    CHECK(scrape.seconds < 0.5);
  }

  pid_t pid = agent.pid();
  auto t0 = std::chrono::steady_clock::now();
  agent.Signal(SIGTERM);
  int code = agent.WaitExit(std::chrono::seconds(5));
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(code == 0);
  CHECK(took < 5.0);
  CHECK(test::ChildrenOf(pid).empty());
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE("verify exit codes: 0 passed, 1 unusable backup, 2 could not run",
          "[integration][agent]") {
  Source src;
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, AgentConfig(src.dir, 0, Target(src.cluster->ConnInfo("app"), src.backups)));

  auto ok = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("\"success\"") != std::string::npos);
  // One object whatever the number of targets (docs/verify-json.md).
  CHECK(ok.out.rfind("{\"schema_version\":1,\"drills\":[{", 0) == 0);
  CHECK(test::ListDir(src.dir / "work").empty());

  // A truncated newer dump becomes the latest and fails the drill.
  {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(1100));  // archive times have 1 s resolution
    std::string tmp = src.dir / "db-2.full";
    REQUIRE(
        test::RunPgTool("pg_dump", {"-Fc", "-d", src.cluster->ConnInfo("app"), "-f", tmp}).ok());
    std::ifstream in(tmp, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(src.backups + "/db-2.dump", std::ios::binary);
    out << bytes.substr(0, bytes.size() * 2 / 3);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto bad = test::RunAgent({"verify", "-c", cfg});
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("db-2.dump") != std::string::npos);
  CHECK(test::ListDir(src.dir / "work").empty());

  // An unknown target cannot run.
  CHECK(test::RunAgent({"verify", "-c", cfg, "--target", "nope"}).exit_code == 2);
}

TEST_CASE("SIGTERM during a drill cancels it and removes the sandbox", "[integration][agent]") {
  Source src;
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, AgentConfig(src.dir, 0, Target(src.cluster->ConnInfo("app"), src.backups)));
  test::AgentProcess verify({"verify", "-c", cfg}, src.dir / "verify.log");
  // The sandbox dir appears under work_dir when the drill starts its cluster.
  bool started = Eventually([&] { return !test::ListDir(src.dir / "work").empty(); }, 30);
  REQUIRE(started);
  pid_t pid = verify.pid();
  verify.Signal(SIGTERM);
  int code = verify.WaitExit(std::chrono::seconds(5));
  INFO(verify.Log());
  CHECK(code == 2);
  CHECK(test::ChildrenOf(pid).empty());
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE("demo runs a full drill on its own sample and removes everything",
          "[integration][demo]") {
  auto before = test::ListDir("/tmp");
  auto r = test::RunAgent({"demo", "--once", "--listen", "127.0.0.1:0"}, std::chrono::minutes(3));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("SUCCESS") != std::string::npos);
  CHECK(r.out.find("checksum") != std::string::npos);
  for (const auto& name : test::ListDir("/tmp")) {
    if (name.rfind("restorewatch-demo-", 0) == 0)
      CHECK(std::find(before.begin(), before.end(), name) != before.end());
  }
}

TEST_CASE("a sandbox left by a dead process is removed at start-up, a live one is kept",
          "[unit][agent]") {
  test::TestDir dir;
  std::string dead = dir / "sandbox-dead";
  std::string live = dir / "sandbox-live";
  std::string foreign = dir / "not-ours";
  MakeDirs(dead + "/data");
  MakeDirs(live);
  MakeDirs(foreign);
  WriteFile(dead + "/.restorewatch", "owner=restorewatch pid=999999999 created=x\n");
  WriteFile(live + "/.restorewatch",
            "owner=restorewatch pid=" + std::to_string(getpid()) + " created=x\n");
  auto removed = RemoveOrphanedWorkDirs(dir.path());
  CHECK(removed == std::vector<std::string>{dead});
  auto left = test::ListDir(dir.path());
  CHECK(std::find(left.begin(), left.end(), "sandbox-live") != left.end());
  CHECK(std::find(left.begin(), left.end(), "not-ours") != left.end());
  CHECK(std::find(left.begin(), left.end(), "sandbox-dead") == left.end());
}

TEST_CASE("the daemon runs drills on their cron schedule and reports them",
          "[integration][agent]") {
  Source src;
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, AgentConfig(src.dir, port,
                             Target(src.cluster->ConnInfo("app"), src.backups) +
                                 "\n[target.drill]\nschedule = \"* * * * *\"\nrto = \"10m\"\n"));
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  // The next minute boundary plus the drill itself.
  bool ran = Eventually(
      [&] {
        auto body = test::HttpGet(port, "/metrics").body;
        return test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""})
                   .value_or(0) >= 1;
      },
      90);
  REQUIRE(ran);
  auto body = test::HttpGet(port, "/metrics").body;
  CHECK(test::MetricValue(body, "restorewatch_drill_success") == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_rto_objective_seconds") == 600);
  CHECK(test::MetricValue(body, "restorewatch_drill_stage_duration_seconds", {"stage=\"total\""})
            .value_or(0) > 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_last_success_timestamp_seconds").value_or(0) >
        0);
  CHECK(test::MetricValue(body, "restorewatch_backups_available", {"kind=\"logical\""}) == 1);
  auto status = test::HttpGet(port, "/api/v1/status").body;
  CHECK(status.find("last_drill") != std::string::npos);
  CHECK(status.find("next_drill") != std::string::npos);
  CHECK(status.find("\"restore\"") != std::string::npos);
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(5)) == 0);
  CHECK(test::ListDir(src.dir / "work").empty());
  // The drill's result survives a restart: a fresh agent exports it from the state dir.
  test::AgentProcess again({"run", "-c", cfg}, src.dir / "agent2.log");
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  CHECK(test::MetricValue(test::HttpGet(port, "/metrics").body,
                          "restorewatch_drill_last_success_timestamp_seconds")
            .value_or(0) > 0);
}
