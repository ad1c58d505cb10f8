// The pgBackRest source end to end (`restorewatch verify`, the real binary, and the real
// pgbackrest): a PostgreSQL 15 primary archiving with `pgbackrest archive-push`, stanza-create, a
// full then an incr backup with writes between, then drills of a `type = "pgbackrest"` target:
// to the end of the archive and to a time pass, with pgBackRest's verify and restore in the
// fetch stage and the copy's point in the report; an unknown stanza fails quoting pgbackrest; a
// WAL segment lost from the archive and a file deleted from the repository fail naming them; the
// same drill against a repository on S3 (npm's s3rver, installed by .ci/setup into
// /opt/restorewatch-test) passes without the S3 key ever being printed. Every wait is bounded;
// TestDir removes everything.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "agent/json.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/units.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/s3rver.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

const char* kStanza = "demo";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Runs pgbackrest as the server user with `conf`; REQUIRE-fails with its output otherwise.
std::string Pgbackrest(const std::string& conf, const std::vector<std::string>& args,
                       Duration timeout = 3min) {
  ProcessSpec spec;
  spec.argv = {"pgbackrest", "--config=" + conf, std::string("--stanza=") + kStanza};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.run_as = test::ServerUser();
  spec.timeout = timeout;
  ProcessResult r = RunProcess(spec);
  INFO("pgbackrest " << args.back() << ": " << r.out << r.err);
  REQUIRE(r.ok());
  return r.out;
}

// A directory the server user owns (repository, logs, locks).
std::string OwnedDir(const test::TestDir& dir, const std::string& name) {
  MakeDirs(dir / name, 0750, test::ServerUser());
  return dir / name;
}

// pgbackrest.conf: [global] with `repo` (the repository lines), [demo] for the primary.
void WriteConf(const test::TestDir& dir, const LocalCluster& c, const std::string& repo) {
  test::WriteFile(dir / "pgbackrest.conf",
                  "[global]\n" + repo + "log-path=" + OwnedDir(dir, "pgbr-log") + "\nlock-path=" +
                      OwnedDir(dir, "pgbr-lock") + "\nspool-path=" + OwnedDir(dir, "pgbr-spool") +
                      "\nstart-fast=y\nrepo1-retention-full=2\ncompress-level=1\n\n[" + kStanza +
                      "]\npg1-path=" + c.data_dir() + "\npg1-port=" + std::to_string(c.port()) +
                      "\npg1-socket-path=" + c.socket_dir() + "\npg1-user=postgres\n");
  chmod((dir / "pgbackrest.conf").c_str(), 0644);
}

std::unique_ptr<LocalCluster> StartPrimary(const test::TestDir& dir) {
  test::ClusterSpec ps;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'pgbackrest --config=" + (dir / "pgbackrest.conf") +
                                         " --stanza=" + kStanza + " archive-push %p'"},
                 {"max_wal_senders", "10"}};
  return test::StartCluster(dir, ps);
}

// The newest backup label of a kind, from `info --output=json`.
std::string Label(const std::string& conf, const std::string& type) {
  json::Value v;
  REQUIRE(json::Parse(Pgbackrest(conf, {"--output=json", "info"}), &v));
  REQUIRE(v.t == json::Value::T::kArr);
  std::string label;
  for (const auto& b : v.a.at(0).Get("backup")->a)
    if (b.Str("type") == type) label = b.Str("label");
  REQUIRE(!label.empty());
  return label;
}

std::string AgentConfig(const test::TestDir& dir, const std::string& source,
                        const std::string& stanza, const std::string& target) {
  return "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
         "\"\nwork_dir = \"" + (dir / "work") + "\"\n\n[[target]]\nname = \"pgbr\"\nsource = \"" +
         source + "\"\n\n[target.backup]\ntype = \"pgbackrest\"\nstanza = \"" + stanza +
         "\"\nconfig = \"" + (dir / "pgbackrest.conf") +
         "\"\n\n[target.drill]\nrecovery_target = \"" + target +
         "\"\ntimeout = \"5m\"\n\n[target.checks]\nstats_settle = \"1s\"\n";
}

// The source's writes: a static table (never written after the full backup, so the incr
// references the full's copy of it) and items, written before and between the backups.
void Workload(const LocalCluster& p, const std::string& conf, std::string* full,
              std::string* incr) {
  p.Psql("create database app");
  p.Psql(
      "create table static_t (id int primary key, v text);"
      "insert into static_t select g, 'static ' || g from generate_series(1, 5000) g;"
      "create table items (id int primary key, name text, at timestamptz default now());"
      "insert into items (id, name) select g, 'item ' || g from generate_series(1, 20000) g;",
      "app");
  Pgbackrest(conf, {"stanza-create"});
  Pgbackrest(conf, {"--type=full", "backup"});
  for (int batch = 0; batch < 5; ++batch)
    p.Psql("insert into items (id, name) select g, 'between ' || g from generate_series(" +
               std::to_string(20001 + batch * 1000) + ", " + std::to_string(21000 + batch * 1000) +
               ") g",
           "app");
  Pgbackrest(conf, {"--type=incr", "backup"});
  p.Psql(
      "insert into items (id, name) select g, 'after ' || g from generate_series(30001, 31000) g",
      "app");
  Pgbackrest(conf, {"check"});  // switches WAL and waits until it is archived
  *full = Label(conf, "full");
  *incr = Label(conf, "incr");
}

// The one drill of `verify --json` ({"schema_version": 1, "drills": [...]}).
json::Value Report(const ProcessResult& r) {
  json::Value v;
  REQUIRE(json::Parse(r.out, &v));
  const json::Value* drills = v.Get("drills");
  REQUIRE(drills != nullptr);
  REQUIRE(drills->a.size() == 1);
  return drills->a[0];
}

}  // namespace

TEST_CASE("pgbackrest drills to the end of the archive and to a time pass",
          "[integration][pgbackrest]") {
  REQUIRE(FindProgram("pgbackrest"));
  test::TestDir dir("rwpgbr-");
  auto primary = StartPrimary(dir);
  const std::string conf = dir / "pgbackrest.conf";
  const std::string repo = OwnedDir(dir, "repo");
  WriteConf(dir, *primary, "repo1-path=" + repo + "\n");
  std::string full, incr;
  Workload(*primary, conf, &full, &incr);
  const std::string source = primary->ConnInfo("app");
  const std::string cfg = dir / "agent.toml";

  // To the end of the archive: the incr backup plus every archived segment after it.
  test::WriteFile(cfg, AgentConfig(dir, source, kStanza, "latest"));
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(incr) != std::string::npos);
  CHECK(r.out.find("pgbackrest verify") != std::string::npos);
  CHECK(r.out.find("pgbackrest restore") != std::string::npos);
  CHECK(r.out.find("recovered to the end of the archive at ") != std::string::npos);
  CHECK(r.out.find("bytes of WAL replayed") != std::string::npos);
  {
    json::Value d = Report(r);
    const json::Value* copy = d.Get("copy");
    REQUIRE(copy != nullptr);
    CHECK(!copy->Str("lsn").empty());
    CHECK(copy->Num("consistent_at") > 0);
  }
  CHECK(test::ListDir(dir / "work").empty());

  // To a time after every write to app, with a commit after it in another database (recovery
  // to a time needs one): the copy stops there and still holds all of app.
  const std::string point = Trim(primary->Psql(
      "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"));
  std::this_thread::sleep_for(1100ms);
  primary->Psql(
      "create table marker (at timestamptz default now()); insert into marker default values");
  Pgbackrest(conf, {"check"});
  test::WriteFile(cfg, AgentConfig(dir, source, kStanza, point));
  r = test::RunAgent({"verify", "-c", cfg, "--json"}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("recovered to " + point) != std::string::npos);
  {
    json::Value d = Report(r);
    const json::Value* copy = d.Get("copy");
    REQUIRE(copy != nullptr);
    const double at = copy->Num("consistent_at");
    auto limit = ParseTimestamp(point);
    REQUIRE(limit);
    CHECK(at > 0);
    CHECK(at <= *limit + 1e-3);  // the marker's commit, after the point, was not replayed
  }
  CHECK(test::ListDir(dir / "work").empty());
}

TEST_CASE(
    "pgbackrest drills: an unknown stanza, a WAL segment lost from the archive and a backup file "
    "missing from the repository fail naming them",
    "[integration][pgbackrest]") {
  REQUIRE(FindProgram("pgbackrest"));
  test::TestDir dir("rwpgbr-");
  auto primary = StartPrimary(dir);
  const std::string conf = dir / "pgbackrest.conf";
  const std::string repo = OwnedDir(dir, "repo");
  WriteConf(dir, *primary, "repo1-path=" + repo + "\n");
  std::string full, incr;
  Workload(*primary, conf, &full, &incr);
  const std::string source = primary->ConnInfo("app");
  const std::string cfg = dir / "agent.toml";

  // An unknown stanza: pgbackrest's own words, never a pass.
  test::WriteFile(cfg, AgentConfig(dir, source, "nope", "latest"));
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code != 0);
  CHECK(r.out.find("pgbackrest info: stanza \"nope\": missing stanza path") != std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());

  // A WAL segment after the backup lost from the repository's archive: recovery to latest
  // stops before the newest archived segment, and the drill fails naming that segment.
  primary->Psql("insert into items (id, name) values (40000, 'lost')", "app");
  const std::string lost = Trim(primary->Psql("select pg_walfile_name(pg_current_wal_lsn())"));
  Pgbackrest(conf, {"check"});
  primary->Psql("insert into items (id, name) values (40001, 'after the loss')", "app");
  Pgbackrest(conf, {"check"});
  json::Value info;
  REQUIRE(json::Parse(Pgbackrest(conf, {"--output=json", "info"}), &info));
  const std::string newest = info.a.at(0).Get("archive")->a.at(0).Str("max");
  REQUIRE(newest > lost);
  const std::string wal_dir = repo + "/archive/" + kStanza + "/15-1/" + lost.substr(0, 16);
  std::string lost_file;
  for (const auto& f : test::ListDir(wal_dir))
    if (f.rfind(lost + "-", 0) == 0) lost_file = wal_dir + "/" + f;
  INFO("archive: " << wal_dir);
  REQUIRE(!lost_file.empty());
  REQUIRE(::unlink(lost_file.c_str()) == 0);
  test::WriteFile(cfg, AgentConfig(dir, source, kStanza, "latest"));
  r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("before the newest archived segment " + newest) != std::string::npos);
  CHECK(r.out.find("WAL from segment " + lost + " on is missing or unreadable") !=
        std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());

  // A file of the full backup that the incr references, deleted from the repository.
  const std::string rel = Trim(primary->Psql("select pg_relation_filepath('static_t')", "app"));
  const std::string file = full + "/pg_data/" + rel + ".gz";
  REQUIRE(::unlink((repo + "/backup/" + kStanza + "/" + file).c_str()) == 0);
  r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("file missing '" + file + "'") != std::string::npos);
  CHECK(r.out.find("fetch     fail") != std::string::npos);
  CHECK(r.out.find("fetch     pass") == std::string::npos);  // never also reported as passed
  CHECK(test::ListDir(dir / "work").empty());
}

TEST_CASE("pgbackrest drill of a repository on S3 (s3rver)", "[integration][pgbackrest]") {
  REQUIRE(FindProgram("pgbackrest"));
  test::TestDir dir("rwpgbrs3-");
  // HTTPS with a self-signed certificate for 127.0.0.1 (pgBackRest is told not to verify it).
  test::S3rver s3rver(dir, {"pgbr"}, /*tls=*/true);
  const int port = s3rver.port();

  auto primary = StartPrimary(dir);
  const std::string conf = dir / "pgbackrest.conf";
  WriteConf(dir, *primary,
            "repo1-type=s3\nrepo1-path=/demo\nrepo1-s3-bucket=pgbr\nrepo1-s3-endpoint=127.0.0.1\n"
            "repo1-storage-port=" +
                std::to_string(port) +
                "\nrepo1-s3-region=us-east-1\nrepo1-s3-key=S3RVER\nrepo1-s3-key-secret=S3RVER\n"
                "repo1-s3-uri-style=path\nrepo1-storage-verify-tls=n\n");
  std::string full, incr;
  Workload(*primary, conf, &full, &incr);
  const std::string cfg = dir / "agent.toml";
  test::WriteFile(cfg, AgentConfig(dir, primary->ConnInfo("app"), kStanza, "latest"));
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(incr) != std::string::npos);
  CHECK(r.out.find("pgbackrest restore") != std::string::npos);
  // The repository's key lives in pgbackrest.conf only.
  CHECK(r.out.find("S3RVER") == std::string::npos);
  CHECK(r.err.find("S3RVER") == std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());

  // The daemon's catalogue collector exports the stanza's backups per kind.
  const int http = PickFreePort();
  std::string daemon_cfg = test::ReadFile(cfg);
  const std::string from = "listen = \"127.0.0.1:0\"";
  daemon_cfg.replace(daemon_cfg.find(from), from.size(),
                     "listen = \"127.0.0.1:" + std::to_string(http) + "\"");
  test::WriteFile(cfg, daemon_cfg);
  test::AgentProcess daemon({"run", "-c", cfg}, dir / "daemon.log");
  std::string metrics;
  REQUIRE(test::Eventually(
      [&] {
        metrics = test::HttpGet(http, "/metrics").body;
        return test::MetricValue(metrics, "restorewatch_backups_available", {"kind=\"incr\""})
            .has_value();
      },
      60));
  INFO(metrics);
  CHECK(test::MetricValue(metrics, "restorewatch_backups_available", {"kind=\"full\""}) == 1.0);
  CHECK(test::MetricValue(metrics, "restorewatch_backups_available", {"kind=\"incr\""}) == 1.0);
  CHECK(test::MetricValue(metrics, "restorewatch_backup_last_completion_timestamp_seconds",
                          {"kind=\"incr\""})
            .value_or(0) > NowUnix() - 3600);
  CHECK(metrics.find("S3RVER") == std::string::npos);
  daemon.Signal(SIGTERM);
  CHECK(daemon.WaitExit(20s) == 0);
  CHECK(daemon.Log().find("S3RVER") == std::string::npos);
}
