// Durations, sizes and timestamps as written in config files and reports (agent/units.h).
#include <catch2/catch.hpp>
#include <cmath>
#include <ctime>

#include "agent/units.h"

using namespace std::chrono;
using rw::Duration;

namespace {
std::int64_t Ms(const std::string& text) {
  auto d = rw::ParseDuration(text);
  REQUIRE(d.has_value());
  return d->count();
}
}  // namespace

TEST_CASE("ParseDuration reads single and combined units", "[unit][units]") {
  CHECK(Ms("500ms") == 500);
  CHECK(Ms("90s") == 90'000);
  CHECK(Ms("15m") == 15 * 60'000);
  CHECK(Ms("26h") == 26 * 3'600'000LL);
  CHECK(Ms("7d") == 7 * 86'400'000LL);
  CHECK(Ms("1h30m") == 5'400'000);
  CHECK(Ms("1h 30m") == 5'400'000);
  CHECK(Ms("1d2h3m4s5ms") == 86'400'000LL + 2 * 3'600'000 + 3 * 60'000 + 4'000 + 5);
  CHECK(Ms("  90s ") == 90'000);
  CHECK(Ms("1.5s") == 1'500);
  CHECK(Ms("0.25h") == 900'000);
  CHECK(Ms("0") == 0);
  CHECK(Ms("0s") == 0);
  CHECK(Ms("0ms") == 0);
}

TEST_CASE("ParseDuration rejects malformed input", "[unit][units]") {
  for (const char* bad : {"",
                          " ",
                          "s",
                          "90",
                          "5",
                          "-5s",
                          "+5s",
                          "5x",
                          "5 s",
                          "1h30",
                          "1.s",
                          ".s",
                          "1.5ms",
                          "0.0001s",
                          "1.0000000001s",
                          "5S",
                          "abc",
                          "1h-30m",
                          "99999999999999999999s",
                          "9223372036854775807s",
                          "106751991168d"}) {
    INFO("input: '" << bad << "'");
    CHECK_FALSE(rw::ParseDuration(bad).has_value());
  }
  // The largest representable value still parses.
  CHECK(rw::ParseDuration("9223372036854775807ms").has_value());
  CHECK(rw::ParseDuration("106751991167d").has_value());
}

TEST_CASE("ParseSize uses SI for kB/MB/GB and IEC for KiB/MiB/GiB", "[unit][units]") {
  CHECK(rw::ParseSize("512") == 512u);
  CHECK(rw::ParseSize("0") == 0u);
  CHECK(rw::ParseSize("512B") == 512u);
  CHECK(rw::ParseSize("10kB") == 10'000u);
  CHECK(rw::ParseSize("10KB") == 10'000u);
  CHECK(rw::ParseSize("1KiB") == 1024u);
  CHECK(rw::ParseSize("64MiB") == 64ULL << 20);
  CHECK(rw::ParseSize("10GiB") == 10ULL << 30);
  CHECK(rw::ParseSize("1.5GB") == 1'500'000'000ULL);
  CHECK(rw::ParseSize("1.5 GiB") == 3ULL << 29);
  CHECK(rw::ParseSize("2TB") == 2'000'000'000'000ULL);
  CHECK(rw::ParseSize("1TiB") == 1ULL << 40);
  CHECK(rw::ParseSize("1.1KiB") == 1126u);  // rounds to the nearest byte
  CHECK(rw::ParseSize("10gib") == 10ULL << 30);
}

TEST_CASE("ParseSize rejects malformed input and overflow", "[unit][units]") {
  for (const char* bad : {"", "GiB", "-1", "1.5", "1.5B", "10XB", "10 G", "10K", "1e3", "20000PiB",
                          "18446744073709551616", "1,5GB", "10GiB extra"}) {
    INFO("input: '" << bad << "'");
    CHECK_FALSE(rw::ParseSize(bad).has_value());
  }
  CHECK(rw::ParseSize("18446744073709551615") == 18446744073709551615ULL);
}

TEST_CASE("FormatDuration prints components from days down to milliseconds", "[unit][units]") {
  CHECK(rw::FormatDuration(Duration::zero()) == "0s");
  CHECK(rw::FormatDuration(milliseconds(250)) == "250ms");
  CHECK(rw::FormatDuration(seconds(90)) == "1m30s");
  CHECK(rw::FormatDuration(minutes(90)) == "1h30m");
  CHECK(rw::FormatDuration(hours(26)) == "1d2h");
  CHECK(rw::FormatDuration(milliseconds(1500)) == "1s500ms");
  CHECK(rw::FormatDuration(hours(24 * 7)) == "7d");
  CHECK(rw::FormatDuration(seconds(-90)) == "-1m30s");
  // Every printed duration parses back to itself.
  for (std::int64_t ms : {1LL, 999LL, 1000LL, 61'001LL, 3'600'000LL, 93'784'005LL, 86'400'000LL}) {
    INFO(ms);
    CHECK(Ms(rw::FormatDuration(Duration(ms))) == ms);
  }
}

TEST_CASE("FormatSeconds and FormatSize", "[unit][units]") {
  CHECK(rw::FormatSeconds(6.8123) == "6.812s");
  CHECK(rw::FormatSeconds(0) == "0.000s");
  CHECK(rw::FormatSize(0) == "0 B");
  CHECK(rw::FormatSize(512) == "512 B");
  CHECK(rw::FormatSize(1023) == "1023 B");
  CHECK(rw::FormatSize(1024) == "1 KiB");
  CHECK(rw::FormatSize(1536) == "1.5 KiB");
  CHECK(rw::FormatSize(3ULL << 29) == "1.5 GiB");
  CHECK(rw::FormatSize(10ULL << 30) == "10 GiB");
  CHECK(rw::FormatSize(5ULL << 38) == "1.25 TiB");
  CHECK(rw::FormatSize((1ULL << 20) - 1) == "1 MiB");  // rounding carries into the next unit
  CHECK(rw::FormatSize(18446744073709551615ULL) == "16 EiB");
}

TEST_CASE("FormatTimestamp prints RFC 3339 UTC without fractions", "[unit][units]") {
  CHECK(rw::FormatTimestamp(0) == "1970-01-01T00:00:00Z");
  CHECK(rw::FormatTimestamp(1795576504) == "2026-11-25T03:15:04Z");
  CHECK(rw::FormatTimestamp(1795576504.999) == "2026-11-25T03:15:04Z");
  CHECK(rw::FormatTimestamp(951782400) == "2000-02-29T00:00:00Z");
}

TEST_CASE("ParseTimestamp accepts the forms PostgreSQL tools print", "[unit][units]") {
  const double t = 1795576504;
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04 UTC") == t);
  CHECK(rw::ParseTimestamp("2026-11-25T03:15:04Z") == t);
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04+00") == t);
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04+00:00") == t);
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04") == t);  // no zone: UTC
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04+01:00") == t - 3600);
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04+0130") == t - 5400);
  CHECK(rw::ParseTimestamp("2026-11-25 03:15:04-05") == t + 5 * 3600);
  CHECK(rw::ParseTimestamp("2026-11-24 22:15:04-05:00") == t);
  auto frac = rw::ParseTimestamp("2026-11-25 03:15:04.123456+00");
  REQUIRE(frac.has_value());
  CHECK(std::fabs(*frac - (t + 0.123456)) < 1e-6);
  CHECK(rw::ParseTimestamp("2024-02-29T12:00:00Z").has_value());
  CHECK(rw::ParseTimestamp(rw::FormatTimestamp(t)) == t);
}

TEST_CASE("ParseTimestamp rejects malformed and ambiguous input", "[unit][units]") {
  for (const char* bad :
       {"", "yesterday", "2026-11-25", "2026-11-25 3:15:04", "2026-13-01 00:00:00",
        "2026-02-29 00:00:00", "2026-11-31 00:00:00", "2026-11-25 24:00:00", "2026-11-25 03:60:00",
        "2026-11-25 03:15:04 CET", "2026-11-25 03:15:04+1",
        "2026-11-25 03:15:04+01:", "2026-11-25 03:15:04.", "2026-11-25 03:15:04Zjunk"}) {
    INFO("input: '" << bad << "'");
    CHECK_FALSE(rw::ParseTimestamp(bad).has_value());
  }
}

TEST_CASE("NowUnix follows the system clock", "[unit][units]") {
  const double now = rw::NowUnix();
  CHECK(std::fabs(now - static_cast<double>(std::time(nullptr))) < 2.0);
}
