// agent/wal_archive.h and checks/live/wal_archive_collector.h on synthetic archives: names, LSNs,
// history files, gaps, timeline switches, compressed and corrupt segments, the state file. The
// segments are real-looking 1 MiB segments (a valid segment size) with a PostgreSQL 15 long page
// header, so the tests stay small.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/wal_archive.h"
#include "checks/live/collector_util.h"
#include "checks/live/wal_archive_collector.h"

using namespace rw;
using namespace rw::wal;

namespace {

// Runs a command to completion (argv[0] from PATH).
ProcessResult Run(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  return RunProcess(spec);
}

constexpr std::uint32_t kSeg = 1u << 20;  // 1 MiB segments
constexpr std::uint64_t kSysId = 7300000000000000001ULL;

class TempDir {
 public:
  TempDir() { path_ = MakeTempDir("/tmp", "rw-walunit-"); }
  ~TempDir() { RemoveTree(path_); }
  std::string operator/(const std::string& n) const { return path_ + "/" + n; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void Put16(std::string& b, std::size_t off, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void Put32(std::string& b, std::size_t off, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void Put64(std::string& b, std::size_t off, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A segment as PostgreSQL 15 writes it: long header on the first page, short ones after.
std::string SegmentBytes(std::uint32_t page_tli, std::uint64_t segno, std::uint32_t seg = kSeg) {
  std::string b(seg, '\0');
  for (std::uint64_t off = 0; off < 4 * 8192; off += 8192) {
    Put16(b, off, 0xD110);
    Put16(b, off + 2, off == 0 ? 0x0002 : 0);
    Put32(b, off + 4, page_tli);
    Put64(b, off + 8, segno * seg + off);
  }
  Put64(b, 24, kSysId);
  Put32(b, 32, seg);
  Put32(b, 36, 8192);
  return b;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes segments [from, to] of timeline `tli` into `dir`; returns their names.
std::vector<std::string> WriteSegments(const std::string& dir, std::uint32_t tli,
                                       std::uint64_t from, std::uint64_t to) {
  std::vector<std::string> names;
  for (std::uint64_t s = from; s <= to; ++s) {
    names.push_back(SegmentName(tli, s, kSeg));
    Write(dir + "/" + names.back(), SegmentBytes(tli, s));
  }
  return names;
}

// Sets a file's mtime to `seconds_ago` in the past.
void Age(const std::string& path, int seconds_ago) {
  struct timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= seconds_ago;
  ts[1] = ts[0];
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

ContinuityOptions Opts(const TempDir& arch, const std::string& state = "") {
  ContinuityOptions o;
  o.archive_dir = arch.path();
  o.state_dir = state;
  o.segment_size = 0;  // read from the headers
  return o;
}

}  // namespace

TEST_CASE("LSNs and segment names", "[unit][wal_archive]") {
  CHECK(ParseLsn("0/3000028") == 0x3000028ULL);
  CHECK(ParseLsn("16/B374D848") == ((0x16ULL << 32) | 0xB374D848ULL));
  CHECK(FormatLsn(0x3000028) == "0/3000028");
  CHECK(FormatLsn((0x16ULL << 32) | 0xB374D848ULL) == "16/B374D848");
  CHECK_FALSE(ParseLsn(""));
  CHECK_FALSE(ParseLsn("3000028"));
  CHECK_FALSE(ParseLsn("0/"));
  CHECK_FALSE(ParseLsn("0/30G0028"));
  CHECK_FALSE(ParseLsn("123456789/0"));

  CHECK(SegmentName(1, SegmentNo(0x3000028, kDefaultSegmentSize), kDefaultSegmentSize) ==
        "000000010000000000000003");
  // 16 MiB segments: 256 per 4 GiB "log"; the 257th segment is in log 1.
  CHECK(SegmentName(2, 256, kDefaultSegmentSize) == "000000020000000100000000");
  // 1 MiB segments: 4096 per log.
  CHECK(SegmentName(1, 4097, kSeg) == "000000010000000100000001");
  CHECK(HistoryName(10) == "0000000A.history");
  CHECK(ValidSegmentSize(kSeg));
  CHECK(ValidSegmentSize(1u << 30));
  CHECK_FALSE(ValidSegmentSize(3u << 20));
  CHECK_FALSE(ValidSegmentSize(1u << 19));
}

TEST_CASE("pg_waldump's end: an LSN right after a page header ends at the page's start",
          "[unit][wal_archive]") {
  const std::uint32_t seg16 = kDefaultSegmentSize;
  // An idle source after a WAL switch: the insert position is the next segment's first record,
  // right after its 40-byte long header.
  CHECK(WaldumpEnd(0x3000028, seg16) == 0x3000000);
  CHECK(WaldumpEnd((0x16ULL << 32) | 0x28, seg16) == (0x16ULL << 32));
  // A record that ended on a page boundary inside a segment: right after the 24-byte short header.
  CHECK(WaldumpEnd(0x3002018, seg16) == 0x3002000);
  // Anywhere else, the LSN itself: in a page's records, or 40 bytes into a page that is not a
  // segment's first (the end of a record continued from the page before).
  CHECK(WaldumpEnd(0x3000040, seg16) == 0x3000040);
  CHECK(WaldumpEnd(0x3002028, seg16) == 0x3002028);
  CHECK(WaldumpEnd(0x3001FF8, seg16) == 0x3001FF8);
  // The segment size decides which page is a segment's first: 0x100028 is one with 1 MiB
  // segments, a middle page (and a record's end) with 16 MiB ones.
  CHECK(WaldumpEnd(0x100028, kSeg) == 0x100000);
  CHECK(WaldumpEnd(0x100028, seg16) == 0x100028);
  CHECK(WaldumpEnd(0x100018, seg16) == 0x100000);
  CHECK(WaldumpEnd(0x3000028, 0) == 0x3000000);  // unknown: 16 MiB

  // The archive's segment size from its first uncompressed segment's header.
  TempDir arch;
  CHECK(ArchiveSegmentSize(arch.path()) == kDefaultSegmentSize);  // empty: the default
  CHECK(ArchiveSegmentSize(arch / "missing") == kDefaultSegmentSize);
  WriteSegments(arch.path(), 1, 3, 4);
  CHECK(ArchiveSegmentSize(arch.path()) == kSeg);
}

TEST_CASE("archive file names: segments, compressed, partial, history, backup",
          "[unit][wal_archive]") {
  auto n = ParseArchiveName("000000010000000A000000FF");
  CHECK(n.kind == ArchiveFileKind::kSegment);
  CHECK(n.timeline == 1);
  CHECK(n.SegNo(kDefaultSegmentSize) == 0xAULL * 256 + 0xFF);
  CHECK(n.compression.empty());

  for (const char* ext : {"gz", "zst", "lz4", "bz2", "xz"}) {
    auto c = ParseArchiveName(std::string("000000020000000000000003.") + ext);
    CHECK(c.kind == ArchiveFileKind::kSegment);
    CHECK(c.compression == ext);
    CHECK(c.timeline == 2);
  }
  CHECK(ParseArchiveName("000000010000000000000003.partial").kind == ArchiveFileKind::kPartial);
  CHECK(ParseArchiveName("000000010000000000000003.partial.gz").kind == ArchiveFileKind::kPartial);
  auto h = ParseArchiveName("0000000A.history");
  CHECK(h.kind == ArchiveFileKind::kHistory);
  CHECK(h.timeline == 10);
  auto b = ParseArchiveName("000000010000000000000003.00000028.backup");
  CHECK(b.kind == ArchiveFileKind::kBackupHistory);
  CHECK(b.backup_offset == 0x28);

  // Not WAL: lower case, wrong length, timeline 0, unknown suffix, temp files of a copier.
  for (const char* other :
       {"000000010000000000000003.tmp", "00000001000000000000000a", "00000001000000000000003",
        "000000000000000000000003", "000000010000000000000003.br", ".000000010000000000000003.swp",
        "archive_status", "00000000.history"})
    CHECK(ParseArchiveName(other).kind == ArchiveFileKind::kOther);
  // In range for 16 MiB segments only up to FF.
  CHECK_FALSE(ParseArchiveName("000000010000000000000100").SegNo(kDefaultSegmentSize));
  CHECK(ParseArchiveName("000000010000000000000100").SegNo(kSeg) == 0x100ULL);
  CHECK(DecompressorFor("zst") == "zstd");
  CHECK(DecompressorFor("") == "");
}

TEST_CASE("timeline history and backup history files parse", "[unit][wal_archive]") {
  std::string err;
  auto h = ParseHistory(
      "1\t0/3A000060\tno recovery target specified\n\n# comment\n2\t0/5A000000\tat restore "
      "point \"x\"\n",
      &err);
  REQUIRE(h);
  REQUIRE(h->size() == 2);
  CHECK((*h)[0].timeline == 1);
  CHECK((*h)[0].switchpoint == 0x3A000060ULL);
  CHECK((*h)[0].reason == "no recovery target specified");
  CHECK((*h)[1].timeline == 2);
  CHECK(ParseHistory("")->empty());
  CHECK_FALSE(ParseHistory("1\tnot-an-lsn\tx\n", &err));
  CHECK(err.find("line 1") != std::string::npos);
  CHECK_FALSE(ParseHistory("2\t0/5000000\tx\n1\t0/6000000\ty\n", &err));  // not increasing

  auto b = ParseBackupHistory(
      "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n"
      "STOP WAL LOCATION: 0/4000100 (file 000000010000000000000004)\n"
      "CHECKPOINT LOCATION: 0/4000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
      "START TIME: 2026-12-02 19:09:44 UTC\nLABEL: nightly\nSTART TIMELINE: 1\n"
      "STOP TIME: 2026-12-02 19:09:45 UTC\nSTOP TIMELINE: 1\n");
  REQUIRE(b);
  CHECK(b->start_lsn == 0x4000028ULL);
  CHECK(b->stop_lsn == 0x4000100ULL);
  CHECK(b->checkpoint_lsn == 0x4000060ULL);
  CHECK(b->label == "nightly");
  CHECK(b->start_timeline == 1);
  CHECK(b->stop_timeline == 1);
  REQUIRE(b->stop_time);
  REQUIRE(b->start_time);
  CHECK(*b->stop_time - *b->start_time == Approx(1.0));
  CHECK_FALSE(ParseBackupHistory("LABEL: x\n"));
}

TEST_CASE("segment bytes: a real header passes, every kind of damage is named",
          "[unit][wal_archive]") {
  const std::string name = SegmentName(1, 5, kSeg);
  std::string ok = SegmentBytes(1, 5);
  auto c = CheckSegmentBytes(name, ok.substr(0, 8192), ok.size(), 1, 5, kSeg);
  CHECK(c.ok);
  CHECK(c.server_major == 15);
  CHECK(c.segment_size == kSeg);
  CHECK(c.system_identifier == kSysId);
  // The first segment of timeline 2 starts with timeline 1's pages.
  CHECK(CheckSegmentBytes(name, ok.substr(0, 8192), ok.size(), 2, 5, kSeg).ok);

  auto truncated = CheckSegmentBytes(name, ok.substr(0, 8192), 8192, 1, 5, kSeg);
  CHECK_FALSE(truncated.ok);
  CHECK(truncated.problem == name + ": truncated: 8192 bytes, a segment has 1048576");
  std::string zero(kSeg, '\0');
  auto z = CheckSegmentBytes(name, zero.substr(0, 8192), zero.size(), 1, 5, kSeg);
  CHECK_FALSE(z.ok);
  CHECK(z.problem == name + ": not a WAL segment: page magic 0x0000");
  auto wrong_addr = CheckSegmentBytes(name, ok.substr(0, 8192), ok.size(), 1, 6, kSeg);
  CHECK_FALSE(wrong_addr.ok);
  CHECK(wrong_addr.problem.find("wrong page address 0/500000, expected 0/600000") !=
        std::string::npos);
  auto tli = CheckSegmentBytes(name, SegmentBytes(3, 5).substr(0, 8192), kSeg, 2, 5, kSeg);
  CHECK_FALSE(tli.ok);
  CHECK(tli.problem.find("page timeline 3") != std::string::npos);
  auto size =
      CheckSegmentBytes(name, SegmentBytes(1, 0, 2 * kSeg).substr(0, 8192), kSeg, 1, 0, kSeg);
  CHECK_FALSE(size.ok);
  CHECK(size.problem.find("segment size 2097152") != std::string::npos);
}

TEST_CASE("continuity: a complete archive, a middle gap, a truncated and a corrupt segment",
          "[unit][wal_archive]") {
  TempDir arch, state;
  auto names = WriteSegments(arch.path(), 1, 3, 10);
  Write(arch / "000000010000000000000003.00000028.backup", "START WAL LOCATION: 0/300028\n");
  StartPoint sp{1, 3 * kSeg + 0x28, 3 * kSeg + 0x100};

  auto o = Opts(arch, state.path());
  o.start = sp;
  auto r = CheckContinuity(o);
  CHECK(r.ok());
  CHECK(r.segment_size == kSeg);
  CHECK(r.expected == 8);
  CHECK(r.present == 8);
  CHECK(r.missing == 0);
  CHECK(r.first_segment == names.front());
  CHECK(r.newest_segment == names.back());
  REQUIRE(r.newest_segment_mtime);
  CHECK(r.timelines == std::vector<std::uint32_t>{1});
  CHECK(r.backup_histories.size() == 1);
  CHECK(r.Summary() == "ok: 8 segments " + names.front() + ".." + names.back());

  SECTION("a deleted middle segment is a gap naming it") {
    REQUIRE(::unlink((arch / names[3]).c_str()) == 0);
    REQUIRE(::unlink((arch / names[4]).c_str()) == 0);
    auto g = CheckContinuity(o);
    CHECK_FALSE(g.ok());
    CHECK(g.missing == 2);
    REQUIRE(g.gaps.size() == 1);
    CHECK(g.gaps[0].first_missing == "000000010000000000000006");
    CHECK(g.gaps[0].last_missing == "000000010000000000000007");
    CHECK(g.gaps[0].count == 2);
    CHECK(g.Summary() == "missing 000000010000000000000006 (2 segments missing in 1 gap)");
    CHECK(g.unusable() == 2);
  }
  SECTION("segments before the start are not needed; the start's own segment is") {
    auto o2 = o;
    o2.start->lsn = 5 * kSeg;
    CHECK(CheckContinuity(o2).expected == 6);
    REQUIRE(::unlink((arch / names[0]).c_str()) == 0);
    CHECK(CheckContinuity(o2).ok());
    auto g = CheckContinuity(o);
    REQUIRE(g.gaps.size() == 1);
    CHECK(g.gaps[0].first_missing == names[0]);
  }
  SECTION("a truncated and a corrupted segment are named") {
    REQUIRE(::truncate((arch / names[2]).c_str(), 4096) == 0);
    std::string bytes = SegmentBytes(1, 8);
    for (int i = 0; i < 64; ++i) bytes[i] = static_cast<char>(0xA5);
    Write(arch / names[5], bytes);
    // The state still remembers both as verified, but size/mtime changed: they are read again.
    auto b = CheckContinuity(o);
    CHECK_FALSE(b.ok());
    CHECK(b.missing == 0);
    REQUIRE(b.bad.size() == 2);
    CHECK(b.bad[0].name == names[2]);
    CHECK(b.bad[0].problem == names[2] + ": truncated: 4096 bytes, a segment has 1048576");
    CHECK(b.bad[1].name == names[5]);
    CHECK(b.bad[1].problem == names[5] + ": not a WAL segment: page magic 0xA5A5");
    CHECK(b.unusable() == 2);
    CHECK(b.Summary() == b.bad[0].problem + " (and 1 more)");
  }
  SECTION("the newest segment still being copied is in flight, not corrupt") {
    auto more = WriteSegments(arch.path(), 1, 11, 11);
    REQUIRE(::truncate((arch / more[0]).c_str(), 65536) == 0);
    auto f = CheckContinuity(o);
    CHECK(f.ok());
    CHECK(f.in_flight == more);
    Age(arch / more[0], 600);
    auto f2 = CheckContinuity(o);
    CHECK_FALSE(f2.ok());
    REQUIRE(f2.bad.size() == 1);
    CHECK(f2.bad[0].name == more[0]);
  }
  SECTION("a segment of another cluster is named") {
    std::string other = SegmentBytes(1, 11);
    Put64(other, 24, kSysId + 1);
    Write(arch / SegmentName(1, 11, kSeg), other);
    auto c = CheckContinuity(o);
    REQUIRE(c.bad.size() == 1);
    CHECK(c.bad[0].problem.find("belongs to another cluster") != std::string::npos);
  }
  SECTION("a stop point beyond the archive counts the backup's own missing segments") {
    auto o2 = o;
    o2.start->stop_lsn = 12 * kSeg + 5;
    auto s = CheckContinuity(o2);
    CHECK(s.missing == 2);
    REQUIRE(s.gaps.size() == 1);
    CHECK(s.gaps[0].first_missing == SegmentName(1, 11, kSeg));
  }
}

TEST_CASE("continuity: a re-check reads only new segments; a corrupt state file is ignored",
          "[unit][wal_archive]") {
  TempDir arch, state;
  auto names = WriteSegments(arch.path(), 1, 1, 6);
  auto o = Opts(arch, state.path());
  auto r1 = CheckContinuity(o);
  CHECK(r1.ok());
  CHECK(r1.verified_now == 6);
  CHECK(r1.verified_before == 0);
  const std::string state_file = state / kStateFileName;
  REQUIRE(Read(state_file).find("end 6\n") != std::string::npos);

  auto r2 = CheckContinuity(o);
  CHECK(r2.verified_now == 0);
  CHECK(r2.verified_before == 6);

  // A verified segment whose content rots in place (same size and mtime) is not read again:
  // proof that the second run did not read it.
  struct stat st {};
  REQUIRE(::stat((arch / names[2]).c_str(), &st) == 0);
  {
    std::fstream f(arch / names[2], std::ios::in | std::ios::out | std::ios::binary);
    f.write("\0\0\0\0", 4);
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, (arch / names[2]).c_str(), ts, 0) == 0);
  auto r3 = CheckContinuity(o);
  CHECK(r3.ok());
  CHECK(r3.verified_now == 0);

  WriteSegments(arch.path(), 1, 7, 8);
  auto r4 = CheckContinuity(o);
  CHECK(r4.verified_now == 2);
  CHECK(r4.verified_before == 6);

  SECTION("torn state file: ignored, everything read again, and the damage is then found") {
    std::string text = Read(state_file);
    Write(state_file, text.substr(0, text.size() / 2));
    auto r = CheckContinuity(o);
    CHECK(r.verified_before == 0);
    CHECK(r.verified_now == 7);
    REQUIRE(r.bad.size() == 1);
    CHECK(r.bad[0].name == names[2]);
    REQUIRE_FALSE(r.notes.empty());
    CHECK(r.notes.back().find("unreadable") != std::string::npos);
    // Rewritten whole.
    CHECK(Read(state_file).find("end 7\n") != std::string::npos);
  }
  SECTION("garbage, or the state of another archive: ignored") {
    Write(state_file, "\x01\x02garbage\n");
    CHECK(CheckContinuity(o).verified_before == 0);
    TempDir other;
    WriteSegments(other.path(), 1, 1, 2);
    auto o2 = Opts(other, state.path());
    auto r = CheckContinuity(o2);
    CHECK(r.verified_before == 0);
    CHECK(r.verified_now == 2);
  }
  SECTION("no temp files are left in the state dir") {
    auto left = 0;
    for (const char* n : {"wal_archive.state"}) left += ::access((state / n).c_str(), F_OK) == 0;
    CHECK(left == 1);
    std::string ls = Run({"ls", "-a", state.path()}).out;
    CHECK(ls == ".\n..\nwal_archive.state\n");
  }
}

TEST_CASE("continuity follows timeline switches through .history files", "[unit][wal_archive]") {
  TempDir arch;
  // Timeline 1 until 0/380010 (inside segment 3), then timeline 2 until segment 6 at 0/600000
  // exactly, then timeline 3.
  WriteSegments(arch.path(), 1, 1, 5);  // tli 1 went on after the switch: 4, 5 are off the path
  Write(arch / "000000010000000000000003.partial", SegmentBytes(1, 3));
  WriteSegments(arch.path(), 2, 3, 5);
  Write(arch / "00000002.history", "1\t0/380010\tno recovery target specified\n");
  WriteSegments(arch.path(), 3, 6, 9);
  Write(arch / "00000003.history",
        "1\t0/380010\tno recovery target specified\n2\t0/600000\tno recovery target specified\n");
  auto o = Opts(arch);
  o.start = StartPoint{1, 1 * kSeg + 0x28, std::nullopt};
  auto r = CheckContinuity(o);
  CHECK(r.ok());
  CHECK(r.timelines == std::vector<std::uint32_t>{1, 2, 3});
  // 1/1, 1/2, 2/3, 2/4, 2/5, 3/6..3/9
  CHECK(r.expected == 9);
  CHECK(r.newest_segment == "000000030000000000000009");
  CHECK(r.partials == std::vector<std::string>{"000000010000000000000003.partial"});

  SECTION("the switch segment must come from the new timeline; a .partial does not fill it") {
    REQUIRE(::unlink((arch / "000000020000000000000003").c_str()) == 0);
    auto g = CheckContinuity(o);
    REQUIRE(g.gaps.size() == 1);
    CHECK(g.gaps[0].first_missing == "000000020000000000000003");
    CHECK(g.gaps[0].timeline == 2);
  }
  SECTION("a gap on the newest timeline") {
    REQUIRE(::unlink((arch / "000000030000000000000007").c_str()) == 0);
    auto g = CheckContinuity(o);
    REQUIRE(g.gaps.size() == 1);
    CHECK(g.gaps[0].first_missing == "000000030000000000000007");
  }
  SECTION("a start on timeline 2 begins there") {
    o.start = StartPoint{2, 4 * kSeg, std::nullopt};
    auto s = CheckContinuity(o);
    CHECK(s.ok());
    CHECK(s.timelines == std::vector<std::uint32_t>{2, 3});
    CHECK(s.expected == 6);
  }
  SECTION("without a start: from the oldest segment of the oldest ancestor") {
    o.start.reset();
    auto s = CheckContinuity(o);
    CHECK(s.ok());
    CHECK(s.first_segment == "000000010000000000000001");
    CHECK(s.expected == 9);
  }
  SECTION("a missing history file is a problem, the start's timeline is still checked") {
    REQUIRE(::unlink((arch / "00000003.history").c_str()) == 0);
    auto p = CheckContinuity(o);
    CHECK_FALSE(p.ok());
    CHECK(p.problem.find("00000003.history is missing") != std::string::npos);
    CHECK(p.timelines == std::vector<std::uint32_t>{1});
    CHECK(p.missing == 0);
    CHECK(p.unusable() == 1);  // the metric does not read 0 while the switch cannot be followed
    CHECK(WalArchiveFamilies(p).front().samples.at(0).value == 1);
  }
  SECTION("a start on timeline 1 after it switched away is not on the history") {
    o.start = StartPoint{1, 4 * kSeg + 0x28, std::nullopt};
    auto p = CheckContinuity(o);
    CHECK_FALSE(p.ok());
    CHECK(p.problem ==
          "the start point 0/400028 on timeline 1 is past that timeline's switch at 0/380010 "
          "(00000003.history): it is not on the newest timeline's history");
    CHECK(p.timelines == std::vector<std::uint32_t>{1});
    CHECK(p.expected == 2);  // its own timeline is still checked: 1/4 and 1/5
  }
  SECTION("a start on a timeline that is not an ancestor") {
    Write(arch / "00000004.history", "1\t0/380010\tx\n3\t0/700000\ty\n");
    WriteSegments(arch.path(), 4, 7, 7);
    o.start = StartPoint{2, 4 * kSeg, std::nullopt};
    auto p = CheckContinuity(o);
    CHECK(p.problem.find("timeline 2 of the start point is not an ancestor of the newest "
                         "timeline 4") != std::string::npos);
  }
}

TEST_CASE("continuity reads compressed segments", "[unit][wal_archive]") {
  auto gzip = FindProgram("gzip");
  auto zstd = FindProgram("zstd");
  if (!gzip || !zstd) {
    WARN("gzip or zstd missing: skipped");
    return;
  }
  TempDir arch, state;
  auto names = WriteSegments(arch.path(), 1, 1, 4);
  REQUIRE(Run({*gzip, arch / names[1]}).ok());
  REQUIRE(Run({*zstd, "-q", "--rm", arch / names[2]}).ok());
  REQUIRE(::access((arch / (names[1] + ".gz")).c_str(), F_OK) == 0);
  REQUIRE(::access((arch / (names[2] + ".zst")).c_str(), F_OK) == 0);
  auto o = Opts(arch, state.path());
  auto r = CheckContinuity(o);
  CHECK(r.ok());
  CHECK(r.expected == 4);
  CHECK(r.present == 4);
  CHECK(r.verified_now == 4);

  // A truncated .gz: named; the decompression temp file is gone.
  std::string gz = Read(arch / (names[1] + ".gz"));
  Write(arch / (names[1] + ".gz"), gz.substr(0, gz.size() / 2));
  auto b = CheckContinuity(o);
  REQUIRE(b.bad.size() == 1);
  CHECK(b.bad[0].name == names[1] + ".gz");
  CHECK(b.bad[0].problem.find(names[1] + ".gz: cannot decompress") == 0);
  std::string ls = Run({"ls", "-a", state.path()}).out;
  CHECK(ls == ".\n..\nwal_archive.state\n");
}

TEST_CASE("wal_archive collector: families match the metric contract", "[unit][wal_archive]") {
  TempDir arch, state;
  auto names = WriteSegments(arch.path(), 1, 2, 7);
  Age(arch / names.back(), 100);
  REQUIRE(::unlink((arch / names[2]).c_str()) == 0);
  WalArchiveOptions wo;
  wo.archive_dir = arch.path();
  wo.state_dir = state.path();
  WalArchiveCollector c(wo);
  CHECK(c.name() == "wal_archive");
  CHECK_FALSE(c.LastReport());
  TargetConfig t;
  t.name = "x";
  CancelToken cancel;
  CollectContext ctx{t, cancel, nullptr, nullptr, {}};
  auto fam = c.Collect(ctx);
  REQUIRE(fam.size() == 2);
  CHECK(FindValue(fam, "restorewatch_wal_archive_gaps") == 1);
  auto ts = FindValue(fam, "restorewatch_wal_archive_last_segment_timestamp_seconds");
  REQUIRE(ts);
  CHECK(*ts == Approx(NowUnix() - 100).margin(5));
  for (const auto& f : fam) {
    CHECK(f.type == MetricType::kGauge);
    CHECK_FALSE(f.help.empty());
    REQUIRE(f.samples.size() == 1);
    CHECK(f.samples[0].labels.empty());
  }
  REQUIRE(c.LastReport());
  CHECK(c.LastReport()->gaps.at(0).first_missing == names[2]);

  // An empty archive: no gaps, no timestamp series.
  TempDir empty;
  wo.archive_dir = empty.path();
  wo.state_dir = "";
  auto e = WalArchiveCollector(wo).Collect(ctx);
  CHECK(FindValue(e, "restorewatch_wal_archive_gaps") == 0);
  CHECK_FALSE(FindFamily(e, "restorewatch_wal_archive_last_segment_timestamp_seconds"));
  // An archive that cannot be read fails the collector.
  wo.archive_dir = empty / "nope";
  CHECK_THROWS_AS(WalArchiveCollector(wo).Collect(ctx), Error);
  wo.archive_dir = "";
  CHECK_THROWS_AS(WalArchiveCollector(wo), Error);
}
