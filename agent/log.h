#pragma once
// Structured logging on spdlog: one event per line, as text ("2026-11-25T03:15:04.123Z info drill
// finished target=blog stage=total duration_seconds=6.8 outcome=pass") or as JSON lines
// ({"ts":"...","level":"info","msg":"drill finished","target":"blog",...}). Thread-safe.
// Never pass a password or an unredacted conninfo as a field (use ConnSpec::Redacted()); as a
// safety net every message and field value goes through Redact() (agent/secrets.h).
#include <cstdint>
#include <initializer_list>
#include <string>

#include "agent/config.h"

namespace rw {

struct LogField {
  LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(v ? v : "") {}
  LogField(std::string k, double v);
  LogField(std::string k, int v) : LogField(std::move(k), static_cast<std::int64_t>(v)) {}
  LogField(std::string k, std::int64_t v)
      : key(std::move(k)), value(std::to_string(v)), quoted(false) {}
  LogField(std::string k, std::uint64_t v)
      : key(std::move(k)), value(std::to_string(v)), quoted(false) {}
  std::string key;
  std::string value;
  bool quoted = true;  // JSON: string or bare number
};
using LogFields = std::initializer_list<LogField>;

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Configures the process-wide logger (stderr). Safe to call again (SIGHUP).
void InitLogging(LogFormat format, const std::string& level);
void Log(LogLevel level, const std::string& msg, LogFields fields = {});
inline void LogDebug(const std::string& m, LogFields f = {}) { Log(LogLevel::kDebug, m, f); }
inline void LogInfo(const std::string& m, LogFields f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarn(const std::string& m, LogFields f = {}) { Log(LogLevel::kWarn, m, f); }
inline void LogError(const std::string& m, LogFields f = {}) { Log(LogLevel::kError, m, f); }

// Formats one event the way Log() would (used by tests).
std::string FormatLogLine(LogFormat format, const std::string& msg, LogFields fields);

}  // namespace rw
