#include "agent/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

#include "agent/secrets.h"

namespace rw {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

std::shared_ptr<spdlog::logger> Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_logger_mt("restorewatch");
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    return l;
  }();
  return logger;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

// key=value; values with spaces, quotes or '=' are double-quoted.
std::string TextValue(const std::string& v) {
  bool plain = !v.empty() && v.find_first_of(" \t\"=\n") == std::string::npos;
  if (plain) return v;
  return "\"" + JsonEscape(v) + "\"";
}

}  // namespace

LogField::LogField(std::string k, double v) : key(std::move(k)), quoted(false) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  value = buf;
}

// Every message and value is redacted (agent/secrets.h) before it is escaped, so a registered
// secret is found as it was registered and a libpq message quoting a conninfo loses its password.
std::string FormatLogLine(LogFormat format, const std::string& raw_msg, LogFields fields) {
  std::string out;
  const std::string msg = Redact(raw_msg);
  if (format == LogFormat::kJson) {
    out = "\"msg\":\"" + JsonEscape(msg) + "\"";
    for (const auto& f : fields) {
      out += ",\"" + JsonEscape(f.key) + "\":";
      out += f.quoted ? "\"" + JsonEscape(Redact(f.value)) + "\"" : f.value;
    }
  } else {
    out = msg;
    for (const auto& f : fields) out += " " + f.key + "=" + TextValue(Redact(f.value));
  }
  return out;
}

void InitLogging(LogFormat format, const std::string& level) {
  g_format = format;
  auto l = Logger();
  if (format == LogFormat::kJson)
    l->set_pattern("{\"ts\":\"%Y-%m-%dT%H:%M:%S.%eZ\",\"level\":\"%l\",%v}",
                   spdlog::pattern_time_type::utc);
  else
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  l->set_level(spdlog::level::from_str(level == "warn" ? "warning" : level));
  l->flush_on(spdlog::level::trace);
}

void Log(LogLevel level, const std::string& msg, LogFields fields) {
  auto l = Logger();
  spdlog::level::level_enum lv = spdlog::level::info;
  switch (level) {
    case LogLevel::kDebug:
      lv = spdlog::level::debug;
      break;
    case LogLevel::kInfo:
      lv = spdlog::level::info;
      break;
    case LogLevel::kWarn:
      lv = spdlog::level::warn;
      break;
    case LogLevel::kError:
      lv = spdlog::level::err;
      break;
  }
  if (!l->should_log(lv)) return;
  l->log(lv, "{}", FormatLogLine(g_format.load(), msg, fields));
}

}  // namespace rw
