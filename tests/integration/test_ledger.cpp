// The verification ledger and drill.pick through the real binary (agent/ledger.h,
// agent/runtime/drill_pick.h): `restorewatch verify` with pick = "random" drills three real
// pg_dump files in turn until all are verified, the daemon started afterwards (and restarted)
// exports and serves what the ledger holds; backups being written show as
// restorewatch_backup_running 1 (a base backup without backup_manifest, a directory-format dump
// without toc.dat, a command list entry with "running": true) and stop counting once quiet; a
// picked older base backup recovers to its own consistent end.
#include <signal.h>
#include <sys/stat.h>
#include <utime.h>

#include <catch2/catch.hpp>
#include <set>

#include "agent/json.h"
#include "agent/pg/pg_cluster.h"
#include "agent/units.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/physical_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::WriteFile;

std::string AgentSection(const test::TestDir& dir, int port) {
  return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
         (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") + "\"\nlog_format = \"json\"\n\n";
}

// Sets the mtime of `path` (and, for a directory, of its entries, one level) to `when`.
void SetMtime(const std::string& path, double when, bool entries = false) {
  if (entries)
    for (const auto& n : test::ListDir(path)) SetMtime(path + "/" + n, when, false);
  struct utimbuf t {};
  t.actime = t.modtime = static_cast<time_t>(when);
  REQUIRE(utime(path.c_str(), &t) == 0);
}

// The JSON report of one `verify --json` run of target t1.
json::Value VerifyJson(const std::string& cfg) {
  auto r = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  json::Value doc;
  std::string why;
  REQUIRE(json::Parse(r.out, &doc, &why));
  const json::Value* reports = doc.Get("drills");
  REQUIRE(reports);
  REQUIRE(reports->a.size() == 1);
  return reports->a[0];
}

}  // namespace

TEST_CASE("pick = random drills three dumps in turn until all are verified; the ledger survives",
          "[integration][ledger]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql(
      "create table items(id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 500) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  const double now = NowUnix();
  for (int i = 1; i <= 3; ++i) {
    const std::string f = backups + "/db-" + std::to_string(i) + ".dump";
    REQUIRE(test::RunPgTool("pg_dump", {"-Fc", "-d", cluster->ConnInfo("app"), "-f", f}).ok());
    SetMtime(f, now - 3600 * (4 - i));  // db-1 oldest, all settled
  }
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, AgentSection(dir, port) + "[[target]]\nname = \"t1\"\nsource = \"" +
                     cluster->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\ncatalogue_interval = "
                     "\"1s\"\n\n[target.drill]\npick = \"random\"\n\n[target.checks]\n"
                     "stats_settle = \"1s\"\n");

  // Two drills: each a backup never drilled before.
  std::set<std::string> drilled;
  for (int i = 0; i < 2; ++i) {
    json::Value rep = VerifyJson(cfg);
    CHECK(rep.Str("result") == "success");
    const std::string id = rep.Get("backup")->Str("id");
    INFO(rep.Str("pick"));
    CHECK(rep.Str("pick").find("random: never drilled (" + std::to_string(3 - i) +
                               " of 3 backups)") == 0);
    CHECK(drilled.insert(id).second);
  }
  const std::string ledger_file = dir / "state/t1/ledger.toml";
  const std::string ledger_text = test::ReadFile(ledger_file);
  for (const auto& id : drilled) CHECK(ledger_text.find(id) != std::string::npos);

  // The daemon reads the ledger the verify runs wrote: 2 verified, 1 not.
  {
    test::AgentProcess agent({"run", "-c", cfg}, dir / "agent1.log");
    INFO(agent.Log());
    auto metric = [&](const char* name) {
      return test::MetricValue(test::HttpGet(port, "/metrics").body, name, {"target=\"t1\""});
    };
    CHECK(Eventually([&] { return metric("restorewatch_backups_verified") == 2.0; }, 30));
    CHECK(metric("restorewatch_backups_unverified") == 1.0);
    CHECK(metric("restorewatch_backup_running") == 0.0);
    auto api = test::HttpGet(port, "/api/v1/targets/t1/ledger");
    CHECK(api.status == 200);
    json::Value v;
    REQUIRE(json::Parse(api.body, &v));
    REQUIRE(v.Get("backups")->a.size() == 2);
    for (const auto& b : v.Get("backups")->a) {
      CHECK(drilled.count(b.Str("id")) == 1);
      CHECK(b.Str("verdict") == "success");
      CHECK(b.Num("drills") == 1);
    }
    CHECK(test::HttpGet(port, "/api/v1/targets/nope/ledger").status == 404);
    agent.Signal(SIGTERM);
    CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
  }

  // The third drill takes the one left; then all are verified, and a fourth takes the least
  // recently verified (the first), saying so.
  json::Value third = VerifyJson(cfg);
  CHECK(third.Str("pick").find("random: never drilled (1 of 3 backups)") == 0);
  CHECK(drilled.insert(third.Get("backup")->Str("id")).second);
  CHECK(drilled.size() == 3);
  auto text = test::RunAgent({"verify", "-c", cfg});
  INFO(text.out << text.err);
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("picked random: all 3 backups verified; the least recently verified") !=
        std::string::npos);

  // After a restart the daemon still knows: 3 verified, none left.
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent2.log");
  INFO(agent.Log());
  auto scrape = [&] { return test::HttpGet(port, "/metrics").body; };
  CHECK(Eventually(
      [&] {
        return test::MetricValue(scrape(), "restorewatch_backups_verified", {"target=\"t1\""}) ==
               3.0;
      },
      30));
  CHECK(test::MetricValue(scrape(), "restorewatch_backups_unverified", {"target=\"t1\""}) == 0.0);
  json::Value v;
  REQUIRE(json::Parse(test::HttpGet(port, "/api/v1/targets/t1/ledger").body, &v));
  REQUIRE(v.Get("backups")->a.size() == 3);
  std::size_t twice = 0;
  for (const auto& b : v.Get("backups")->a) twice += b.Num("drills") == 2;
  CHECK(twice == 1);
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
}

TEST_CASE("backups being written show restorewatch_backup_running 1 until they go quiet",
          "[integration][ledger]") {
  test::TestDir dir;
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  // A complete base backup, and one being written: its files without backup_manifest yet.
  const std::string base = dir / "base";
  MakeDirs(base, 0755, test::ServerUser());
  test::BaseBackup(*primary, base + "/b1", {"-Fp", "-X", "stream"});
  test::BaseBackup(*primary, base + "/b2", {"-Fp", "-X", "stream"});
  REQUIRE(std::remove((base + "/b2/backup_manifest").c_str()) == 0);
  // A directory-format dump being written (no toc.dat yet) beside a complete custom one.
  const std::string dumps = dir / "dumps";
  MakeDirs(dumps);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", primary->ConnInfo("postgres"), "-f", dumps + "/db-1.dump"})
              .ok());
  SetMtime(dumps + "/db-1.dump", NowUnix() - 600);
  MakeDirs(dumps + "/db-2.dump");
  WriteFile(dumps + "/db-2.dump/3456.dat.gz", "partial");
  // A command source whose list says one backup is running.
  const std::string list = dir / "list.sh";
  WriteFile(list,
            "#!/bin/sh\necho '[{\"id\": \"a\", \"time\": \"2026-11-24T02:00:03Z\", \"kind\": "
            "\"full\"}, {\"id\": \"b\", \"time\": \"2026-11-25T02:00:03Z\", \"kind\": \"full\", "
            "\"running\": true}]'\n");
  chmod(list.c_str(), 0755);

  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  const std::string source = primary->ConnInfo("postgres");
  WriteFile(
      cfg, AgentSection(dir, port) + "[[target]]\nname = \"phys\"\nsource = \"" + source +
               "\"\n[target.backup]\ntype = \"basebackup\"\npath = \"" + base +
               "\"\nwal_archive = \"" + archive + "\"\ncatalogue_interval = \"1s\"\n" +
               "max_age_by_kind = { full = \"8d\" }\n\n" +
               "[[target]]\nname = \"dump\"\nsource = \"" + source +
               "\"\n[target.backup]\npath = \"" + dumps +
               "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\ncatalogue_interval = \"1s\"\n\n" +
               "[[target]]\nname = \"cmd\"\nsource = \"" + source +
               "\"\n[target.backup]\ntype = \"command\"\nlist = [\"" + list +
               "\"]\nfetch = [\"/bin/false\", \"{id}\", \"{dir}\"]\ncatalogue_interval = \"1s\"\n");
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  auto value = [&](const std::string& target, const std::string& name, const std::string& kind) {
    return test::MetricValue(test::HttpGet(port, "/metrics").body, name,
                             {"target=\"" + target + "\"", "kind=\"" + kind + "\""});
  };
  CHECK(
      Eventually([&] { return value("phys", "restorewatch_backup_running", "full") == 1.0; }, 30));
  CHECK(value("phys", "restorewatch_backups_available", "full") == 1.0);  // b1 only
  CHECK(value("phys", "restorewatch_backup_kind_max_age_seconds", "full") == 8 * 86400.0);
  CHECK(Eventually([&] { return value("dump", "restorewatch_backup_running", "logical") == 1.0; },
                   30));
  CHECK(value("dump", "restorewatch_backups_available", "logical") == 1.0);
  CHECK(Eventually([&] { return value("cmd", "restorewatch_backup_running", "full") == 1.0; }, 30));
  CHECK(value("cmd", "restorewatch_backups_available", "full") == 1.0);  // "a" only

  // Writers that died: nothing changed for longer than the quiet bound (15 min): no longer
  // running, so the backup-age alerts are no longer held back.
  const double old = NowUnix() - 3600;
  for (const char* sub : {"/base", "/pg_wal"}) SetMtime(base + "/b2" + sub, old, true);
  SetMtime(base + "/b2", old, true);
  SetMtime(dumps + "/db-2.dump", old, true);
  CHECK(
      Eventually([&] { return value("phys", "restorewatch_backup_running", "full") == 0.0; }, 30));
  CHECK(Eventually([&] { return value("dump", "restorewatch_backup_running", "logical") == 0.0; },
                   30));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
}

TEST_CASE("pick = random on base backups: an older one recovers to its own consistent end",
          "[integration][ledger]") {
  test::TestDir dir;
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  primary->Psql("create database app");
  primary->Psql("create table t(id int primary key); insert into t select generate_series(1, 100)",
                "app");
  const std::string base = dir / "base";
  MakeDirs(base, 0755, test::ServerUser());
  test::BaseBackup(*primary, base + "/b1", {"-Fp", "-X", "stream"});
  // No writes after b1: the copy of the older backup must equal the source (without the daemon's
  // activity samples a difference could not be explained, and would be unverified).
  test::SwitchAndWait(*primary, archive);
  test::BaseBackup(*primary, base + "/b2", {"-Fp", "-X", "stream"});
  test::SwitchAndWait(*primary, archive);
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, AgentSection(dir, PickFreePort()) + "[[target]]\nname = \"t1\"\nsource = \"" +
                     primary->ConnInfo("app") +
                     "\"\n[target.backup]\ntype = "
                     "\"basebackup\"\npath = \"" +
                     base + "\"\nwal_archive = \"" + archive +
                     "\"\n\n[target.drill]\npick = \"random\"\ntimeout = \"5m\"\n\n"
                     "[target.checks]\nstats_settle = \"1s\"\n");
  // Two drills take both backups (never drilled first); the older one is recovered with
  // recovery_target = 'immediate', the newest to the end of the archive as with pick = "latest".
  std::set<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    json::Value rep = VerifyJson(cfg);
    CHECK(rep.Str("result") == "success");
    const std::string id = rep.Get("backup")->Str("id");
    seen.insert(id);
    const std::string pick = rep.Str("pick");
    INFO(id << ": " << pick);
    bool immediate = false;
    for (const auto& step : rep.Get("steps")->a)
      if (const json::Value* settings = step.Get("settings"))
        for (const auto& kv : settings->a)
          immediate |= kv.Str("name") == "recovery_target" && kv.Str("value") == "'immediate'";
    if (id == "b1") {
      CHECK(pick.find("an older backup, recovered to its own consistent end") != std::string::npos);
      CHECK(immediate);
    } else {
      CHECK(pick.find("consistent end") == std::string::npos);
      CHECK_FALSE(immediate);
    }
  }
  CHECK(seen == std::set<std::string>{"b1", "b2"});
}
