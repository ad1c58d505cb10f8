// The Barman source end to end (`restorewatch verify`, the real binary): a PostgreSQL 15 primary,
// a real Barman 3.4 (barman_user = the server user, its own barman.conf, streaming WAL with
// receive-wal and a slot, backup_method = postgres), a small workload, then drills of a
// `type = "barman"` target: to the end of Barman's archive and to a time, passing; an unknown
// server fails naming barman and quoting it; a WAL segment deleted from Barman's wals directory
// fails naming it. One test case, so Barman is set up once (its first WAL and backup take ~25 s).
// receive-wal and every process are stopped by a guard, also when a REQUIRE fails; TestDir removes
// everything. Every wait is bounded.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/pg/process.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Pids of live processes whose command line mentions `needle` (leftover checks).
std::vector<std::string> ProcessesMentioning(const std::string& needle) {
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in("/proc/" + pid + "/cmdline");
    std::stringstream s;
    s << in.rdbuf();
    std::string cmd = s.str();
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find(needle) != std::string::npos) out.push_back(pid + ": " + cmd);
  }
  closedir(d);
  return out;
}

// A Barman set up for one server `pg` of `primary`: barman.conf, home, receive-wal running.
// The destructor stops receive-wal (barman's own --stop, then the child itself), so nothing
// outlives the test case, whatever failed.
class BarmanRig {
 public:
  BarmanRig(const test::TestDir& dir, const LocalCluster& primary)
      : home_(dir / "barman"), conf_(dir / "barman/barman.conf") {
    MakeDirs(home_ + "/home", 0700, test::ServerUser());
    MakeDirs(home_ + "/conf.d", 0700, test::ServerUser());
    const std::string cs = "host=" + primary.socket_dir() +
                           " port=" + std::to_string(primary.port()) + " user=postgres";
    test::WriteFile(conf_,
                    "[barman]\nbarman_user = " + User() + "\nbarman_home = " + home_ +
                        "/home\nconfiguration_files_directory = " + home_ +
                        "/conf.d\nlog_file = " + home_ +
                        "/barman.log\nlog_level = INFO\n\n[pg]\ndescription = \"test\"\n"
                        "conninfo = " +
                        cs + " dbname=postgres\nstreaming_conninfo = " + cs +
                        "\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barman\n"
                        "create_slot = auto\nimmediate_checkpoint = true\n"
                        "path_prefix = " +
                        test::Tools().bin_dir + "\n");
    if (test::ServerUser()) {
      REQUIRE(::chown(conf_.c_str(), test::ServerUser()->uid, test::ServerUser()->gid) == 0);
      REQUIRE(::chown(home_.c_str(), test::ServerUser()->uid, test::ServerUser()->gid) == 0);
    }
    Run({"receive-wal", "--create-slot", "pg"});
    ProcessSpec spec;
    spec.argv = {"barman", "-c", conf_, "receive-wal", "pg"};
    spec.run_as = test::ServerUser();
    receive_wal_ = std::make_unique<ChildProcess>(spec, home_ + "/receive-wal.log");
    // The order RECIPES.md gives: cron (no cron daemon here), switch-wal, check.
    REQUIRE(test::Eventually(
        [&] {
          return test::ReadFile(home_ + "/receive-wal.log").find("starting log streaming") !=
                 std::string::npos;
        },
        60));
    Run({"cron"});
    Run({"switch-wal", "--force", "--archive", "pg"}, 90s);
    Run({"check", "pg"});
  }
  ~BarmanRig() {
    ProcessSpec spec;
    spec.argv = {"barman", "-c", conf_, "receive-wal", "--stop", "pg"};
    spec.run_as = test::ServerUser();
    spec.timeout = 30s;
    try {
      RunProcess(spec);
    } catch (...) {
    }
    if (receive_wal_) receive_wal_->Stop(SIGTERM, 10s);  // SIGKILLs its group after that
  }

  static std::string User() { return test::ServerUser() ? test::ServerUser()->user : ""; }
  const std::string& conf() const { return conf_; }
  std::string wals() const { return home_ + "/home/pg/wals"; }

  // Runs `barman -c CONF ARGS` as the server user; REQUIREs success; returns stdout.
  std::string Run(const std::vector<std::string>& args, Duration timeout = 120s) const {
    ProcessSpec spec;
    spec.argv = {"barman", "-c", conf_};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.run_as = test::ServerUser();
    spec.timeout = timeout;
    ProcessResult r = RunProcess(spec);
    INFO("barman " << args.front() << ":\n" << r.out << r.err);
    REQUIRE(r.ok());
    return r.out;
  }

 private:
  std::string home_;
  std::string conf_;
  std::unique_ptr<ChildProcess> receive_wal_;
};

std::string Config(const test::TestDir& dir, const std::string& source, const std::string& conf,
                   const std::string& server, const std::string& target) {
  std::string c = "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
                  "\"\nwork_dir = \"" + (dir / "work") + "\"\n\n[[target]]\nname = \"bar\"\n" +
                  "source = \"" + source + "\"\n\n[target.backup]\ntype = \"barman\"\nserver = \"" +
                  server + "\"\nconfig = \"" + conf + "\"\n";
  if (!BarmanRig::User().empty()) c += "run_as = \"" + BarmanRig::User() + "\"\n";
  return c + "\n[target.drill]\nrecovery_target = \"" + target +
         "\"\ntimeout = \"5m\"\n\n[target.checks]\nstats_settle = \"1s\"\n";
}

}  // namespace

TEST_CASE(
    "barman drills to the end of the archive and to a time pass; an unknown server and a "
    "missing WAL segment fail naming them",
    "[integration][barman]") {
  test::TestDir dir("rwbarman-");
  auto primary = test::StartCluster(dir);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 20000) g;",
      "app");
  {
    BarmanRig barman(dir, *primary);
    barman.Run({"backup", "--wait", "pg"}, 180s);
    // After the backup: writes to app, then a point in time, then a commit elsewhere (a time
    // target needs a commit after it; app stays as it was at the point).
    primary->Psql("insert into items select g, 'a ' || g from generate_series(20001, 21000) g;",
                  "app");
    std::this_thread::sleep_for(1500ms);
    const std::string point = Trim(primary->Psql("select now()::text"));
    std::this_thread::sleep_for(1500ms);
    primary->Psql(
        "create table marker (at timestamptz default now()); insert into marker default values;");
    barman.Run({"switch-wal", "--force", "--archive", "pg"}, 90s);

    const std::string list = barman.Run({"-f", "json", "list-backups", "pg"});
    INFO(list);
    REQUIRE(list.find("\"DONE\"") != std::string::npos);

    const std::string cfg = dir / "agent.toml";
    test::WriteFile(cfg, Config(dir, primary->ConnInfo("app"), barman.conf(), "pg", "latest"));
    auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("verify-backup") != std::string::npos);
    CHECK(r.out.find("end of barman's archive") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());

    test::WriteFile(cfg, Config(dir, primary->ConnInfo("app"), barman.conf(), "pg", point));
    r = test::RunAgent({"verify", "-c", cfg}, 5min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("recovered to " + point) != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());

    // An unknown server: the drill fails naming barman and quoting it.
    test::WriteFile(cfg, Config(dir, primary->ConnInfo("app"), barman.conf(), "nosuch", "latest"));
    r = test::RunAgent({"verify", "-c", cfg}, 5min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.out.find("barman list-backups nosuch failed") != std::string::npos);
    CHECK(r.out.find("Unknown server 'nosuch'") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());

    // A WAL segment written after the backup, then deleted from Barman's wals directory: the
    // drill to latest fails naming it.
    primary->Psql("insert into items select g, 'b ' || g from generate_series(21001, 25000) g;",
                  "app");
    const std::string gone = Trim(primary->Psql("select pg_walfile_name(pg_current_wal_lsn())"));
    REQUIRE(gone.size() == 24);
    barman.Run({"switch-wal", "--force", "--archive", "pg"}, 90s);
    primary->Psql("insert into items values (30000, 'after the gap')", "app");
    barman.Run({"switch-wal", "--force", "--archive", "pg"}, 90s);
    const std::string path = barman.wals() + "/" + gone.substr(0, 16) + "/" + gone;
    REQUIRE(::unlink(path.c_str()) == 0);

    test::WriteFile(cfg, Config(dir, primary->ConnInfo("app"), barman.conf(), "pg", "latest"));
    r = test::RunAgent({"verify", "-c", cfg}, 5min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("WAL segment " + gone + " is missing") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());
  }
  CHECK(ProcessesMentioning(dir / "barman").empty());
}
