// Retention and point-in-time recovery window objectives against a real archive, scraped from the
// real daemon: two base backups of an archiving primary; the oldest backup kept and the PITR
// window start at the older one; deleting it (a retention job gone too far) moves both to the
// newer one; a segment lost after the newer backup's start leaves no backup with an unbroken
// chain, so the window shrinks to nothing. Every wait bounded; TestDir removes everything.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>

#include "agent/pg/process.h"
#include "tests/support/agent_process.h"
#include "tests/support/physical_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

std::optional<double> Scraped(int port, const std::string& metric,
                              const std::vector<std::string>& labels = {}) {
  return test::MetricValue(test::HttpGet(port, "/metrics").body, metric, labels);
}

}  // namespace

TEST_CASE("retention and PITR window objectives follow the real backups and archive",
          "[integration][retention]") {
  test::TestDir dir("rwretention-");
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  primary->Psql("create table t (id int primary key); insert into t select generate_series(1, 100)");
  const std::string backups = dir / "backups";
  MakeDirs(backups, 0755, test::ServerUser());
  test::BaseBackup(*primary, backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*primary, archive);
  std::this_thread::sleep_for(1100ms);  // the backups' times differ by more than a second
  test::BaseBackup(*primary, backups + "/b2", {"-Fp"});
  primary->Psql("insert into t select generate_series(101, 200)");
  test::SwitchAndWait(*primary, archive);

  const int port = PickFreePort();
  std::string cfg = test::PhysicalConfig(dir, primary->ConnInfo("postgres"), backups, archive,
                                         "latest");
  cfg.replace(cfg.find("listen = \"127.0.0.1:0\""), 22,
              "listen = \"127.0.0.1:" + std::to_string(port) + "\"");
  cfg.replace(cfg.find("[target.backup]\n"), 16,
              "monitor_interval = \"1s\"\n\n[target.backup]\nmin_retention = \"30d\"\n"
              "pitr_window = \"7d\"\ncatalogue_interval = \"1s\"\nsettle = \"100ms\"\n");
  test::WriteFile(dir / "agent.toml", cfg);
  test::AgentProcess agent({"run", "-c", dir / "agent.toml"}, dir / "agent.log");
  INFO(agent.Log());

  // Both objectives are exported as configured.
  REQUIRE(test::Eventually(
      [&] { return Scraped(port, "restorewatch_pitr_window_start_timestamp_seconds").has_value(); },
      30));
  CHECK(Scraped(port, "restorewatch_backup_min_retention_seconds") == 30 * 86400.0);
  CHECK(Scraped(port, "restorewatch_pitr_window_objective_seconds") == 7 * 86400.0);
  const auto oldest1 =
      Scraped(port, "restorewatch_backup_oldest_timestamp_seconds", {"kind=\"full\""});
  const auto newest =
      Scraped(port, "restorewatch_backup_last_completion_timestamp_seconds", {"kind=\"full\""});
  REQUIRE(oldest1);
  REQUIRE(newest);
  CHECK(*oldest1 < *newest);  // b1, then b2
  CHECK(std::abs(*oldest1 - NowUnix()) < 600);
  // The window runs from b1's end (its chain is unbroken) to the newest segment.
  CHECK(Scraped(port, "restorewatch_pitr_window_start_timestamp_seconds") == *oldest1);
  const auto end1 = Scraped(port, "restorewatch_pitr_window_end_timestamp_seconds");
  REQUIRE(end1);
  CHECK(*end1 >= *newest - 1);

  // A retention job removes b1: the oldest backup kept and the window both move to b2.
  REQUIRE(RemoveTree(backups + "/b1"));
  CHECK(test::Eventually(
      [&] {
        return Scraped(port, "restorewatch_backup_oldest_timestamp_seconds", {"kind=\"full\""}) ==
               *newest;
      },
      30));
  CHECK(test::Eventually(
      [&] { return Scraped(port, "restorewatch_pitr_window_start_timestamp_seconds") == *newest; },
      30));

  // A segment lost after b2's start: no backup left with an unbroken chain, the window is empty.
  const std::string lost = test::SwitchAndWait(*primary, archive);
  primary->Psql("insert into t values (1000)");
  test::SwitchAndWait(*primary, archive);
  REQUIRE(::unlink((archive + "/" + lost).c_str()) == 0);
  CHECK(test::Eventually(
      [&] {
        auto s = Scraped(port, "restorewatch_pitr_window_start_timestamp_seconds");
        auto e = Scraped(port, "restorewatch_pitr_window_end_timestamp_seconds");
        return s && e && *s == *e && Scraped(port, "restorewatch_wal_archive_gaps") >= 1.0;
      },
      30));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(20s) == 0);
}
