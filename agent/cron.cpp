#include "agent/cron.h"

#include <cctype>
#include <cstdint>
#include <sstream>
#include <vector>

namespace rw {
namespace {

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const char* const* names;  // names[i] is value min + i (nullptr: numbers only)
};

const char* const kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",  "jul",
                                   "aug", "sep", "oct", "nov", "dec", nullptr};
const char* const kDowNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", nullptr};

// Day of week allows 7 for Sunday, as Vixie cron does; it is folded onto 0 after parsing.
const FieldSpec kFields[] = {
    {"minute", 0, 59, nullptr},       {"hour", 0, 23, nullptr},
    {"day-of-month", 1, 31, nullptr}, {"month", 1, 12, kMonthNames},
    {"day-of-week", 0, 7, kDowNames},
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool ParseValue(const FieldSpec& f, const std::string& text, int* out, std::string* error) {
  if (text.empty()) {
    *error = std::string(f.name) + " field: empty value";
    return false;
  }
  bool digits = true;
  for (char c : text) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (digits) {
    if (text.size() > 4) {
      *error = std::string(f.name) + " field: " + text + " is out of range " +
               std::to_string(f.min) + "-" + std::to_string(f.max);
      return false;
    }
    const int v = std::stoi(text);
    if (v < f.min || v > f.max) {
      *error = std::string(f.name) + " field: " + text + " is out of range " +
               std::to_string(f.min) + "-" + std::to_string(f.max);
      return false;
    }
    *out = v;
    return true;
  }
  if (f.names != nullptr) {
    const std::string lower = Lower(text);
    for (int i = 0; f.names[i] != nullptr; ++i) {
      if (lower == f.names[i]) {
        *out = f.min + i;
        return true;
      }
    }
  }
  *error = std::string(f.name) + " field: '" + text + "' is not a valid value";
  return false;
}

// One field: a comma list of "*", "N", "N-M", each optionally "/STEP", or "N/STEP" (N to max).
template <std::size_t kBits>
bool ParseField(const FieldSpec& f, const std::string& text, std::bitset<kBits>* bits,
                std::string* error) {
  for (const std::string& item : Split(text, ',')) {
    std::string range = item;
    int step = 1;
    const std::size_t slash = item.find('/');
    if (slash != std::string::npos) {
      range = item.substr(0, slash);
      const std::string step_text = item.substr(slash + 1);
      bool ok = !step_text.empty() && step_text.size() <= 4;
      for (char c : step_text) ok = ok && std::isdigit(static_cast<unsigned char>(c));
      if (!ok || std::stoi(step_text) == 0) {
        *error = std::string(f.name) + " field: bad step in '" + item + "'";
        return false;
      }
      step = std::stoi(step_text);
    }
    int lo = 0, hi = 0;
    if (range == "*") {
      lo = f.min;
      hi = f.max;
    } else {
      const std::size_t dash = range.find('-');
      if (dash == std::string::npos) {
        if (!ParseValue(f, range, &lo, error)) return false;
        hi = slash != std::string::npos ? f.max : lo;
      } else {
        if (!ParseValue(f, range.substr(0, dash), &lo, error) ||
            !ParseValue(f, range.substr(dash + 1), &hi, error))
          return false;
        // "fri-sun" ends on Sunday written as 0: read it as 7, as in "5-7".
        if (f.names == kDowNames && hi == 0 && lo > 0) hi = 7;
        if (lo > hi) {
          *error = std::string(f.name) + " field: range '" + range + "' runs backwards";
          return false;
        }
      }
    }
    for (int v = lo; v <= hi; v += step) bits->set(static_cast<std::size_t>(v));
  }
  return true;
}

// Days since 1970-01-01 -> proleptic Gregorian date (H. Hinnant's civil_from_days).
void CivilFromDays(std::int64_t z, std::int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<std::int64_t>(yoe) + era * 400 + (*m <= 2);
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// The longest gap between two occurrences of a satisfiable schedule is a 29 February skipped by
// a century year (2096 -> 2104): eight years plus slack.
constexpr std::int64_t kSearchDays = 366 * 8 + 2;

}  // namespace

std::optional<CronSchedule> CronSchedule::Parse(const std::string& input, std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  std::string text = input;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);

  std::string expr = text;
  if (!text.empty() && text[0] == '@') {
    static const struct {
      const char* name;
      const char* expr;
    } kShorthands[] = {
        {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"},
    };
    expr.clear();
    for (const auto& s : kShorthands)
      if (Lower(text) == s.name) expr = s.expr;
    if (expr.empty()) {
      *error =
          "unknown shorthand '" + text + "' (use @hourly, @daily, @weekly, @monthly or @yearly)";
      return std::nullopt;
    }
  }

  std::vector<std::string> fields;
  std::istringstream in(expr);
  for (std::string f; in >> f;) fields.push_back(f);
  if (fields.size() != 5) {
    *error = "expected 5 fields (minute hour day-of-month month day-of-week), got " +
             std::to_string(fields.size());
    return std::nullopt;
  }

  CronSchedule c;
  c.text_ = text;
  std::bitset<8> dow;
  if (!ParseField(kFields[0], fields[0], &c.minute_, error) ||
      !ParseField(kFields[1], fields[1], &c.hour_, error) ||
      !ParseField(kFields[2], fields[2], &c.dom_, error) ||
      !ParseField(kFields[3], fields[3], &c.month_, error) ||
      !ParseField(kFields[4], fields[4], &dow, error))
    return std::nullopt;
  for (std::size_t i = 0; i < 7; ++i) c.dow_[i] = dow[i];
  if (dow[7]) c.dow_[0] = true;
  // As in Vixie cron, a field that starts with '*' (also "*/2") counts as unrestricted for the
  // day-of-month / day-of-week OR rule.
  c.dom_star_ = fields[2][0] == '*';
  c.dow_star_ = fields[4][0] == '*';

  // When the day of month must match (it is not OR-ed with a weekday), refuse a schedule that can
  // never fire, such as "0 0 30 2 *", rather than let Next() search in vain.
  if (c.dom_star_ || c.dow_star_) {
    static const int kMaxDays[] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!c.month_[static_cast<std::size_t>(m)]) continue;
      for (int d = 1; d <= kMaxDays[m] && !possible; ++d)
        possible = c.dom_[static_cast<std::size_t>(d)];
    }
    if (!possible) {
      *error = "day-of-month never occurs in the selected months";
      return std::nullopt;
    }
  }
  return c;
}

bool CronSchedule::DayMatches(std::int64_t day) const {
  std::int64_t y;
  unsigned m, d;
  CivilFromDays(day, &y, &m, &d);
  if (!month_[m]) return false;
  // 1970-01-01 was a Thursday (4).
  const unsigned wd = static_cast<unsigned>(day + 4 - FloorDiv(day + 4, 7) * 7);
  const bool dom_ok = dom_[d];
  const bool dow_ok = dow_[wd];
  return (dom_star_ || dow_star_) ? (dom_ok && dow_ok) : (dom_ok || dow_ok);
}

std::optional<std::time_t> CronSchedule::Next(std::time_t after) const {
  // Minute resolution: the first candidate is the start of the minute after `after`.
  const std::int64_t start_minute = FloorDiv(static_cast<std::int64_t>(after), 60) + 1;
  const std::int64_t start_day = FloorDiv(start_minute, 24 * 60);
  const int start_minute_of_day = static_cast<int>(start_minute - start_day * 24 * 60);

  for (std::int64_t day = start_day; day <= start_day + kSearchDays; ++day) {
    if (!DayMatches(day)) continue;
    const int first = day == start_day ? start_minute_of_day : 0;
    for (int hour = first / 60; hour < 24; ++hour) {
      if (!hour_[static_cast<std::size_t>(hour)]) continue;
      const int from = hour == first / 60 ? first % 60 : 0;
      for (int minute = from; minute < 60; ++minute) {
        if (minute_[static_cast<std::size_t>(minute)])
          return static_cast<std::time_t>((day * 24 * 60 + hour * 60 + minute) * 60);
      }
    }
  }
  return std::nullopt;
}

std::optional<std::time_t> CronSchedule::Previous(std::time_t at) const {
  // The minute holding `at` is the last candidate.
  const std::int64_t end_minute = FloorDiv(static_cast<std::int64_t>(at), 60);
  const std::int64_t end_day = FloorDiv(end_minute, 24 * 60);
  const int end_minute_of_day = static_cast<int>(end_minute - end_day * 24 * 60);

  for (std::int64_t day = end_day; day >= end_day - kSearchDays; --day) {
    if (!DayMatches(day)) continue;
    const int last = day == end_day ? end_minute_of_day : 24 * 60 - 1;
    for (int hour = last / 60; hour >= 0; --hour) {
      if (!hour_[static_cast<std::size_t>(hour)]) continue;
      const int to = hour == last / 60 ? last % 60 : 59;
      for (int minute = to; minute >= 0; --minute) {
        if (minute_[static_cast<std::size_t>(minute)])
          return static_cast<std::time_t>((day * 24 * 60 + hour * 60 + minute) * 60);
      }
    }
  }
  return std::nullopt;
}

bool CronSchedule::Matches(std::time_t t) const {
  const std::int64_t minute = FloorDiv(static_cast<std::int64_t>(t), 60);
  const std::int64_t day = FloorDiv(minute, 24 * 60);
  const int of_day = static_cast<int>(minute - day * 24 * 60);
  return DayMatches(day) && hour_[static_cast<std::size_t>(of_day / 60)] &&
         minute_[static_cast<std::size_t>(of_day % 60)];
}

}  // namespace rw
