#pragma once
// Parsing and printing of the human units used in config: durations ("500ms", "90s", "15m",
// "26h", "7d", "1h30m") and sizes ("512", "10GiB", "1.5GB", "64MiB"). Pure functions, thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace rw {

using Duration = std::chrono::milliseconds;

// Returns nullopt on malformed input (empty, unknown unit, negative, overflow).
// Durations: units ms, s, m, h, d, combinable ("1h30m", "1h 30m"), decimals allowed ("1.5s") but
// nothing finer than a millisecond; a bare "0" is zero, any other bare number is refused.
// Sizes: a bare number is bytes; kB/MB/GB/TB/PB are powers of 1000, KiB/MiB/GiB/TiB/PiB powers
// of 1024 (unit case ignored); fractions of a unit round to the nearest byte.
std::optional<Duration> ParseDuration(const std::string& text);
std::optional<std::uint64_t> ParseSize(const std::string& text);

// Components from days down to milliseconds: "1h30m", "1m30s", "1d2h", "250ms", "0s". The text
// parses back with ParseDuration.
std::string FormatDuration(Duration d);
// Seconds with millisecond precision, e.g. "6.812s".
std::string FormatSeconds(double seconds);
// "1.5 GiB", "512 B".
std::string FormatSize(std::uint64_t bytes);

inline double ToSeconds(Duration d) { return static_cast<double>(d.count()) / 1000.0; }

// Wall clock as Unix seconds (fractional), and RFC 3339 UTC text ("2026-11-25T03:15:04Z").
double NowUnix();
std::string FormatTimestamp(double unix_seconds);
// Accepts "2026-11-25 03:15:04 UTC", "2026-11-25T03:15:04Z", "2026-11-25 03:15:04+00", fractional
// seconds (kept) and offsets +HH, +HHMM, +HH:MM (applied). No zone means UTC; named zones other
// than UTC/GMT/Z are refused.
std::optional<double> ParseTimestamp(const std::string& text);

}  // namespace rw
