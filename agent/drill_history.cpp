// DrillHistory and the report's TOML/JSON forms. The TOML form is what the state dir keeps (toml++
// reads it back); the JSON form (toml++'s json_formatter over the same tree) is what
// `verify --json` prints and /api/v1/status serves, so the two never drift apart.
#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/process.h"
#include "agent/state.h"
#include "agent/units.h"

namespace rw {
namespace {

void PutTime(toml::table& t, const char* key, double unix_seconds) {
  t.insert_or_assign(key, unix_seconds);
  t.insert_or_assign(std::string(key) + "_text", FormatTimestamp(unix_seconds));
}

toml::table BackupToToml(const BackupInfo& b) {
  toml::table t;
  t.insert_or_assign("id", b.id);
  t.insert_or_assign("kind", b.kind);
  t.insert_or_assign("tool", b.tool);
  t.insert_or_assign("format", b.format);
  t.insert_or_assign("path", b.path);
  if (!b.globals_path.empty()) t.insert_or_assign("globals_path", b.globals_path);
  PutTime(t, "started_at", b.started_at);
  PutTime(t, "completed_at", b.completed_at);
  t.insert_or_assign("started_exact", b.started_exact);
  t.insert_or_assign("size_bytes", static_cast<int64_t>(b.size_bytes));
  if (!b.database.empty()) t.insert_or_assign("database", b.database);
  if (b.server_major) t.insert_or_assign("server_major", b.server_major);
  if (b.dump_tool_major) t.insert_or_assign("dump_tool_major", b.dump_tool_major);
  return t;
}

toml::table FindingToToml(const TableFinding& f) {
  toml::table t;
  t.insert_or_assign("table", f.table);
  t.insert_or_assign("outcome", OutcomeName(f.outcome));
  t.insert_or_assign("message", f.message);
  if (f.source_rows) t.insert_or_assign("source_rows", *f.source_rows);
  if (f.restored_rows) t.insert_or_assign("restored_rows", *f.restored_rows);
  if (f.allowed_drift) t.insert_or_assign("allowed_drift", *f.allowed_drift);
  if (!f.sample_keys.empty()) {
    toml::array keys;
    for (const auto& k : f.sample_keys) keys.push_back(k);
    t.insert_or_assign("sample_keys", std::move(keys));
  }
  return t;
}

toml::table ReportTree(const DrillReport& r) {
  toml::table t;
  t.insert_or_assign("target", r.target);
  t.insert_or_assign("run_id", r.run_id);
  PutTime(t, "started_at", r.started_at);
  PutTime(t, "finished_at", r.finished_at);
  t.insert_or_assign("total_seconds", r.total_seconds());
  t.insert_or_assign("result", DrillResultName(r.result));
  t.insert_or_assign("reason", r.reason);
  t.insert_or_assign("sandbox", r.sandbox);
  t.insert_or_assign("restored_size_bytes", static_cast<int64_t>(r.restored_size_bytes));
  if (r.backup) t.insert_or_assign("backup", BackupToToml(*r.backup));
  toml::array stages;
  for (const auto& s : r.stages) {
    toml::table st;
    st.insert_or_assign("name", s.name);
    st.insert_or_assign("outcome", OutcomeName(s.outcome));
    st.insert_or_assign("message", s.message);
    st.insert_or_assign("duration_seconds", s.duration_seconds);
    stages.push_back(std::move(st));
  }
  t.insert_or_assign("stages", std::move(stages));
  toml::array checks;
  for (const auto& c : r.checks) {
    toml::table ct;
    ct.insert_or_assign("name", c.name);
    ct.insert_or_assign("outcome", OutcomeName(c.outcome));
    ct.insert_or_assign("message", c.message);
    ct.insert_or_assign("duration_seconds", c.duration_seconds);
    ct.insert_or_assign("tables_compared", c.tables_compared);
    ct.insert_or_assign("tables_mismatched", c.tables_mismatched);
    ct.insert_or_assign("rows_checksummed", c.rows_checksummed);
    if (c.recovered_timestamp) PutTime(ct, "recovered_timestamp", *c.recovered_timestamp);
    toml::array details;
    for (const auto& f : c.details) details.push_back(FindingToToml(f));
    ct.insert_or_assign("details", std::move(details));
    checks.push_back(std::move(ct));
  }
  t.insert_or_assign("checks", std::move(checks));
  return t;
}

template <typename T, typename View>
T Get(const View& n, T def = T{}) {
  return n.template value<T>().value_or(def);
}

BackupInfo BackupFromToml(const toml::table& t) {
  BackupInfo b;
  b.id = Get<std::string>(t["id"]);
  b.kind = Get<std::string>(t["kind"]);
  b.tool = Get<std::string>(t["tool"]);
  b.format = Get<std::string>(t["format"]);
  b.path = Get<std::string>(t["path"]);
  b.globals_path = Get<std::string>(t["globals_path"]);
  b.started_at = Get<double>(t["started_at"]);
  b.completed_at = Get<double>(t["completed_at"]);
  b.started_exact = Get<bool>(t["started_exact"]);
  b.size_bytes = static_cast<std::uint64_t>(Get<int64_t>(t["size_bytes"]));
  b.database = Get<std::string>(t["database"]);
  b.server_major = static_cast<int>(Get<int64_t>(t["server_major"]));
  b.dump_tool_major = static_cast<int>(Get<int64_t>(t["dump_tool_major"]));
  return b;
}

void WriteAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.flush();
    if (!out) throw Error(ErrorKind::kIo, "cannot write " + tmp);
  }
  int fd = open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ErrorKind::kIo, "cannot replace " + path);
}

}  // namespace

std::string ReportToJson(const DrillReport& r) {
  std::ostringstream out;
  out << toml::json_formatter{ReportTree(r)};
  return out.str();
}

std::string ReportToToml(const DrillReport& r) {
  std::ostringstream out;
  out << toml::toml_formatter{ReportTree(r)};
  return out.str();
}

std::optional<DrillReport> ReportFromToml(const std::string& text) {
  toml::table t;
  try {
    t = toml::parse(text);
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
  DrillReport r;
  r.target = Get<std::string>(t["target"]);
  r.run_id = Get<std::string>(t["run_id"]);
  r.started_at = Get<double>(t["started_at"]);
  r.finished_at = Get<double>(t["finished_at"]);
  std::string result = Get<std::string>(t["result"]);
  r.result = result == "success"   ? DrillResult::kSuccess
             : result == "failure" ? DrillResult::kFailure
                                   : DrillResult::kError;
  r.reason = Get<std::string>(t["reason"]);
  r.sandbox = Get<std::string>(t["sandbox"]);
  r.restored_size_bytes = static_cast<std::uint64_t>(Get<int64_t>(t["restored_size_bytes"]));
  if (const auto* b = t["backup"].as_table()) r.backup = BackupFromToml(*b);
  if (const auto* stages = t["stages"].as_array()) {
    for (const auto& n : *stages) {
      const auto* st = n.as_table();
      if (!st) continue;
      StageResult s;
      s.name = Get<std::string>((*st)["name"]);
      s.outcome = ParseOutcome(Get<std::string>((*st)["outcome"])).value_or(Outcome::kError);
      s.message = Get<std::string>((*st)["message"]);
      s.duration_seconds = Get<double>((*st)["duration_seconds"]);
      r.stages.push_back(std::move(s));
    }
  }
  if (const auto* checks = t["checks"].as_array()) {
    for (const auto& n : *checks) {
      const auto* ct = n.as_table();
      if (!ct) continue;
      CheckResult c;
      c.name = Get<std::string>((*ct)["name"]);
      c.outcome = ParseOutcome(Get<std::string>((*ct)["outcome"])).value_or(Outcome::kError);
      c.message = Get<std::string>((*ct)["message"]);
      c.duration_seconds = Get<double>((*ct)["duration_seconds"]);
      c.tables_compared = Get<int64_t>((*ct)["tables_compared"]);
      c.tables_mismatched = Get<int64_t>((*ct)["tables_mismatched"]);
      c.rows_checksummed = Get<int64_t>((*ct)["rows_checksummed"]);
      if (auto v = (*ct)["recovered_timestamp"].value<double>()) c.recovered_timestamp = *v;
      if (const auto* details = (*ct)["details"].as_array()) {
        for (const auto& dn : *details) {
          const auto* d = dn.as_table();
          if (!d) continue;
          TableFinding f;
          f.table = Get<std::string>((*d)["table"]);
          f.outcome = ParseOutcome(Get<std::string>((*d)["outcome"])).value_or(Outcome::kError);
          f.message = Get<std::string>((*d)["message"]);
          if (auto v = (*d)["source_rows"].value<int64_t>()) f.source_rows = *v;
          if (auto v = (*d)["restored_rows"].value<int64_t>()) f.restored_rows = *v;
          if (auto v = (*d)["allowed_drift"].value<int64_t>()) f.allowed_drift = *v;
          if (const auto* keys = (*d)["sample_keys"].as_array())
            for (const auto& k : *keys)
              if (auto s = k.value<std::string>()) f.sample_keys.push_back(*s);
          c.details.push_back(std::move(f));
        }
      }
      r.checks.push_back(std::move(c));
    }
  }
  return r;
}

DrillHistory::DrillHistory(std::string dir) : dir_(std::move(dir)) { MakeDirs(dir_, 0750); }

void DrillHistory::Record(const DrillReport& report) {
  std::lock_guard<std::mutex> lk(mu_);
  DrillHistorySummary prev;
  {
    // Load without the lock recursion: inline read of the summary file.
    std::ifstream in(dir_ + "/drills.toml");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      toml::table t = toml::parse(ss.str());
      if (auto v = t["last_success"].value<double>()) prev.last_success = *v;
      if (auto v = t["last_failure"].value<double>()) prev.last_failure = *v;
      if (const auto* runs = t["runs"].as_table())
        for (const auto& [k, v] : *runs)
          if (auto n = v.value<int64_t>()) prev.runs_by_result[std::string(k.str())] = *n;
    } catch (const toml::parse_error&) {
      // A missing or damaged summary starts afresh; the report file is still written.
    }
  }
  toml::table t;
  t.insert_or_assign("last_run", report.finished_at);
  double success = prev.last_success.value_or(0), failure = prev.last_failure.value_or(0);
  if (report.result == DrillResult::kSuccess)
    success = report.finished_at;
  else
    failure = report.finished_at;
  if (success > 0) t.insert_or_assign("last_success", success);
  if (failure > 0) t.insert_or_assign("last_failure", failure);
  prev.runs_by_result[DrillResultName(report.result)] += 1;
  toml::table runs;
  for (const auto& [k, v] : prev.runs_by_result) runs.insert_or_assign(k, v);
  t.insert_or_assign("runs", std::move(runs));
  std::ostringstream summary;
  summary << toml::toml_formatter{t};
  WriteAtomically(dir_ + "/last_drill.toml", ReportToToml(report));
  WriteAtomically(dir_ + "/drills.toml", summary.str());
}

DrillHistorySummary DrillHistory::Load() {
  std::lock_guard<std::mutex> lk(mu_);
  DrillHistorySummary s;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  try {
    toml::table t = toml::parse(read(dir_ + "/drills.toml"));
    if (auto v = t["last_run"].value<double>()) s.last_run = *v;
    if (auto v = t["last_success"].value<double>()) s.last_success = *v;
    if (auto v = t["last_failure"].value<double>()) s.last_failure = *v;
    if (const auto* runs = t["runs"].as_table())
      for (const auto& [k, v] : *runs)
        if (auto n = v.value<int64_t>()) s.runs_by_result[std::string(k.str())] = *n;
  } catch (const toml::parse_error&) {
  }
  std::string report = read(dir_ + "/last_drill.toml");
  if (!report.empty()) s.last_report = ReportFromToml(report);
  return s;
}

}  // namespace rw
