#include "agent/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace rw {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string Trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && IsSpace(s[b])) ++b;
  while (e > b && IsSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// A decimal number "123" or "1.25" read at s[*pos]; the fraction is kept as digits so that
// callers can scale it exactly. Fails on no digits, a sign, or an integer part past 2^64.
struct Decimal {
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;        // fraction digits as an integer ("25" for .25)
  std::uint64_t frac_scale = 1;  // 10^(number of fraction digits kept)
  bool dropped_nonzero = false;  // a non-zero fraction digit beyond the nine kept
};

bool ReadDecimal(const std::string& s, std::size_t* pos, Decimal* out) {
  std::size_t i = *pos;
  bool any = false;
  while (i < s.size() && IsDigit(s[i])) {
    std::uint64_t d = static_cast<std::uint64_t>(s[i] - '0');
    if (out->whole > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    out->whole = out->whole * 10 + d;
    any = true;
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    bool frac_digit = false;
    int kept = 0;
    while (i < s.size() && IsDigit(s[i])) {
      // Nine digits are below a nanosecond or a nano-byte: more only decide "is there a fraction".
      if (kept < 9) {
        out->frac = out->frac * 10 + static_cast<std::uint64_t>(s[i] - '0');
        out->frac_scale *= 10;
        ++kept;
      } else if (s[i] != '0') {
        out->dropped_nonzero = true;
      }
      frac_digit = true;
      ++i;
    }
    if (!frac_digit) return false;  // "1." is not a number here
    any = true;
  }
  if (!any) return false;
  *pos = i;
  return true;
}

std::string ReadUnit(const std::string& s, std::size_t* pos) {
  std::size_t i = *pos;
  while (i < s.size() && IsAlpha(s[i])) ++i;
  std::string unit = s.substr(*pos, i - *pos);
  *pos = i;
  return unit;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at s[*pos].
bool ReadFixed(const std::string& s, std::size_t* pos, int n, int* out) {
  int v = 0;
  for (int k = 0; k < n; ++k) {
    if (*pos >= s.size() || !IsDigit(s[*pos])) return false;
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
  }
  *out = v;
  return true;
}

bool Expect(const std::string& s, std::size_t* pos, char c) {
  if (*pos >= s.size() || s[*pos] != c) return false;
  ++*pos;
  return true;
}

}  // namespace

std::optional<Duration> ParseDuration(const std::string& input) {
  const std::string s = Trim(input);
  if (s.empty()) return std::nullopt;
  if (s == "0") return Duration::zero();
  struct UnitMs {
    const char* name;
    std::int64_t ms;
  };
  static const UnitMs kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
  };
  const std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    Decimal num;
    if (!ReadDecimal(s, &pos, &num)) return std::nullopt;
    const std::string unit = ReadUnit(s, &pos);
    std::int64_t unit_ms = 0;
    for (const auto& u : kUnits)
      if (unit == u.name) unit_ms = u.ms;
    if (unit_ms == 0) return std::nullopt;  // missing or unknown unit
    if (num.whole > static_cast<std::uint64_t>(kMax / unit_ms)) return std::nullopt;
    std::int64_t part = static_cast<std::int64_t>(num.whole) * unit_ms;
    // frac < 10^9 and unit_ms < 10^8, so the product fits in 64 bits.
    const std::uint64_t frac_ms = num.frac * static_cast<std::uint64_t>(unit_ms);
    // Finer than a millisecond is refused rather than rounded.
    if (frac_ms % num.frac_scale != 0 || num.dropped_nonzero) return std::nullopt;
    part += static_cast<std::int64_t>(frac_ms / num.frac_scale);
    if (part > kMax - total) return std::nullopt;
    total += part;
    while (pos < s.size() && IsSpace(s[pos])) ++pos;  // "1h 30m" reads like "1h30m"
  }
  return Duration(total);
}

std::optional<std::uint64_t> ParseSize(const std::string& input) {
  const std::string s = Trim(input);
  std::size_t pos = 0;
  Decimal num;
  if (!ReadDecimal(s, &pos, &num)) return std::nullopt;
  while (pos < s.size() && IsSpace(s[pos])) ++pos;
  const std::string unit = Lower(ReadUnit(s, &pos));
  if (pos != s.size()) return std::nullopt;
  // SI units are powers of 1000, IEC units (with an "i") powers of 1024. Case does not matter:
  // "gb" and "GB" mean the same, as nobody configures sizes in bits.
  struct UnitBytes {
    const char* name;
    std::uint64_t bytes;
  };
  static const UnitBytes kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kb", 1000ULL},
      {"mb", 1000ULL * 1000},
      {"gb", 1000ULL * 1000 * 1000},
      {"tb", 1000ULL * 1000 * 1000 * 1000},
      {"pb", 1000ULL * 1000 * 1000 * 1000 * 1000},
      {"kib", 1ULL << 10},
      {"mib", 1ULL << 20},
      {"gib", 1ULL << 30},
      {"tib", 1ULL << 40},
      {"pib", 1ULL << 50},
  };
  std::uint64_t mult = 0;
  for (const auto& u : kUnits)
    if (unit == u.name) mult = u.bytes;
  if (mult == 0) return std::nullopt;
  if (mult == 1 && (num.frac != 0 || num.dropped_nonzero)) return std::nullopt;  // part of a byte
  const std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  if (num.whole > kMax / mult) return std::nullopt;
  std::uint64_t total = num.whole * mult;
  if (num.frac != 0) {
    // Fractions of a unit round to the nearest byte ("1.1KiB" = 1126 B).
    const long double extra = static_cast<long double>(num.frac) /
                              static_cast<long double>(num.frac_scale) *
                              static_cast<long double>(mult);
    const std::uint64_t add = static_cast<std::uint64_t>(std::llround(extra));
    if (add > kMax - total) return std::nullopt;
    total += add;
  }
  return total;
}

std::string FormatDuration(Duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  // Negative values only arise from clock arithmetic; print them rather than lie.
  std::uint64_t rest = ms < 0 ? 0 - static_cast<std::uint64_t>(ms) : static_cast<std::uint64_t>(ms);
  if (ms < 0) out = "-";
  struct UnitMs {
    const char* name;
    std::uint64_t ms;
  };
  static const UnitMs kUnits[] = {
      {"d", 24 * 3600 * 1000}, {"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}, {"ms", 1},
  };
  for (const auto& u : kUnits) {
    if (rest >= u.ms) {
      out += std::to_string(rest / u.ms) + u.name;
      rest %= u.ms;
    }
  }
  return out;
}

std::string FormatSeconds(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3fs", seconds);
  return buf;
}

std::string FormatSize(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  std::size_t unit = 0;
  long double value = static_cast<long double>(bytes);
  while (value >= 1024 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) {
    value /= 1024;
    ++unit;
  }
  // Two decimals, trailing zeros dropped: "1.5 GiB", "10 GiB", "1.25 MiB".
  long double rounded = std::round(value * 100) / 100;
  if (rounded >= 1024 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) {
    rounded = std::round(rounded / 1024 * 100) / 100;
    ++unit;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2Lf", rounded);
  std::string text = buf;
  while (!text.empty() && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text + " " + kUnits[unit];
}

double NowUnix() {
  using namespace std::chrono;
  return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

std::string FormatTimestamp(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "";
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<double> ParseTimestamp(const std::string& input) {
  const std::string s = Trim(input);
  std::size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!ReadFixed(s, &pos, 4, &year) || !Expect(s, &pos, '-') || !ReadFixed(s, &pos, 2, &month) ||
      !Expect(s, &pos, '-') || !ReadFixed(s, &pos, 2, &day))
    return std::nullopt;
  if (pos >= s.size() || (s[pos] != ' ' && s[pos] != 'T' && s[pos] != 't')) return std::nullopt;
  ++pos;
  if (!ReadFixed(s, &pos, 2, &hour) || !Expect(s, &pos, ':') || !ReadFixed(s, &pos, 2, &minute) ||
      !Expect(s, &pos, ':') || !ReadFixed(s, &pos, 2, &second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60)
    return std::nullopt;
  double fraction = 0;
  if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
    ++pos;
    double scale = 0.1;
    bool any = false;
    while (pos < s.size() && IsDigit(s[pos])) {
      fraction += (s[pos] - '0') * scale;
      scale /= 10;
      any = true;
      ++pos;
    }
    if (!any) return std::nullopt;
  }
  while (pos < s.size() && IsSpace(s[pos])) ++pos;
  // The zone: none (taken as UTC), Z, UTC, GMT, or a numeric offset +HH, +HHMM, +HH:MM.
  int offset_seconds = 0;
  const std::string zone = s.substr(pos);
  const std::string zone_lower = Lower(zone);
  if (zone.empty() || zone_lower == "z" || zone_lower == "utc" || zone_lower == "gmt") {
    offset_seconds = 0;
  } else if (zone[0] == '+' || zone[0] == '-') {
    std::size_t zp = 1;
    int oh = 0, om = 0;
    if (!ReadFixed(zone, &zp, 2, &oh)) return std::nullopt;
    if (zp < zone.size()) {
      if (zone[zp] == ':') ++zp;
      if (!ReadFixed(zone, &zp, 2, &om)) return std::nullopt;
    }
    if (zp != zone.size() || oh > 23 || om > 59) return std::nullopt;
    offset_seconds = (oh * 3600 + om * 60) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;  // named zones other than UTC are ambiguous
  }
  const std::int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t local = days * 86400 + hour * 3600 + minute * 60 + second;
  // A local time at +01:00 is one hour ahead of UTC: subtract the offset.
  return static_cast<double>(local - offset_seconds) + fraction;
}

}  // namespace rw
