// Fault suite, signals and time: SIGHUP in the middle of a drill (valid and broken config), many
// start/SIGTERM cycles with SCRAM-authenticated collectors, a drill that runs out of time, and the
// schedule's catch-up after downtime. Real PostgreSQL, the real binary.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agent/pg/pg_cluster.h"
#include "agent/units.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::ReadFile;
using test::WriteFile;

using Clock = std::chrono::steady_clock;

// `key = "value"` or `key = 'value'` (toml++ writes literal strings where it can).
bool TomlHas(const std::string& text, const std::string& key, const std::string& value) {
  return text.find(key + " = \"" + value + "\"") != std::string::npos ||
         text.find(key + " = '" + value + "'") != std::string::npos;
}

// Prints an agent's log when a REQUIRE fails under it (or always with RW_TEST_AGENT_LOGS=1), since
// the log is only known after the fact.
struct LogOnFailure {
  const test::AgentProcess& agent;
  ~LogOnFailure() {
    if (std::uncaught_exceptions() > 0 || std::getenv("RW_TEST_AGENT_LOGS"))
      std::fprintf(stderr, "---- agent log ----\n%s\n-------------------\n", agent.Log().c_str());
  }
};

double Metric(int port, const std::string& name, const std::vector<std::string>& needles = {},
              double fallback = -1) {
  return test::MetricValue(test::HttpGet(port, "/metrics").body, name, needles).value_or(fallback);
}

// A source whose dump restores slowly: every row of slow_items passes a CHECK constraint that
// sleeps 10 ms on any server but the source (found by port), so a restore of `rows` rows takes
// about rows/100 seconds while the source itself is quick to set up. One custom-format dump.
struct SlowSource {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::string backups;
  explicit SlowSource(int rows) {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(
        "create function public.slow_ok(i int) returns boolean language plpgsql as $$ begin if "
        "current_setting('port') <> '" +
            std::to_string(cluster->port()) +
            "' then perform pg_sleep(0.01); end if; return true; end $$;"
            "create table items(id int primary key, name text);"
            "insert into items select g, 'item ' || g from generate_series(1, 2000) g;"
            "create table slow_items(id int primary key check (public.slow_ok(id)));"
            "insert into slow_items select generate_series(1, " +
            std::to_string(rows) + ");",
        "app");
    backups = dir / "backups";
    MakeDirs(backups);
    auto r = test::RunPgTool("pg_dump",
                             {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"});
    REQUIRE(r.ok());
  }
};

std::string AgentToml(const test::TestDir& dir, int port, const std::string& targets,
                      const std::string& agent_extra = "") {
  return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
         (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
         "\"\nlog_format = \"json\"\nshutdown_timeout = \"10s\"\n" + agent_extra + "\n" + targets;
}

std::string TargetToml(const std::string& name, const std::string& conninfo,
                       const std::string& backups, const std::string& drill,
                       const std::string& extra = "") {
  return "[[target]]\nname = \"" + name + "\"\nsource = \"" + conninfo +
         "\"\nmonitor_interval = \"1s\"\n" + extra + "\n[target.backup]\npath = \"" + backups +
         "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.drill]\n" + drill +
         "\n[target.checks]\nstats_settle = \"1s\"\n";
}

// Marks the slot an hour ago as the last one handled, so a per-minute schedule has a missed slot
// and the agent runs a catch-up drill right after start. (An agent without catch-up runs its
// drill at the next minute instead; the tests wait for either.)
void PretendRanAnHourAgo(const test::TestDir& dir, const std::string& target) {
  MakeDirs(dir / ("state/" + target));
  std::time_t slot = (std::time(nullptr) / 60) * 60 - 3600;
  WriteFile(dir / ("state/" + target + "/schedule.toml"),
            "last_slot = " + std::to_string(static_cast<long long>(slot)) + "\n");
}

// Scrapes /metrics while the drill runs and checks drill_running: a scrape taken while the
// sandbox still existed (work_dir not empty afterwards) must say 1. Returns how many scrapes were
// taken during the drill.
int WatchDrillRunning(int port, const std::string& work_dir, double seconds) {
  int during = 0;
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  while (Clock::now() < deadline) {
    auto scrape = test::HttpGet(port, "/metrics");
    REQUIRE(scrape.status == 200);
    CHECK(scrape.seconds < 1.0);
    bool still_running = !test::ListDir(work_dir).empty();
    if (!still_running) break;
    ++during;
    auto running = test::MetricValue(scrape.body, "restorewatch_drill_running");
    INFO("scrape " << during << " during the drill");
    CHECK(running == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return during;
}

void SighupMidDrill(bool broken) {
  SlowSource src(500);  // ~5 s of restore
  int port = PickFreePort();
  const std::string cfg = src.dir / "agent.toml";
  const std::string work = src.dir / "work";
  const std::string good = AgentToml(
      src.dir, port,
      TargetToml("t1", src.cluster->ConnInfo("app"), src.backups, "schedule = \"* * * * *\"\n"));
  WriteFile(cfg, good);
  PretendRanAnHourAgo(src.dir, "t1");
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  LogOnFailure agent_log{agent};
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  // The drill is in its restore: sandbox dir present, drill_running 1.
  REQUIRE(Eventually(
      [&] {
        return !test::ListDir(work).empty() && Metric(port, "restorewatch_drill_running") == 1;
      },
      75));
  const double loaded_before =
      Metric(port, "restorewatch_config_last_reload_success_timestamp_seconds");

  if (broken) {
    WriteFile(cfg, good + "\nnonsense = = 1\n");
    agent.Signal(SIGHUP);
    REQUIRE(Eventually(
        [&] { return Metric(port, "restorewatch_config_last_reload_successful") == 0; }, 10));
    CHECK(Metric(port, "restorewatch_config_last_reload_success_timestamp_seconds") ==
          loaded_before);
  } else {
    // A valid change: the collectors restart with it.
    std::string changed = good;
    changed.replace(changed.find("monitor_interval = \"1s\""), 23, "monitor_interval = \"2s\"");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // timestamps must differ
    WriteFile(cfg, changed);
    agent.Signal(SIGHUP);
    REQUIRE(Eventually(
        [&] {
          return Metric(port, "restorewatch_config_last_reload_success_timestamp_seconds") >
                 loaded_before;
        },
        10));
    CHECK(Metric(port, "restorewatch_config_last_reload_successful") == 1);
  }
  // The reload is done and the drill goes on: drill_running stays 1 until it ends.
  int during = WatchDrillRunning(port, work, 60);
  CHECK(during >= 3);
  // It finishes, passes and is recorded; drill_running goes back to 0.
  REQUIRE(Eventually(
      [&] {
        auto body = test::HttpGet(port, "/metrics").body;
        return test::MetricValue(body, "restorewatch_drill_running") == 0 &&
               test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""})
                       .value_or(0) >= 1;
      },
      30));
  auto body = test::HttpGet(port, "/metrics").body;
  CHECK(test::MetricValue(body, "restorewatch_drill_success") == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"error\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_last_success_timestamp_seconds").value_or(0) >
        0);
  CHECK(TomlHas(ReadFile(src.dir / "state/t1/last_drill.toml"), "result", "success"));
  auto status = test::HttpGet(port, "/api/v1/status");
  CHECK(status.status == 200);
  CHECK(status.body.find("\"last_drill\"") != std::string::npos);
  // Collectors kept working under the (new or old) config.
  CHECK(test::MetricValue(body, "restorewatch_source_up") == 1);
  CHECK(test::HttpGet(port, "/readyz").status == 200);

  pid_t pid = agent.pid();
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
  CHECK(test::ChildrenOf(pid).empty());
  CHECK(test::ListDir(work).empty());
}

}  // namespace

TEST_CASE("SIGHUP with a valid config mid-drill: the drill finishes and is recorded",
          "[integration][faults][reload]") {
  SighupMidDrill(/*broken=*/false);
}

TEST_CASE("SIGHUP with a broken config mid-drill: rejected, the drill is unaffected",
          "[integration][faults][reload]") {
  SighupMidDrill(/*broken=*/true);
}

TEST_CASE("a drill past drill.timeout ends as error naming the timeout and leaves nothing",
          "[integration][faults][timeout]") {
  SlowSource src(1500);  // ~15 s of restore, against a 3 s drill timeout
  int port = PickFreePort();
  const std::string cfg = src.dir / "agent.toml";
  const std::string work = src.dir / "work";
  // Hourly at the minute before this one: the missed slot runs at start, and no other slot comes
  // while the test watches (with "* * * * *" a drill ending at a minute boundary was followed at
  // once by the next one, which then held the work dir and children the test expects gone).
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  const std::string schedule = std::to_string((tm.tm_min + 59) % 60) + " * * * *";
  WriteFile(cfg, AgentToml(src.dir, port,
                           TargetToml("t1", src.cluster->ConnInfo("app"), src.backups,
                                      "schedule = \"" + schedule + "\"\ntimeout = \"3s\"\n")));
  PretendRanAnHourAgo(src.dir, "t1");
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  LogOnFailure agent_log{agent};
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  REQUIRE(Eventually([&] { return Metric(port, "restorewatch_drill_running") == 1; }, 75));
  auto t0 = Clock::now();
  // /metrics answers at once all along.
  bool ended = false;
  while (Clock::now() - t0 < std::chrono::seconds(30)) {
    auto scrape = test::HttpGet(port, "/metrics");
    REQUIRE(scrape.status == 200);
    CHECK(scrape.seconds < 1.0);
    if (test::MetricValue(scrape.body, "restorewatch_drill_runs_total", {"result=\"error\""})
            .value_or(0) >= 1) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(ended);
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  CHECK(took < 10.0);  // 3 s and a cleanup, not the 15 s restore
  auto body = test::HttpGet(port, "/metrics").body;
  CHECK(test::MetricValue(body, "restorewatch_drill_success") == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_running") == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"failure\""}) == 0);
  std::string last = ReadFile(src.dir / "state/t1/last_drill.toml");
  INFO(last);
  CHECK(TomlHas(last, "result", "error"));
  CHECK(last.find("drill timed out after 3s (drill.timeout) during restore") != std::string::npos);
  // Nothing left: no sandbox dir, no postmaster or pg_restore under the agent.
  CHECK(test::ListDir(work).empty());
  CHECK(test::ChildrenOf(agent.pid()).empty());
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
}

TEST_CASE("a stage past its own timeout ends the drill as error naming the stage and limit",
          "[integration][faults][timeout]") {
  SlowSource src(1500);
  const std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, AgentToml(src.dir, 0,
                           TargetToml("t1", src.cluster->ConnInfo("app"), src.backups,
                                      "stage_timeouts = { discover = \"1m\", restore = \"3s\", "
                                      "checks = \"1m\" }\n")));
  auto t0 = Clock::now();
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"}, std::chrono::minutes(2));
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  CHECK(took < 12.0);
  CHECK(r.out.find("\"error\"") != std::string::npos);
  CHECK(r.out.find("\"success\"") == std::string::npos);
  CHECK(r.out.find("restore stage timed out after 3s (drill.stage_timeouts.restore)") !=
        std::string::npos);
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE("100 start/SIGTERM cycles with SCRAM-authenticated collectors all exit 0",
          "[integration][faults][shutdown]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir, test::ClusterSpec{/*tcp=*/true, false, {}});
  const std::string password = "s3cret pass";
  cluster->Psql("create database app");
  cluster->Psql(
      "set password_encryption = 'scram-sha-256';"
      "create role rwmon login password '" +
      password +
      "';"
      "grant pg_monitor to rwmon;"
      "grant pg_read_all_data to rwmon;");
  // TCP connections must authenticate with SCRAM; the harness keeps trust on the unix socket.
  WriteFile(cluster->data_dir() + "/pg_hba.conf",
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
  cluster->AppendConf({{"password_encryption", "'scram-sha-256'"}});
  cluster->Psql("select pg_reload_conf()");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Prove that SCRAM is what the collectors face: the wrong password is refused over TCP.
  {
    ProcessSpec probe;
    probe.argv = {test::Tools().Path("psql"),
                  "-X",
                  "-At",
                  "-c",
                  "select 1",
                  "-d",
                  "host=127.0.0.1 port=" + std::to_string(cluster->port()) +
                      " dbname=app user=rwmon password=wrong"};
    auto res = RunProcess(probe);
    CHECK(res.exit_code != 0);
    CHECK(res.err.find("password authentication failed") != std::string::npos);
  }
  WriteFile(dir / "rw.pass", password + "\n");
  chmod((dir / "rw.pass").c_str(), 0600);
  MakeDirs(dir / "backups");
  int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, AgentToml(dir, port,
                           "[[target]]\nname = \"t1\"\nsource = \"host=127.0.0.1 port=" +
                               std::to_string(cluster->port()) +
                               " dbname=app user=rwmon\"\npassword_file = \"" + (dir / "rw.pass") +
                               "\"\nmonitor_interval = \"100ms\"\n\n[target.backup]\npath = \"" +
                               (dir / "backups") + "\"\npattern = \"db-*.dump\"\n"));
  // One agent that becomes ready proves the config and the password work.
  {
    test::AgentProcess agent({"run", "-c", cfg}, dir / "first.log");
    INFO(agent.Log());
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/readyz").status == 200; }, 20));
    CHECK(Metric(port, "restorewatch_source_up") == 1);
    CHECK(Metric(port, "restorewatch_collector_success", {"collector=\"table_activity\""}) == 1);
    agent.Signal(SIGTERM);
    REQUIRE(agent.WaitExit(std::chrono::seconds(15)) == 0);
  }

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(0, 400);
  std::vector<int> codes;
  std::string first_bad_log;
  auto t0 = Clock::now();
  for (int i = 0; i < 100; ++i) {
    std::remove((dir / "cycle.log").c_str());
    test::AgentProcess agent({"run", "-c", cfg}, dir / "cycle.log");
    // Never before the agent listens: until exec the child is a copy of this test binary (whose
    // signal handlers would catch the SIGTERM), and the agent blocks the signals it handles
    // before anything else. From then on its collectors (100 ms interval) connect and query.
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz", 1).status == 200; }, 10));
    if (i % 2 == 0) {
      // Ready: every collector has run once; with 100 ms intervals the next runs are underway.
      Eventually([&] { return test::HttpGet(port, "/readyz", 1).status == 200; }, 5);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng) / 2));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    }
    agent.Signal(SIGTERM);
    int code = agent.WaitExit(std::chrono::seconds(15));
    codes.push_back(code);
    if (code != 0 && first_bad_log.empty())
      first_bad_log =
          "cycle " + std::to_string(i) + " exit " + std::to_string(code) + "\n" + agent.Log();
  }
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  int bad = static_cast<int>(std::count_if(codes.begin(), codes.end(), [](int c) { return c; }));
  INFO(first_bad_log);
  INFO("100 cycles took " << took << " s");
  CHECK(codes.size() == 100);
  CHECK(bad == 0);
  CHECK(took < 110.0);
  CHECK(test::ListDir(dir / "work").empty());
  // The source saw no session left behind by any of them.
  CHECK(std::stoi(cluster->Psql("select count(*) from pg_stat_activity where usename = 'rwmon'",
                                "app")) == 0);
}

TEST_CASE("a slot missed while the agent was down runs once at start; a new target waits",
          "[integration][scheduler]") {
  SlowSource src(0);
  int port = PickFreePort();
  const std::string cfg = src.dir / "agent.toml";
  // A yearly schedule: its last slot is months ago, the next one months ahead, so any drill in
  // this test is a catch-up.
  WriteFile(cfg, AgentToml(src.dir, port,
                           TargetToml("missed", src.cluster->ConnInfo("app"), src.backups,
                                      "schedule = \"0 0 1 1 *\"\n") +
                               TargetToml("fresh", src.cluster->ConnInfo("app"), src.backups,
                                          "schedule = \"0 0 1 1 *\"\n"),
                           "max_concurrent_drills = 2\n"));
  // "missed" last handled its slot two years ago; "fresh" never ran under a schedule.
  MakeDirs(src.dir / "state/missed");
  std::time_t two_years_ago = std::time(nullptr) - 2 * 366 * 86400;
  WriteFile(src.dir / "state/missed/schedule.toml",
            "last_slot = " + std::to_string(static_cast<long long>(two_years_ago)) + "\n");
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  LogOnFailure agent_log{agent};
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  REQUIRE(Eventually(
      [&] {
        return Metric(port, "restorewatch_drill_runs_total",
                      {"target=\"missed\"", "result=\"success\""}, 0) >= 1;
      },
      60));
  // Only one drill for the two missed slots (2025 and 2026), logged as a catch-up; nothing for the
  // new target.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto body = test::HttpGet(port, "/metrics").body;
  double runs = 0;
  for (const char* res : {"success", "failure", "error"})
    runs += test::MetricValue(body, "restorewatch_drill_runs_total",
                              {"target=\"missed\"", std::string("result=\"") + res + "\""})
                .value_or(0);
  CHECK(runs == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_running", {"target=\"fresh\""}) == 0);
  // The skip counters exist from the start (at 0 here: nothing was skipped).
  CHECK(test::MetricValue(body, "restorewatch_drill_skipped_total",
                          {"target=\"missed\"", "reason=\"still_running\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_skipped_total",
                          {"target=\"missed\"", "reason=\"concurrency_limit\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total",
                          {"target=\"fresh\"", "result=\"success\""}) == 0);
  std::string log = agent.Log();
  CHECK(log.find("catch-up drill for a slot missed while the agent was down") != std::string::npos);
  // Both targets now have a schedule state, and the catch-up is remembered: a restart does not
  // run it again.
  std::string missed_state = ReadFile(src.dir / "state/missed/schedule.toml");
  CHECK(missed_state.find("-01-01T00:00:00Z") != std::string::npos);
  CHECK(!ReadFile(src.dir / "state/fresh/schedule.toml").empty());
  agent.Signal(SIGTERM);
  REQUIRE(agent.WaitExit(std::chrono::seconds(15)) == 0);
  test::AgentProcess again({"run", "-c", cfg}, src.dir / "agent2.log");
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  CHECK(Metric(port, "restorewatch_drill_running", {"target=\"missed\""}) == 0);
  CHECK(Metric(port, "restorewatch_drill_runs_total",
               {"target=\"missed\"", "result=\"success\""}) == 1);
  CHECK(again.Log().find("catch-up") == std::string::npos);
  again.Signal(SIGTERM);
  CHECK(again.WaitExit(std::chrono::seconds(15)) == 0);
}

TEST_CASE("max_concurrent_drills: drills of different targets overlap only up to the limit",
          "[integration][scheduler]") {
  SlowSource src(300);  // ~3 s of restore per drill
  for (int limit : {1, 2}) {
    INFO("max_concurrent_drills = " << limit);
    test::TestDir run;
    int port = PickFreePort();
    const std::string cfg = run / "agent.toml";
    WriteFile(cfg, AgentToml(run, port,
                             TargetToml("a", src.cluster->ConnInfo("app"), src.backups,
                                        "schedule = \"0 0 1 1 *\"\n") +
                                 TargetToml("b", src.cluster->ConnInfo("app"), src.backups,
                                            "schedule = \"0 0 1 1 *\"\n"),
                             "max_concurrent_drills = " + std::to_string(limit) + "\n"));
    // Both targets missed their yearly slot: each runs one catch-up drill at start.
    for (const char* t : {"a", "b"}) {
      MakeDirs(run / (std::string("state/") + t));
      WriteFile(run / (std::string("state/") + t + "/schedule.toml"),
                "last_slot = " +
                    std::to_string(static_cast<long long>(std::time(nullptr) - 400 * 86400)) +
                    "\n");
    }
    test::AgentProcess agent({"run", "-c", cfg}, run / "agent.log");
    LogOnFailure agent_log{agent};
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
    int max_running = 0;
    bool both_done = false;
    auto deadline = Clock::now() + std::chrono::seconds(180);  // two drills under ASan on 2 cores
    while (Clock::now() < deadline && !both_done) {
      auto body = test::HttpGet(port, "/metrics").body;
      int running = 0;
      for (const char* t : {"a", "b"})
        running += test::MetricValue(body, "restorewatch_drill_running",
                                     {std::string("target=\"") + t + "\""})
                       .value_or(0) == 1;
      max_running = std::max(max_running, running);
      both_done = true;
      for (const char* t : {"a", "b"})
        both_done = both_done &&
                    test::MetricValue(body, "restorewatch_drill_runs_total",
                                      {std::string("target=\"") + t + "\"", "result=\"success\""})
                            .value_or(0) == 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(both_done);
    CHECK(max_running == limit);
    agent.Signal(SIGTERM);
    CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
    CHECK(test::ListDir(run / "work").empty());
  }
}
