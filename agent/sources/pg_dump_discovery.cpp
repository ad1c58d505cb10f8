#include "agent/sources/pg_dump_discovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <sstream>

#include "agent/errors.h"
#include "agent/units.h"

namespace rw::pgdump {
namespace {

bool StartsWith(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string Trim(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// The text after "key" on a line (trimmed), when the line holds it.
std::optional<std::string> After(const std::string& line, const std::string& key) {
  auto p = line.find(key);
  if (p == std::string::npos) return std::nullopt;
  return Trim(line.substr(p + key.size()));
}

std::int64_t MtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::optional<double> BirthTime(const std::string& path) {
  struct statx sx {};
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME, &sx) != 0) return std::nullopt;
  if (!(sx.stx_mask & STATX_BTIME) || sx.stx_btime.tv_sec == 0) return std::nullopt;
  return static_cast<double>(sx.stx_btime.tv_sec) + sx.stx_btime.tv_nsec / 1e9;
}

// Total size and newest mtime of the files under a directory (recursively, no symlinks).
void SumTree(const std::string& dir, std::uint64_t* size, std::int64_t* newest, int depth = 0) {
  if (depth > 8) return;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    std::string p = dir + "/" + e->d_name;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    *newest = std::max(*newest, MtimeNs(st));
    if (S_ISDIR(st.st_mode)) {
      SumTree(p, size, newest, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      *size += static_cast<std::uint64_t>(st.st_size);
    }
  }
  closedir(d);
}

// The SQL identifier at the start of s: "quoted ""name""" or a bare word (as written).
std::string LeadingIdent(const std::string& s) {
  std::string out;
  if (!s.empty() && s[0] == '"') {
    for (std::size_t i = 1; i < s.size(); ++i) {
      if (s[i] == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          out += '"';
          ++i;
          continue;
        }
        break;
      }
      out += s[i];
    }
    return out;
  }
  for (char c : s) {
    if (c == ' ' || c == ';' || c == '\t') break;
    out += c;
  }
  return out;
}

bool IsText(const std::string& head) {
  for (unsigned char c : head)
    if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f')) return false;
  return true;
}

}  // namespace

const char* FormatName(DumpFormat f) {
  switch (f) {
    case DumpFormat::kCustom:
      return "custom";
    case DumpFormat::kDirectory:
      return "directory";
    case DumpFormat::kTar:
      return "tar";
    case DumpFormat::kPlain:
      return "plain";
    case DumpFormat::kPlainGzip:
      return "plain.gz";
    case DumpFormat::kPlainZstd:
      return "plain.zst";
    case DumpFormat::kPlainLz4:
      return "plain.lz4";
    case DumpFormat::kUnknown:
      break;
  }
  return "unknown";
}

bool IsArchive(DumpFormat f) {
  return f == DumpFormat::kCustom || f == DumpFormat::kDirectory || f == DumpFormat::kTar;
}

std::string Decompressor(DumpFormat f) {
  switch (f) {
    case DumpFormat::kPlainGzip:
      return "gzip";
    case DumpFormat::kPlainZstd:
      return "zstd";
    case DumpFormat::kPlainLz4:
      return "lz4";
    default:
      return {};
  }
}

Sniff SniffBytes(const std::string& head) {
  if (head.empty()) return {DumpFormat::kUnknown, "empty file"};
  if (StartsWith(head, "PGDMP")) return {DumpFormat::kCustom, {}};
  if (head.size() >= 262 && head.compare(257, 5, "ustar") == 0) {
    // pg_dump -Ft writes toc.dat first; any other tar is not a pg_dump archive.
    if (head.compare(0, 8, std::string("toc.dat\0", 8)) == 0) return {DumpFormat::kTar, {}};
    return {DumpFormat::kUnknown, "a tar archive that is not from pg_dump -Ft (no toc.dat first)"};
  }
  if (StartsWith(head, "\x1f\x8b")) return {DumpFormat::kPlainGzip, {}};
  if (StartsWith(head, "\x28\xb5\x2f\xfd")) return {DumpFormat::kPlainZstd, {}};
  if (StartsWith(head, "\x04\x22\x4d\x18")) return {DumpFormat::kPlainLz4, {}};
  if (IsText(head.substr(0, 4096))) {
    if (head.find("-- PostgreSQL database cluster dump") != std::string::npos)
      return {DumpFormat::kUnknown,
              "pg_dumpall output (a whole cluster or globals), not a database dump"};
    if (head.find("-- PostgreSQL database dump") != std::string::npos)
      return {DumpFormat::kPlain, {}};
    return {DumpFormat::kUnknown, "text without pg_dump's \"PostgreSQL database dump\" header"};
  }
  return {DumpFormat::kUnknown, "neither a pg_dump archive nor a plain dump"};
}

Sniff SniffPath(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return {DumpFormat::kUnknown, std::string("cannot stat: ") + std::strerror(errno)};
  if (S_ISDIR(st.st_mode)) {
    if (access((path + "/toc.dat").c_str(), F_OK) == 0) return {DumpFormat::kDirectory, {}};
    return {DumpFormat::kUnknown, "a directory without toc.dat"};
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {DumpFormat::kUnknown, std::string("cannot open: ") + std::strerror(errno)};
  std::string head(4096, '\0');
  ssize_t got = 0;
  while (got < static_cast<ssize_t>(head.size())) {
    ssize_t n = read(fd, &head[got], head.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  close(fd);
  head.resize(static_cast<std::size_t>(got));
  return SniffBytes(head);
}

int MajorOf(const std::string& version) {
  std::size_t i = 0;
  while (i < version.size() && version[i] == ' ') ++i;
  int v = 0;
  bool any = false;
  while (i < version.size() && version[i] >= '0' && version[i] <= '9' && v < 10000) {
    v = v * 10 + (version[i++] - '0');
    any = true;
  }
  return any ? v : 0;
}

std::optional<double> ParseDumpTime(const std::string& text) {
  std::string t = Trim(text);
  if (auto exact = ParseTimestamp(t)) return exact;
  // A zone name other than UTC/GMT: the wall time is the dumper's local time. Read it as ours.
  struct tm tm {};
  char zone[16] = {0};
  if (sscanf(t.c_str(), "%d-%d-%d %d:%d:%d %15s", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, zone) < 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  time_t s = mktime(&tm);
  if (s == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<double>(s);
}

DumpHeader ParseArchiveList(const std::string& listing) {
  DumpHeader h;
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != ';') {
      if (!line.empty()) break;  // the TOC entries start: the header is over
      continue;
    }
    if (auto v = After(line, "Archive created at")) {
      h.started_at = ParseDumpTime(*v);
    } else if (auto v = After(line, "dbname:")) {
      h.database = *v;
    } else if (auto v = After(line, "Dumped from database version:")) {
      h.server_major = MajorOf(*v);
    } else if (auto v = After(line, "Dumped by pg_dump version:")) {
      h.dump_tool_major = MajorOf(*v);
    }
  }
  return h;
}

DumpHeader ParsePlainHeader(const std::string& head) {
  DumpHeader h;
  std::istringstream in(head);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (StartsWith(line, "-- Dumped from database version")) {
      h.server_major = MajorOf(line.substr(31));
    } else if (StartsWith(line, "-- Dumped by pg_dump version")) {
      h.dump_tool_major = MajorOf(line.substr(28));
    } else if (StartsWith(line, "-- Started on")) {
      h.started_at = ParseDumpTime(line.substr(13));
    } else if (StartsWith(line, "CREATE DATABASE ") && !h.creates_database) {
      // pg_dump --create: "CREATE DATABASE name WITH ..." then "\connect name".
      h.creates_database = true;
      h.database = LeadingIdent(line.substr(16));
    } else if (StartsWith(line, "COPY ") || StartsWith(line, "CREATE TABLE ")) {
      break;  // past the preamble: nothing more of interest, and data may follow
    }
  }
  return h;
}

bool IsInFlightName(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* s : {".tmp", ".part", ".partial", ".inprogress"})
    if (EndsWith(name, s)) return true;
  return false;
}

bool IsReferenceName(const std::string& name) { return EndsWith(name, ".restorewatch.json"); }

std::string ReferenceBeside(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  p += ".restorewatch.json";
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) ? p : std::string();
}

bool Look(const std::string& path, Entry* e) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return false;
  e->path = path;
  auto slash = path.rfind('/');
  e->dir = slash == std::string::npos ? "." : path.substr(0, slash);
  e->name = slash == std::string::npos ? path : path.substr(slash + 1);
  e->is_dir = S_ISDIR(st.st_mode);
  e->mtime_ns = MtimeNs(st);
  e->size = 0;
  if (e->is_dir) {
    SumTree(path, &e->size, &e->mtime_ns);
  } else {
    e->size = static_cast<std::uint64_t>(st.st_size);
  }
  e->birth = BirthTime(path);
  return true;
}

std::vector<Entry> ListMatching(const std::vector<std::string>& dirs, const std::string& pattern) {
  std::vector<Entry> out;
  // A "latest" symlink to a dump, or one dir listed twice, must not count a backup twice.
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const auto& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    if (!d)
      throw Error(ErrorKind::kIo, "cannot read backup dir " + dir + ": " + std::strerror(errno));
    std::vector<std::string> names;
    int err = 0;
    for (;;) {
      errno = 0;
      struct dirent* e = readdir(d);
      if (!e) {
        err = errno;
        break;
      }
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      if (fnmatch(pattern.c_str(), e->d_name, 0) == 0) names.emplace_back(e->d_name);
    }
    closedir(d);
    if (err != 0)
      throw Error(ErrorKind::kIo, "cannot read backup dir " + dir + ": " + std::strerror(err));
    std::string base = dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    // Real files first, so that of a file and a symlink to it, the file is the one kept.
    std::vector<std::pair<bool, std::string>> order;
    for (const auto& n : names) {
      struct stat lst {};
      bool link = lstat((base + "/" + n).c_str(), &lst) == 0 && S_ISLNK(lst.st_mode);
      order.emplace_back(link, n);
    }
    std::sort(order.begin(), order.end());
    for (const auto& [link, n] : order) {
      struct stat st {};
      std::string path = base + "/" + n;
      if (stat(path.c_str(), &st) != 0) continue;  // dangling link, or gone since readdir
      if (!seen.insert({st.st_dev, st.st_ino}).second) continue;
      Entry e;
      if (Look(path, &e)) out.push_back(std::move(e));
    }
  }
  return out;
}

const BackupInfo* SelectNewest(const std::vector<BackupInfo>& backups) {
  const BackupInfo* best = nullptr;
  for (const auto& b : backups) {
    if (!best || b.started_at > best->started_at ||
        (b.started_at == best->started_at &&
         (b.completed_at > best->completed_at ||
          (b.completed_at == best->completed_at && b.path > best->path))))
      best = &b;
  }
  return best;
}

}  // namespace rw::pgdump
