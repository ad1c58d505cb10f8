// Drill scheduling policy (agent/runtime/schedule.h): slot jitter, due slots, the start/skip/wait
// decision, catch-up after downtime, and the schedule state file.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "agent/config.h"
#include "agent/runtime/schedule.h"
#include "agent/units.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

std::time_t At(const std::string& text) {
  auto t = ParseTimestamp(text);
  REQUIRE(t.has_value());
  return static_cast<std::time_t>(*t);
}

CronSchedule Cron(const std::string& text) {
  std::string error;
  auto c = CronSchedule::Parse(text, &error);
  INFO(text << ": " << error);
  REQUIRE(c.has_value());
  return *c;
}

std::string Ts(std::time_t t) { return FormatTimestamp(static_cast<double>(t)); }

}  // namespace

TEST_CASE("scheduler: slot jitter is fixed per target and slot, and within bounds",
          "[unit][scheduler]") {
  const Duration jitter = std::chrono::minutes(10);
  const std::time_t slot = At("2026-11-25T03:00:00Z");
  // The same inputs always give the same delay (a restart does not re-roll it).
  CHECK(SlotJitter("blog", slot, jitter) == SlotJitter("blog", slot, jitter));
  CHECK(SlotFireTime("blog", slot, jitter) ==
        slot + SlotJitter("blog", slot, jitter).count() / 1000);
  // Spread over [0, jitter] across slots, and differs between targets sharing a schedule.
  std::set<long long> seen;
  int differs = 0;
  long long max_seen = 0;
  for (int i = 0; i < 500; ++i) {
    const std::time_t s = slot + i * 86400;
    const Duration d = SlotJitter("blog", s, jitter);
    CHECK(d >= Duration::zero());
    CHECK(d <= jitter);
    CHECK(d.count() % 1000 == 0);  // whole seconds
    seen.insert(d.count());
    max_seen = std::max<long long>(max_seen, d.count());
    if (d != SlotJitter("shop", s, jitter)) ++differs;
  }
  CHECK(seen.size() > 300);
  CHECK(max_seen > 540 * 1000);  // reaches the top tenth of the range
  CHECK(differs > 450);
  // No jitter, or less than a second of it: the slot itself.
  CHECK(SlotJitter("blog", slot, Duration::zero()) == Duration::zero());
  CHECK(SlotJitter("blog", slot, std::chrono::milliseconds(900)) == Duration::zero());
  CHECK(SlotFireTime("blog", slot, Duration::zero()) == slot);
}

TEST_CASE("scheduler: due slots wait for their jitter and come oldest first", "[unit][scheduler]") {
  const CronSchedule hourly = Cron("0 * * * *");
  const std::time_t handled = At("2026-11-25T02:00:00Z");
  const std::time_t slot = At("2026-11-25T03:00:00Z");
  // Without jitter: due from the slot's minute on, not before.
  CHECK(DueSlots(hourly, "blog", Duration::zero(), handled, slot - 1).empty());
  CHECK(DueSlots(hourly, "blog", Duration::zero(), handled, slot) ==
        std::vector<std::time_t>{slot});
  // With jitter: due exactly at its fire time.
  const Duration jitter = std::chrono::minutes(30);
  const std::time_t fire = SlotFireTime("blog", slot, jitter);
  INFO("fire time " << Ts(fire));
  if (fire > slot) CHECK(DueSlots(hourly, "blog", jitter, handled, fire - 1).empty());
  CHECK(DueSlots(hourly, "blog", jitter, handled, fire) == std::vector<std::time_t>{slot});
  // Several slots passed: all of them, oldest first; handled ones never come back.
  const std::time_t later = At("2026-11-25T06:00:00Z");
  CHECK(DueSlots(hourly, "blog", Duration::zero(), handled, later) ==
        std::vector<std::time_t>{slot, slot + 3600, slot + 7200, slot + 10800});
  CHECK(DueSlots(hourly, "blog", Duration::zero(), later, later).empty());
  CHECK(DueSlots(hourly, "blog", Duration::zero(), later + 600, later).empty());
}

TEST_CASE("scheduler: a long outage costs a bounded list, newest slot included",
          "[unit][scheduler]") {
  const CronSchedule every_minute = Cron("* * * * *");
  const std::time_t now = At("2026-11-25T03:00:30Z");
  const std::time_t handled = now - 90 * 86400;
  auto due = DueSlots(every_minute, "blog", Duration::zero(), handled, now);
  REQUIRE(!due.empty());
  CHECK(due.size() <= 5000);
  CHECK(due.back() == At("2026-11-25T03:00:00Z"));
  CHECK(std::is_sorted(due.begin(), due.end()));
  CHECK(due.front() > handled);
  // A yearly schedule three years behind: the newest missed slot is there.
  const CronSchedule yearly = Cron("0 0 1 1 *");
  auto y = DueSlots(yearly, "blog", Duration::zero(), At("2023-06-01T00:00:00Z"), now);
  REQUIRE(!y.empty());
  CHECK(Ts(y.back()) == "2026-01-01T00:00:00Z");
}

TEST_CASE("scheduler: a target never runs two drills, and the limit holds across targets",
          "[unit][scheduler]") {
  CHECK(AdmitDrill(false, 0, 1) == Admission::kStart);
  CHECK(AdmitDrill(true, 1, 1) == Admission::kStillRunning);
  CHECK(AdmitDrill(true, 1, 8) == Admission::kStillRunning);  // never two of one target
  CHECK(AdmitDrill(false, 1, 1) == Admission::kConcurrencyLimit);
  CHECK(AdmitDrill(false, 1, 2) == Admission::kStart);
  CHECK(AdmitDrill(false, 2, 2) == Admission::kConcurrencyLimit);
  CHECK(AdmitDrill(false, 0, 0) == Admission::kStart);  // a limit below 1 still allows one
}

TEST_CASE("scheduler: start, skip or wait for the due slots", "[unit][scheduler]") {
  const std::time_t h = At("2026-11-25T02:00:00Z");
  const std::time_t s1 = At("2026-11-25T03:00:00Z"), s2 = s1 + 3600, s3 = s2 + 3600;

  SECTION("nothing due: nothing happens") {
    SlotPlan p = PlanSlots({}, Admission::kStart, h);
    CHECK_FALSE(p.start);
    CHECK(p.skipped.empty());
    CHECK(p.handled == h);
  }
  SECTION("admitted: the slot starts and is handled") {
    SlotPlan p = PlanSlots({s1}, Admission::kStart, h);
    CHECK(p.start == s1);
    CHECK(p.skipped.empty());
    CHECK(p.collapsed == 0);
    CHECK(p.handled == s1);
  }
  SECTION("the target's drill still runs: every due slot is skipped and counted") {
    SlotPlan p = PlanSlots({s1, s2}, Admission::kStillRunning, h);
    CHECK_FALSE(p.start);
    REQUIRE(p.skipped.size() == 2);
    CHECK(p.skipped[0] == std::make_pair(s1, SkipReason::kStillRunning));
    CHECK(p.skipped[1] == std::make_pair(s2, SkipReason::kStillRunning));
    CHECK(p.handled == s2);
    CHECK(std::string(SkipReasonName(SkipReason::kStillRunning)) == "still_running");
  }
  SECTION("no free drill slot: the newest waits, older ones are given up") {
    SlotPlan one = PlanSlots({s1}, Admission::kConcurrencyLimit, h);
    CHECK_FALSE(one.start);
    CHECK(one.waiting);
    CHECK(one.skipped.empty());
    CHECK(one.handled == h);  // still due on the next look
    SlotPlan p = PlanSlots({s1, s2, s3}, Admission::kConcurrencyLimit, h);
    CHECK(p.waiting);
    REQUIRE(p.skipped.size() == 2);
    CHECK(p.skipped[0] == std::make_pair(s1, SkipReason::kConcurrencyLimit));
    CHECK(p.skipped[1] == std::make_pair(s2, SkipReason::kConcurrencyLimit));
    CHECK(p.handled == s2);
    CHECK(std::string(SkipReasonName(SkipReason::kConcurrencyLimit)) == "concurrency_limit");
    // Once a slot frees up, the waiting slot starts.
    SlotPlan later = PlanSlots({s3}, Admission::kStart, p.handled);
    CHECK(later.start == s3);
  }
  SECTION("a backlog with a free slot runs once, for the newest slot") {
    SlotPlan p = PlanSlots({s1, s2, s3}, Admission::kStart, h);
    CHECK(p.start == s3);
    CHECK(p.collapsed == 2);
    CHECK(p.skipped.empty());
    CHECK(p.handled == s3);
  }
}

TEST_CASE("scheduler: catch-up runs one drill for slots missed while the agent was down",
          "[unit][scheduler]") {
  const CronSchedule daily = Cron("0 3 * * *");
  const std::time_t now = At("2026-11-25T10:00:00Z");
  auto plan_at_start = [&](std::optional<std::time_t> persisted, bool fresh) {
    std::time_t handled = InitialHandled(persisted, fresh, now);
    return PlanSlots(DueSlots(daily, "blog", Duration::zero(), handled, now), Admission::kStart,
                     handled);
  };
  SECTION("down across three slots: one drill, for the newest") {
    SlotPlan p = plan_at_start(At("2026-11-22T03:00:00Z"), false);
    REQUIRE(p.start);
    CHECK(Ts(*p.start) == "2026-11-25T03:00:00Z");
    CHECK(p.collapsed >= 1);  // slots older than a day are folded before counting
    // Afterwards nothing is due until the next slot.
    CHECK(DueSlots(daily, "blog", Duration::zero(), p.handled, now).empty());
    CHECK(DueSlots(daily, "blog", Duration::zero(), p.handled, At("2026-11-26T03:00:00Z")) ==
          std::vector<std::time_t>{At("2026-11-26T03:00:00Z")});
  }
  SECTION("down for hours across several slots of a frequent schedule: one drill") {
    const CronSchedule hourly = Cron("0 * * * *");
    std::time_t handled = InitialHandled(At("2026-11-25T06:00:00Z"), false, now);
    SlotPlan p = PlanSlots(DueSlots(hourly, "blog", Duration::zero(), handled, now),
                           Admission::kStart, handled);
    REQUIRE(p.start);
    CHECK(Ts(*p.start) == "2026-11-25T10:00:00Z");
    CHECK(p.collapsed == 3);  // 07:00, 08:00, 09:00
  }
  SECTION("down, but no slot passed meanwhile: nothing to catch up") {
    CHECK_FALSE(plan_at_start(At("2026-11-25T03:00:00Z"), false).start);
    CHECK_FALSE(plan_at_start(At("2026-11-25T09:00:00Z"), false).start);
  }
  SECTION("a target that never ran under a schedule does not catch up") {
    CHECK(InitialHandled(std::nullopt, false, now) == now);
    CHECK_FALSE(plan_at_start(std::nullopt, false).start);
  }
  SECTION("a target a reload adds or reschedules starts from now") {
    CHECK_FALSE(plan_at_start(At("2026-11-22T03:00:00Z"), true).start);
  }
  SECTION("a state file from the future (clock set back) does not hold the schedule") {
    CHECK(InitialHandled(now + 86400, false, now) == now);
  }
  SECTION("with jitter, a slot whose fire time is still ahead is not missed") {
    const Duration jitter = std::chrono::hours(12);
    const std::time_t slot = At("2026-11-25T03:00:00Z");
    const std::time_t fire = SlotFireTime("blog", slot, jitter);
    const std::time_t handled = At("2026-11-24T03:00:00Z");
    auto before = DueSlots(daily, "blog", jitter, handled, fire - 1);
    CHECK(std::find(before.begin(), before.end(), slot) == before.end());
    auto after = DueSlots(daily, "blog", jitter, handled, fire);
    CHECK(std::find(after.begin(), after.end(), slot) != after.end());
  }
}

TEST_CASE("scheduler: the schedule state file round-trips and survives corruption",
          "[unit][scheduler]") {
  test::TestDir dir;
  const std::string target_dir = dir / "blog";
  std::string problem;
  CHECK_FALSE(LoadScheduleState(target_dir, &problem));
  CHECK(problem.empty());  // missing is not a problem
  const std::time_t slot = At("2026-11-25T03:00:00Z");
  SaveScheduleState(target_dir, slot);
  CHECK(LoadScheduleState(target_dir, &problem) == slot);
  CHECK(problem.empty());
  std::ifstream in(target_dir + "/schedule.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("2026-11-25T03:00:00Z") != std::string::npos);
  CHECK(test::ListDir(target_dir) == std::vector<std::string>{"schedule.toml"});  // no temp left
  {
    std::ofstream out(target_dir + "/schedule.toml", std::ios::trunc);
    out << "last_slot = = 12\n";
  }
  CHECK_FALSE(LoadScheduleState(target_dir, &problem));
  CHECK(problem.find("schedule.toml") != std::string::npos);
  problem.clear();
  {
    std::ofstream out(target_dir + "/schedule.toml", std::ios::trunc);
    out << "last_slot = \"yesterday\"\n";
  }
  CHECK_FALSE(LoadScheduleState(target_dir, &problem));
  CHECK(problem.find("last_slot") != std::string::npos);
}

TEST_CASE("scheduler: config keys for jitter, concurrency and stage timeouts",
          "[unit][scheduler][config]") {
  const std::string base =
      "[[target]]\nname = \"t1\"\nsource = \"host=/tmp dbname=x\"\n"
      "[target.backup]\npath = \"/tmp\"\n";
  {
    ConfigLoad load = LoadConfigText(base, "defaults.toml");
    REQUIRE(load.errors.empty());
    CHECK(load.config->agent.max_concurrent_drills == 1);
    const DrillConfig& d = load.config->targets[0].drill;
    CHECK(d.jitter == Duration::zero());
    CHECK(d.stage_timeouts.discover == Duration::zero());
    CHECK(d.stage_timeouts.restore == Duration::zero());
    CHECK(d.stage_timeouts.checks == Duration::zero());
  }
  {
    ConfigLoad load = LoadConfigText(
        "[agent]\nmax_concurrent_drills = 3\n" + base +
            "[target.drill]\nschedule = \"0 3 * * *\"\njitter = \"15m\"\n"
            "stage_timeouts = { discover = \"5m\", restore = \"1h\", checks = \"30m\" }\n",
        "set.toml");
    INFO((load.errors.empty() ? "" : load.errors[0].ToString()));
    REQUIRE(load.errors.empty());
    CHECK(load.config->agent.max_concurrent_drills == 3);
    const DrillConfig& d = load.config->targets[0].drill;
    CHECK(d.jitter == std::chrono::minutes(15));
    CHECK(d.stage_timeouts.discover == std::chrono::minutes(5));
    CHECK(d.stage_timeouts.restore == std::chrono::hours(1));
    CHECK(d.stage_timeouts.checks == std::chrono::minutes(30));
  }
  {
    ConfigLoad load = LoadConfigText(
        "[agent]\nmax_concurrent_drills = 0\n" + base +
            "[target.drill]\njitter = \"soon\"\nstage_timeouts = { restore = \"0s\", fetch = "
            "\"1m\" }\n",
        "bad.toml");
    std::string all;
    for (const auto& e : load.errors) all += e.ToString() + "\n";
    INFO(all);
    CHECK(all.find("bad.toml:2: agent.max_concurrent_drills") != std::string::npos);
    CHECK(all.find("target.t1.drill.jitter") != std::string::npos);
    CHECK(all.find("target.t1.drill.stage_timeouts.restore: must be greater than zero") !=
          std::string::npos);
    CHECK(all.find("target.t1.drill.stage_timeouts.fetch") != std::string::npos);
  }
}
