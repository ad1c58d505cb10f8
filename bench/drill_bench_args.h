#pragma once
// Command line of restorewatch_bench (bench/drill_bench.cpp), header-only so the unit tests
// ([unit][bench_usage]) parse exactly what the bench parses.
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace rw::bench {

constexpr const char* kDrillBenchUsage =
    "usage: restorewatch_bench [--quick | --large] [--scale N] [--wide-rows N] [--runs N]\n"
    "                          [--no-baseline] [--no-physical] [--dir DIR] [--all]\n"
    "  --quick        pgbench scale 2 + 3 wide tables of 50,000 rows (a few minutes)\n"
    "  --large        pgbench scale 250 + 3 wide tables of 6.25M rows: 10 GB, the small\n"
    "                 reference x 12.5 in the same proportions (not run in CI); the small\n"
    "                 reference is built beside it and measured in the same rounds\n"
    "  --scale N      pgbench scale (default 20); --wide-rows N rows per wide table\n"
    "                 (default 25,000 x scale)\n"
    "  --runs N       runs of each measurement, medians printed (default 3)\n"
    "  --no-baseline  skip the careful-script baseline (single-job restore + ordered md5)\n"
    "  --no-physical  skip the base backup + WAL archive and the physical drill\n"
    "  --dir DIR      where the clusters, dumps and backups go (default /var/tmp)\n"
    "  --all          then run the WAL continuity and agent benches too, and print every\n"
    "                 target of the six in one table (about 3 more minutes)\n";

struct DrillBenchArgs {
  int scale = 20;
  long wide_rows = 0;  // 0: 25,000 x scale
  int runs = 3;
  bool quick = false;
  bool large = false;
  bool baseline = true;
  bool physical = true;
  bool help = false;
  bool all = false;  // also the WAL and agent benches, one table of every target
  std::string dir = "/var/tmp";
  long WideRows() const { return wide_rows > 0 ? wide_rows : 25000L * scale; }
};

// Parses the arguments after the program name. "" on success, else a one-line error naming the
// argument.
inline std::string ParseDrillBenchArgs(const std::vector<std::string>& args, DrillBenchArgs* out) {
  DrillBenchArgs a;
  bool scale_given = false;
  auto number = [&](std::size_t& i, long min, long max, long* v) -> std::string {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) return flag + " needs a value";
    const std::string& s = args[++i];
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || errno != 0 || *end != '\0' || n < min || n > max)
      return flag + " must be a whole number from " + std::to_string(min) + " to " +
             std::to_string(max) + ", not \"" + s + "\"";
    *v = n;
    return "";
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& f = args[i];
    std::string err;
    long v = 0;
    if (f == "--quick") {
      a.quick = true;
    } else if (f == "--large") {
      a.large = true;
    } else if (f == "--no-baseline") {
      a.baseline = false;
    } else if (f == "--no-physical") {
      a.physical = false;
    } else if (f == "--all") {
      a.all = true;
    } else if (f == "--help" || f == "-h") {
      a.help = true;
    } else if (f == "--scale") {
      if (!(err = number(i, 1, 100000, &v)).empty()) return err;
      a.scale = static_cast<int>(v);
      scale_given = true;
    } else if (f == "--wide-rows") {
      if (!(err = number(i, 1, 2000000000L, &v)).empty()) return err;
      a.wide_rows = v;
    } else if (f == "--runs") {
      if (!(err = number(i, 1, 100, &v)).empty()) return err;
      a.runs = static_cast<int>(v);
    } else if (f == "--dir") {
      if (i + 1 >= args.size() || args[i + 1].empty()) return "--dir needs a directory";
      a.dir = args[++i];
    } else {
      return "unknown argument \"" + f + "\"";
    }
  }
  if (a.quick && a.large) return "--quick and --large exclude each other";
  if (!scale_given && a.quick) a.scale = 2;
  if (!scale_given && a.large) a.scale = 250;
  *out = a;
  return "";
}

}  // namespace rw::bench
