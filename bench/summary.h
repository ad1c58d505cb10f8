#pragma once
// The issue 13 targets as one table across the three benches: each bench can write its target
// rows to a summary file (`--summary FILE`, tab-separated), and `restorewatch_bench --all` runs the
// WAL and agent benches after the drill bench and prints every row together. Header-only: each
// bench is one program.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace rw::bench {

struct TargetRow {
  std::string target;    // the issue's numbering: "1", "2", ...
  std::string figure;    // what was measured
  std::string measured;  // the figure, formatted with its unit
  std::string goal;      // the target, e.g. "<= 1.15x"
  int met = -1;          // 1 met, 0 missed, -1 not judged here (e.g. needs a second run)
};

inline std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

inline std::string NoTabs(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n') c = ' ';
  return s;
}

// Appends the rows to `path` (one per line, tab-separated). Returns false when it cannot write.
inline bool WriteSummary(const std::string& path, const std::vector<TargetRow>& rows) {
  std::ofstream out(path, std::ios::app);
  for (const auto& r : rows)
    out << NoTabs(r.target) << '\t' << NoTabs(r.figure) << '\t' << NoTabs(r.measured) << '\t'
        << NoTabs(r.goal) << '\t' << r.met << '\n';
  return static_cast<bool>(out);
}

// The rows of a summary file; lines that are not five fields are skipped.
inline std::vector<TargetRow> ReadSummary(const std::string& path) {
  std::vector<TargetRow> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string field; std::getline(ss, field, '\t');) f.push_back(field);
    if (f.size() != 5) continue;
    TargetRow r{f[0], f[1], f[2], f[3], -1};
    if (f[4] == "1") r.met = 1;
    if (f[4] == "0") r.met = 0;
    rows.push_back(r);
  }
  return rows;
}

inline void PrintTargets(const char* title, const std::vector<TargetRow>& rows) {
  std::printf("\n%s\n", title);
  std::printf("%-3s %-62s %10s  %-18s %s\n", "#", "figure", "measured", "target", "");
  for (const auto& r : rows)
    std::printf("%-3s %-62s %10s  %-18s %s\n", r.target.c_str(), r.figure.c_str(),
                r.measured.c_str(), r.goal.c_str(),
                r.met < 0 ? "-"
                : r.met   ? "met"
                          : "MISSED");
}

}  // namespace rw::bench
