// WAL archive continuity at scale (issue "fast drills", target 4): an archive of N segments
// (default 10,000; 16 MiB each, written sparse: a real long page header, the rest a hole, so the
// archive costs ~N x 8 KiB of disk), checked by the wal_archive collector's CheckContinuity:
//   first    a first check with no memory (every segment's name, size and header read)
//   recheck  the same archive again, unchanged (the state file says what was verified)
//   +1%      N/100 new segments archived, then a check (must cost in proportion to the new ones)
// Each is the median of --runs runs (default 3). Prints one table with the targets
// (first < 5 s, recheck < 0.5 s) and exits 0 when it could run, whether or not they are met.
//
// usage: restorewatch_wal_bench [--segments N] [--runs N] [--summary FILE]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/wal_archive.h"
#include "bench/summary.h"

using namespace rw;

namespace {

constexpr std::uint32_t kSeg = 16u << 20;
constexpr std::uint64_t kSysId = 7300000000000000001ULL;

void Put(std::string& b, std::size_t off, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A segment as PostgreSQL 15 writes it, sparse: the first page (long header) and a hole.
void WriteSegment(const std::string& dir, std::uint64_t segno) {
  std::string page(8192, '\0');
  Put(page, 0, 0xD110, 2);
  Put(page, 2, 0x0002, 2);
  Put(page, 4, 1, 4);
  Put(page, 8, segno * kSeg, 8);
  Put(page, 24, kSysId, 8);
  Put(page, 32, kSeg, 4);
  Put(page, 36, 8192, 4);
  const std::string path = dir + "/" + wal::SegmentName(1, segno, kSeg);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot write " + path);
  bool ok = write(fd, page.data(), page.size()) == static_cast<ssize_t>(page.size()) &&
            ftruncate(fd, kSeg) == 0;
  close(fd);
  if (!ok) throw Error(ErrorKind::kIo, "cannot write " + path);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Check(const std::string& archive, const std::string& state, std::uint64_t expect_present) {
  wal::ContinuityOptions o;
  o.archive_dir = archive;
  o.state_dir = state;
  o.settle = std::chrono::seconds(0);
  auto t0 = std::chrono::steady_clock::now();
  wal::ContinuityReport r = wal::CheckContinuity(o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok() || r.present != expect_present)
    throw Error(ErrorKind::kBadInput, "unexpected continuity result: " + r.Summary());
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 10000;
  int runs = 3;
  std::string summary;  // --summary FILE: the target rows, for restorewatch_bench --all
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--segments") n = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
    if (a == "--summary") summary = argv[i + 1];
  }
  std::string base;
  try {
    base = MakeTempDir("/var/tmp", "restorewatch-walbench-");
    const std::string archive = base + "/archive";
    MakeDirs(archive, 0700);
    auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t s = 1; s <= n; ++s) WriteSegment(archive, s);
    std::fprintf(stderr, "wrote %llu sparse segments in %.1f s\n",
                 static_cast<unsigned long long>(n),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::vector<double> first, recheck, grown;
    std::uint64_t next = n + 1;
    for (int i = 0; i < runs; ++i) {
      const std::string state = base + "/state" + std::to_string(i);
      MakeDirs(state, 0700);
      first.push_back(Check(archive, state, next - 1));
      recheck.push_back(Check(archive, state, next - 1));
      const std::uint64_t add = std::max<std::uint64_t>(1, n / 100);
      for (std::uint64_t k = 0; k < add; ++k) WriteSegment(archive, next++);
      grown.push_back(Check(archive, state, next - 1));
    }
    std::fflush(stderr);
    std::printf("WAL continuity, %llu segments of 16 MiB (medians of %d runs)\n",
                static_cast<unsigned long long>(n), runs);
    std::printf("%-34s %10s %10s %8s\n", "figure", "seconds", "target", "met");
    auto row = [](const char* name, double v, double target) {
      std::printf("%-34s %10.3f %10s %8s\n", name, v,
                  target > 0 ? (std::to_string(target).substr(0, 4) + " s").c_str() : "-",
                  target > 0 ? (v < target ? "yes" : "NO") : "-");
    };
    row("first check (no memory)", Median(first), 5.0);
    row("re-check, archive unchanged", Median(recheck), 0.5);
    row("check after 1% new segments", Median(grown), 0);
    std::printf("%-34s %10.2f\n", "re-check / first (ratio)", Median(recheck) / Median(first));
    if (!summary.empty()) {
      const std::string what = " (" + std::to_string(n) + " segments)";
      const double f = Median(first), r = Median(recheck);
      if (!bench::WriteSummary(summary, {{"4", "WAL continuity, first check" + what,
                                          bench::Fmt("%.3f s", f), "< 5 s", f < 5 ? 1 : 0},
                                         {"4", "WAL continuity, re-check, archive unchanged" + what,
                                          bench::Fmt("%.3f s", r), "< 0.5 s", r < 0.5 ? 1 : 0}}))
        throw Error(ErrorKind::kIo, "cannot write " + summary);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wal_bench: %s\n", e.what());
    if (!base.empty()) RemoveTree(base);
    return 2;
  }
  RemoveTree(base);
  return 0;
}
