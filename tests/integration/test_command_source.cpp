// The command source end to end (`restorewatch verify`, the real binary), with small shell
// scripts of the test's own as the user's tools: a list printing the JSON contract and a fetch
// copying a pg_dump file into the directory the agent gives it: the drill passes; a fetch that
// fails: the drill fails quoting its stderr; a list printing bad JSON: a clear error; a fetch that
// hangs is killed at backup.timeout. Every wait is bounded; TestDir removes everything.
#include <dirent.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "agent/pg/process.h"
#include "agent/units.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

// A script file, executable by everyone (the commands run as agent.run_as).
void Script(const std::string& path, const std::string& body) {
  test::WriteFile(path, "#!/bin/sh\n" + body);
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
}

std::string Config(const test::TestDir& dir, const std::string& source, const std::string& list,
                   const std::string& fetch, const std::string& timeout) {
  return "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
         "\"\nwork_dir = \"" + (dir / "work") + "\"\n\n[[target]]\nname = \"cmd\"\nsource = \"" +
         source + "\"\n\n[target.backup]\ntype = \"command\"\nformat = \"pg_dump\"\nlist = [\"" +
         list + "\"]\nfetch = [\"" + fetch + "\", \"{id}\", \"{dir}\"]\ntimeout = \"" + timeout +
         "\"\n\n[target.drill]\ntimeout = \"5m\"\n\n[target.checks]\nstats_settle = \"1s\"\n";
}

// Pids of live processes whose command line mentions `needle`.
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

}  // namespace

TEST_CASE("command source: list and fetch of a pg_dump file, failures quoted",
          "[integration][command_source]") {
  test::TestDir dir("rwcmd-");
  auto primary = test::StartCluster(dir);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string store = dir / "store";  // where "the tool" keeps its backups
  MakeDirs(store, 0755);
  const double taken = NowUnix();
  auto dump = test::RunPgTool(
      "pg_dump", {"-Fc", "-f", store + "/nightly-1.dump", "-d", primary->ConnInfo("app")});
  INFO(dump.err);
  REQUIRE(dump.ok());
  REQUIRE(::chmod((store + "/nightly-1.dump").c_str(), 0644) == 0);

  Script(dir / "list.sh", "echo '[{\"id\": \"nightly-1\", \"time\": \"" + FormatTimestamp(taken) +
                              "\", \"size\": 1000, \"kind\": \"logical\"}]'\n");
  // Also says where it was asked to fetch into (checked below: inside work_dir), in a directory
  // the commands' user (agent.run_as) may write.
  MakeDirs(dir / "notes", 0755, test::ServerUser());
  Script(dir / "fetch.sh", "cp \"" + store + "/$1.dump\" \"$2/\"\necho \"$2\" > \"" +
                               (dir / "notes/fetched-into") + "\"\n");
  const std::string cfg = dir / "agent.toml";
  const std::string source = primary->ConnInfo("app");

  SECTION("the drill passes") {
    test::WriteFile(cfg, Config(dir, source, dir / "list.sh", dir / "fetch.sh", "1m"));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("fetch command") != std::string::npos);
    CHECK(r.out.find("nightly-1") != std::string::npos);
    const std::string into = test::ReadFile(dir / "notes/fetched-into");
    CHECK(into.rfind(dir / "work/fetch-", 0) == 0);
    CHECK(into.find("/backup\n") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());
  }
  SECTION("a fetch that fails: the drill fails quoting its stderr") {
    Script(
        dir / "fetch-bad.sh",
        "echo 'connecting to bucket' >&2\necho 'fetch: access denied for s3://bk/nightly-1' >&2\n"
        "exit 3\n");
    test::WriteFile(cfg, Config(dir, source, dir / "list.sh", dir / "fetch-bad.sh", "1m"));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.out.find("the fetch command failed (exit code 3)") != std::string::npos);
    CHECK(r.out.find("access denied for s3://bk/nightly-1") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());
  }
  SECTION("a list that prints bad JSON: a clear error") {
    Script(dir / "list-bad.sh", "echo '[{\"id\": \"nightly-1\", \"time\": '\n");
    test::WriteFile(cfg, Config(dir, source, dir / "list-bad.sh", dir / "fetch.sh", "1m"));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.out.find("the list command's output does not follow the contract") !=
          std::string::npos);
    CHECK(r.out.find("not JSON") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());
  }
  SECTION("a fetch that hangs is killed at its timeout") {
    Script(dir / "fetch-hang.sh", "echo 'waiting for the tape robot' >&2\nsleep 6071\n");
    test::WriteFile(cfg, Config(dir, source, dir / "list.sh", dir / "fetch-hang.sh", "2s"));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.out.find("the fetch command did not finish within 2s") != std::string::npos);
    CHECK(r.out.find("waiting for the tape robot") != std::string::npos);
    CHECK(test::Eventually([] { return ProcessesMentioning("sleep 6071").empty(); }, 10));
    CHECK(test::ListDir(dir / "work").empty());
  }
}

TEST_CASE("command source: a pg_basebackup output fetched by a script recovers from wal_archive",
          "[integration][command_source]") {
  test::TestDir dir("rwcmdbb-");
  const std::string archive = dir / "archive";
  MakeDirs(archive, 0700, test::ServerUser());
  test::ClusterSpec ps;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"}};
  auto primary = test::StartCluster(dir, ps);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string store = dir / "store";
  MakeDirs(store, 0755, test::ServerUser());
  const double taken = NowUnix();
  ProcessSpec bb;
  bb.argv = {test::Tools().Path("pg_basebackup"),
             "-h",
             primary->socket_dir(),
             "-p",
             std::to_string(primary->port()),
             "-U",
             "postgres",
             "-D",
             store + "/base-1",
             "-c",
             "fast",
             "-Fp"};
  bb.run_as = test::ServerUser();
  bb.timeout = 3min;
  ProcessResult br = RunProcess(bb);
  INFO(br.err);
  REQUIRE(br.ok());
  // Written after the backup and archived: recovery to latest must bring it.
  primary->Psql("insert into items select g, 'late ' || g from generate_series(5001, 6000) g;",
                "app");
  const std::string seg = primary->Psql("select pg_walfile_name(pg_switch_wal())");
  REQUIRE(test::Eventually(
      [&] {
        struct stat st {};
        return ::stat((archive + "/" + seg.substr(0, 24)).c_str(), &st) == 0 &&
               st.st_size == 16 * 1024 * 1024;
      },
      30));

  Script(dir / "list.sh", "echo '[{\"id\": \"base-1\", \"time\": \"" + FormatTimestamp(taken) +
                              "\", \"kind\": \"full\"}]'\n");
  Script(dir / "fetch.sh", "cp -a \"" + store + "/$1\" \"$2/\"\n");
  std::string c = Config(dir, primary->ConnInfo("app"), dir / "list.sh", dir / "fetch.sh", "1m");
  const std::string from = "format = \"pg_dump\"\n";
  c.replace(c.find(from), from.size(),
            "format = \"basebackup\"\nwal_archive = \"" + archive + "\"\n");
  const std::string cfg = dir / "agent.toml";
  test::WriteFile(cfg, c);
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("fetch command") != std::string::npos);
  CHECK(r.out.find("pg_verifybackup") != std::string::npos);
  CHECK(r.out.find("bytes of WAL replayed") != std::string::npos);
  CHECK(r.out.find("6000 of 6000 source rows verified") != std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());
}
