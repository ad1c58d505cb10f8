// DrillHistory and the report's TOML/JSON forms. The TOML form is what the state dir keeps (toml++
// reads it back); the JSON form (toml++'s json_formatter over the same tree) is what
// `verify --json` prints and /api/v1/status serves, so the two never drift apart.
#include <dirent.h>
#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/pg/process.h"
#include "agent/state.h"
#include "agent/state_file.h"
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
  if (!b.location.empty()) t.insert_or_assign("location", b.location);
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
  if (!r.pick.empty()) t.insert_or_assign("pick", r.pick);
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
  if (!r.not_run.empty()) {
    toml::array not_run;
    for (const auto& s : r.not_run) {
      toml::table st;
      st.insert_or_assign("name", s.name);
      st.insert_or_assign("outcome", OutcomeName(s.outcome));
      st.insert_or_assign("message", s.message);
      not_run.push_back(std::move(st));
    }
    t.insert_or_assign("not_run", std::move(not_run));
  }
  if (r.copy_consistent_at > 0) {
    // The point the restored copy represents.
    toml::table copy;
    PutTime(copy, "consistent_at", r.copy_consistent_at);
    if (!r.copy_lsn.empty()) copy.insert_or_assign("lsn", r.copy_lsn);
    if (r.copy_timeline) copy.insert_or_assign("timeline", static_cast<int64_t>(r.copy_timeline));
    t.insert_or_assign("copy", std::move(copy));
  }
  if (!r.steps.empty()) {
    // What the source ran, for the runbook: each step with its command lines and settings.
    toml::array steps;
    for (const auto& s : r.steps) {
      toml::table st;
      st.insert_or_assign("stage", s.stage);
      st.insert_or_assign("name", s.name);
      st.insert_or_assign("duration_seconds", s.duration_seconds);
      st.insert_or_assign("message", s.message);
      toml::array commands;
      for (const auto& argv : s.commands) {
        toml::array words;
        for (const auto& w : argv) words.push_back(w);
        commands.push_back(std::move(words));
      }
      st.insert_or_assign("commands", std::move(commands));
      toml::array settings;
      for (const auto& [k, v] : s.settings) {
        toml::table kv;
        kv.insert_or_assign("name", k);
        kv.insert_or_assign("value", v);
        settings.push_back(std::move(kv));
      }
      st.insert_or_assign("settings", std::move(settings));
      steps.push_back(std::move(st));
    }
    t.insert_or_assign("steps", std::move(steps));
  }
  if (r.sandbox_major) t.insert_or_assign("sandbox_major", static_cast<int64_t>(r.sandbox_major));
  if (!r.roles_created.empty()) {
    toml::array roles;
    for (const auto& x : r.roles_created) roles.push_back(x);
    t.insert_or_assign("roles_created", std::move(roles));
  }
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
    if (c.indexes_checked) ct.insert_or_assign("indexes_checked", c.indexes_checked);
    if (c.rows_verified || c.rows_unverified || c.tables_unverified) {
      ct.insert_or_assign("tables_unverified", c.tables_unverified);
      ct.insert_or_assign("rows_verified", c.rows_verified);
      ct.insert_or_assign("rows_unverified", c.rows_unverified);
      toml::array why;
      for (const auto& u : c.unverified) why.push_back(u);
      ct.insert_or_assign("unverified", std::move(why));
    }
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
  b.location = Get<std::string>(t["location"]);
  b.started_at = Get<double>(t["started_at"]);
  b.completed_at = Get<double>(t["completed_at"]);
  b.started_exact = Get<bool>(t["started_exact"]);
  b.size_bytes = static_cast<std::uint64_t>(Get<int64_t>(t["size_bytes"]));
  b.database = Get<std::string>(t["database"]);
  b.server_major = static_cast<int>(Get<int64_t>(t["server_major"]));
  b.dump_tool_major = static_cast<int>(Get<int64_t>(t["dump_tool_major"]));
  return b;
}

}  // namespace

void WriteAtomically(const std::string& path, const std::string& content) {
  // Per process: a daemon and a `verify` replacing the same file must not share a temp file.
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error(ErrorKind::kIo, "cannot write " + tmp);
    }
  }
  // A file that did not reach the disk whole (a full disk) must not replace a good one.
  int fd = open(tmp.c_str(), O_RDONLY);
  if (fd < 0 || fsync(fd) != 0) {
    std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    std::remove(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + why);
  }
  close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot replace " + path);
  }
}

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
  r.pick = Get<std::string>(t["pick"]);
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
  if (const auto* not_run = t["not_run"].as_array()) {
    for (const auto& n : *not_run) {
      const auto* st = n.as_table();
      if (!st) continue;
      StageResult s;
      s.name = Get<std::string>((*st)["name"]);
      s.outcome = ParseOutcome(Get<std::string>((*st)["outcome"])).value_or(Outcome::kSkipped);
      s.message = Get<std::string>((*st)["message"]);
      r.not_run.push_back(std::move(s));
    }
  }
  if (const auto* copy = t["copy"].as_table()) {
    r.copy_consistent_at = Get<double>((*copy)["consistent_at"]);
    r.copy_lsn = Get<std::string>((*copy)["lsn"]);
    r.copy_timeline = static_cast<int>(Get<int64_t>((*copy)["timeline"]));
  }
  if (const auto* steps = t["steps"].as_array()) {
    for (const auto& n : *steps) {
      const auto* st = n.as_table();
      if (!st) continue;
      SubStage s;
      s.stage = Get<std::string>((*st)["stage"]);
      s.name = Get<std::string>((*st)["name"]);
      s.duration_seconds = Get<double>((*st)["duration_seconds"]);
      s.message = Get<std::string>((*st)["message"]);
      if (const auto* commands = (*st)["commands"].as_array())
        for (const auto& c : *commands) {
          std::vector<std::string> argv;
          if (const auto* words = c.as_array())
            for (const auto& w : *words)
              if (auto v = w.value<std::string>()) argv.push_back(*v);
          s.commands.push_back(std::move(argv));
        }
      if (const auto* settings = (*st)["settings"].as_array())
        for (const auto& kv : *settings)
          if (const auto* x = kv.as_table())
            s.settings.emplace_back(Get<std::string>((*x)["name"]),
                                    Get<std::string>((*x)["value"]));
      r.steps.push_back(std::move(s));
    }
  }
  r.sandbox_major = static_cast<int>(Get<int64_t>(t["sandbox_major"]));
  if (const auto* roles = t["roles_created"].as_array())
    for (const auto& x : *roles)
      if (auto v = x.value<std::string>()) r.roles_created.push_back(*v);
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
      c.indexes_checked = Get<int64_t>((*ct)["indexes_checked"]);
      c.tables_unverified = Get<int64_t>((*ct)["tables_unverified"]);
      c.rows_verified = Get<int64_t>((*ct)["rows_verified"]);
      c.rows_unverified = Get<int64_t>((*ct)["rows_unverified"]);
      if (const auto* why = (*ct)["unverified"].as_array())
        for (const auto& u : *why)
          if (auto v = u.value<std::string>()) c.unverified.push_back(*v);
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

namespace {

constexpr const char* kSummaryFile = "drills.toml";
constexpr const char* kReportFile = "last_drill.toml";
// The full report of the newest drill that passed (what `restorewatch runbook` describes).
constexpr const char* kSuccessFile = "last_success.toml";
constexpr const char* kRunningPrefix = "drill_running.";
constexpr const char* kRunningSuffix = ".toml";
// Files written by this version start with the header and end with the trailer, so a file cut
// short anywhere is told from a complete one. Files without the header (older versions) are
// read leniently.
constexpr const char* kHeader = "# restorewatch state v1\n";
constexpr const char* kTrailer = "# end of restorewatch state\n";

}  // namespace

std::string Framed(const std::string& body) { return kHeader + body + "\n" + kTrailer; }

// nullopt when the file does not exist. Throws Error(kIo) when it cannot be read.
std::optional<std::string> ReadState(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw Error(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses a state file's TOML; sets *problem (one line) when it is damaged.
std::optional<toml::table> ParseState(const std::string& text, std::string* problem) {
  if (text.empty()) {
    *problem = "empty file";
    return std::nullopt;
  }
  const std::string header(kHeader), trailer(kTrailer);
  if (text.compare(0, header.size(), header) == 0 &&
      (text.size() < trailer.size() ||
       text.compare(text.size() - trailer.size(), trailer.size(), trailer) != 0)) {
    *problem = "truncated (no end marker)";
    return std::nullopt;
  }
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "does not parse: " << e.description() << " at line " << e.source().begin.line;
    *problem = msg.str();
    return std::nullopt;
  }
}

namespace {

bool SaneTime(double t) { return std::isfinite(t) && t >= 0; }

// The summary keys of `t` (drills.toml, or last_drill.toml's [history]) into *s. False, with a
// problem, on impossible values.
bool SummaryFromTable(const toml::table& t, DrillHistorySummary* s, std::string* problem) {
  struct Key {
    const char* name;
    std::optional<double>* out;
  } keys[] = {{"last_run", &s->last_run},
              {"last_success", &s->last_success},
              {"last_failure", &s->last_failure}};
  for (const auto& k : keys) {
    const toml::node* n = t.get(k.name);
    if (!n) continue;
    auto v = n->value<double>();
    if (!v || !SaneTime(*v)) {
      *problem = std::string(k.name) + " is not a timestamp";
      return false;
    }
    *k.out = *v;
  }
  if (const toml::node* runs = t.get("runs")) {
    const auto* rt = runs->as_table();
    if (!rt) {
      *problem = "runs is not a table";
      return false;
    }
    for (const auto& [k, v] : *rt) {
      auto n = v.value<int64_t>();
      if (!n || *n < 0) {
        *problem = "runs." + std::string(k.str()) + " is not a count";
        return false;
      }
      s->runs_by_result[std::string(k.str())] = *n;
    }
  }
  return true;
}

void MaxInto(std::optional<double>& into, const std::optional<double>& v) {
  if (v && (!into || *v > *into)) into = v;
}

// Merges `b` into `a`: the later timestamps and the higher counts win (the two files are written
// one after the other, so after a crash between the writes one is a drill ahead).
void Merge(DrillHistorySummary& a, const DrillHistorySummary& b) {
  MaxInto(a.last_run, b.last_run);
  MaxInto(a.last_success, b.last_success);
  MaxInto(a.last_failure, b.last_failure);
  for (const auto& [k, v] : b.runs_by_result)
    a.runs_by_result[k] = std::max(a.runs_by_result[k], v);
}

toml::table SummaryTable(const DrillHistorySummary& s) {
  toml::table t;
  if (s.last_run) t.insert_or_assign("last_run", *s.last_run);
  if (s.last_success) t.insert_or_assign("last_success", *s.last_success);
  if (s.last_failure) t.insert_or_assign("last_failure", *s.last_failure);
  toml::table runs;
  for (const auto& [k, v] : s.runs_by_result) runs.insert_or_assign(k, v);
  t.insert_or_assign("runs", std::move(runs));
  return t;
}

std::string CompactUtc(double t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

// Renames a damaged state file to <path>.corrupt-<UTC time> (never over an earlier one) and logs.
void MoveAside(const std::string& path, const std::string& problem, const std::string& rebuilt) {
  std::string to = path + ".corrupt-" + CompactUtc(NowUnix());
  for (int i = 2; access(to.c_str(), F_OK) == 0 && i < 100; ++i)
    to = path + ".corrupt-" + CompactUtc(NowUnix()) + "-" + std::to_string(i);
  if (std::rename(path.c_str(), to.c_str()) != 0) {
    if (errno == ENOENT) return;  // another process moved it a moment ago
    LogError("state file is corrupt and cannot be moved aside",
             {{"file", path}, {"problem", problem}, {"error", std::strerror(errno)}});
    return;
  }
  LogWarn("state file is corrupt; moved aside",
          {{"file", path}, {"moved_to", to}, {"problem", problem}, {"rebuilt", rebuilt}});
}

namespace {

std::string RunningPath(const std::string& dir, pid_t pid) {
  return dir + "/" + kRunningPrefix + std::to_string(pid) + kRunningSuffix;
}

}  // namespace

DrillHistory::DrillHistory(std::string dir) : dir_(std::move(dir)) {
  MakeDirs(dir_, 0750);
  std::lock_guard<std::mutex> lk(mu_);
  try {
    RecoverInterruptedLocked();
  } catch (const Error& e) {
    LogError("cannot recover interrupted drills", {{"dir", dir_}, {"error", e.what()}});
  }
}

DrillHistorySummary DrillHistory::LoadLocked() {
  DrillHistorySummary s;
  const std::string summary_path = dir_ + "/" + kSummaryFile;
  const std::string report_path = dir_ + "/" + kReportFile;

  // last_drill.toml: the report, and (since v1) a copy of the summary as [history].
  DrillHistorySummary from_report;
  bool report_has_history = false;
  std::string report_problem;
  std::optional<std::string> report_text = ReadState(report_path);
  if (report_text) {
    std::optional<toml::table> t = ParseState(*report_text, &report_problem);
    if (t) {
      if (const auto* h = (*t)["history"].as_table()) {
        if (SummaryFromTable(*h, &from_report, &report_problem))
          report_has_history = true;
        else
          t.reset();
      }
    }
    if (t) {
      s.last_report = ReportFromToml(*report_text);
      if (!s.last_report) report_problem = "does not parse";
    }
    if (!s.last_report) {
      from_report = {};
      report_has_history = false;
    } else if (!report_has_history) {
      // An older file: the report alone still says when the last drill ended and how.
      const DrillReport& r = *s.last_report;
      if (SaneTime(r.finished_at) && r.finished_at > 0) {
        from_report.last_run = r.finished_at;
        (r.result == DrillResult::kSuccess ? from_report.last_success : from_report.last_failure) =
            r.finished_at;
        from_report.runs_by_result[DrillResultName(r.result)] = 1;
      }
    }
  }

  std::string summary_problem;
  bool summary_ok = false;
  std::optional<std::string> summary_text = ReadState(summary_path);
  if (summary_text) {
    std::optional<toml::table> t = ParseState(*summary_text, &summary_problem);
    DrillHistorySummary from_summary;
    if (t && SummaryFromTable(*t, &from_summary, &summary_problem)) {
      Merge(s, from_summary);
      summary_ok = true;
    }
  }
  Merge(s, from_report);

  bool rewrite = false;
  if (report_text && !s.last_report) {
    MoveAside(report_path, report_problem,
              summary_ok ? "summary kept from drills.toml; the last report is lost"
                         : "nothing: the last report is lost");
  }
  if (summary_text && !summary_ok) {
    std::string rebuilt = report_has_history ? "from the summary copy in last_drill.toml"
                          : s.last_report    ? "from the last report only (counts restart)"
                                             : "nothing: counts restart at 0";
    MoveAside(summary_path, summary_problem, rebuilt);
    rewrite = true;
  }
  // Never backwards within this process.
  for (auto& [k, v] : runs_floor_) s.runs_by_result[k] = std::max(s.runs_by_result[k], v);
  for (const auto& [k, v] : s.runs_by_result) runs_floor_[k] = std::max(runs_floor_[k], v);
  if (rewrite && (s.last_run || !s.runs_by_result.empty())) {
    std::ostringstream out;
    out << toml::toml_formatter{SummaryTable(s)};
    try {
      WriteAtomically(summary_path, Framed(out.str()));
    } catch (const Error& e) {
      LogError("cannot rewrite the drill summary", {{"file", summary_path}, {"error", e.what()}});
    }
  }
  return s;
}

void DrillHistory::RecordLocked(const DrillReport& report) {
  DrillHistorySummary s = LoadLocked();
  s.last_report.reset();
  s.last_run = report.finished_at;
  if (report.result == DrillResult::kSuccess)
    s.last_success = report.finished_at;
  else
    s.last_failure = report.finished_at;
  s.runs_by_result[DrillResultName(report.result)] += 1;
  for (const auto& [k, v] : s.runs_by_result) runs_floor_[k] = std::max(runs_floor_[k], v);

  toml::table report_tree = ReportTree(report);
  report_tree.insert_or_assign("history", SummaryTable(s));
  std::ostringstream report_out, summary_out;
  report_out << toml::toml_formatter{report_tree};
  summary_out << toml::toml_formatter{SummaryTable(s)};
  WriteAtomically(dir_ + "/" + kReportFile, Framed(report_out.str()));
  WriteAtomically(dir_ + "/" + kSummaryFile, Framed(summary_out.str()));
  if (report.result == DrillResult::kSuccess) {
    std::ostringstream success_out;
    success_out << toml::toml_formatter{ReportTree(report)};
    WriteAtomically(dir_ + "/" + kSuccessFile, Framed(success_out.str()));
  }
}

void DrillHistory::Record(const DrillReport& report) {
  std::lock_guard<std::mutex> lk(mu_);
  RecordLocked(report);
  std::remove(RunningPath(dir_, getpid()).c_str());
}

void DrillHistory::BeginDrill(double started_at) {
  std::lock_guard<std::mutex> lk(mu_);
  toml::table t;
  t.insert_or_assign("target", dir_.substr(dir_.rfind('/') + 1));
  PutTime(t, "started_at", started_at);
  t.insert_or_assign("owner", FormatIdentity(SelfIdentity()));
  std::ostringstream out;
  out << toml::toml_formatter{t};
  try {
    WriteAtomically(RunningPath(dir_, getpid()), Framed(out.str()));
  } catch (const Error& e) {
    // The drill runs anyway; only a crash during it would go unrecorded.
    LogError("cannot write the drill-in-progress marker", {{"dir", dir_}, {"error", e.what()}});
  }
}

void DrillHistory::RecoverInterruptedLocked() {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir_.c_str())) {
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      const std::string pre(kRunningPrefix), suf(kRunningSuffix);
      if (n.size() > pre.size() + suf.size() && n.compare(0, pre.size(), pre) == 0 &&
          n.compare(n.size() - suf.size(), suf.size(), suf) == 0)
        names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const std::string path = dir_ + "/" + name;
    std::optional<std::string> text = ReadState(path);
    if (!text) continue;
    std::string problem;
    std::optional<toml::table> t = ParseState(*text, &problem);
    std::optional<ProcessIdentity> owner;
    if (t) {
      owner = ParseIdentity(Get<std::string>((*t)["owner"]));
      if (!owner) problem = "no owner";
    }
    if (!owner) {
      // Whose drill it was cannot be told: never count it, never let it block anything.
      MoveAside(path, problem, "nothing: an unreadable drill-in-progress marker");
      continue;
    }
    if (OwnerStateOf(*owner) != OwnerState::kGone) continue;  // still running (or elsewhere)
    // Claim it first: a daemon and a `verify` starting together must not both record it.
    const std::string claimed = path + ".claimed-" + std::to_string(getpid());
    if (std::rename(path.c_str(), claimed.c_str()) != 0) continue;
    DrillReport r;
    r.target = Get<std::string>((*t)["target"]);
    if (r.target.empty()) r.target = dir_.substr(dir_.rfind('/') + 1);
    r.started_at = Get<double>((*t)["started_at"]);
    r.finished_at = NowUnix();
    if (!SaneTime(r.started_at) || r.started_at > r.finished_at) r.started_at = r.finished_at;
    r.run_id = "interrupted-" + CompactUtc(r.started_at);
    r.result = DrillResult::kError;
    r.reason =
        "interrupted: the agent stopped during the drill (pid " + std::to_string(owner->pid) + ")";
    RecordLocked(r);
    std::remove(claimed.c_str());
    recovered_.push_back(r);
    LogWarn("a drill was interrupted by the agent stopping; recorded as an error",
            {{"target", r.target},
             {"pid", static_cast<int64_t>(owner->pid)},
             {"started_at", FormatTimestamp(r.started_at)}});
  }
}

std::optional<DrillReport> LoadLastSuccessReport(const std::string& dir) {
  for (const char* name : {kSuccessFile, kReportFile}) {
    const std::string path = dir + "/" + name;
    std::optional<std::string> text;
    try {
      text = ReadState(path);
    } catch (const Error& e) {
      LogWarn("drill report unreadable", {{"file", path}, {"error", e.what()}});
    }
    if (!text) continue;
    std::string problem;
    if (!ParseState(*text, &problem)) {
      LogWarn("drill report unreadable", {{"file", path}, {"error", problem}});
      continue;
    }
    std::optional<DrillReport> r = ReportFromToml(*text);
    if (r && r->result == DrillResult::kSuccess) return r;
  }
  return std::nullopt;
}

DrillHistorySummary DrillHistory::Load() {
  std::lock_guard<std::mutex> lk(mu_);
  return LoadLocked();
}

}  // namespace rw
