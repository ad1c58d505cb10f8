#include "exporters/history_report.h"

#include <toml++/toml.h>

#include <cstdio>
#include <sstream>

#include "agent/units.h"

namespace rw {
namespace {

std::string Percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", ratio * 100);
  return buf;
}

std::string Signed(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.0f%%", ratio * 100);
  return buf;
}

}  // namespace

std::string RenderHistoryText(const DrillHistoryView& v) {
  const DrillLogSummary s = SummarizeDrills(v.drills);
  std::ostringstream o;
  o << "target '" << v.target << "': " << s.drills << " drill(s) shown (last " << v.window << ")";
  if (v.unreadable) o << ", " << v.unreadable << " unreadable log line(s) skipped";
  o << "\n";
  if (s.drills == 0) {
    o << "  no drills recorded yet\n";
    return o.str();
  }
  o << "  pass rate " << Percent(s.pass_rate) << " (" << s.passed << " of " << s.drills
    << " passed)\n";
  if (s.rto_samples) {
    o << "  RTO (total stage duration, passed drills): min " << FormatSeconds(*s.rto_min)
      << ", median " << FormatSeconds(*s.rto_median) << ", max " << FormatSeconds(*s.rto_max)
      << "\n";
    if (s.rto_change_ratio)
      o << "  RTO trend: " << s.rto_trend << " (median of the newer half "
        << FormatSeconds(*s.rto_newer_median) << " vs older half "
        << FormatSeconds(*s.rto_older_median) << ", " << Signed(*s.rto_change_ratio) << ")\n";
    else
      o << "  RTO trend: needs at least 2 passed drills\n";
  } else {
    o << "  RTO: no passed drill in this window\n";
  }
  o << "\n";
  for (auto it = v.drills.rbegin(); it != v.drills.rend(); ++it) {
    const DrillLogEntry& e = *it;
    o << "  " << FormatTimestamp(e.started_at) << "  " << e.result << "  RTO "
      << FormatSeconds(e.rto_seconds()) << "  " << e.run_id;
    if (e.backup) o << "  backup " << e.backup->id;
    o << "\n    stages:";
    for (const auto& st : e.stages) {
      if (st.name == "total") continue;
      o << " " << st.name << "=" << OutcomeName(st.outcome) << "("
        << FormatSeconds(st.duration_seconds) << ")";
    }
    o << "\n";
    if (!e.checks.empty()) {
      o << "    checks:";
      for (const auto& c : e.checks) o << " " << c.name << "=" << OutcomeName(c.outcome);
      o << "\n";
    }
    if (!e.reason.empty()) o << "    reason: " << e.reason << "\n";
  }
  return o.str();
}

std::string RenderHistoryJson(const DrillHistoryView& v) {
  const DrillLogSummary s = SummarizeDrills(v.drills);
  toml::table root;
  root.insert_or_assign("target", v.target);
  root.insert_or_assign("window", static_cast<int64_t>(v.window));
  root.insert_or_assign("drills_shown", static_cast<int64_t>(s.drills));
  root.insert_or_assign("unreadable_lines", static_cast<int64_t>(v.unreadable));
  root.insert_or_assign("passed", static_cast<int64_t>(s.passed));
  root.insert_or_assign("pass_rate", s.pass_rate);
  toml::table rto;
  rto.insert_or_assign("samples", static_cast<int64_t>(s.rto_samples));
  if (s.rto_min) rto.insert_or_assign("min", *s.rto_min);
  if (s.rto_median) rto.insert_or_assign("median", *s.rto_median);
  if (s.rto_max) rto.insert_or_assign("max", *s.rto_max);
  root.insert_or_assign("rto_seconds", std::move(rto));
  toml::table trend;
  if (s.rto_older_median) trend.insert_or_assign("older_median_seconds", *s.rto_older_median);
  if (s.rto_newer_median) trend.insert_or_assign("newer_median_seconds", *s.rto_newer_median);
  if (s.rto_change_ratio) trend.insert_or_assign("change_ratio", *s.rto_change_ratio);
  if (!s.rto_trend.empty()) trend.insert_or_assign("direction", s.rto_trend);
  root.insert_or_assign("rto_trend", std::move(trend));
  toml::array drills;
  for (auto it = v.drills.rbegin(); it != v.drills.rend(); ++it) {
    const DrillLogEntry& e = *it;
    toml::table d;
    d.insert_or_assign("run_id", e.run_id);
    d.insert_or_assign("started_at", FormatTimestamp(e.started_at));
    d.insert_or_assign("finished_at", FormatTimestamp(e.finished_at));
    d.insert_or_assign("result", e.result);
    d.insert_or_assign("reason", e.reason);
    d.insert_or_assign("rto_seconds", e.rto_seconds());
    if (!e.sandbox.empty()) d.insert_or_assign("sandbox", e.sandbox);
    if (e.restored_size_bytes)
      d.insert_or_assign("restored_size_bytes", static_cast<int64_t>(e.restored_size_bytes));
    if (e.backup) {
      toml::table b;
      b.insert_or_assign("id", e.backup->id);
      b.insert_or_assign("kind", e.backup->kind);
      b.insert_or_assign("tool", e.backup->tool);
      b.insert_or_assign("completed_at", FormatTimestamp(e.backup->completed_at));
      b.insert_or_assign("size_bytes", static_cast<int64_t>(e.backup->size_bytes));
      d.insert_or_assign("backup", std::move(b));
    }
    toml::array stages;
    for (const auto& st : e.stages) {
      toml::table t;
      t.insert_or_assign("name", st.name);
      t.insert_or_assign("outcome", OutcomeName(st.outcome));
      t.insert_or_assign("duration_seconds", st.duration_seconds);
      if (!st.message.empty()) t.insert_or_assign("message", st.message);
      stages.push_back(std::move(t));
    }
    d.insert_or_assign("stages", std::move(stages));
    toml::array checks;
    for (const auto& c : e.checks) {
      toml::table t;
      t.insert_or_assign("name", c.name);
      t.insert_or_assign("outcome", OutcomeName(c.outcome));
      t.insert_or_assign("duration_seconds", c.duration_seconds);
      if (!c.message.empty()) t.insert_or_assign("message", c.message);
      checks.push_back(std::move(t));
    }
    d.insert_or_assign("checks", std::move(checks));
    drills.push_back(std::move(d));
  }
  root.insert_or_assign("drills", std::move(drills));
  std::ostringstream out;
  out << toml::json_formatter{root};
  return out.str();
}

}  // namespace rw
