// 3-2-1 copies end to end: the real daemon watches a primary backup directory and two copies of it
// (real pg_dump files: a custom-format dump, then a directory-format one), and `restorewatch
// verify` (the real binary, the daemon's drill path) restores from the offsite copy.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <thread>

#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/physical_fixture.h"

using namespace rw;
namespace fs = std::filesystem;

namespace {

using test::Eventually;
using test::WriteFile;

// A source with a little data, its backups in `primary`, copied to `nas` and `dr` (offsite).
struct Site {
  test::TestDir dir{"rwcopies-"};
  std::unique_ptr<LocalCluster> cluster;
  std::string primary = dir / "primary", nas = dir / "nas", dr = dir / "dr";

  Site() {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(
        "create table items(id int primary key, name text);"
        "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
        "app");
    for (const auto& d : {primary, nas, dr}) fs::create_directories(d);
  }
  void Dump(const std::string& format, const std::string& name) {
    auto r = test::RunPgTool(
        "pg_dump", {"-F" + format, "-d", cluster->ConnInfo("app"), "-f", primary + "/" + name});
    INFO(r.err);
    REQUIRE(r.ok());
  }
  // The primary's files into both copies, as a copy job does it (cp -a keeps modification
  // times, like rsync -a: a pg_dump's completion time is its file's mtime).
  void CopyAll() {
    for (const auto& to : {nas, dr}) {
      ProcessSpec spec;
      spec.argv = {"cp", "-a", "--", primary + "/.", to + "/"};
      auto r = RunProcess(spec);
      INFO(r.err);
      REQUIRE(r.ok());
    }
  }
  std::string Config(int port, const std::string& drill_from) const {
    return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
           (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
           "\"\nlog_format = \"json\"\n\n[[target]]\nname = \"t1\"\nsource = \"" +
           cluster->ConnInfo("app") +
           "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + primary +
           "\"\npattern = \"db-*\"\nsettle = \"100ms\"\ncatalogue_interval = \"1s\"\n"
           "copies = [{ name = \"nas\", path = \"" +
           nas +
           "\", medium = \"nas\" },\n"
           "          { name = \"dr\", path = \"" +
           dr +
           "\", offsite = true, medium = \"tape\" }]\n"
           "\n[target.drill]\nfrom = \"" +
           drill_from +
           "\"\n"
           "\n[target.checks]\nstats_settle = \"1s\"\n";
  }
};

std::optional<double> Metric(int port, const std::string& name,
                             const std::vector<std::string>& labels = {}) {
  return test::MetricValue(test::HttpGet(port, "/metrics").body, name, labels);
}

}  // namespace

TEST_CASE("copies: the daemon reports each copy and 3-2-1, and a copy losing the newest dump",
          "[integration][copies]") {
  Site site;
  site.Dump("c", "db-1.dump");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // dump headers: 1 s resolution
  site.Dump("d", "db-2.dir");  // the newest: a directory-format dump
  site.CopyAll();

  const int port = PickFreePort();
  const std::string cfg = site.dir / "agent.toml";
  WriteFile(cfg, site.Config(port, "primary"));
  auto check = test::RunAgent({"check-config", "-c", cfg});
  INFO(check.out << check.err);
  REQUIRE(check.exit_code == 0);

  test::AgentProcess agent({"run", "-c", cfg}, site.dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  auto present = [&](const char* location) {
    return Metric(port, "restorewatch_backup_copy_present",
                  {std::string("location=\"") + location + "\""});
  };
  REQUIRE(Eventually([&] { return Metric(port, "restorewatch_backup_321_ok") == 1.0; }, 30));
  CHECK(present("primary") == 1.0);
  CHECK(present("nas") == 1.0);
  CHECK(present("dr") == 1.0);
  CHECK(Metric(port, "restorewatch_backup_copy_present", {"location=\"dr\"", "offsite=\"true\""}) ==
        1.0);
  CHECK(Metric(port, "restorewatch_backup_copy_present",
               {"location=\"nas\"", "offsite=\"false\""}) == 1.0);
  const auto newest_primary = Metric(
      port, "restorewatch_backup_copy_last_completion_timestamp_seconds", {"location=\"primary\""});
  REQUIRE(newest_primary);
  CHECK(Metric(port, "restorewatch_backup_copy_last_completion_timestamp_seconds",
               {"location=\"dr\""}) >= *newest_primary);

  // The offsite copy loses the newest dump (one file of the directory, then all of it).
  fs::remove(site.dr + "/db-2.dir/toc.dat");
  CHECK(Eventually([&] { return present("dr") == 0.0; }, 30));
  fs::remove_all(site.dr + "/db-2.dir");
  CHECK(Eventually(
      [&] {
        auto dr = Metric(port, "restorewatch_backup_copy_last_completion_timestamp_seconds",
                         {"location=\"dr\""});
        return dr && *dr < *newest_primary;  // its newest is the older dump: stale, and visible
      },
      30));
  auto m = test::HttpGet(port, "/metrics").body;
  CHECK(test::MetricValue(m, "restorewatch_backup_copy_present", {"location=\"dr\""}) == 0.0);
  CHECK(test::MetricValue(m, "restorewatch_backup_copy_present", {"location=\"nas\""}) == 1.0);
  CHECK(test::MetricValue(m, "restorewatch_backup_321_ok") == 0.0);
  // The reason, in the JSON API.
  auto status = test::HttpGet(port, "/api/v1/status").body;
  CHECK(status.find("copy \\\"dr\\\" (" + site.dr +
                    ") does not hold the newest backup db-2.dir: lacks db-2.dir") !=
        std::string::npos);
  CHECK(status.find("3-2-1 not met for db-2.dir: 2 copies, 2 media, 0 offsite") !=
        std::string::npos);
  CHECK(agent.Log().find("backup copy does not hold the newest backup") != std::string::npos);

  // Copied again: back to 1.
  site.CopyAll();
  CHECK(Eventually([&] { return Metric(port, "restorewatch_backup_321_ok") == 1.0; }, 30));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
}

TEST_CASE(
    "copies: a drill from the offsite copy restores it, and is an error when it lacks the "
    "backup",
    "[integration][copies]") {
  Site site;
  site.Dump("c", "db-1.dump");
  site.CopyAll();
  const std::string cfg = site.dir / "agent.toml";
  WriteFile(cfg, site.Config(0, "offsite"));

  auto ok = test::RunAgent({"verify", "-c", cfg, "--json"});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  auto has = [&](const std::string& key, const std::string& value) {
    return std::regex_search(ok.out, std::regex("\"" + key + "\"\\s*:\\s*\"" + value + "\""));
  };
  CHECK(has("result", "success"));
  CHECK(has("location", "dr"));
  CHECK(has("path", site.dr + "/db-1.dump"));
  auto text = test::RunAgent({"verify", "-c", cfg});
  INFO(text.out);
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("read from copy \"dr\": " + site.dr + "/db-1.dump") != std::string::npos);

  // The offsite copy lacks the newest backup: an error naming it, never a pass from the primary.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  site.Dump("c", "db-2.dump");
  fs::copy_file(site.primary + "/db-2.dump", site.nas + "/db-2.dump");  // only onsite
  auto bad = test::RunAgent({"verify", "-c", cfg});
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("offsite copy \"dr\" (" + site.dr +
                     ") does not hold backup db-2.dump: "
                     "lacks db-2.dump") != std::string::npos);
  CHECK(bad.out.find("SUCCESS") == std::string::npos);
  CHECK(bad.out.find("restore: skipped: not run: discover did not pass") != std::string::npos);
  CHECK(test::ListDir(site.dir / "work").empty());
}

TEST_CASE("copies: base backup directories, checked by the daemon and drilled from offsite",
          "[integration][copies]") {
  test::TestDir dir("rwcopiesbb-");
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string backups = dir / "backups", nas = dir / "nas", dr = dir / "dr";
  MakeDirs(backups, 0755, test::ServerUser());
  test::BaseBackup(*primary, backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*primary, archive);
  for (const auto& to : {nas, dr}) {
    MakeDirs(to);
    ProcessSpec cp;
    cp.argv = {"cp", "-a", "--", backups + "/.", to + "/"};
    REQUIRE(RunProcess(cp).ok());
  }
  const int port = PickFreePort();
  std::string config =
      test::PhysicalConfig(dir, primary->ConnInfo("app"), backups, archive, "immediate");
  auto insert_after = [&](const std::string& at, const std::string& text) {
    const auto p = config.find(at);
    REQUIRE(p != std::string::npos);
    config.insert(p + at.size(), text);
  };
  const std::string any_port = "127.0.0.1:0\"";
  REQUIRE(config.find(any_port) != std::string::npos);
  config.replace(config.find(any_port), any_port.size(),
                 "127.0.0.1:" + std::to_string(port) + "\"");
  insert_after("[target.backup]\n",
               "catalogue_interval = \"1s\"\ncopies = [{ name = \"nas\", path = \"" + nas +
                   "\", medium = \"nas\" }, { name = \"dr\", path = \"" + dr +
                   "\", offsite = true }]\n");
  insert_after("[target.drill]\n", "from = \"offsite\"\n");
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, config);

  {
    test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
    INFO(agent.Log());
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
    // primary and dr share a file system (one medium by default), nas is its own medium.
    CHECK(Eventually([&] { return Metric(port, "restorewatch_backup_321_ok") == 1.0; }, 30));
    CHECK(Metric(port, "restorewatch_backup_copy_present", {"location=\"dr\""}) == 1.0);
    CHECK(Metric(port, "restorewatch_backup_copy_last_completion_timestamp_seconds",
                 {"location=\"dr\""}) ==
          Metric(port, "restorewatch_backup_copy_last_completion_timestamp_seconds",
                 {"location=\"primary\""}));
    agent.Signal(SIGTERM);
    CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
  }

  auto ok = test::RunAgent({"verify", "-c", cfg}, std::chrono::minutes(5));
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("read from copy \"dr\": " + dr + "/b1") != std::string::npos);

  // A file of the offsite backup directory is lost: the drill is an error naming the copy.
  fs::remove(dr + "/b1/backup_manifest");
  auto bad = test::RunAgent({"verify", "-c", cfg}, std::chrono::minutes(5));
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("offsite copy \"dr\" (" + dr +
                     ") does not hold backup b1: lacks "
                     "b1/backup_manifest") != std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());
}
