#include "exporters/runbook.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "agent/secrets.h"
#include "agent/state.h"
#include "agent/units.h"
#include "version.h"

namespace rw {
namespace {

// "2h13m" for a span of seconds (rounded to whole seconds, or milliseconds under a minute).
std::string Span(double seconds) {
  if (!std::isfinite(seconds)) return "?";
  const bool negative = seconds < 0;
  double s = std::fabs(seconds);
  std::string out = s < 60 ? FormatSeconds(s)
                           : FormatDuration(std::chrono::seconds(static_cast<long long>(s + 0.5)));
  return negative ? "-" + out : out;
}

std::string Count(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

// Markdown table cells: no line breaks, no unescaped pipes.
std::string Cell(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

bool IsSignalFile(const std::pair<std::string, std::string>& kv) {
  const std::string& k = kv.first;
  return kv.second.empty() && k.size() > 7 && k.compare(k.size() - 7, 7, ".signal") == 0;
}

const CheckResult* FindCheck(const DrillReport& r, const std::string& name) {
  for (const auto& c : r.checks)
    if (c.name == name) return &c;
  return nullptr;
}

// What a check proved, in numbers: tables compared, rows verified.
std::string Coverage(const CheckResult& c) {
  std::string out;
  if (c.tables_compared) out += Count(c.tables_compared) + " tables compared";
  if (c.tables_mismatched) out += ", " + Count(c.tables_mismatched) + " mismatched";
  if (c.rows_verified || c.rows_unverified || c.tables_unverified) {
    out += (out.empty() ? "" : ", ") + Count(c.rows_verified) + " rows verified";
    if (c.rows_unverified || c.tables_unverified)
      out += " (" + Count(c.rows_unverified) + " rows in " + Count(c.tables_unverified) +
             " tables unverified)";
  } else if (c.rows_checksummed) {
    out += (out.empty() ? "" : ", ") + Count(c.rows_checksummed) + " rows checksummed";
  }
  if (c.recovered_timestamp)
    out += (out.empty() ? "" : ", ") + std::string("newest row ") +
           FormatTimestamp(*c.recovered_timestamp);
  return out.empty() ? "-" : out;
}

void Prerequisites(const RunbookInput& in, std::string& o) {
  const DrillReport& r = in.proven;
  const BackupInfo* b = r.backup ? &*r.backup : nullptr;
  const bool physical = b && b->tool == "pg_basebackup";
  o += "## Prerequisites\n\n";
  std::string pg = "- **PostgreSQL**: ";
  if (b && b->server_major)
    pg += "the backup is of a PostgreSQL " + std::to_string(b->server_major) + " server";
  if (b && b->dump_tool_major)
    pg += std::string(b->server_major ? ", " : "") + "written by pg_dump " +
          std::to_string(b->dump_tool_major);
  if (r.sandbox_major)
    pg += std::string(b && (b->server_major || b->dump_tool_major) ? "; " : "") +
          "restored into PostgreSQL " + std::to_string(r.sandbox_major) +
          (physical ? " (a physical copy needs this same major version)"
                    : " (pg_restore/psql of that major or newer)");
  if (pg == "- **PostgreSQL**: ") pg += "not recorded";
  o += pg + "\n";
  o +=
      "- **Disk**: the restored copy took " +
      (r.restored_size_bytes ? FormatSize(r.restored_size_bytes) : std::string("an unknown size")) +
      (b && b->size_bytes ? " (the backup itself is " + FormatSize(b->size_bytes) + ")" : "") +
      "; have at least that free on the server you restore to\n";
  bool no_owner = false, globals = b && !b->globals_path.empty();
  for (const auto& st : r.steps)
    for (const auto& argv : st.commands)
      if (std::find(argv.begin(), argv.end(), "--no-owner") != argv.end()) no_owner = true;
  std::string roles = "- **Roles**: ";
  if (physical) {
    roles += "none to create: a physical copy carries the cluster's roles";
  } else if (!r.roles_created.empty()) {
    roles += "the dump names roles that had to exist first; the drill created them (NOLOGIN): ";
    for (std::size_t i = 0; i < r.roles_created.size(); ++i)
      roles += (i ? ", " : "") + std::string("`") + r.roles_created[i] + "`";
  } else if (globals) {
    roles += "restored first from the globals file `" + b->globals_path + "` (pg_dumpall -g)";
  } else if (no_owner) {
    roles +=
        "none needed: restored with `--no-owner --no-privileges` (objects belong to the "
        "restoring user; grant what your applications need afterwards)";
  } else {
    roles += "none were created by the drill";
  }
  o += roles + "\n";
  if (physical && !r.steps.empty()) {
    o += "- **WAL archive**: readable by the server's user from the `restore_command` below; "
         "the drill ran with `archive_mode = off` and no `primary_conninfo`, so the copy could "
         "not write into the real archive or follow the primary\n";
  }
  if (b && !b->path.empty()) o += "- **Backup**: `" + b->path + "` readable\n";
  o += "\n";
}

void Steps(const RunbookInput& in, std::string& o) {
  const DrillReport& r = in.proven;
  o += "## Steps, in order\n\n";
  if (r.steps.empty()) {
    o += "This drill did not record its commands (it ran under an older restorewatch); the stage "
         "timings below are what is known. Run a drill with this version to record them.\n\n";
    return;
  }
  o += "Exactly what the drill ran. Commands address the drill's throwaway sandbox (`-d` "
       "conninfo, paths under the work dir): on a real restore point them at your new server "
       "and data directory.\n\n";
  int n = 0;
  for (const auto& st : r.steps) {
    ++n;
    o += "### " + std::to_string(n) + ". " + st.stage + ": " + st.name + " (" +
         Span(st.duration_seconds) + ")\n\n";
    if (!st.message.empty()) o += st.message + "\n\n";
    if (st.name == "sandbox start" && st.commands.empty())
      o += "A fresh, empty PostgreSQL " +
           (r.sandbox_major ? std::to_string(r.sandbox_major) + " " : std::string()) + "server (" +
           r.sandbox +
           " sandbox); the database was created empty from template0 before loading.\n\n";
    if (!st.commands.empty()) {
      o += "```sh\n";
      for (std::size_t i = 0; i < st.commands.size(); ++i) {
        // Several commands of one step may be a pipeline (decompressor | psql).
        const bool pipe = i + 1 < st.commands.size() && st.name == "psql" &&
                          st.commands[i + 1].size() > 0 &&
                          std::find(st.commands[i + 1].begin(), st.commands[i + 1].end(), "-") !=
                              st.commands[i + 1].end();
        o += ShellCommand(st.commands[i]) + (pipe ? " \\\n  | " : "\n");
        if (pipe) {
          o += ShellCommand(st.commands[++i]) + "\n";
        }
      }
      o += "```\n\n";
    }
    std::vector<std::pair<std::string, std::string>> settings, signals;
    for (const auto& kv : st.settings) (IsSignalFile(kv) ? signals : settings).push_back(kv);
    if (!settings.empty()) {
      o += "Started with these settings (postgresql.conf):\n\n```ini\n";
      for (const auto& [k, v] : settings) o += k + " = " + v + "\n";
      o += "```\n\n";
    }
    for (const auto& kv : signals)
      o += "With an empty `" + kv.first + "` file in the data directory.\n\n";
  }
}

void Rpo(const RunbookInput& in, std::string& o) {
  const DrillReport& r = in.proven;
  o += "## RPO measured\n\n";
  if (r.copy_consistent_at <= 0) {
    o += "Not measured: the drill did not record the copy's point.\n\n";
    return;
  }
  const bool physical = !r.copy_lsn.empty();
  o += "- The copy holds the source as of **" + FormatTimestamp(r.copy_consistent_at) + "** (" +
       (physical ? "the last commit recovery replayed, LSN " + r.copy_lsn +
                       (r.copy_timeline ? ", timeline " + std::to_string(r.copy_timeline) : "")
                 : std::string("the dump's snapshot")) +
       ").\n";
  o += "- When the drill started (" + FormatTimestamp(r.started_at) + ") that point was **" +
       Span(r.started_at - r.copy_consistent_at) +
       "** old: the window of writes a restore of this backup would have lost then.\n";
  if (const CheckResult* f = FindCheck(r, "freshness"); f && f->recovered_timestamp)
    o += "- Freshness check: the newest row in the copy is from " +
         FormatTimestamp(*f->recovered_timestamp) + " (" + f->message + ").\n";
  o += "\n";
}

void Timings(const DrillReport& r, std::string& o) {
  o += "## Stage timings\n\n| stage | outcome | duration | what |\n|---|---|---|---|\n";
  for (const auto& s : r.stages)
    o += "| " + s.name + " | " + OutcomeName(s.outcome) + " | " + Span(s.duration_seconds) + " | " +
         Cell(s.message) + " |\n";
  o += "\n";
}

void Checks(const DrillReport& r, std::string& o) {
  o += "## Checks that proved it\n\n";
  if (r.checks.empty()) {
    o += "No checks were enabled: the drill proved only that the backup restores.\n\n";
    return;
  }
  o += "| check | outcome | coverage | duration | result |\n|---|---|---|---|---|\n";
  for (const auto& c : r.checks)
    o += "| " + Cell(c.name) + " | " + OutcomeName(c.outcome) + " | " + Cell(Coverage(c)) + " | " +
         Span(c.duration_seconds) + " | " + Cell(c.message) + " |\n";
  o += "\n";
}

void Record(const RunbookInput& in, std::string& o) {
  if (in.recent.empty()) return;
  std::size_t passed = 0;
  std::vector<double> rto;
  for (const auto& e : in.recent)
    if (e.result == "success") {
      ++passed;
      rto.push_back(e.rto_seconds());
    }
  o += "## Recent record\n\n";
  o += "- " + std::to_string(passed) + " of the last " + std::to_string(in.recent.size()) +
       " drills passed";
  if (!rto.empty()) {
    std::sort(rto.begin(), rto.end());
    const std::size_t n = rto.size();
    const double median = n % 2 ? rto[n / 2] : (rto[n / 2 - 1] + rto[n / 2]) / 2;
    o += "; their duration (RTO) ranged " + Span(rto.front()) + " to " + Span(rto.back()) +
         ", median " + Span(median);
  }
  o += ".\n\n";
}

}  // namespace

std::string ShellCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& w : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !w.empty() && w.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-./=:,+%@") == std::string::npos;
    if (plain) {
      out += w;
      continue;
    }
    out += '\'';
    for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

std::string RenderRunbook(const RunbookInput& in) {
  const DrillReport& r = in.proven;
  std::string o;
  o += "# Restore runbook: " + in.target + "\n\n";
  o += "Generated by restorewatch " + in.version + " at " + FormatTimestamp(in.now) +
       " from the last drill that passed: run `" + r.run_id + "`, finished " +
       FormatTimestamp(r.finished_at) + " (" + Span(in.now - r.finished_at) +
       " ago). It describes what restorewatch really ran and proved, not what it might run.\n\n";
  // The newest drill did not pass: the person on call must see that first.
  if (!in.recent.empty() && in.recent.back().run_id != r.run_id &&
      in.recent.back().finished_at > r.finished_at && in.recent.back().result != "success") {
    const auto& last = in.recent.back();
    o += "> **Warning:** the newest drill (`" + last.run_id + "`, " +
         FormatTimestamp(last.finished_at) + ") did not pass: " + last.result + ": " + last.reason +
         "\n\n";
  }
  o += "## Last proven\n\n";
  o += "- **Proven**: " + FormatTimestamp(r.finished_at) + " (drill started " +
       FormatTimestamp(r.started_at) + ")\n";
  o += "- **Restore time (RTO)**: " + Span(r.total_seconds()) + " for the whole drill";
  double to_copy = 0;
  for (const auto& s : r.stages)
    if (s.name == "fetch" || s.name == "restore" || s.name == "recovery")
      to_copy += s.duration_seconds;
  if (to_copy > 0) o += ", " + Span(to_copy) + " until the copy was usable";
  o += "\n";
  if (r.backup) {
    const BackupInfo& b = *r.backup;
    o += "- **Backup**: `" + b.id + "` (" + b.tool + (b.format.empty() ? "" : ", " + b.format) +
         (b.size_bytes ? ", " + FormatSize(b.size_bytes) : "") + "), taken " +
         FormatTimestamp(b.started_at) + "\n";
  }
  o += "- **Target**: " + in.target + " (backup type " + in.backup_type + ")" +
       (in.source.empty() ? "" : ", source `" + in.source + "`") + "\n";
  o += "- **Sandbox**: " + r.sandbox +
       (r.sandbox_major ? ", PostgreSQL " + std::to_string(r.sandbox_major) : std::string()) +
       "\n\n";
  Prerequisites(in, o);
  Steps(in, o);
  Rpo(in, o);
  Timings(r, o);
  Checks(r, o);
  Record(in, o);
  return Redact(o);
}

RunbookResult BuildRunbook(const std::string& target, const std::string& backup_type,
                           const std::string& source, const std::string& dir, double now) {
  RunbookResult res;
  std::optional<DrillReport> proven;
  try {
    proven = LoadLastSuccessReport(dir);
  } catch (const std::exception&) {
  }
  if (!proven) {
    res.text = "no passing drill of " + target + " is recorded in " + dir +
               ": there is no proven restore to describe yet (run restorewatch verify)";
    return res;
  }
  RunbookInput in;
  in.target = target;
  in.backup_type = backup_type;
  in.source = source;
  in.proven = *proven;
  try {
    in.recent = DrillLog(dir).Read(20);
  } catch (const std::exception&) {
  }
  in.now = now;
  in.version = kVersion;
  res.found = true;
  res.text = RenderRunbook(in);
  return res;
}

}  // namespace rw
