#include "exporters/report.h"

#include <toml++/toml.h>

#include <cstdio>
#include <sstream>

#include "agent/state.h"
#include "agent/units.h"

namespace rw {
namespace {

// A running drill's progress in /api/v1/status: the stage, the step, how long each has run,
// and what is done when known.
toml::table ProgressTable(const ProgressSnapshot& p) {
  toml::table t;
  t.insert_or_assign("run_id", p.run_id);
  t.insert_or_assign("stage", p.stage);
  if (!p.step.empty()) t.insert_or_assign("step", p.step);
  t.insert_or_assign("stage_elapsed_seconds", p.stage_elapsed_seconds);
  t.insert_or_assign("drill_elapsed_seconds", p.drill_elapsed_seconds);
  if (p.bytes_done) {
    t.insert_or_assign("bytes_done", static_cast<int64_t>(*p.bytes_done));
    if (p.bytes_total) t.insert_or_assign("bytes_total", static_cast<int64_t>(*p.bytes_total));
    t.insert_or_assign("bytes_what", p.bytes_what);
  }
  if (p.items_done) {
    t.insert_or_assign("items_done", *p.items_done);
    if (p.items_total) t.insert_or_assign("items_total", *p.items_total);
    t.insert_or_assign("items_what", p.items_what);
  }
  if (!p.note.empty()) t.insert_or_assign("note", p.note);
  t.insert_or_assign("line", ProgressLine(p));
  return t;
}

std::string Pad(const std::string& s, size_t n) {
  return s.size() >= n ? s + " " : s + std::string(n - s.size(), ' ');
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string RenderReportText(const DrillReport& r) {
  std::ostringstream o;
  o << "restore drill " << r.run_id << " for target '" << r.target
    << "': " << Upper(DrillResultName(r.result));
  if (!r.reason.empty()) o << " (" << r.reason << ")";
  o << "\n";
  o << "  started " << FormatTimestamp(r.started_at) << ", took "
    << FormatSeconds(r.total_seconds());
  if (!r.sandbox.empty()) o << ", sandbox " << r.sandbox;
  o << "\n";
  if (r.backup) {
    const auto& b = *r.backup;
    o << "  backup  " << b.id << " (" << b.tool << " " << b.format << ", "
      << FormatSize(b.size_bytes) << ")\n";
    if (!b.location.empty())
      o << "          read from copy \"" << b.location << "\": " << b.path << "\n";
    o << "          taken " << FormatTimestamp(b.started_at)
      << (b.started_exact ? "" : " (from file time)") << ", age "
      << FormatDuration(
             std::chrono::milliseconds(static_cast<int64_t>((r.started_at - b.started_at) * 1000)))
      << " at drill start\n";
    if (!r.pick.empty() && r.pick != "latest") o << "          picked " << r.pick << "\n";
  }
  if (r.restored_size_bytes) o << "  restored size " << FormatSize(r.restored_size_bytes) << "\n";
  for (const auto& c : r.checks) {
    if (c.name != "checksum" || c.rows_verified + c.rows_unverified == 0) continue;
    // What "verified" means: the copy holds the row as the source had it at the backup.
    const std::int64_t all = c.rows_verified + c.rows_unverified;
    o << "  coverage " << c.rows_verified << " of " << all << " source rows verified ("
      << (all ? (100 * c.rows_verified / all) : 0) << "%), " << c.tables_unverified
      << " tables unverified\n";
    for (const auto& u : c.unverified) o << "           unverified " << u << "\n";
  }
  o << "\n  stages\n";
  for (const auto& s : r.stages) {
    o << "    " << Pad(s.name, 10) << Pad(OutcomeName(s.outcome), 8)
      << Pad(FormatSeconds(s.duration_seconds), 10) << s.message << "\n";
  }
  // The stages of the list that did not run, and why ("fetch: skipped: ...").
  for (const auto& s : r.not_run)
    o << "    " << s.name << ": " << OutcomeName(s.outcome) << ": " << s.message << "\n";
  if (!r.checks.empty()) {
    o << "\n  checks\n";
    for (const auto& c : r.checks) {
      o << "    " << Pad(c.name, 16) << Pad(OutcomeName(c.outcome), 8)
        << Pad(FormatSeconds(c.duration_seconds), 10) << c.message << "\n";
      int shown = 0;
      for (const auto& f : c.details) {
        if (f.outcome == Outcome::kPass) continue;
        if (++shown > 20) {
          o << "        ... and more (see --json)\n";
          break;
        }
        o << "        " << Pad(OutcomeName(f.outcome), 8) << f.table << ": " << f.message;
        if (!f.sample_keys.empty()) {
          o << " [keys:";
          for (const auto& k : f.sample_keys) o << " " << k;
          o << "]";
        }
        o << "\n";
      }
    }
  }
  return o.str();
}

std::string RenderStatusJson(const AgentStatus& s) {
  toml::table root;
  root.insert_or_assign("version", s.version);
  root.insert_or_assign("revision", s.revision);
  root.insert_or_assign("started_at", FormatTimestamp(s.started_at));
  root.insert_or_assign("config_path", s.config_path);
  root.insert_or_assign("config_last_reload_successful", s.config_last_reload_successful);
  root.insert_or_assign("config_loaded_at", FormatTimestamp(s.config_loaded_at));
  root.insert_or_assign("ready", s.ready);
  toml::array targets;
  for (const auto& t : s.targets) {
    toml::table tt;
    tt.insert_or_assign("name", t.name);
    tt.insert_or_assign("source", t.source);
    tt.insert_or_assign("backup_type", t.backup_type);
    if (!t.schedule.empty()) tt.insert_or_assign("schedule", t.schedule);
    if (t.next_drill) tt.insert_or_assign("next_drill", FormatTimestamp(*t.next_drill));
    tt.insert_or_assign("drill_running", t.drill_running);
    if (t.drill_progress) tt.insert_or_assign("drill_progress", ProgressTable(*t.drill_progress));
    if (t.history.last_success)
      tt.insert_or_assign("last_success", FormatTimestamp(*t.history.last_success));
    if (t.history.last_failure)
      tt.insert_or_assign("last_failure", FormatTimestamp(*t.history.last_failure));
    toml::table runs;
    for (const auto& [k, v] : t.history.runs_by_result) runs.insert_or_assign(k, v);
    tt.insert_or_assign("drill_runs", std::move(runs));
    if (t.history.last_report) {
      // The same JSON as `verify --json`, embedded as a parsed tree.
      try {
        tt.insert_or_assign("last_drill", toml::parse(ReportToToml(*t.history.last_report)));
      } catch (const toml::parse_error&) {
      }
    }
    toml::table cols;
    for (const auto& [name, c] : t.collectors) {
      toml::table ct;
      ct.insert_or_assign("success", c.success);
      ct.insert_or_assign("duration_seconds", c.duration_seconds);
      if (c.last_run > 0) ct.insert_or_assign("last_run", FormatTimestamp(c.last_run));
      if (!c.error.empty()) ct.insert_or_assign("error", c.error);
      if (!c.notes.empty()) {
        toml::array notes;
        for (const auto& n : c.notes) notes.push_back(n);
        ct.insert_or_assign("notes", std::move(notes));
      }
      cols.insert_or_assign(name, std::move(ct));
    }
    tt.insert_or_assign("collectors", std::move(cols));
    targets.push_back(std::move(tt));
  }
  root.insert_or_assign("targets", std::move(targets));
  std::ostringstream out;
  out << toml::json_formatter{root};
  return out.str();
}

}  // namespace rw
