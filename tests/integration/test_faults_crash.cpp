// The fault suite, crash part: the agent killed with -9 mid-drill and restarted, the sandbox
// postmaster or pg_restore killed mid-restore, every state file damaged, a dump the agent may not
// read, and the sweeps that clean up after a crash (work_dir sandboxes with a live orphan server,
// scratch databases of dead owners). Real PostgreSQL 15, the real binary, bounded waits.
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/orphans.h"
#include "agent/pg/pg_cluster.h"
#include "agent/sandboxes/scratch.h"
#include "agent/state.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

using test::Eventually;
using test::ReadFile;
using test::WriteFile;

std::vector<std::string> WithPrefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& n : test::ListDir(dir))
    if (n.rfind(prefix, 0) == 0) out.push_back(n);
  return out;
}

std::string ConfigText(const test::TestDir& dir, int port, const std::string& target_toml) {
  return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
         (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") + "\"\nlog_format = \"json\"\n\n" +
         target_toml;
}

std::string Target(const std::string& conninfo, const std::string& backups,
                   const std::string& drill = "") {
  return "[[target]]\nname = \"t1\"\nsource = \"" + conninfo +
         "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
         "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.drill]\n" + drill +
         "\n[target.checks]\nstats_settle = \"1s\"\n";
}

// A source and one custom-format dump of it. With slow_rows > 0 the dump holds an expression
// index over a function that sleeps 4 ms per row, so its restore takes slow_rows * 4 ms whatever
// the machine's load: a window in which to kill things "mid-restore". (The index is built on the
// source while the function is still fast, and the function made slow only before the dump.)
struct Source {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::string backups;
  explicit Source(int slow_rows = 0) {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(
        "create table items(id int primary key, name text, price numeric);"
        "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 20000) g;",
        "app");
    if (slow_rows > 0) {
      cluster->Psql(
          "create function public.slow(i int) returns int language plpgsql immutable as "
          "$$ begin return i; end $$;"
          "create table slow_t(id int);"
          "insert into slow_t select generate_series(1, " +
              std::to_string(slow_rows) +
              ");"
              "create index slow_t_idx on slow_t (public.slow(id));"
              "create or replace function public.slow(i int) returns int language plpgsql "
              "immutable as $$ begin perform pg_sleep(0.004); return i; end $$;",
          "app");
    }
    backups = dir / "backups";
    MakeDirs(backups);
    auto r = test::RunPgTool("pg_dump",
                             {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"});
    REQUIRE(r.ok());
  }
};

std::string Comm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

std::optional<pid_t> ChildNamed(pid_t parent, const std::string& comm) {
  for (pid_t c : test::ChildrenOf(parent))
    if (Comm(c) == comm) return c;
  return std::nullopt;
}

bool Alive(pid_t pid, unsigned long long start) {
  auto s = ProcessStartTicks(pid);
  return s && *s == start;
}

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// Live processes whose working directory is `dir` or below (a postmaster and its backends chdir
// into their data dir).
std::vector<pid_t> ProcessesIn(const std::string& dir) {
  std::vector<pid_t> out;
  const std::string root = RealPath(dir);
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    char buf[PATH_MAX];
    ssize_t len = readlink(("/proc/" + n + "/cwd").c_str(), buf, sizeof buf - 1);
    if (len <= 0) continue;
    std::string cwd(buf, static_cast<std::size_t>(len));
    if ((cwd == root || cwd.rfind(root + "/", 0) == 0) && ProcessStartTicks(std::stoi(n)))
      out.push_back(std::stoi(n));
  }
  closedir(d);
  return out;
}

// SIGKILLs a process at scope exit if it still runs (what a failing test would otherwise leak).
struct KillOnExit {
  pid_t pid = 0;
  unsigned long long start = 0;
  ~KillOnExit() {
    if (pid > 0 && Alive(pid, start)) kill(pid, SIGKILL);
  }
};

// A pid that belonged to a process that is gone now.
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

ProcessIdentity DeadOwner() {
  ProcessIdentity id = SelfIdentity();
  id.pid = DeadPid();
  id.start_ticks = 1;
  return id;
}

// The pg_restore of the agent's drill and the sandbox postmaster beside it, once the restore has
// run for a second (the slow index keeps it going for several).
struct MidRestore {
  pid_t restore = 0;
  pid_t postmaster = 0;
  unsigned long long postmaster_start = 0;
};
MidRestore WaitMidRestore(pid_t agent, int seconds) {
  MidRestore m;
  bool found = Eventually(
      [&] {
        auto r = ChildNamed(agent, "pg_restore");
        auto p = ChildNamed(agent, "postgres");
        if (r) m.restore = *r;
        if (p) m.postmaster = *p;
        return r.has_value() && p.has_value();
      },
      seconds);
  REQUIRE(found);
  std::this_thread::sleep_for(1s);
  REQUIRE(ChildNamed(agent, "pg_restore"));  // still restoring
  auto start = ProcessStartTicks(m.postmaster);
  REQUIRE(start);
  m.postmaster_start = *start;
  return m;
}

// Cluster files for a postmaster that the test starts with pg_ctl, so that it is nobody's child
// (like one whose agent was killed); `owner` goes into the sandbox marker.
struct OrphanSandbox {
  std::string dir;
  pid_t pid = 0;
  unsigned long long start = 0;
};
OrphanSandbox StartDaemonizedSandbox(const std::string& work, const std::string& name,
                                     const ProcessIdentity& owner) {
  OrphanSandbox o;
  o.dir = work + "/" + name;
  MakeDirs(o.dir, 0700, test::ServerUser());
  WriteFile(o.dir + "/.restorewatch", "owner=restorewatch pid=" + std::to_string(owner.pid) +
                                          " created=x\nkind=ephemeral-sandbox " +
                                          FormatIdentity(owner) + " target=t1 run=r1\n");
  MakeDirs(o.dir + "/sock", 0700, test::ServerUser());
  ProcessSpec init;
  init.argv = {
      test::Tools().Path("initdb"), "-D", o.dir + "/data", "-U", "postgres", "--auth=trust", "-N"};
  init.run_as = test::ServerUser();
  auto ri = RunProcess(init);
  INFO(ri.err);
  REQUIRE(ri.ok());
  ProcessSpec ctl;
  ctl.argv = {
      test::Tools().Path("pg_ctl"),
      "-D",
      o.dir + "/data",
      "-l",
      o.dir + "/server.log",
      "-w",
      "-t",
      "60",
      "-o",
      "-p " + std::to_string(PickFreePort()) + " -k " + o.dir + "/sock -c listen_addresses=''",
      "start"};
  ctl.run_as = test::ServerUser();
  auto rc = RunProcess(ctl);
  INFO(rc.out << rc.err);
  REQUIRE(rc.ok());
  std::string first = ReadFile(o.dir + "/data/postmaster.pid");
  o.pid = static_cast<pid_t>(std::stol(first.substr(0, first.find('\n'))));
  auto start = ProcessStartTicks(o.pid);
  REQUIRE(start);
  o.start = *start;
  return o;
}

std::string One(const LocalCluster& c, const std::string& sql, const std::string& db = "postgres") {
  std::string out = c.Psql(sql, db);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string Last(const std::string& state_dir, const std::string& what) {
  auto s = DrillHistory(state_dir).Load();
  if (!s.last_report) return "";
  return what == "reason" ? s.last_report->reason : DrillResultName(s.last_report->result);
}

}  // namespace

TEST_CASE(
    "kill -9 of the agent mid-restore: the sandbox server dies with it, a restart records "
    "the drill as interrupted and leaves nothing",
    "[integration][faults]") {
  Source src(1500);
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, ConfigText(src.dir, port, Target(src.cluster->ConnInfo("app"), src.backups)));
  const std::string state = src.dir / "state/t1";
  const std::string work = src.dir / "work";

  // A first drill passes: a last success to keep.
  auto ok = test::RunAgent({"verify", "-c", cfg});
  INFO(ok.out << ok.err);
  REQUIRE(ok.exit_code == 0);
  const double last_success = DrillHistory(state).Load().last_success.value_or(0);
  REQUIRE(last_success > 0);

  test::AgentProcess verify({"verify", "-c", cfg}, src.dir / "verify.log");
  pid_t agent = verify.pid();
  MidRestore m = WaitMidRestore(agent, 60);
  KillOnExit guard{m.postmaster, m.postmaster_start};
  verify.Signal(SIGKILL);
  CHECK(verify.WaitExit(5s) == 128 + SIGKILL);
  // PR_SET_PDEATHSIG survives the switch to the postgres user: the postmaster goes at once.
  CHECK(Eventually([&] { return !Alive(m.postmaster, m.postmaster_start); }, 5));
  CHECK(WithPrefix(state, "drill_running.").size() == 1);

  // The restart.
  test::AgentProcess daemon({"run", "-c", cfg}, src.dir / "agent.log");
  INFO(daemon.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 15));
  auto body = test::HttpGet(port, "/metrics").body;
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"error\""}) == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""}) == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_last_success_timestamp_seconds") ==
        Approx(last_success));
  CHECK(test::MetricValue(body, "restorewatch_drill_success") == 0);
  if (auto promtool = FindProgram("promtool")) {
    // The interrupted drill's report (no stages, no backup) still makes lint-clean metrics.
    WriteFile(src.dir / "metrics.txt", body);
    ProcessSpec lint;
    lint.argv = {*promtool, "check", "metrics"};
    lint.stdin_path = src.dir / "metrics.txt";
    auto r = RunProcess(lint);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
  }
  const std::string reason =
      "interrupted: the agent stopped during the drill (pid " + std::to_string(agent) + ")";
  CHECK(test::HttpGet(port, "/api/v1/status").body.find(reason) != std::string::npos);
  CHECK(Last(state, "reason") == reason);
  CHECK(Last(state, "result") == "error");
  CHECK(daemon.Log().find("a drill was interrupted") != std::string::npos);
  CHECK(WithPrefix(state, "drill_running.").empty());
  // No orphan: no sandbox dir, no process in one.
  CHECK(Eventually([&] { return test::ListDir(work).empty(); }, 10));
  CHECK(Eventually([&] { return ProcessesIn(work).empty(); }, 10));
  daemon.Signal(SIGTERM);
  CHECK(daemon.WaitExit(10s) == 0);
}

TEST_CASE(
    "the work_dir sweep stops an orphaned sandbox server before removing its dir, and "
    "signals nothing it cannot prove is that server",
    "[integration][faults]") {
  test::TestDir dir;
  const std::string work = dir / "work";
  MakeDirs(work);
  const ProcessIdentity dead = DeadOwner();

  // A sandbox whose agent died, its postmaster still running (reparented, nobody's child).
  OrphanSandbox orphan = StartDaemonizedSandbox(work, "sandbox-t1-orphan", dead);
  KillOnExit orphan_guard{orphan.pid, orphan.start};
  // A sandbox of a live owner (this process): kept, its server untouched.
  OrphanSandbox live = StartDaemonizedSandbox(work, "sandbox-t1-live", SelfIdentity());
  KillOnExit live_guard{live.pid, live.start};
  // A dead owner's dir whose postmaster.pid names a live pid that is not a postgres (a reused
  // pid): the process is not signalled, the dir goes.
  ProcessSpec sleeper_spec;
  sleeper_spec.argv = {"sleep", "60"};
  ChildProcess sleeper(sleeper_spec, dir / "sleep.log");
  const std::string reused = work + "/sandbox-t1-reused";
  MakeDirs(reused + "/data");
  WriteFile(reused + "/.restorewatch", "owner=restorewatch pid=" + std::to_string(dead.pid) +
                                           " created=x\n" + "kind=ephemeral-sandbox " +
                                           FormatIdentity(dead) + "\n");
  WriteFile(reused + "/data/postmaster.pid",
            std::to_string(sleeper.pid()) + "\n" + reused + "/data\n");
  // A dead owner's dir whose postmaster.pid names the live sandbox's server (a postgres, but of
  // another data dir): never signalled, and the dir is kept since it cannot be proven idle.
  const std::string other = work + "/sandbox-t1-other";
  MakeDirs(other + "/data");
  WriteFile(other + "/.restorewatch", "owner=restorewatch pid=" + std::to_string(dead.pid) +
                                          " created=x\n" + "kind=ephemeral-sandbox " +
                                          FormatIdentity(dead) + "\n");
  WriteFile(other + "/data/postmaster.pid", std::to_string(live.pid) + "\n" + other + "/data\n");

  auto removed = RemoveOrphanedWorkDirs(work);
  std::sort(removed.begin(), removed.end());
  CHECK(removed == std::vector<std::string>{orphan.dir, reused});
  CHECK_FALSE(Alive(orphan.pid, orphan.start));
  CHECK(ProcessesIn(work + "/sandbox-t1-orphan").empty());
  CHECK(Alive(live.pid, live.start));
  CHECK(sleeper.Running());
  auto left = test::ListDir(work);
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"sandbox-t1-live", "sandbox-t1-other"});

  ProcessSpec stop;
  stop.argv = {
      test::Tools().Path("pg_ctl"), "-D", live.dir + "/data", "-m", "immediate", "-w", "stop"};
  stop.run_as = test::ServerUser();
  CHECK(RunProcess(stop).ok());
  sleeper.Stop(SIGKILL, 1s);
}

TEST_CASE("scratch databases whose owning agent is gone are dropped, and only those",
          "[integration][faults][sandbox]") {
  test::TestDir dir("rwscratch-");
  test::ClusterSpec spec;
  spec.throwaway = true;
  auto server = test::StartCluster(dir, spec);
  const ProcessIdentity dead = DeadOwner();
  ProcessIdentity reused = SelfIdentity();
  reused.start_ticks += 777;  // this pid, but not this process
  ProcessIdentity elsewhere = dead;
  elsewhere.host = "another-host";
  auto marked = [&](const std::string& db, const std::string& mark) {
    server->Psql("create database " + db);
    if (!mark.empty()) server->Psql("comment on database " + db + " is '" + mark + "'");
  };
  marked("restorewatch_t1_dead", "restorewatch:t1:run1 " + FormatIdentity(dead));
  marked("restorewatch_t1_reused", "restorewatch:t1:run2 " + FormatIdentity(reused));
  marked("restorewatch_t1_live", "restorewatch:t1:run3 " + FormatIdentity(SelfIdentity()));
  marked("restorewatch_t1_elsewhere", "restorewatch:t1:run4 " + FormatIdentity(elsewhere));
  marked("restorewatch_t1_legacy", "restorewatch:t1:run5");  // an older mark: no owner identity
  marked("restorewatch_t1_plain", "");                       // unmarked, similar name
  marked("restorewatch_t1_foreign", "someone else: " + FormatIdentity(dead));
  server->Psql("create role rw_dead_role nologin");
  server->Psql("comment on role rw_dead_role is 'restorewatch:t1:run1 " + FormatIdentity(dead) +
               "'");
  server->Psql("create role rw_live_role nologin");
  server->Psql("comment on role rw_live_role is 'restorewatch:t1:run3 " +
               FormatIdentity(SelfIdentity()) + "'");

  TargetConfig t;
  t.name = "t1";
  t.drill.sandbox = SandboxKind::kScratch;
  t.drill.scratch = ConnSpec{server->ConnInfo("postgres"), ""};
  auto dropped = RemoveOrphanedScratchDatabases(t);
  std::sort(dropped.begin(), dropped.end());
  CHECK(dropped == std::vector<std::string>{"restorewatch_t1_dead", "restorewatch_t1_reused"});
  CHECK(One(*server,
            "select string_agg(datname, ',' order by datname) from pg_database where datname "
            "like 'restorewatch%'") ==
        "restorewatch_t1_elsewhere,restorewatch_t1_foreign,restorewatch_t1_legacy,"
        "restorewatch_t1_live,restorewatch_t1_plain");
  CHECK(One(*server, "select string_agg(rolname, ',') from pg_roles where rolname like 'rw_%'") ==
        "rw_live_role");

  // Before each drill: a scratch sandbox sweeps when it starts.
  marked("restorewatch_t1_dead2", "restorewatch:t1:run6 " + FormatIdentity(DeadOwner()));
  CancelToken cancel;
  auto sb = MakeScratchSandbox(Environment{}, t, "run7", "1234");
  sb->Start(15, cancel);
  CHECK(One(*server, "select count(*) from pg_database where datname = 'restorewatch_t1_dead2'") ==
        "0");
  CHECK(One(*server, "select count(*) from pg_database where datname = 'restorewatch_t1_live'") ==
        "1");
  CHECK(sb->Cleanup().empty());
}

TEST_CASE("kill -9 during a scratch restore: the next daemon start drops the left database",
          "[integration][faults][sandbox]") {
  Source src(1500);
  test::TestDir sdir("rwscratch-");
  test::ClusterSpec spec;
  spec.throwaway = true;
  auto scratch = test::StartCluster(sdir, spec);
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, ConfigText(src.dir, port,
                            Target(src.cluster->ConnInfo("app"), src.backups,
                                   "sandbox = \"scratch\"\nscratch_dsn = \"" +
                                       scratch->ConnInfo("postgres") + "\"\n")));
  auto ours = [&] {
    return One(*scratch, "select count(*) from pg_database where datname like 'restorewatch%'");
  };
  test::AgentProcess verify({"verify", "-c", cfg}, src.dir / "verify.log");
  INFO(verify.Log());
  REQUIRE(Eventually([&] { return ChildNamed(verify.pid(), "pg_restore").has_value(); }, 60));
  std::this_thread::sleep_for(1s);
  REQUIRE(ours() == "1");
  verify.Signal(SIGKILL);
  CHECK(verify.WaitExit(5s) == 128 + SIGKILL);
  CHECK(ours() == "1");  // left behind by the crash

  test::AgentProcess daemon({"run", "-c", cfg}, src.dir / "agent.log");
  INFO(daemon.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 15));
  CHECK(Eventually([&] { return ours() == "0"; }, 20));
  CHECK(daemon.Log().find("dropped a scratch database left by a previous run") !=
        std::string::npos);
  daemon.Signal(SIGTERM);
  CHECK(daemon.WaitExit(10s) == 0);
}

namespace {

// A scheduled drill of the daemon, with `victim` SIGKILLed mid-restore; /metrics is scraped all
// along. Checks the outcome (error), its one-line reason, the metrics, and that nothing is left.
void KillMidRestore(const std::string& victim, const std::string& reason_part) {
  Source src(1500);
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, ConfigText(src.dir, port,
                            Target(src.cluster->ConnInfo("app"), src.backups,
                                   "schedule = \"* * * * *\"\n")));
  const std::string work = src.dir / "work";
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 15));
  // The next minute boundary starts the drill.
  MidRestore m = WaitMidRestore(agent.pid(), 75);
  KillOnExit guard{m.postmaster, m.postmaster_start};
  REQUIRE(kill(victim == "postmaster" ? m.postmaster : m.restore, SIGKILL) == 0);

  int scrapes = 0, failed_scrapes = 0;
  double slowest = 0;
  std::string body;
  bool recorded = Eventually(
      [&] {
        auto r = test::HttpGet(port, "/metrics", 5);
        ++scrapes;
        if (r.status != 200) ++failed_scrapes;
        slowest = std::max(slowest, r.seconds);
        body = r.body;
        return test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"error\""})
                   .value_or(0) >= 1;
      },
      60);
  REQUIRE(recorded);
  CHECK(failed_scrapes == 0);
  CHECK(slowest < 1.0);
  CHECK(scrapes > 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"error\""}) == 1);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"failure\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""}) == 0);
  CHECK(test::MetricValue(body, "restorewatch_drill_success") == 0);
  CHECK(Eventually(
      [&] {
        return test::MetricValue(test::HttpGet(port, "/metrics").body,
                                 "restorewatch_drill_running") == 0;
      },
      5));
  const std::string state = src.dir / "state/t1";
  std::string reason = Last(state, "reason");
  CHECK(Last(state, "result") == "error");
  CHECK_THAT(reason, Catch::StartsWith("restore: ") && Catch::Contains(reason_part));
  CHECK(reason.find('\n') == std::string::npos);
  // Nothing left: no sandbox dir, no process of it, no child of the agent.
  CHECK(Eventually([&] { return test::ListDir(work).empty(); }, 10));
  CHECK(Eventually([&] { return ProcessesIn(work).empty(); }, 10));
  CHECK(Eventually([&] { return test::ChildrenOf(agent.pid()).empty(); }, 10));
  CHECK_FALSE(Alive(m.postmaster, m.postmaster_start));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(10s) == 0);
}

}  // namespace

TEST_CASE("the sandbox postmaster killed mid-restore: the drill is an error naming the server",
          "[integration][faults]") {
  KillMidRestore("postmaster", "the ephemeral sandbox's server died during the restore of");
}

TEST_CASE("pg_restore killed mid-restore: the drill is an error naming pg_restore",
          "[integration][faults]") {
  KillMidRestore("pg_restore", "pg_restore was killed by signal 9");
}

TEST_CASE(
    "each state file corrupt or truncated: moved aside with a warning, the last success "
    "kept",
    "[integration][faults][state]") {
  Source src;
  int port = PickFreePort();
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, ConfigText(src.dir, port, Target(src.cluster->ConnInfo("app"), src.backups)));
  const std::string state = src.dir / "state/t1";
  auto ok = test::RunAgent({"verify", "-c", cfg});
  INFO(ok.out << ok.err);
  REQUIRE(ok.exit_code == 0);
  // A short daemon run samples table activity too, so every state file exists.
  {
    test::AgentProcess first({"run", "-c", cfg}, src.dir / "first.log");
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/readyz").status == 200; }, 20));
    first.Signal(SIGTERM);
    REQUIRE(first.WaitExit(10s) == 0);
  }
  const double last_success = DrillHistory(state).Load().last_success.value_or(0);
  REQUIRE(last_success > 0);
  const std::string good_summary = ReadFile(state + "/drills.toml");
  const std::string good_report = ReadFile(state + "/last_drill.toml");
  const std::string good_activity = ReadFile(state + "/activity.log");
  REQUIRE_FALSE(good_activity.empty());

  struct Case {
    std::string file;
    std::string content;
    bool moved_aside;
  };
  std::vector<Case> cases = {
      {"drills.toml", "last_success = \x01\x02garbage", true},
      {"drills.toml", good_summary.substr(0, good_summary.size() / 2), true},
      {"last_drill.toml", "[[stages]\nname = ", true},
      {"last_drill.toml", good_report.substr(0, good_report.size() * 2 / 3), true},
      {"drill_running.4242.toml", "owner = 'host=", true},
      // The activity log skips what does not parse and a torn last line, by design: kept.
      {"activity.log", good_activity.substr(0, good_activity.size() - 7), false},
      {"activity.log", "\x7f garbage without a newline", false},
  };
  int n = 0;
  for (const auto& c : cases) {
    INFO("case " << n << ": " << c.file);
    for (const auto& name : test::ListDir(state))
      if (name.find(".corrupt-") != std::string::npos) std::remove((state + "/" + name).c_str());
    WriteFile(state + "/drills.toml", good_summary);
    WriteFile(state + "/last_drill.toml", good_report);
    WriteFile(state + "/activity.log", good_activity);
    WriteFile(state + "/" + c.file, c.content);

    test::AgentProcess agent({"run", "-c", cfg},
                             src.dir / ("agent" + std::to_string(n++) + ".log"));
    INFO(agent.Log());
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/readyz").status == 200; }, 20));
    auto body = test::HttpGet(port, "/metrics").body;
    CHECK(test::MetricValue(body, "restorewatch_drill_last_success_timestamp_seconds") ==
          Approx(last_success));
    CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"success\""}) == 1);
    CHECK(test::MetricValue(body, "restorewatch_drill_runs_total", {"result=\"error\""}) == 0);
    CHECK(test::MetricValue(body, "restorewatch_collector_success",
                            {"collector=\"table_activity\""}) == 1);
    auto aside = WithPrefix(state, c.file + ".corrupt-");
    if (c.moved_aside) {
      CHECK(aside.size() == 1);
      CHECK(agent.Log().find("state file is corrupt; moved aside") != std::string::npos);
      CHECK(agent.Log().find(state + "/" + c.file) != std::string::npos);
    } else {
      CHECK(aside.empty());
      // Sampling goes on: a new valid sample is appended after the damage.
      CHECK(Eventually(
          [&] {
            return test::MetricValue(test::HttpGet(port, "/metrics").body,
                                     "restorewatch_table_activity_last_sample_timestamp_seconds")
                       .value_or(0) > 0;
          },
          10));
    }
    agent.Signal(SIGTERM);
    CHECK(agent.WaitExit(10s) == 0);
  }
}

TEST_CASE("a dump the agent may not read is an error of the drill, not a failure of the backup",
          "[integration][faults]") {
  Source src;
  std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, ConfigText(src.dir, 0, Target(src.cluster->ConnInfo("app"), src.backups)));
  // The agent runs as the unprivileged user (as it would without root), the dump is root's 0600.
  REQUIRE(chmod((src.backups + "/db-1.dump").c_str(), 0600) == 0);
  MakeDirs(src.dir / "state", 0755, test::ServerUser());
  MakeDirs(src.dir / "work", 0755, test::ServerUser());
  REQUIRE(chmod(cfg.c_str(), 0644) == 0);
  ProcessSpec spec;
  spec.argv = {test::AgentBinary(), "verify", "-c", cfg, "--json"};
  spec.run_as = test::ServerUser();
  spec.timeout = 3min;
  auto r = RunProcess(spec);
  INFO(r.out << r.err);
  if (!test::ServerUser()) {
    WARN("tests do not run as root: the permission case needs another user");
    return;
  }
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("\"error\"") != std::string::npos);
  CHECK(r.out.find("\"failure\"") == std::string::npos);
  CHECK(r.out.find("Permission denied") != std::string::npos);
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE(
    "a child run as another user still dies with its parent (parent-death signal after the "
    "user switch)",
    "[integration][faults]") {
  // A stand-in for the agent: a forked process that starts a long-lived child the way the
  // sandbox postmaster is started (ChildProcess, run_as the server user), reports its pid, and
  // then waits to be killed.
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  test::TestDir dir;
  pid_t parent = fork();
  REQUIRE(parent >= 0);
  if (parent == 0) {
    close(fds[0]);
    try {
      ProcessSpec spec;
      spec.argv = {"sleep", "60"};
      spec.run_as = test::ServerUser();
      auto* child = new ChildProcess(spec, dir / "child.log");  // never stopped: dies with us
      pid_t pid = child->pid();
      (void)!write(fds[1], &pid, sizeof pid);
    } catch (...) {
    }
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t child = 0;
  REQUIRE(read(fds[0], &child, sizeof child) == static_cast<ssize_t>(sizeof child));
  close(fds[0]);
  auto start = ProcessStartTicks(child);
  REQUIRE(start);
  KillOnExit guard{child, *start};
  // Past exec: the switch to the server user and the arming of the signal are done.
  REQUIRE(Eventually([&] { return Comm(child) == "sleep"; }, 5));
  if (test::ServerUser()) {
    std::ifstream status("/proc/" + std::to_string(child) + "/status");
    std::string line, uid;
    while (std::getline(status, line))
      if (line.rfind("Uid:", 0) == 0) uid = line;
    CHECK_THAT(uid, Catch::Contains("\t" + std::to_string(test::ServerUser()->uid) + "\t"));
  }
  REQUIRE(kill(parent, SIGKILL) == 0);
  waitpid(parent, nullptr, 0);
  CHECK(Eventually([&] { return !Alive(child, *start); }, 2));
}
