// Cron schedules for drills (agent/cron.h): next times, the day-of-month/day-of-week OR rule, and
// refusal of malformed expressions.
#include <catch2/catch.hpp>
#include <functional>
#include <vector>

#include "agent/cron.h"
#include "agent/units.h"

namespace {

std::time_t At(const std::string& text) {
  auto t = rw::ParseTimestamp(text);
  REQUIRE(t.has_value());
  return static_cast<std::time_t>(*t);
}

rw::CronSchedule Cron(const std::string& text) {
  std::string error;
  auto c = rw::CronSchedule::Parse(text, &error);
  INFO(text << ": " << error);
  REQUIRE(c.has_value());
  return *c;
}

std::string NextAfter(const std::string& expr, const std::string& after) {
  auto next = Cron(expr).Next(At(after));
  REQUIRE(next.has_value());
  return rw::FormatTimestamp(static_cast<double>(*next));
}

}  // namespace

TEST_CASE("cron: next time is strictly after, at minute resolution", "[unit][cron]") {
  CHECK(NextAfter("*/15 * * * *", "2026-11-25T03:15:04Z") == "2026-11-25T03:30:00Z");
  CHECK(NextAfter("*/15 * * * *", "2026-11-25T03:30:00Z") == "2026-11-25T03:45:00Z");
  CHECK(NextAfter("*/15 * * * *", "2026-11-25T03:29:59Z") == "2026-11-25T03:30:00Z");
  CHECK(NextAfter("* * * * *", "2026-11-25T03:15:00Z") == "2026-11-25T03:16:00Z");
  CHECK(NextAfter("15 3 * * *", "2026-11-25T03:15:00Z") == "2026-11-26T03:15:00Z");
  CHECK(NextAfter("15 3 * * *", "2026-11-25T03:14:59Z") == "2026-11-25T03:15:00Z");
}

TEST_CASE("cron: lists, ranges and steps", "[unit][cron]") {
  CHECK(NextAfter("10-50/20 * * * *", "2026-11-25T03:30:00Z") == "2026-11-25T03:50:00Z");
  CHECK(NextAfter("10-50/20 * * * *", "2026-11-25T03:50:00Z") == "2026-11-25T04:10:00Z");
  CHECK(NextAfter("5/20 * * * *", "2026-11-25T03:26:00Z") == "2026-11-25T03:45:00Z");
  CHECK(NextAfter("0 1,13 * * *", "2026-11-25T03:00:00Z") == "2026-11-25T13:00:00Z");
  CHECK(NextAfter("0 22-23,2 * * *", "2026-11-25T23:00:00Z") == "2026-11-26T02:00:00Z");
  CHECK(NextAfter("0 */6 * * *", "2026-11-25T18:00:00Z") == "2026-11-26T00:00:00Z");
}

TEST_CASE("cron: month ends, leap days and year ends", "[unit][cron]") {
  CHECK(NextAfter("0 0 1 * *", "2026-01-31T12:00:00Z") == "2026-02-01T00:00:00Z");
  CHECK(NextAfter("0 0 31 * *", "2026-04-15T00:00:00Z") == "2026-05-31T00:00:00Z");
  CHECK(NextAfter("0 0 31 * *", "2026-05-31T00:00:00Z") == "2026-07-31T00:00:00Z");
  CHECK(NextAfter("0 12 29 2 *", "2026-03-01T00:00:00Z") == "2028-02-29T12:00:00Z");
  // 2100 is not a leap year: the next 29 February after 2096 is in 2104.
  CHECK(NextAfter("0 0 29 2 *", "2096-03-01T00:00:00Z") == "2104-02-29T00:00:00Z");
  CHECK(NextAfter("59 23 31 12 *", "2026-12-31T23:59:00Z") == "2027-12-31T23:59:00Z");
  CHECK(NextAfter("0 0 * * *", "2026-12-31T23:59:59Z") == "2027-01-01T00:00:00Z");
  CHECK(NextAfter("30 2 30 jan,mar *", "2026-01-30T03:00:00Z") == "2026-03-30T02:30:00Z");
}

TEST_CASE("cron: day-of-month and day-of-week are OR-ed when both are restricted", "[unit][cron]") {
  // 2026-11-25 is a Wednesday.
  CHECK(NextAfter("0 0 13 * fri", "2026-11-25T00:00:00Z") == "2026-11-27T00:00:00Z");
  CHECK(NextAfter("0 0 1,15 * mon", "2026-11-25T00:00:00Z") == "2026-11-30T00:00:00Z");
  CHECK(NextAfter("0 0 1 * 7", "2026-11-25T00:00:00Z") == "2026-11-29T00:00:00Z");
  CHECK(NextAfter("0 0 1 * sun", "2026-11-29T00:00:00Z") == "2026-12-01T00:00:00Z");
  // Only one restricted: only that one counts.
  CHECK(NextAfter("0 0 * * fri", "2026-11-25T00:00:00Z") == "2026-11-27T00:00:00Z");
  CHECK(NextAfter("0 0 13 * *", "2026-11-25T00:00:00Z") == "2026-12-13T00:00:00Z");
  // As in Vixie cron, a field starting with '*' counts as unrestricted even with a step: AND.
  CHECK(NextAfter("0 0 */10 * mon", "2026-11-25T00:00:00Z") == "2026-12-21T00:00:00Z");
  CHECK(NextAfter("0 0 5 * */3", "2026-11-25T00:00:00Z") == "2026-12-05T00:00:00Z");
}

TEST_CASE("cron: names and shorthands", "[unit][cron]") {
  CHECK(NextAfter("0 9 * * MON-FRI", "2026-11-27T10:00:00Z") == "2026-11-30T09:00:00Z");
  CHECK(NextAfter("0 9 * * mon-fri", "2026-11-28T10:00:00Z") == "2026-11-30T09:00:00Z");
  CHECK(NextAfter("0 0 1 jul *", "2026-11-25T00:00:00Z") == "2027-07-01T00:00:00Z");
  CHECK(NextAfter("0 0 * * 5-7", "2026-11-25T00:00:00Z") == "2026-11-27T00:00:00Z");
  CHECK(NextAfter("0 0 * * sat-sun", "2026-11-25T00:00:00Z") == "2026-11-28T00:00:00Z");
  CHECK(NextAfter("0 0 * * sat-sun", "2026-11-28T00:00:00Z") == "2026-11-29T00:00:00Z");
  CHECK(NextAfter("@hourly", "2026-11-25T03:15:04Z") == "2026-11-25T04:00:00Z");
  CHECK(NextAfter("@daily", "2026-11-25T03:15:04Z") == "2026-11-26T00:00:00Z");
  CHECK(NextAfter("@weekly", "2026-11-25T03:15:04Z") == "2026-11-29T00:00:00Z");
  CHECK(NextAfter("@monthly", "2026-11-25T03:15:04Z") == "2026-12-01T00:00:00Z");
  CHECK(NextAfter("@yearly", "2026-11-25T03:15:04Z") == "2027-01-01T00:00:00Z");
  CHECK(NextAfter("@annually", "2026-11-25T03:15:04Z") == "2027-01-01T00:00:00Z");
  CHECK(Cron("@daily").text() == "@daily");
  CHECK(Cron("  15 3 * * *  ").text() == "15 3 * * *");
}

TEST_CASE("cron: chained Next() agrees with a minute-by-minute scan", "[unit][cron]") {
  struct Case {
    const char* expr;
    std::function<bool(const std::tm&)> match;
  };
  const std::vector<Case> cases = {
      {"*/7 3-5 * * *",
       [](const std::tm& t) { return t.tm_min % 7 == 0 && t.tm_hour >= 3 && t.tm_hour <= 5; }},
      {"0 12 1,15 * 1",
       [](const std::tm& t) {
         return t.tm_min == 0 && t.tm_hour == 12 &&
                (t.tm_mday == 1 || t.tm_mday == 15 || t.tm_wday == 1);
       }},
      {"30 0 * feb-mar sat",
       [](const std::tm& t) {
         return t.tm_min == 30 && t.tm_hour == 0 && (t.tm_mon == 1 || t.tm_mon == 2) &&
                t.tm_wday == 6;
       }},
  };
  const std::time_t start = At("2027-01-20T00:00:00Z");
  const std::time_t end = start + 60 * 86400;
  for (const auto& c : cases) {
    INFO(c.expr);
    std::vector<std::time_t> expected;
    for (std::time_t t = start + 60; t < end; t += 60) {
      std::tm tm{};
      gmtime_r(&t, &tm);
      if (c.match(tm)) expected.push_back(t);
    }
    std::vector<std::time_t> got;
    const rw::CronSchedule cron = Cron(c.expr);
    for (std::time_t t = start;;) {
      auto next = cron.Next(t);
      REQUIRE(next.has_value());
      if (*next >= end) break;
      got.push_back(*next);
      t = *next;
    }
    CHECK(!expected.empty());
    CHECK(got == expected);
  }
}

TEST_CASE("cron: malformed expressions are refused with a reason", "[unit][cron]") {
  for (const char* bad : {"",
                          "* * * *",
                          "* * * * * *",
                          "60 * * * *",
                          "* 24 * * *",
                          "* * 0 * *",
                          "* * 32 * *",
                          "* * * 0 *",
                          "* * * 13 *",
                          "* * * * 8",
                          "*/0 * * * *",
                          "5-1 * * * *",
                          "foo * * * *",
                          "1,,2 * * * *",
                          "1- * * * *",
                          "*/ * * * *",
                          "*/x * * * *",
                          "-5 * * * *",
                          "@reboot",
                          "@often",
                          "0 0 30 2 *",
                          "0 0 31 4,6 *",
                          "* * * jan-xyz *",
                          "* * * * 3-1",
                          "99999 * * * *"}) {
    std::string error;
    INFO("input: '" << bad << "'");
    CHECK_FALSE(rw::CronSchedule::Parse(bad, &error).has_value());
    CHECK_FALSE(error.empty());
  }
  // An impossible day of month is fine when a weekday can match instead (OR rule).
  CHECK(rw::CronSchedule::Parse("0 0 30 2 mon", nullptr).has_value());
}

TEST_CASE("cron: Previous() is the newest slot at or before a time", "[unit][cron]") {
  auto prev = [](const std::string& expr, const std::string& at) {
    auto p = Cron(expr).Previous(At(at));
    REQUIRE(p.has_value());
    return rw::FormatTimestamp(static_cast<double>(*p));
  };
  // At or before: the minute holding `at` counts, seconds into it included.
  CHECK(prev("*/15 * * * *", "2026-11-25T03:15:00Z") == "2026-11-25T03:15:00Z");
  CHECK(prev("*/15 * * * *", "2026-11-25T03:15:59Z") == "2026-11-25T03:15:00Z");
  CHECK(prev("*/15 * * * *", "2026-11-25T03:14:59Z") == "2026-11-25T03:00:00Z");
  CHECK(prev("15 3 * * *", "2026-11-25T03:14:00Z") == "2026-11-24T03:15:00Z");
  // Across month, year and leap-day boundaries.
  CHECK(prev("0 0 31 * *", "2026-07-15T00:00:00Z") == "2026-05-31T00:00:00Z");
  CHECK(prev("59 23 31 12 *", "2027-01-01T00:00:00Z") == "2026-12-31T23:59:00Z");
  CHECK(prev("0 12 29 2 *", "2028-02-29T11:59:00Z") == "2024-02-29T12:00:00Z");
  CHECK(prev("0 0 29 2 *", "2104-02-28T00:00:00Z") == "2096-02-29T00:00:00Z");
  // The day-of-month / day-of-week OR rule applies backwards as well.
  CHECK(prev("0 12 1 * mon", "2026-12-02T00:00:00Z") == "2026-12-01T12:00:00Z");
  CHECK(prev("0 12 1 * mon", "2026-12-01T11:00:00Z") == "2026-11-30T12:00:00Z");
}

TEST_CASE("cron: Previous() and Next() agree with each other and with Matches()", "[unit][cron]") {
  const std::time_t start = At("2027-01-20T00:00:00Z");
  for (const char* expr : {"*/7 3-5 * * *", "0 12 1,15 * 1", "30 0 * feb-mar sat", "@daily"}) {
    INFO(expr);
    const rw::CronSchedule cron = Cron(expr);
    int slots = 0;
    for (std::time_t t = start; slots < 200;) {
      auto next = cron.Next(t);
      REQUIRE(next.has_value());
      CHECK(cron.Matches(*next));
      // The newest slot at or before `next` is `next` itself, and before it, the previous one.
      CHECK(cron.Previous(*next) == next);
      CHECK(cron.Previous(*next + 59) == next);
      if (slots > 0) {
        CHECK(cron.Previous(*next - 1) == std::optional<std::time_t>(t));
        // No slot strictly between two consecutive ones.
        for (std::time_t m = t + 60; m < *next && m < t + 3 * 3600; m += 60)
          CHECK(!cron.Matches(m));
      }
      t = *next;
      ++slots;
    }
  }
  CHECK_FALSE(Cron("0 3 * * *").Matches(At("2026-11-25T03:01:00Z")));
  CHECK(Cron("0 3 * * *").Matches(At("2026-11-25T03:00:42Z")));
}
