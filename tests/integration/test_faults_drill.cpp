// The fault suite, drill side: a drill whose source goes away, or whose work disk is full, ends
// as an error (the agent could not judge the backup) with a one-line reason that names the cause,
// leaves no sandbox dir or process behind, and is exported as such by the daemon afterwards.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "agent/errors.h"
#include "agent/pg/pg_cluster.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::WriteFile;

// A small tmpfs mounted over `dir` for the test's lifetime (the tests run as root). mounted() is
// false where mounting is not allowed; the caller then says so and returns.
class Tmpfs {
 public:
  Tmpfs(const std::string& dir, const std::string& size) : dir_(dir) {
    MakeDirs(dir_);
    const std::string opts = "size=" + size + ",mode=0755";
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// A source database and a custom-format dump of it.
struct Source {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::string backups;
  explicit Source(const std::string& load_sql) {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(load_sql, "app");
    backups = dir / "backups";
    MakeDirs(backups);
    auto r = test::RunPgTool("pg_dump",
                             {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"});
    REQUIRE(r.ok());
  }
  std::string Config(const std::string& conninfo, const std::string& work_dir, int port = 0) {
    std::string cfg = dir / "agent.toml";
    WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
                       (dir / "state") + "\"\nwork_dir = \"" + work_dir +
                       "\"\nlog_format = \"json\"\n\n[[target]]\nname = \"t1\"\nsource = \"" +
                       conninfo +
                       "\"\nconnect_timeout = \"2s\"\nmonitor_interval = \"1s\"\n\n"
                       "[target.backup]\npath = \"" +
                       backups +
                       "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                       "stats_settle = \"1s\"\n");
    return cfg;
  }
};

// A top-level string field of a JSON report (the first one named `key`), unescaped.
std::string JsonField(const std::string& json, const std::string& key) {
  auto p = json.find("\"" + key + "\"");
  if (p == std::string::npos) return {};
  p = json.find('"', json.find(':', p) + 1);
  if (p == std::string::npos) return {};
  std::string out;
  for (++p; p < json.size() && json[p] != '"'; ++p) {
    if (json[p] == '\\' && p + 1 < json.size()) ++p;
    out += json[p];
  }
  return out;
}
std::string ReasonOf(const std::string& json) { return JsonField(json, "reason"); }

// After a failed drill recorded by `verify`: the daemon exports it from the state dir.
void ExpectErrorExported(Source& src, const std::string& conninfo, const std::string& work_dir) {
  const int port = PickFreePort();
  std::string cfg = src.Config(conninfo, work_dir, port);
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "run.log");
  std::string metrics;
  bool up = Eventually(
      [&] {
        metrics = test::HttpGet(port, "/metrics").body;
        return metrics.find("restorewatch_drill_runs_total") != std::string::npos;
      },
      20);
  INFO(agent.Log());
  REQUIRE(up);
  CHECK(test::MetricValue(metrics, "restorewatch_drill_success") == 0.0);
  CHECK(test::MetricValue(metrics, "restorewatch_drill_runs_total", {"result=\"error\""}) == 1.0);
  CHECK_FALSE(test::MetricValue(metrics, "restorewatch_drill_last_success_timestamp_seconds"));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(10)) == 0);
}

const char* kSmallLoad =
    "create table items(id int primary key, name text, price numeric);"
    "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 20000) g;";

}  // namespace

TEST_CASE("fault: the source unreachable at drill start is an error, the restore still runs",
          "[integration][faults]") {
  Source src(kSmallLoad);
  const std::string dead =
      "host=127.0.0.1 port=" + std::to_string(PickFreePort()) + " dbname=app user=postgres";
  std::string cfg = src.Config(dead, src.dir / "work");
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  const std::string reason = ReasonOf(r.out);
  CHECK_THAT(reason, Catch::Contains("could not run") && Catch::Contains("connect"));
  CHECK(reason.find('\n') == std::string::npos);
  CHECK(r.out.find("\"restore\"") != std::string::npos);  // the restore stage ran
  CHECK(test::ListDir(src.dir / "work").empty());
  ExpectErrorExported(src, dead, src.dir / "work");
}

TEST_CASE("fault: the source stopped mid-restore is an error naming the lost connection",
          "[integration][faults]") {
  // Big enough that the restore and the source-side scan take a few seconds.
  Source src(
      "create table big(id int primary key, a text, b text);"
      "insert into big select g, md5(g::text), md5((g * 7)::text) from generate_series(1, "
      "600000) g;");
  const std::string conninfo = src.cluster->ConnInfo("app");
  std::string cfg = src.Config(conninfo, src.dir / "work");
  test::AgentProcess verify({"verify", "-c", cfg, "--json"}, src.dir / "verify.log");
  REQUIRE(Eventually([&] { return !test::ListDir(src.dir / "work").empty(); }, 30));
  src.cluster->Kill();  // immediate shutdown, as a crash of the source would be
  const int code = verify.WaitExit(std::chrono::minutes(2));
  const std::string log = verify.Log();
  INFO(log);
  CHECK(code == 2);
  const std::string reason = ReasonOf(log);
  CHECK_FALSE(reason.empty());
  CHECK(reason.find('\n') == std::string::npos);
  CHECK(JsonField(log, "result") == "error");
  CHECK(test::ChildrenOf(verify.pid()).empty());
  CHECK(test::ListDir(src.dir / "work").empty());
  src.cluster->Start();
  ExpectErrorExported(src, conninfo, src.dir / "work");
}

TEST_CASE("fault: a work disk too small for the restore fails early with both numbers",
          "[integration][faults]") {
  Source src(kSmallLoad);
  Tmpfs disk(src.dir / "work", "16m");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (not root?): work-disk cases not run");
    return;
  }
  std::string cfg = src.Config(src.cluster->ConnInfo("app"), src.dir / "work");
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  const std::string reason = ReasonOf(r.out);
  CHECK_THAT(reason, Catch::Contains("not enough free space in work_dir") &&
                         Catch::Contains("MiB free") && Catch::Contains("needs about"));
  CHECK(test::ListDir(src.dir / "work").empty());
  ExpectErrorExported(src, src.cluster->ConnInfo("app"), src.dir / "work");
}

TEST_CASE("fault: a work disk that fills during the restore is an error quoting the cause",
          "[integration][faults]") {
  // 1 KB rows of one repeated letter: stored uncompressed (under the TOAST threshold), but the
  // dump compresses them to almost nothing, so the estimate from the dump's size passes.
  Source src(
      "create table wide(id int primary key, pad text);"
      "insert into wide select g, repeat('x', 1000) from generate_series(1, 120000) g;");
  Tmpfs disk(src.dir / "work", "96m");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (not root?): work-disk cases not run");
    return;
  }
  std::string cfg = src.Config(src.cluster->ConnInfo("app"), src.dir / "work");
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);  // the agent's disk, not the backup: an error, never a failure
  const std::string reason = ReasonOf(r.out);
  CHECK_THAT(reason, Catch::Contains("ran out of disk space in work_dir"));
  CHECK_THAT(reason, Catch::Contains("No space left on device") ||
                         Catch::Contains("could not extend file"));
  CHECK(reason.find('\n') == std::string::npos);
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE("initdb on a full disk quotes the line that names the cause", "[integration][faults]") {
  test::TestDir dir;
  Tmpfs disk(dir / "tiny", "4m");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (not root?): case not run");
    return;
  }
  ClusterOptions o;
  o.tools = test::Tools();
  o.parent_dir = dir / "tiny";
  o.run_as = test::ServerUser();
  std::string message;
  try {
    LocalCluster::Create(o);
  } catch (const Error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK_THAT(message, Catch::StartsWith("initdb failed") &&
                          Catch::Contains("No space left on device") &&
                          !Catch::Contains("removing data directory"));
  CHECK(test::ListDir(dir / "tiny").empty());
}
