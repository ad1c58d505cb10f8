#pragma once
// A 5-field cron schedule (minute hour day-of-month month day-of-week), evaluated in UTC.
// Supports "*", lists "1,2", ranges "1-5", steps "*/15" and "10-50/10", names (jan, mon), and the
// shorthands @hourly, @daily, @weekly, @monthly, @yearly. As in Vixie cron, when both day fields
// are restricted a day matches if either matches; a field starting with '*' (also "*/2") counts
// as unrestricted. Day of week 7 is Sunday. Parse refuses a schedule that can never fire
// ("0 0 30 2 *"). Immutable after Parse; thread-safe.
#include <bitset>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace rw {

class CronSchedule {
 public:
  // Returns nullopt and sets *error to a one-line reason on malformed input.
  static std::optional<CronSchedule> Parse(const std::string& text, std::string* error);
  // The first matching minute strictly after `after` (Unix seconds, UTC). The search is bounded to
  // eight years (the longest gap, 29 February across 2100); nullopt past that.
  std::optional<std::time_t> Next(std::time_t after) const;
  // The last matching minute at or before `at` (Unix seconds, UTC): the slot that is "current" at
  // `at`. Bounded like Next(); nullopt past that.
  std::optional<std::time_t> Previous(std::time_t at) const;
  // True when the minute holding `t` matches.
  bool Matches(std::time_t t) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> minute_;
  std::bitset<24> hour_;
  std::bitset<32> dom_;
  std::bitset<13> month_;
  std::bitset<7> dow_;
  bool dom_star_ = true;
  bool dow_star_ = true;
  bool DayMatches(std::int64_t day) const;
};

}  // namespace rw
