#include "agent/drill_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

using JVal = json::Value;
using json::PutNumber;
using json::PutString;

void Key(std::string& o, const char* k, bool first = false) { json::PutKey(o, k, first); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t nl = all.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(all.substr(start));  // torn last line: the parser rejects it
      break;
    }
    if (nl > start) lines.push_back(all.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

}  // namespace

double DrillLogEntry::rto_seconds() const {
  for (const auto& s : stages)
    if (s.name == "total") return s.duration_seconds;
  return finished_at - started_at;
}

DrillLogEntry EntryFromReport(const DrillReport& r) {
  DrillLogEntry e;
  e.run_id = r.run_id;
  e.target = r.target;
  e.started_at = r.started_at;
  e.finished_at = r.finished_at;
  e.result = DrillResultName(r.result);
  e.reason = r.reason;
  e.sandbox = r.sandbox;
  e.restored_size_bytes = r.restored_size_bytes;
  if (r.backup) {
    BackupInfo b;
    b.id = r.backup->id;
    b.kind = r.backup->kind;
    b.tool = r.backup->tool;
    b.completed_at = r.backup->completed_at;
    b.size_bytes = r.backup->size_bytes;
    e.backup = b;
  }
  e.stages = r.stages;
  for (const auto& c : r.checks) {
    CheckResult k;
    k.name = c.name;
    k.outcome = c.outcome;
    k.message = c.message;
    k.duration_seconds = c.duration_seconds;
    e.checks.push_back(std::move(k));
  }
  return e;
}

std::string EntryToJsonLine(const DrillLogEntry& e) {
  std::string o = "{";
  Key(o, "v", true);
  o += "1";
  Key(o, "run_id");
  PutString(o, e.run_id);
  Key(o, "target");
  PutString(o, e.target);
  Key(o, "started_at");
  PutNumber(o, e.started_at);
  Key(o, "finished_at");
  PutNumber(o, e.finished_at);
  Key(o, "result");
  PutString(o, e.result);
  Key(o, "reason");
  PutString(o, e.reason);
  Key(o, "sandbox");
  PutString(o, e.sandbox);
  Key(o, "restored_size_bytes");
  PutNumber(o, static_cast<double>(e.restored_size_bytes));
  if (e.backup) {
    Key(o, "backup");
    o += '{';
    Key(o, "id", true);
    PutString(o, e.backup->id);
    Key(o, "kind");
    PutString(o, e.backup->kind);
    Key(o, "tool");
    PutString(o, e.backup->tool);
    Key(o, "completed_at");
    PutNumber(o, e.backup->completed_at);
    Key(o, "size_bytes");
    PutNumber(o, static_cast<double>(e.backup->size_bytes));
    o += '}';
  }
  Key(o, "stages");
  o += '[';
  for (std::size_t i = 0; i < e.stages.size(); ++i) {
    const auto& s = e.stages[i];
    if (i) o += ',';
    o += '{';
    Key(o, "name", true);
    PutString(o, s.name);
    Key(o, "outcome");
    PutString(o, OutcomeName(s.outcome));
    Key(o, "duration_seconds");
    PutNumber(o, s.duration_seconds);
    Key(o, "message");
    PutString(o, s.message);
    o += '}';
  }
  o += ']';
  Key(o, "checks");
  o += '[';
  for (std::size_t i = 0; i < e.checks.size(); ++i) {
    const auto& c = e.checks[i];
    if (i) o += ',';
    o += '{';
    Key(o, "name", true);
    PutString(o, c.name);
    Key(o, "outcome");
    PutString(o, OutcomeName(c.outcome));
    Key(o, "duration_seconds");
    PutNumber(o, c.duration_seconds);
    Key(o, "message");
    PutString(o, c.message);
    o += '}';
  }
  o += "]}";
  return o;
}

std::optional<DrillLogEntry> EntryFromJsonLine(const std::string& line) {
  JVal v;
  if (!json::Parse(line, &v) || v.t != JVal::T::kObj) return std::nullopt;
  DrillLogEntry e;
  e.run_id = v.Str("run_id");
  e.target = v.Str("target");
  e.started_at = v.Num("started_at");
  e.finished_at = v.Num("finished_at");
  e.result = v.Str("result");
  if (e.result != "success" && e.result != "failure" && e.result != "error") return std::nullopt;
  e.reason = v.Str("reason");
  e.sandbox = v.Str("sandbox");
  e.restored_size_bytes = static_cast<std::uint64_t>(std::max(0.0, v.Num("restored_size_bytes")));
  if (const JVal* b = v.Get("backup"); b && b->t == JVal::T::kObj) {
    BackupInfo bi;
    bi.id = b->Str("id");
    bi.kind = b->Str("kind");
    bi.tool = b->Str("tool");
    bi.completed_at = b->Num("completed_at");
    bi.size_bytes = static_cast<std::uint64_t>(std::max(0.0, b->Num("size_bytes")));
    e.backup = bi;
  }
  if (const JVal* st = v.Get("stages"); st && st->t == JVal::T::kArr) {
    for (const auto& x : st->a) {
      StageResult s;
      s.name = x.Str("name");
      s.outcome = ParseOutcome(x.Str("outcome")).value_or(Outcome::kError);
      s.duration_seconds = x.Num("duration_seconds");
      s.message = x.Str("message");
      e.stages.push_back(std::move(s));
    }
  }
  if (const JVal* cs = v.Get("checks"); cs && cs->t == JVal::T::kArr) {
    for (const auto& x : cs->a) {
      CheckResult c;
      c.name = x.Str("name");
      c.outcome = ParseOutcome(x.Str("outcome")).value_or(Outcome::kError);
      c.duration_seconds = x.Num("duration_seconds");
      c.message = x.Str("message");
      e.checks.push_back(std::move(c));
    }
  }
  return e;
}

DrillLog::DrillLog(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/drills.jsonl") {}

void DrillLog::Append(const DrillReport& report) {
  int lock_fd = -1, fd = -1;
  try {
    MakeDirs(dir_);
    const std::string lock_path = dir_ + "/drills.lock";
    lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) throw Error(ErrorKind::kIo, "cannot open " + lock_path);
    while (flock(lock_fd, LOCK_EX) != 0)
      if (errno != EINTR) throw Error(ErrorKind::kIo, "cannot lock " + lock_path);
    fd = open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(ErrorKind::kIo, "cannot open " + path_ + ": " + std::strerror(errno));
    std::string line = EntryToJsonLine(EntryFromReport(report)) + "\n";
    // After a torn last line (a crash mid-append), start on a fresh line so this one survives.
    const off_t size = lseek(fd, 0, SEEK_END);
    char last = '\n';
    if (size > 0 && pread(fd, &last, 1, size - 1) == 1 && last != '\n') line.insert(0, "\n");
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      throw Error(ErrorKind::kIo, "cannot append to " + path_ + ": " + std::strerror(errno));
    fdatasync(fd);
    close(fd);
    fd = -1;
    std::vector<std::string> lines = ReadLines(path_);
    if (lines.size() > kKeep + kSlack) {
      const std::string tmp = path_ + ".tmp";
      {
        std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
        for (std::size_t i = lines.size() - kKeep; i < lines.size(); ++i) out << lines[i] << '\n';
        out.flush();
        if (!out) throw Error(ErrorKind::kIo, "cannot write " + tmp);
      }
      if (std::rename(tmp.c_str(), path_.c_str()) != 0)
        throw Error(ErrorKind::kIo, "cannot replace " + path_);
    }
  } catch (const std::exception& e) {
    LogWarn("cannot append to the drill log", {{"target", report.target}, {"error", e.what()}});
  }
  if (fd >= 0) close(fd);
  if (lock_fd >= 0) close(lock_fd);
}

std::vector<DrillLogEntry> DrillLog::Read(std::size_t last, std::size_t* unreadable) const {
  std::vector<DrillLogEntry> out;
  std::size_t bad = 0;
  for (const auto& line : ReadLines(path_)) {
    if (auto e = EntryFromJsonLine(line)) {
      out.push_back(std::move(*e));
    } else {
      ++bad;
    }
  }
  if (out.size() > last) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(last));
  if (unreadable) *unreadable = bad;
  return out;
}

DrillLogSummary SummarizeDrills(const std::vector<DrillLogEntry>& entries) {
  DrillLogSummary s;
  s.drills = entries.size();
  std::vector<double> rto;
  for (const auto& e : entries) {
    if (e.result != "success") continue;
    ++s.passed;
    rto.push_back(e.rto_seconds());
  }
  s.pass_rate = s.drills ? static_cast<double>(s.passed) / static_cast<double>(s.drills) : 0;
  s.rto_samples = rto.size();
  if (rto.empty()) return s;
  s.rto_min = *std::min_element(rto.begin(), rto.end());
  s.rto_max = *std::max_element(rto.begin(), rto.end());
  s.rto_median = Median(rto);
  if (rto.size() >= 2) {
    const std::size_t half = rto.size() / 2;
    s.rto_older_median = Median(std::vector<double>(rto.begin(), rto.begin() + half));
    s.rto_newer_median = Median(std::vector<double>(rto.end() - half, rto.end()));
    if (*s.rto_older_median > 0) {
      s.rto_change_ratio = *s.rto_newer_median / *s.rto_older_median - 1;
      s.rto_trend = *s.rto_change_ratio > 0.10    ? "slower"
                    : *s.rto_change_ratio < -0.10 ? "faster"
                                                  : "stable";
    }
  }
  return s;
}

}  // namespace rw
