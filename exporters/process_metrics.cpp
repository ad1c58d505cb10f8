#include "exporters/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace rw {
namespace {

bool ReadFile(const char* path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Boot time (Unix seconds) from /proc/stat's btime line.
bool BootTime(double* out) {
  std::string stat;
  if (!ReadFile("/proc/stat", &stat)) return false;
  auto p = stat.find("\nbtime ");
  if (p == std::string::npos) return false;
  *out = std::strtod(stat.c_str() + p + 7, nullptr);
  return *out > 0;
}

void Add(std::vector<MetricFamilyData>& out, const char* name, const char* help, double v,
         MetricType type = MetricType::kGauge) {
  MetricFamilyData f = Gauge(name, help, v);
  f.type = type;
  out.push_back(std::move(f));
}

}  // namespace

std::vector<MetricFamilyData> ProcessFamilies() {
  std::vector<MetricFamilyData> out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::string stat;
  if (ticks > 0 && page > 0 && ReadFile("/proc/self/stat", &stat)) {
    // The command name (field 2) is in parentheses and may hold spaces: fields resume after the
    // last ')'. Then field 3 (state) is token 0, utime (14) token 11, stime (15) token 12,
    // starttime (22) token 19, vsize (23) token 20, rss (24) token 21.
    auto close = stat.rfind(')');
    if (close != std::string::npos) {
      std::istringstream in(stat.substr(close + 1));
      std::string tok;
      std::vector<std::string> f;
      while (in >> tok) f.push_back(tok);
      if (f.size() > 21) {
        const double utime = std::strtod(f[11].c_str(), nullptr);
        const double stime = std::strtod(f[12].c_str(), nullptr);
        Add(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
            (utime + stime) / ticks, MetricType::kCounter);
        Add(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
            std::strtod(f[20].c_str(), nullptr));
        Add(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
            std::strtod(f[21].c_str(), nullptr) * page);
        double boot = 0;
        if (BootTime(&boot))
          Add(out, "process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.",
              boot + std::strtod(f[19].c_str(), nullptr) / ticks);
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    double n = 0;
    while (struct dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    Add(out, "process_open_fds", "Number of open file descriptors.", n - 1);  // minus this dir's
  }
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    Add(out, "process_max_fds", "Maximum number of open file descriptors.",
        static_cast<double>(rl.rlim_cur));
  return out;
}

}  // namespace rw
