// ActivityStore: pg_stat_user_tables samples persisted as an append-only text file.
//
// File format (dir/activity.log), one sample per line, tokens separated by single spaces:
//   A1 <ts_ms> F <n> <entry>...               a full sample: every table
//   A1 <ts_ms> D <base_ts_ms> <n> <entry>...  a delta against the sample stamped base_ts_ms, which
//                                             must be the previous valid line of the file
//   entry := <name>=<ins>,<upd>,<del>,<live>  counters of a new or changed table
//          | <name>=-                         a table gone since the base (deltas only)
// optionally followed by evidence tokens of that sample alone (never inherited by a delta):
//   ~snap=<xmin>:<xmax>:<xip,...>  the source's pg_current_snapshot()
//   ~cts=1                         track_commit_timestamp was on
// ('~' cannot start an entry of a table count already read; unknown ~tokens are ignored, so a
// newer writer's lines stay readable.)
// ts are integer Unix milliseconds; names are "schema.table" with '%', ' ', '=' and control bytes
// percent-encoded. A line counts only when it ends in '\n', parses completely and (for a delta)
// its base is the sample reconstructed so far; otherwise it is skipped, and so are the deltas that
// build on it until the next full sample. So a torn last line (a crash mid-write) costs at most
// that sample. A full sample is written every kFullEvery samples, when the base is unknown, or
// when more than half of the tables changed; so readers replay from the last full line on.
//
// Concurrency: appends take an exclusive flock on dir/activity.lock (a separate file, because
// compaction replaces activity.log) and write each line with one write() on an O_APPEND fd;
// compaction writes activity.log.tmp and renames it over. Readers take no lock: they see either
// the old or the new file, and ignore a line still being written.
#include "agent/state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "agent/errors.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

constexpr const char* kFileName = "activity.log";
constexpr const char* kLockName = "activity.lock";
constexpr std::size_t kFullEvery = 40;      // samples between full lines
constexpr std::size_t kCompactEvery = 120;  // appends between compactions (30 min at 15 s)
constexpr std::int64_t kKeepAllMs = 2LL * 3600 * 1000;          // every sample of the last 2 h
constexpr std::int64_t kKeepHourlyMs = 8LL * 24 * 3600 * 1000;  // then one per hour for 8 days
constexpr std::int64_t kHourMs = 3600 * 1000;

std::int64_t ToMs(double ts) { return static_cast<std::int64_t>(std::llround(ts * 1000.0)); }
double FromMs(std::int64_t ms) { return static_cast<double>(ms) / 1000.0; }

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool NeedsEscape(unsigned char c) { return c <= 0x20 || c == 0x7f || c == '%' || c == '='; }

void AppendEscaped(std::string& out, const std::string& name) {
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : name) {
    if (NeedsEscape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool Unescape(const char* b, const char* e, std::string& out) {
  out.clear();
  for (const char* p = b; p < e; ++p) {
    if (*p != '%') {
      out += *p;
      continue;
    }
    if (e - p < 3) return false;
    int h = HexVal(p[1]), l = HexVal(p[2]);
    if (h < 0 || l < 0) return false;
    out += static_cast<char>(h * 16 + l);
    p += 2;
  }
  return true;
}

bool ParseInt(const char* b, const char* e, std::int64_t& v) {
  if (b == e) return false;
  bool neg = false;
  if (*b == '-') {
    neg = true;
    if (++b == e) return false;
  }
  std::int64_t r = 0;
  for (const char* p = b; p < e; ++p) {
    if (*p < '0' || *p > '9') return false;
    if (r > (std::numeric_limits<std::int64_t>::max() - (*p - '0')) / 10) return false;
    r = r * 10 + (*p - '0');
  }
  v = neg ? -r : r;
  return true;
}

struct Entry {
  std::string name;
  std::optional<TableCounters> counters;  // nullopt: removed
};

struct Record {
  std::int64_t ts_ms = 0;
  bool full = false;
  std::int64_t base_ms = 0;
  std::vector<Entry> entries;
  std::string snapshot;
  bool commit_timestamps = false;
};

bool ValidSnapshotText(const std::string& s) {
  int colons = 0;
  for (char c : s) {
    if (c == ':')
      ++colons;
    else if (!(c >= '0' && c <= '9') && c != ',')
      return false;
  }
  return colons == 2 && s.size() >= 4 && s.front() != ':';
}

// Parses one line (without its '\n'). False on anything malformed.
bool ParseRecord(const std::string& line, Record& r) {
  const char* p = line.data();
  const char* end = p + line.size();
  auto next = [&](const char*& b, const char*& e) {
    if (p >= end) return false;
    b = p;
    while (p < end && *p != ' ') ++p;
    e = p;
    if (p < end) ++p;  // the space
    return b != e;
  };
  const char *b, *e;
  if (!next(b, e) || std::string(b, e) != "A1") return false;
  if (!next(b, e) || !ParseInt(b, e, r.ts_ms)) return false;
  if (!next(b, e) || e - b != 1 || (*b != 'F' && *b != 'D')) return false;
  r.full = *b == 'F';
  if (!r.full && (!next(b, e) || !ParseInt(b, e, r.base_ms))) return false;
  std::int64_t n = 0;
  if (!next(b, e) || !ParseInt(b, e, n) || n < 0) return false;
  r.entries.clear();
  r.entries.reserve(static_cast<std::size_t>(std::min<std::int64_t>(n, 1 << 20)));
  for (std::int64_t i = 0; i < n; ++i) {
    if (!next(b, e)) return false;
    const char* eq = static_cast<const char*>(std::memchr(b, '=', e - b));
    if (!eq) return false;
    Entry en;
    if (!Unescape(b, eq, en.name) || en.name.empty()) return false;
    const char* v = eq + 1;
    if (e - v == 1 && *v == '-') {
      if (r.full) return false;
    } else {
      std::int64_t vals[4];
      for (int k = 0; k < 4; ++k) {
        const char* c = v;
        while (c < e && *c != ',') ++c;
        if ((k < 3) != (c < e)) return false;
        if (!ParseInt(v, c, vals[k]) || vals[k] < 0) return false;
        v = c + 1;
      }
      en.counters = TableCounters{vals[0], vals[1], vals[2], vals[3]};
    }
    r.entries.push_back(std::move(en));
  }
  r.snapshot.clear();
  r.commit_timestamps = false;
  while (p < end) {
    if (!next(b, e) || *b != '~') return false;
    std::string tok(b, e);
    if (tok.rfind("~snap=", 0) == 0) {
      r.snapshot = tok.substr(6);
      if (!ValidSnapshotText(r.snapshot)) return false;
    } else if (tok == "~cts=1") {
      r.commit_timestamps = true;
    }
  }
  return true;
}

// The evidence tokens of a sample (with their leading spaces), or "".
std::string EvidenceTokens(const std::string& snapshot, bool commit_timestamps) {
  std::string out;
  if (ValidSnapshotText(snapshot)) out += " ~snap=" + snapshot;
  if (commit_timestamps) out += " ~cts=1";
  return out;
}

bool SameCounters(const TableCounters& a, const TableCounters& b) {
  return a.n_tup_ins == b.n_tup_ins && a.n_tup_upd == b.n_tup_upd && a.n_tup_del == b.n_tup_del &&
         a.n_live_tup == b.n_live_tup;
}

void AppendEntry(std::string& out, const std::string& name, const TableCounters* c) {
  out += ' ';
  AppendEscaped(out, name);
  out += '=';
  if (!c) {
    out += '-';
    return;
  }
  out += std::to_string(c->n_tup_ins);
  out += ',';
  out += std::to_string(c->n_tup_upd);
  out += ',';
  out += std::to_string(c->n_tup_del);
  out += ',';
  out += std::to_string(c->n_live_tup);
}

std::string FullLine(std::int64_t ts_ms, const std::map<std::string, TableCounters>& tables,
                     const std::string& evidence) {
  std::string out = "A1 " + std::to_string(ts_ms) + " F " + std::to_string(tables.size());
  for (const auto& [name, c] : tables) AppendEntry(out, name, &c);
  out += evidence;
  out += '\n';
  return out;
}

// A delta line from `base` to `next`, or "" when more than half of the tables changed (then a
// full line is about as small, and resets the replay chain). Either way `base` becomes `next`,
// updated in place so that re-encoding a long file costs no map copies.
std::string DeltaLine(std::int64_t base_ms, std::map<std::string, TableCounters>& base,
                      std::int64_t ts_ms, const std::map<std::string, TableCounters>& next,
                      const std::string& evidence) {
  std::string body;
  std::size_t n = 0;
  auto a = base.begin();
  auto b = next.begin();
  while (a != base.end() || b != next.end()) {
    if (b == next.end() || (a != base.end() && a->first < b->first)) {
      AppendEntry(body, a->first, nullptr);
      ++n;
      a = base.erase(a);
    } else if (a == base.end() || b->first < a->first) {
      AppendEntry(body, b->first, &b->second);
      ++n;
      base.emplace_hint(a, b->first, b->second);
      ++b;
    } else {
      if (!SameCounters(a->second, b->second)) {
        AppendEntry(body, b->first, &b->second);
        ++n;
        a->second = b->second;
      }
      ++a, ++b;
    }
  }
  if (n > 0 && n * 2 > next.size()) return {};
  return "A1 " + std::to_string(ts_ms) + " D " + std::to_string(base_ms) + " " + std::to_string(n) +
         body + evidence + "\n";
}

// Replays the file line by line, reconstructing samples. The callback sees each valid sample
// (ts in ms, tables) in file order and the parsed record that produced it.
class Replay {
 public:
  // Applies a record; false if it does not build on the current sample (skipped).
  bool Apply(const Record& r) {
    if (r.full) {
      tables_.clear();
      for (const auto& en : r.entries) tables_[en.name] = *en.counters;
      since_full_ = 0;
    } else {
      if (!valid_ || r.base_ms != ts_ms_) return false;
      for (const auto& en : r.entries) {
        if (en.counters)
          tables_[en.name] = *en.counters;
        else
          tables_.erase(en.name);
      }
      ++since_full_;
    }
    valid_ = true;
    ts_ms_ = r.ts_ms;
    snapshot_ = r.snapshot;
    commit_timestamps_ = r.commit_timestamps;
    return true;
  }
  bool valid() const { return valid_; }
  std::int64_t ts_ms() const { return ts_ms_; }
  std::size_t since_full() const { return since_full_; }
  const std::map<std::string, TableCounters>& tables() const { return tables_; }
  ActivitySample Sample() const {
    return ActivitySample{FromMs(ts_ms_), tables_, snapshot_, commit_timestamps_};
  }

 private:
  bool valid_ = false;
  std::int64_t ts_ms_ = 0;
  std::string snapshot_;
  bool commit_timestamps_ = false;
  std::size_t since_full_ = 0;
  std::map<std::string, TableCounters> tables_;
};

// Streams `path`; for each complete, parseable line calls visit(record) before applying it
// and after(record) once it has been applied. Returns false if the file does not exist.
template <typename Before, typename After>
bool ForEachRecord(const std::string& path, Replay& replay, Before before, After after) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return false;
    throw Error(ErrorKind::kIo, Errno("cannot open", path));
  }
  std::string line;
  Record rec;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no '\n': a line still being written or torn by a crash
    if (!ParseRecord(line, rec)) continue;
    if (!rec.full && (!replay.valid() || rec.base_ms != replay.ts_ms())) continue;
    before(rec);
    replay.Apply(rec);
    after(rec);
  }
  if (in.bad()) throw Error(ErrorKind::kIo, Errno("cannot read", path));
  return true;
}

// An exclusive flock on the store's lock file, released on destruction.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrorKind::kIo, Errno("cannot open", path));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd_);
      errno = err;
      throw Error(ErrorKind::kIo, Errno("cannot lock", path));
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

void WriteAll(int fd, const std::string& data, const std::string& path) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorKind::kIo, Errno("cannot write", path));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

ActivityStore::ActivityStore(std::string dir) : dir_(std::move(dir)) {
  MakeDirs(dir_, 0755);
  path_ = dir_ + "/" + kFileName;
}

void ActivityStore::Append(const ActivitySample& sample) {
  std::lock_guard<std::mutex> lk(mu_);
  FileLock flock(dir_ + "/" + kLockName);
  int fd = ::open(path_.c_str(), O_CREAT | O_RDWR | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::kIo, Errno("cannot open", path_));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(ErrorKind::kIo, Errno("cannot stat", path_));

  // The base for a delta: our own last write if nobody else wrote since, else the file's last
  // valid sample.
  bool ours = !samples_.empty() && static_cast<std::uint64_t>(st.st_ino) == known_ino_ &&
              static_cast<std::uint64_t>(st.st_size) == known_size_;
  if (!ours) LoadLocked();

  ActivitySample rounded{FromMs(ToMs(sample.ts)), sample.tables, sample.snapshot,
                         sample.commit_timestamps};
  const std::string evidence = EvidenceTokens(sample.snapshot, sample.commit_timestamps);
  std::string line;
  if (!samples_.empty() && since_full_ + 1 < kFullEvery)
    line = DeltaLine(ToMs(samples_.back().ts), samples_.back().tables, ToMs(rounded.ts),
                     rounded.tables, evidence);
  bool full = line.empty();
  if (full) line = FullLine(ToMs(rounded.ts), rounded.tables, evidence);

  // A torn line left by a crashed writer must not swallow this one.
  if (st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') line.insert(0, "\n");
  }
  known_size_ = 0;  // unknown until the write succeeded
  WriteAll(fd, line, path_);
  if (::fdatasync(fd) != 0) throw Error(ErrorKind::kIo, Errno("cannot sync", path_));
  known_ino_ = static_cast<std::uint64_t>(st.st_ino);
  known_size_ = static_cast<std::uint64_t>(st.st_size) + line.size();
  since_full_ = full ? 0 : since_full_ + 1;
  samples_.assign(1, std::move(rounded));

  // Compact once per process (the daemon may have been down for days) and then periodically.
  if (!compacted_once_ || ++appends_since_compact_ >= kCompactEvery) {
    CompactLocked();
    compacted_once_ = true;
    appends_since_compact_ = 0;
  }
}

std::optional<ActivitySample> ActivityStore::AtOrBefore(double t) {
  std::lock_guard<std::mutex> lk(mu_);
  const std::int64_t t_ms = std::isinf(t) ? std::numeric_limits<std::int64_t>::max() : ToMs(t);
  // Keeps a copy only when the replay is about to move past the best candidate, so a long file
  // costs one copy, not one per sample.
  Replay replay;
  std::optional<ActivitySample> best;
  bool current_is_best = false;  // the replay state is the best so far and not copied yet
  std::int64_t best_ms = std::numeric_limits<std::int64_t>::min();
  auto qualifies = [&](const Record& r) { return r.ts_ms <= t_ms && r.ts_ms >= best_ms; };
  ForEachRecord(
      path_, replay,
      [&](const Record& r) {
        if (current_is_best && !qualifies(r)) {
          best = replay.Sample();  // about to be overwritten by a later, non-qualifying sample
          current_is_best = false;
        }
      },
      [&](const Record& r) {
        if (qualifies(r)) {
          current_is_best = true;
          best_ms = r.ts_ms;
          best.reset();
        }
      });
  if (current_is_best) best = replay.Sample();
  return best;
}

std::optional<ActivitySample> ActivityStore::Latest() {
  std::lock_guard<std::mutex> lk(mu_);
  Replay replay;
  ForEachRecord(
      path_, replay, [](const Record&) {}, [](const Record&) {});
  if (!replay.valid()) return std::nullopt;
  return replay.Sample();
}

std::optional<double> ActivityStore::Earliest() {
  std::lock_guard<std::mutex> lk(mu_);
  std::optional<double> first;
  Replay replay;
  ForEachRecord(
      path_, replay, [](const Record&) {},
      [&](const Record& r) {
        if (!first) first = static_cast<double>(r.ts_ms) / 1000.0;
      });
  return first;
}

std::size_t ActivityStore::SampleCount() {
  std::lock_guard<std::mutex> lk(mu_);
  std::size_t n = 0;
  Replay replay;
  ForEachRecord(
      path_, replay, [](const Record&) {}, [&](const Record&) { ++n; });
  return n;
}

std::map<std::string, std::optional<TableChurn>> ActivityStore::Churn(const ActivitySample& from,
                                                                      const ActivitySample& to) {
  std::map<std::string, std::optional<TableChurn>> out;
  for (const auto& [name, c] : to.tables) {
    auto it = from.tables.find(name);
    if (it == from.tables.end()) {
      // New since `from`: its counters started at zero when it was created.
      out[name] = TableChurn{std::max(c.n_tup_ins, c.n_live_tup), c.n_tup_upd, c.n_tup_del};
      continue;
    }
    const TableCounters& f = it->second;
    if (c.n_tup_ins < f.n_tup_ins || c.n_tup_upd < f.n_tup_upd || c.n_tup_del < f.n_tup_del) {
      out[name] = std::nullopt;  // stats reset or a table re-created under the same name
      continue;
    }
    out[name] =
        TableChurn{c.n_tup_ins - f.n_tup_ins, c.n_tup_upd - f.n_tup_upd, c.n_tup_del - f.n_tup_del};
  }
  return out;
}

void ActivityStore::LoadLocked() {
  samples_.clear();
  since_full_ = 0;
  Replay replay;
  ForEachRecord(
      path_, replay, [](const Record&) {}, [](const Record&) {});
  if (replay.valid()) {
    samples_.push_back(replay.Sample());
    since_full_ = replay.since_full();
  }
}

// Rewrites the file keeping every sample of the last 2 h (relative to the newest sample) and the
// first sample of each hour before that, for 8 days. Called with mu_ and the flock held. The
// kept samples are re-encoded: a full line first, then deltas against the previous kept one.
void ActivityStore::CompactLocked() {
  if (samples_.empty()) LoadLocked();
  if (samples_.empty()) return;
  const std::int64_t now_ms = ToMs(samples_.back().ts);

  // First pass: which samples to keep (by index among valid samples).
  std::vector<std::int64_t> stamps;
  {
    Replay replay;
    ForEachRecord(
        path_, replay, [](const Record&) {}, [&](const Record& r) { stamps.push_back(r.ts_ms); });
  }
  std::vector<bool> keep(stamps.size(), false);
  std::int64_t last_bucket = std::numeric_limits<std::int64_t>::min();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < stamps.size(); ++i) {
    std::int64_t age = now_ms - stamps[i];
    if (age <= kKeepAllMs) {
      keep[i] = true;
    } else if (age <= kKeepAllMs + kKeepHourlyMs) {
      std::int64_t bucket = stamps[i] / kHourMs;
      if (bucket != last_bucket) keep[i] = true;
      last_bucket = bucket;
    }
    kept += keep[i];
  }
  if (kept == stamps.size()) {
    // Nothing to drop; still rewrite when the file has junk (torn or unparseable lines)?
    // Not worth it: readers skip those lines at little cost.
    return;
  }

  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::kIo, Errno("cannot open", tmp));
  std::uint64_t written = 0;
  std::size_t since_full = 0;
  try {
    Replay replay;
    std::map<std::string, TableCounters> last_written;
    std::int64_t last_ms = 0;
    bool have_last = false;
    std::size_t idx = 0;
    std::string buf;
    ForEachRecord(
        path_, replay, [](const Record&) {},
        [&](const Record& r) {
          if (!keep[idx++]) return;
          std::string line;
          bool delta = have_last && since_full + 1 < kFullEvery;
          const std::string evidence = EvidenceTokens(r.snapshot, r.commit_timestamps);
          if (delta) line = DeltaLine(last_ms, last_written, r.ts_ms, replay.tables(), evidence);
          if (line.empty()) {
            line = FullLine(r.ts_ms, replay.tables(), evidence);
            if (!delta) last_written = replay.tables();  // DeltaLine already updated it
            since_full = 0;
          } else {
            ++since_full;
          }
          last_ms = r.ts_ms;
          have_last = true;
          buf += line;
          if (buf.size() > (1 << 20)) {
            WriteAll(fd, buf, tmp);
            written += buf.size();
            buf.clear();
          }
        });
    WriteAll(fd, buf, tmp);
    written += buf.size();
    if (::fsync(fd) != 0) throw Error(ErrorKind::kIo, Errno("cannot sync", tmp));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  struct stat st {};
  ::fstat(fd, &st);
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::kIo, Errno("cannot replace", path_));
  }
  SyncDir(dir_);
  known_ino_ = static_cast<std::uint64_t>(st.st_ino);
  known_size_ = written;
  since_full_ = since_full;
}

}  // namespace rw
