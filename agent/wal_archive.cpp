#include "agent/wal_archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "agent/errors.h"
#include "agent/pg/process.h"

namespace rw::wal {

namespace {

constexpr std::uint16_t kLongHeaderFlag = 0x0002;  // XLP_LONG_HEADER
constexpr std::size_t kLongHeaderSize = 40;        // SizeOfXLogLongPHD

bool IsUpperHex(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
  });
}

std::uint32_t Hex32(const std::string& s) {
  return static_cast<std::uint32_t>(std::stoul(s, nullptr, 16));
}

std::uint16_t Le16(const std::string& b, std::size_t off) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(b[off]) |
                                    (static_cast<unsigned char>(b[off + 1]) << 8));
}
std::uint32_t Le32(const std::string& b, std::size_t off) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}
std::uint64_t Le64(const std::string& b, std::size_t off) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}

std::string Hex(std::uint64_t v, int width = 4) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llX", width, static_cast<unsigned long long>(v));
  return buf;
}

std::string Trim(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// Reads up to `max` bytes from the start of a file; nullopt when it cannot be opened.
std::optional<std::string> ReadHead(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string buf(max, '\0');
  in.read(&buf[0], static_cast<std::streamsize>(max));
  buf.resize(static_cast<std::size_t>(in.gcount()));
  return buf;
}

std::optional<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct FileStat {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

std::optional<FileStat> Stat(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  FileStat f;
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return f;
}

// ---- the state file: segments verified by earlier runs ----
//
//   restorewatch-wal-archive-state 1
//   archive <dir>
//   segment_size <bytes>
//   system_identifier <n>
//   <name> <size> <mtime_ns>        one per verified segment
//   end <count>
// Anything else (a torn write, an edit, another archive) makes the whole file ignored.
struct State {
  std::uint32_t segment_size = 0;
  std::uint64_t system_identifier = 0;
  std::map<std::string, FileStat> verified;
};

std::optional<State> LoadState(const std::string& path, const std::string& archive_dir) {
  auto text = ReadAll(path);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  State st;
  if (!std::getline(in, line) || line != "restorewatch-wal-archive-state 1") return std::nullopt;
  if (!std::getline(in, line) || line != "archive " + archive_dir) return std::nullopt;
  try {
    if (!std::getline(in, line) || line.rfind("segment_size ", 0) != 0) return std::nullopt;
    st.segment_size = static_cast<std::uint32_t>(std::stoul(line.substr(13)));
    if (!std::getline(in, line) || line.rfind("system_identifier ", 0) != 0) return std::nullopt;
    st.system_identifier = std::stoull(line.substr(18));
    bool ended = false;
    while (std::getline(in, line)) {
      if (line.rfind("end ", 0) == 0) {
        if (std::stoull(line.substr(4)) != st.verified.size()) return std::nullopt;
        ended = true;
        break;
      }
      std::istringstream ls(line);
      std::string name;
      FileStat f;
      if (!(ls >> name >> f.size >> f.mtime_ns)) return std::nullopt;
      if (ParseArchiveName(name).kind != ArchiveFileKind::kSegment) return std::nullopt;
      st.verified[name] = f;
    }
    if (!ended || std::getline(in, line)) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return st;
}

// Written to a temp file, fsynced, renamed over the old one: a crash leaves the old or the new.
void SaveState(const std::string& dir, const std::string& archive_dir, const State& st) {
  std::ostringstream out;
  out << "restorewatch-wal-archive-state 1\n"
      << "archive " << archive_dir << "\n"
      << "segment_size " << st.segment_size << "\n"
      << "system_identifier " << st.system_identifier << "\n";
  for (const auto& [name, f] : st.verified)
    out << name << ' ' << f.size << ' ' << f.mtime_ns << '\n';
  out << "end " << st.verified.size() << "\n";
  const std::string text = out.str();
  const std::string final_path = dir + "/" + kStateFileName;
  const std::string tmp = final_path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot replace " + final_path + ": " + std::strerror(e));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// One archived segment position, with the file chosen for it.
struct Present {
  std::string name;  // file name (may be compressed)
  FileStat stat;
  std::string compression;
};

}  // namespace

std::optional<Lsn> ParseLsn(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash > 8 || text.size() - slash - 1 == 0 ||
      text.size() - slash - 1 > 8)
    return std::nullopt;
  auto is_hex = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  };
  std::string hi = text.substr(0, slash), lo = text.substr(slash + 1);
  if (!is_hex(hi) || !is_hex(lo)) return std::nullopt;
  return (static_cast<Lsn>(std::stoul(hi, nullptr, 16)) << 32) | std::stoul(lo, nullptr, 16);
}

std::string FormatLsn(Lsn lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xFFFFFFFFu));
  return buf;
}

bool ValidSegmentSize(std::uint64_t bytes) {
  return bytes >= (1u << 20) && bytes <= (1u << 30) && (bytes & (bytes - 1)) == 0;
}

std::string SegmentName(std::uint32_t timeline, std::uint64_t segno, std::uint32_t seg_size) {
  const std::uint64_t per = 0x100000000ULL / seg_size;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<unsigned>(segno / per),
                static_cast<unsigned>(segno % per));
  return buf;
}

std::string HistoryName(std::uint32_t timeline) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X.history", timeline);
  return buf;
}

std::optional<std::uint64_t> ArchiveName::SegNo(std::uint32_t seg_size) const {
  const std::uint64_t per = 0x100000000ULL / seg_size;
  if (seg >= per) return std::nullopt;
  return static_cast<std::uint64_t>(log) * per + seg;
}

ArchiveName ParseArchiveName(const std::string& full) {
  ArchiveName n;
  std::string name = full;
  for (const char* ext : {"gz", "zst", "lz4", "bz2", "xz"}) {
    std::string suffix = std::string(".") + ext;
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      n.compression = ext;
      name.resize(name.size() - suffix.size());
      break;
    }
  }
  auto segment_part = [&](const std::string& s) {
    if (s.size() != 24 || !IsUpperHex(s)) return false;
    n.timeline = Hex32(s.substr(0, 8));
    n.log = Hex32(s.substr(8, 8));
    n.seg = Hex32(s.substr(16, 8));
    return n.timeline != 0;
  };
  if (name.size() == 24) {
    if (segment_part(name)) n.kind = ArchiveFileKind::kSegment;
  } else if (name.size() == 24 + 8 && name.compare(24, 8, ".partial") == 0) {
    if (segment_part(name.substr(0, 24))) n.kind = ArchiveFileKind::kPartial;
  } else if (name.size() == 8 + 8 && name.compare(8, 8, ".history") == 0) {
    std::string t = name.substr(0, 8);
    if (IsUpperHex(t) && Hex32(t) != 0) {
      n.kind = ArchiveFileKind::kHistory;
      n.timeline = Hex32(t);
    }
  } else if (name.size() == 24 + 1 + 8 + 7 && name[24] == '.' &&
             name.compare(33, 7, ".backup") == 0) {
    std::string off = name.substr(25, 8);
    if (segment_part(name.substr(0, 24)) && IsUpperHex(off)) {
      n.kind = ArchiveFileKind::kBackupHistory;
      n.backup_offset = Hex32(off);
    }
  }
  if (n.kind == ArchiveFileKind::kOther) return ArchiveName{};
  return n;
}

std::string DecompressorFor(const std::string& compression) {
  if (compression == "gz") return "gzip";
  if (compression == "zst") return "zstd";
  if (compression == "lz4") return "lz4";
  if (compression == "bz2") return "bzip2";
  if (compression == "xz") return "xz";
  return "";
}

std::optional<std::vector<TimelineSwitch>> ParseHistory(const std::string& text,
                                                        std::string* error) {
  std::vector<TimelineSwitch> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  auto fail = [&](const std::string& why) -> std::optional<std::vector<TimelineSwitch>> {
    if (error) *error = "line " + std::to_string(lineno) + ": " + why;
    return std::nullopt;
  };
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::istringstream ls(t);
    std::string tli_text, lsn_text;
    if (!(ls >> tli_text >> lsn_text)) return fail("expected a timeline and an LSN");
    if (!std::all_of(tli_text.begin(), tli_text.end(), ::isdigit) || tli_text.size() > 10)
      return fail("bad timeline '" + tli_text + "'");
    auto lsn = ParseLsn(lsn_text);
    if (!lsn) return fail("bad LSN '" + lsn_text + "'");
    TimelineSwitch s;
    s.timeline = static_cast<std::uint32_t>(std::stoul(tli_text));
    s.switchpoint = *lsn;
    std::getline(ls, s.reason);
    s.reason = Trim(s.reason);
    if (s.timeline == 0 || (!out.empty() && s.timeline <= out.back().timeline))
      return fail("timelines must increase");
    if (!out.empty() && s.switchpoint < out.back().switchpoint)
      return fail("switch points must not decrease");
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<BackupHistory> ParseBackupHistory(const std::string& text) {
  BackupHistory h;
  bool have_start = false;
  std::istringstream in(text);
  std::string line;
  auto lsn_of = [](const std::string& v) { return ParseLsn(v.substr(0, v.find(' '))); };
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = Trim(line.substr(colon + 2));
    if (key == "START WAL LOCATION") {
      auto l = lsn_of(value);
      if (!l) return std::nullopt;
      h.start_lsn = *l;
      have_start = true;
    } else if (key == "STOP WAL LOCATION") {
      if (auto l = lsn_of(value)) h.stop_lsn = *l;
    } else if (key == "CHECKPOINT LOCATION") {
      if (auto l = lsn_of(value)) h.checkpoint_lsn = *l;
    } else if (key == "START TIME") {
      h.start_time = ParseTimestamp(value);
    } else if (key == "STOP TIME") {
      h.stop_time = ParseTimestamp(value);
    } else if (key == "LABEL") {
      h.label = value;
    } else if (key == "START TIMELINE" || key == "STOP TIMELINE") {
      try {
        auto v = static_cast<std::uint32_t>(std::stoul(value));
        (key == "START TIMELINE" ? h.start_timeline : h.stop_timeline) = v;
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  if (!have_start) return std::nullopt;
  return h;
}

int MajorForPageMagic(std::uint32_t magic) {
  switch (magic) {
    case 0xD097:
      return 10;
    case 0xD098:
      return 11;
    case 0xD101:
      return 12;
    case 0xD106:
      return 13;
    case 0xD10D:
      return 14;
    case 0xD110:
      return 15;
    case 0xD113:
      return 16;
    case 0xD116:
      return 17;
    default:
      return 0;
  }
}

SegmentCheck CheckSegmentBytes(const std::string& name, const std::string& head,
                               std::uint64_t file_size, std::uint32_t timeline, std::uint64_t segno,
                               std::uint32_t seg_size) {
  SegmentCheck c;
  auto bad = [&](const std::string& why) {
    c.ok = false;
    c.problem = name + ": " + why;
    return c;
  };
  if (file_size != seg_size)
    return bad(file_size < seg_size ? "truncated: " + std::to_string(file_size) +
                                          " bytes, a segment has " + std::to_string(seg_size)
                                    : "too long: " + std::to_string(file_size) +
                                          " bytes, a segment has " + std::to_string(seg_size));
  if (head.size() < kLongHeaderSize) return bad("cannot read its first page");
  c.page_magic = Le16(head, 0);
  const std::uint16_t info = Le16(head, 2);
  const std::uint32_t tli = Le32(head, 4);
  const std::uint64_t pageaddr = Le64(head, 8);
  if ((c.page_magic & 0xF000) != 0xD000)
    return bad("not a WAL segment: page magic " + Hex(c.page_magic));
  c.server_major = MajorForPageMagic(c.page_magic);
  if (!(info & kLongHeaderFlag)) return bad("first page has no long header");
  const std::uint64_t expected_addr = segno * static_cast<std::uint64_t>(seg_size);
  if (pageaddr != expected_addr)
    return bad("wrong page address " + FormatLsn(pageaddr) + ", expected " +
               FormatLsn(expected_addr));
  if (tli == 0 || tli > timeline)
    return bad("page timeline " + std::to_string(tli) + " does not fit timeline " +
               std::to_string(timeline));
  c.system_identifier = Le64(head, 24);
  c.segment_size = Le32(head, 32);
  const std::uint32_t blcksz = Le32(head, 36);
  if (c.segment_size != seg_size)
    return bad("its header says segment size " + std::to_string(c.segment_size) + ", expected " +
               std::to_string(seg_size));
  if (blcksz < 1024 || blcksz > 65536 || (blcksz & (blcksz - 1)) != 0)
    return bad("bad WAL block size " + std::to_string(blcksz));
  c.ok = true;
  return c;
}

SegmentCheck CheckSegmentFile(const std::string& path, std::uint32_t timeline, std::uint64_t segno,
                              std::uint32_t seg_size, const std::string& scratch_dir,
                              CancelToken* cancel, Duration timeout) {
  const std::string name = path.substr(path.find_last_of('/') + 1);
  ArchiveName an = ParseArchiveName(name);
  std::string plain = path;
  std::string tmp;
  if (!an.compression.empty()) {
    SegmentCheck c;
    std::string prog = DecompressorFor(an.compression);
    auto found = FindProgram(prog);
    if (!found) {
      c.problem = name + ": cannot verify: " + prog + " is not installed";
      return c;
    }
    // A unique temp file, so concurrent checks (threads, processes) never share one.
    tmp = (scratch_dir.empty() ? std::string("/tmp") : scratch_dir) + "/.rw-walcheck.XXXXXX";
    int fd = ::mkstemp(&tmp[0]);
    if (fd < 0) {
      c.problem =
          name + ": cannot verify: no temp file in " + scratch_dir + ": " + std::strerror(errno);
      return c;
    }
    ::close(fd);
    ProcessSpec spec;
    spec.argv = {*found, "-dc", path};
    spec.stdout_path = tmp;
    spec.timeout = timeout;
    ProcessResult r = RunProcess(spec, cancel);
    if (r.cancelled) {
      ::unlink(tmp.c_str());
      throw Error(ErrorKind::kCancelled, "cancelled while verifying " + name);
    }
    if (!r.ok()) {
      ::unlink(tmp.c_str());
      c.problem = name + ": cannot decompress: " + r.Summary();
      return c;
    }
    plain = tmp;
  }
  SegmentCheck c;
  auto st = Stat(plain);
  auto head = ReadHead(plain, 8192);
  if (!st || !head) {
    c.problem = name + ": cannot read: " + std::strerror(errno);
  } else {
    c = CheckSegmentBytes(name, *head, st->size, timeline, segno, seg_size);
  }
  if (!tmp.empty()) ::unlink(tmp.c_str());
  return c;
}

std::string ContinuityReport::Summary() const {
  if (!problem.empty()) return problem;
  if (!gaps.empty()) {
    std::uint64_t n = 0;
    for (const auto& g : gaps) n += g.count;
    return "missing " + gaps.front().first_missing + " (" + std::to_string(n) + " segment" +
           (n == 1 ? "" : "s") + " missing in " + std::to_string(gaps.size()) + " gap" +
           (gaps.size() == 1 ? "" : "s") + ")";
  }
  if (!bad.empty()) {
    std::string s = bad.front().problem;
    if (bad.size() > 1) s += " (and " + std::to_string(bad.size() - 1) + " more)";
    return s;
  }
  if (expected == 0) return "no WAL segments archived";
  return "ok: " + std::to_string(expected) + " segment" + (expected == 1 ? "" : "s") + " " +
         first_segment + ".." + newest_segment;
}

namespace {

// The long page header's segment size of the first uncompressed segment of `files` (sorted by
// name), else kDefaultSegmentSize.
std::uint32_t SegmentSizeOf(const std::string& dir,
                            const std::vector<std::pair<std::string, ArchiveName>>& files) {
  for (const auto& [n, an] : files) {
    if (an.kind != ArchiveFileKind::kSegment || !an.compression.empty()) continue;
    auto head = ReadHead(dir + "/" + n, kLongHeaderSize);
    if (head && head->size() >= kLongHeaderSize && (Le16(*head, 2) & kLongHeaderFlag) &&
        ValidSegmentSize(Le32(*head, 32)))
      return Le32(*head, 32);
  }
  return kDefaultSegmentSize;
}

}  // namespace

std::uint32_t ArchiveSegmentSize(const std::string& archive_dir) {
  std::vector<std::pair<std::string, ArchiveName>> files;
  if (DIR* d = ::opendir(archive_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      ArchiveName an = ParseArchiveName(e->d_name);
      if (an.kind == ArchiveFileKind::kSegment && an.compression.empty())
        files.emplace_back(e->d_name, an);
    }
    ::closedir(d);
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return SegmentSizeOf(archive_dir, files);
}

Lsn WaldumpEnd(Lsn lsn, std::uint32_t seg_size) {
  constexpr Lsn kPage = 8192, kShortHeader = 24;
  if (seg_size == 0) seg_size = kDefaultSegmentSize;
  const Lsn in_page = lsn % kPage;
  const Lsn header = lsn % seg_size < kPage ? kLongHeaderSize : kShortHeader;
  return in_page == header ? lsn - in_page : lsn;
}

ContinuityReport CheckContinuity(const ContinuityOptions& opt, CancelToken* cancel) {
  ContinuityReport rep;
  auto check_cancel = [&] {
    if (cancel) cancel->ThrowIfCancelled();
  };
  check_cancel();

  // 1. One listing of the archive.
  DIR* d = ::opendir(opt.archive_dir.c_str());
  if (!d)
    throw Error(ErrorKind::kIo,
                "cannot read the WAL archive " + opt.archive_dir + ": " + std::strerror(errno));
  std::vector<std::pair<std::string, ArchiveName>> files;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    ArchiveName an = ParseArchiveName(n);
    if (an.kind != ArchiveFileKind::kOther) files.emplace_back(n, an);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  // 2. The segment size: given, else from the first uncompressed segment's long header.
  std::uint32_t seg_size = opt.segment_size;
  if (seg_size == 0) seg_size = SegmentSizeOf(opt.archive_dir, files);
  if (!ValidSegmentSize(seg_size))
    throw Error(ErrorKind::kConfig, "invalid WAL segment size " + std::to_string(seg_size));
  rep.segment_size = seg_size;

  // 3. Segments by (timeline, segno); history files by timeline.
  std::map<std::pair<std::uint32_t, std::uint64_t>, Present> segs;
  std::map<std::uint32_t, std::string> histories;
  std::uint32_t newest_tli = 0;
  for (const auto& [n, an] : files) {
    switch (an.kind) {
      case ArchiveFileKind::kSegment: {
        auto segno = an.SegNo(seg_size);
        if (!segno) {
          rep.notes.push_back(n + ": not a segment name for " + std::to_string(seg_size) +
                              "-byte segments");
          break;
        }
        auto st = Stat(opt.archive_dir + "/" + n);
        if (!st) break;
        auto key = std::make_pair(an.timeline, *segno);
        auto it = segs.find(key);
        // The uncompressed file wins over a compressed copy of the same segment.
        if (it == segs.end() || (!it->second.compression.empty() && an.compression.empty()))
          segs[key] = Present{n, *st, an.compression};
        newest_tli = std::max(newest_tli, an.timeline);
        break;
      }
      case ArchiveFileKind::kPartial:
        rep.partials.push_back(n);
        break;
      case ArchiveFileKind::kBackupHistory:
        rep.backup_histories.push_back(n);
        break;
      case ArchiveFileKind::kHistory:
        if (an.compression.empty() || !histories.count(an.timeline)) histories[an.timeline] = n;
        newest_tli = std::max(newest_tli, an.timeline);
        break;
      case ArchiveFileKind::kOther:
        break;
    }
  }
  if (opt.start) newest_tli = std::max(newest_tli, opt.start->timeline);
  if (newest_tli == 0) {
    rep.notes.push_back("the archive holds no WAL segments");
    newest_tli = 1;
  }

  // 4. The timeline path: the newest timeline's ancestors (from its .history file), from the
  // start's timeline on. Each timeline covers [begin, switchpoint) of the WAL.
  struct Span {
    std::uint32_t tli;
    std::optional<std::uint64_t> first_seg;  // nullopt: from the oldest present
    std::optional<std::uint64_t> end_seg;    // exclusive; nullopt: open (the newest timeline)
  };
  std::vector<TimelineSwitch> ancestors;
  if (newest_tli > 1) {
    auto it = histories.find(newest_tli);
    if (it == histories.end()) {
      if (!opt.start || opt.start->timeline != newest_tli)
        rep.problem = "timeline history file " + HistoryName(newest_tli) +
                      " is missing from the archive: cannot follow the switch to timeline " +
                      std::to_string(newest_tli);
    } else {
      std::optional<std::string> text;
      const std::string hpath = opt.archive_dir + "/" + it->second;
      ArchiveName han = ParseArchiveName(it->second);
      if (han.compression.empty()) {
        text = ReadAll(hpath);
      } else if (auto prog = FindProgram(DecompressorFor(han.compression))) {
        ProcessSpec spec;
        spec.argv = {*prog, "-dc", hpath};
        spec.timeout = opt.decompress_timeout;
        ProcessResult r = RunProcess(spec, cancel);
        if (r.ok()) text = r.out;
      }
      std::string err;
      auto parsed = text ? ParseHistory(*text, &err) : std::nullopt;
      if (!parsed)
        rep.problem =
            it->second + ": unreadable timeline history" + (err.empty() ? "" : ": " + err);
      else
        ancestors = *parsed;
    }
  }
  std::vector<Span> path;
  const std::uint32_t start_tli =
      opt.start ? opt.start->timeline
                : (ancestors.empty() ? newest_tli : ancestors.front().timeline);
  if (rep.problem.empty()) {
    bool on = false;
    std::optional<std::uint64_t> begin =
        opt.start ? std::optional<std::uint64_t>(SegmentNo(opt.start->lsn, seg_size))
                  : std::nullopt;
    for (const auto& a : ancestors) {
      if (a.timeline == start_tli) {
        on = true;
        // A start after its timeline ended belongs to a branch the newest timeline left.
        if (opt.start && opt.start->lsn >= a.switchpoint) {
          rep.problem = "the start point " + FormatLsn(opt.start->lsn) + " on timeline " +
                        std::to_string(start_tli) + " is past that timeline's switch at " +
                        FormatLsn(a.switchpoint) + " (" + HistoryName(newest_tli) +
                        "): it is not on the newest timeline's history";
          break;
        }
      }
      if (!on) continue;
      const std::uint64_t end = SegmentNo(a.switchpoint, seg_size);
      path.push_back(Span{a.timeline, begin, end});
      begin = end;
    }
    if (!rep.problem.empty()) {
      // reported above
    } else if (!on && start_tli != newest_tli) {
      rep.problem = "timeline " + std::to_string(start_tli) + " of the start point is not an " +
                    "ancestor of the newest timeline " + std::to_string(newest_tli) + " (" +
                    HistoryName(newest_tli) + ")";
    } else {
      path.push_back(Span{newest_tli, begin, std::nullopt});
    }
  }
  if (!rep.problem.empty()) {
    // Follow the start's own timeline only, so its gaps are still counted.
    path.assign(1,
                Span{start_tli,
                     opt.start ? std::optional<std::uint64_t>(SegmentNo(opt.start->lsn, seg_size))
                               : std::nullopt,
                     std::nullopt});
  }
  // Without a start, the first span begins at its oldest present segment.
  if (!path.front().first_seg) {
    for (const auto& [key, p] : segs) {
      (void)p;
      bool in_span = key.first == path.front().tli &&
                     (!path.front().end_seg || key.second < *path.front().end_seg);
      if (in_span) {
        path.front().first_seg = key.second;
        break;
      }
    }
    if (!path.front().first_seg) {
      // Nothing on the start's timeline: begin where the next timeline begins, if any.
      path.front().first_seg = path.size() > 1 && path.front().end_seg ? *path.front().end_seg : 0;
      if (path.size() == 1) path.front().first_seg.reset();
    }
  }
  for (const auto& s : path) rep.timelines.push_back(s.tli);

  // 5. The end: the newest present segment on the path, or the start point's stop if later.
  std::optional<std::uint64_t> end_seg;
  const Present* newest = nullptr;
  std::uint32_t newest_on = 0;
  for (const auto& s : path) {
    if (!s.first_seg) continue;
    for (auto it = segs.lower_bound({s.tli, *s.first_seg});
         it != segs.end() && it->first.first == s.tli &&
         (!s.end_seg || it->first.second < *s.end_seg);
         ++it) {
      if (!end_seg || it->first.second >= *end_seg) {
        end_seg = it->first.second;
        newest = &it->second;
        newest_on = s.tli;
      }
    }
  }
  if (newest) {
    rep.newest_segment = newest->name.substr(0, 24);
    rep.newest_segment_mtime = static_cast<double>(newest->stat.mtime_ns) / 1e9;
  }
  if (opt.start && opt.start->stop_lsn) {
    std::uint64_t stop_seg = SegmentNo(*opt.start->stop_lsn, seg_size);
    if (!end_seg || stop_seg > *end_seg) end_seg = stop_seg;
  }
  if (path.front().first_seg)
    rep.first_segment = SegmentName(path.front().tli, *path.front().first_seg, seg_size);

  // 6. Walk every needed segment: present (and verified, once) or missing.
  State state;
  bool state_changed = false;
  if (!opt.state_dir.empty()) {
    const std::string sp = opt.state_dir + "/" + kStateFileName;
    if (auto loaded = LoadState(sp, opt.archive_dir)) {
      if (loaded->segment_size == seg_size) state = std::move(*loaded);
    } else if (::access(sp.c_str(), F_OK) == 0) {
      rep.notes.push_back(std::string(kStateFileName) +
                          " was unreadable: every segment read again");
      state_changed = true;
    }
  }
  state.segment_size = seg_size;
  std::set<std::string> seen;
  const double now = NowUnix();
  if (end_seg) {
    for (const auto& s : path) {
      if (!s.first_seg) continue;
      std::uint64_t last = s.end_seg ? (*s.end_seg == 0 ? 0 : *s.end_seg - 1) : *end_seg;
      if (s.end_seg && *s.end_seg == 0) continue;
      last = std::min(last, *end_seg);
      for (std::uint64_t segno = *s.first_seg; segno <= last; ++segno) {
        check_cancel();
        ++rep.expected;
        const std::string want = SegmentName(s.tli, segno, seg_size);
        auto it = segs.find({s.tli, segno});
        if (it == segs.end()) {
          ++rep.missing;
          if (!rep.gaps.empty() && rep.gaps.back().timeline == s.tli &&
              rep.gaps.back().last_missing == SegmentName(s.tli, segno - 1, seg_size)) {
            rep.gaps.back().last_missing = want;
            ++rep.gaps.back().count;
          } else {
            rep.gaps.push_back(Gap{s.tli, want, want, 1});
          }
          continue;
        }
        ++rep.present;
        const Present& p = it->second;
        seen.insert(p.name);
        auto v = state.verified.find(p.name);
        if (v != state.verified.end() && v->second.size == p.stat.size &&
            v->second.mtime_ns == p.stat.mtime_ns) {
          ++rep.verified_before;
          continue;
        }
        const bool is_newest = newest && &p == newest && newest_on == s.tli;
        const double age = now - static_cast<double>(p.stat.mtime_ns) / 1e9;
        if (is_newest && p.compression.empty() && p.stat.size < seg_size &&
            age < ToSeconds(opt.settle)) {
          rep.in_flight.push_back(p.name);
          continue;
        }
        SegmentCheck c = CheckSegmentFile(opt.archive_dir + "/" + p.name, s.tli, segno, seg_size,
                                          opt.state_dir, cancel, opt.decompress_timeout);
        if (c.ok && state.system_identifier != 0 &&
            c.system_identifier != state.system_identifier) {
          c.ok = false;
          c.problem = p.name + ": belongs to another cluster (system identifier " +
                      std::to_string(c.system_identifier) + ", the archive's is " +
                      std::to_string(state.system_identifier) + ")";
        }
        if (c.ok) {
          ++rep.verified_now;
          if (state.system_identifier == 0) state.system_identifier = c.system_identifier;
          state.verified[p.name] = p.stat;
          state_changed = true;
        } else if (c.problem.find("cannot verify") != std::string::npos) {
          rep.unverified.push_back(p.name);
          rep.notes.push_back(c.problem);
        } else {
          rep.bad.push_back(BadSegment{p.name, c.problem});
        }
      }
    }
  }
  // Forget what is no longer needed or no longer there.
  for (auto it = state.verified.begin(); it != state.verified.end();) {
    if (!seen.count(it->first)) {
      it = state.verified.erase(it);
      state_changed = true;
    } else {
      ++it;
    }
  }
  if (!opt.state_dir.empty() && state_changed) SaveState(opt.state_dir, opt.archive_dir, state);
  return rep;
}

}  // namespace rw::wal
