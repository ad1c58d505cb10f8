// State files damaged by a crash, a full disk or a hand edit: each is moved aside with what can be
// rebuilt rebuilt, counters never go negative or backwards; a drill interrupted by the agent's
// death is recorded as an error; owner identities tell a dead owner from a live or reused pid.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "agent/orphans.h"
#include "agent/state.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::ReadFile;
using test::WriteFile;

DrillReport Drill(DrillResult result, double finished_at) {
  DrillReport r;
  r.target = "t1";
  r.run_id = "run-" + std::to_string(static_cast<long long>(finished_at));
  r.started_at = finished_at - 10;
  r.finished_at = finished_at;
  r.result = result;
  r.reason = result == DrillResult::kSuccess ? "" : "something went wrong";
  r.sandbox = "ephemeral";
  r.stages.push_back(StageResult{"restore", Outcome::kPass, "ok", 5});
  return r;
}

// Names in dir starting with prefix.
std::vector<std::string> WithPrefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& n : test::ListDir(dir))
    if (n.rfind(prefix, 0) == 0) out.push_back(n);
  return out;
}

// A pid that certainly belonged to a process that is gone now.
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int st = 0;
  waitpid(pid, &st, 0);
  return pid;
}

// Two successes then a failure, as the daemon would have recorded them.
void RecordThree(const std::string& dir) {
  DrillHistory h(dir);
  h.Record(Drill(DrillResult::kSuccess, 1000));
  h.Record(Drill(DrillResult::kSuccess, 2000));
  h.Record(Drill(DrillResult::kFailure, 3000));
}

void CheckThree(const DrillHistorySummary& s) {
  CHECK(s.last_success == 2000);
  CHECK(s.last_failure == 3000);
  CHECK(s.last_run == 3000);
  CHECK(s.runs_by_result.at("success") == 2);
  CHECK(s.runs_by_result.at("failure") == 1);
}

}  // namespace

TEST_CASE("a corrupt drills.toml is moved aside and rebuilt from last_drill.toml",
          "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  RecordThree(d);
  std::string damage = GENERATE(as<std::string>{}, "garbage", "truncated", "empty", "negative");
  INFO(damage);
  std::string good = ReadFile(d + "/drills.toml");
  if (damage == "garbage") WriteFile(d + "/drills.toml", "\x01\x02 not = = toml [[[");
  if (damage == "truncated") WriteFile(d + "/drills.toml", good.substr(0, good.size() / 2));
  if (damage == "empty") WriteFile(d + "/drills.toml", "");
  if (damage == "negative")
    WriteFile(d + "/drills.toml", "last_run = 3000.0\n[runs]\nsuccess = -4\nfailure = 1\n");

  DrillHistory h(d);
  DrillHistorySummary s = h.Load();
  CheckThree(s);
  REQUIRE(s.last_report);
  CHECK(s.last_report->run_id == "run-3000");
  auto aside = WithPrefix(d, "drills.toml.corrupt-");
  CHECK(aside.size() == 1);
  // The rebuilt summary was written back: it is valid on its own now.
  CHECK(ReadFile(d + "/drills.toml").find("success = 2") != std::string::npos);

  // The next failed drill keeps last_success (it used to be lost for good).
  h.Record(Drill(DrillResult::kFailure, 4000));
  DrillHistorySummary after = DrillHistory(d).Load();
  CHECK(after.last_success == 2000);
  CHECK(after.last_failure == 4000);
  CHECK(after.runs_by_result.at("success") == 2);
  CHECK(after.runs_by_result.at("failure") == 2);
  for (const auto& [k, v] : after.runs_by_result) CHECK(v >= 0);
}

TEST_CASE("a corrupt last_drill.toml is moved aside and the summary is kept", "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  RecordThree(d);
  std::string good = ReadFile(d + "/last_drill.toml");
  WriteFile(d + "/last_drill.toml", good.substr(0, good.size() - 40));
  DrillHistorySummary s = DrillHistory(d).Load();
  CheckThree(s);
  CHECK_FALSE(s.last_report);
  CHECK(WithPrefix(d, "last_drill.toml.corrupt-").size() == 1);
  CHECK(WithPrefix(d, "drills.toml.corrupt-").empty());
}

TEST_CASE("both drill state files damaged: counts restart at zero, never negative",
          "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  RecordThree(d);
  WriteFile(d + "/drills.toml", "[runs]\nsuccess = 'x'\n");
  WriteFile(d + "/last_drill.toml", "{{{");
  DrillHistory h(d);
  DrillHistorySummary s = h.Load();
  CHECK_FALSE(s.last_success);
  CHECK_FALSE(s.last_report);
  CHECK(WithPrefix(d, "drills.toml.corrupt-").size() == 1);
  CHECK(WithPrefix(d, "last_drill.toml.corrupt-").size() == 1);
  h.Record(Drill(DrillResult::kSuccess, 5000));
  s = h.Load();
  CHECK(s.last_success == 5000);
  CHECK(s.runs_by_result.at("success") == 1);
}

TEST_CASE("an older last_drill.toml without a summary copy still rebuilds the last run",
          "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  MakeDirs(d);
  // What the previous version wrote: the report alone, no header, no [history].
  WriteFile(d + "/last_drill.toml", ReportToToml(Drill(DrillResult::kSuccess, 7000)));
  WriteFile(d + "/drills.toml", "last_run = ");  // an old file cut short: does not parse
  DrillHistorySummary s = DrillHistory(d).Load();
  CHECK(s.last_success == 7000);
  CHECK(s.last_run == 7000);
  CHECK(s.runs_by_result.at("success") == 1);
  CHECK(WithPrefix(d, "drills.toml.corrupt-").size() == 1);
}

TEST_CASE("drill counters never go backwards within a process", "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  DrillHistory h(d);
  h.Record(Drill(DrillResult::kSuccess, 1000));
  std::string old_summary = ReadFile(d + "/drills.toml");
  std::string old_report = ReadFile(d + "/last_drill.toml");
  h.Record(Drill(DrillResult::kSuccess, 2000));
  h.Record(Drill(DrillResult::kError, 3000));
  // A restore of an old copy of the state dir (or a file system rolling back).
  WriteFile(d + "/drills.toml", old_summary);
  WriteFile(d + "/last_drill.toml", old_report);
  DrillHistorySummary s = h.Load();
  CHECK(s.runs_by_result.at("success") == 2);
  CHECK(s.runs_by_result.at("error") == 1);
  h.Record(Drill(DrillResult::kSuccess, 4000));
  CHECK(h.Load().runs_by_result.at("success") == 3);
}

TEST_CASE("a drill interrupted by the agent's death is recorded as an error at the next start",
          "[unit][state]") {
  test::TestDir dir;
  const std::string d = dir / "t1";
  { DrillHistory(d).Record(Drill(DrillResult::kSuccess, 1000)); }

  pid_t dead = DeadPid();
  ProcessIdentity gone = SelfIdentity();
  gone.pid = dead;
  gone.start_ticks = 1;
  WriteFile(d + "/drill_running." + std::to_string(dead) + ".toml",
            "target = 't1'\nstarted_at = 1500.0\nowner = '" + FormatIdentity(gone) + "'\n");
  // Beside it: a marker of a live owner (this process) and one of another host; both are kept.
  ProcessIdentity elsewhere = gone;
  elsewhere.host = "some-other-host";
  WriteFile(d + "/drill_running.1.toml",
            "target = 't1'\nstarted_at = 1500.0\nowner = '" + FormatIdentity(elsewhere) + "'\n");

  DrillHistory live(d);
  live.BeginDrill(1600);
  REQUIRE(live.recovered().size() == 1);

  DrillHistory h(d);               // a restart
  REQUIRE(h.recovered().empty());  // already recorded once
  DrillHistorySummary s = h.Load();
  CHECK(s.last_success == 1000);
  CHECK(s.runs_by_result.at("error") == 1);
  CHECK(s.runs_by_result.at("success") == 1);
  REQUIRE(s.last_report);
  CHECK(s.last_report->result == DrillResult::kError);
  CHECK(s.last_report->reason ==
        "interrupted: the agent stopped during the drill (pid " + std::to_string(dead) + ")");
  CHECK(s.last_report->started_at == 1500);
  auto markers = WithPrefix(d, "drill_running.");
  std::sort(markers.begin(), markers.end());
  CHECK(markers == std::vector<std::string>{"drill_running.1.toml",
                                            "drill_running." + std::to_string(getpid()) + ".toml"});
  // Recording the live drill clears its own marker only.
  live.Record(Drill(DrillResult::kSuccess, 1700));
  CHECK(WithPrefix(d, "drill_running.") == std::vector<std::string>{"drill_running.1.toml"});

  // An unreadable marker: moved aside, never counted.
  WriteFile(d + "/drill_running.77.toml", "owner = ");
  DrillHistory again(d);
  CHECK(again.recovered().empty());
  CHECK(WithPrefix(d, "drill_running.77.toml.corrupt-").size() == 1);
  CHECK(again.Load().runs_by_result.at("error") == 1);
}

TEST_CASE("owner identities: alive, gone, reused pid, other boot, other host", "[unit][state]") {
  const ProcessIdentity& self = SelfIdentity();
  CHECK(self.pid == getpid());
  CHECK(self.start_ticks > 0);
  CHECK_FALSE(self.host.empty());
  CHECK(OwnerStateOf(self) == OwnerState::kAlive);
  auto parsed = ParseIdentity("restorewatch:t1:run " + FormatIdentity(self));
  REQUIRE(parsed);
  CHECK(parsed->pid == self.pid);
  CHECK(parsed->start_ticks == self.start_ticks);
  CHECK(parsed->boot_id == self.boot_id);
  CHECK(parsed->host == self.host);

  ProcessIdentity reused = self;
  reused.start_ticks = self.start_ticks + 12345;
  CHECK(OwnerStateOf(reused) == OwnerState::kGone);
  ProcessIdentity dead = self;
  dead.pid = DeadPid();
  CHECK(OwnerStateOf(dead) == OwnerState::kGone);
  ProcessIdentity rebooted = self;
  rebooted.boot_id = "00000000-0000-0000-0000-000000000000";
  CHECK(OwnerStateOf(rebooted) == OwnerState::kGone);
  ProcessIdentity other = dead;
  other.host = "elsewhere";
  CHECK(OwnerStateOf(other) == OwnerState::kUnknown);
  CHECK_FALSE(ParseIdentity("restorewatch:t1:run"));
}
