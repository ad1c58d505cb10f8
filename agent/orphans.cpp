#include "agent/orphans.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>

#include "agent/log.h"
#include "agent/process.h"

namespace rw {

std::vector<std::string> RemoveOrphanedWorkDirs(const std::string& work_dir) {
  std::vector<std::string> removed;
  DIR* d = opendir(work_dir.c_str());
  if (!d) return removed;
  static const std::regex kPid(R"(owner=restorewatch pid=(\d+))");
  std::vector<std::string> candidates;
  while (struct dirent* e = readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    candidates.push_back(work_dir + "/" + e->d_name);
  }
  closedir(d);
  for (const auto& dir : candidates) {
    std::ifstream marker(dir + "/.restorewatch");
    if (!marker) continue;
    std::string first;
    std::getline(marker, first);
    std::smatch m;
    if (!std::regex_search(first, m, kPid)) continue;
    pid_t pid = static_cast<pid_t>(std::stol(m[1]));
    if (kill(pid, 0) == 0 || errno == EPERM) continue;  // owner alive
    std::string err;
    if (RemoveTree(dir, &err)) {
      removed.push_back(dir);
      LogWarn("removed a sandbox left by a previous run",
              {{"dir", dir}, {"owner_pid", static_cast<int64_t>(pid)}});
    } else {
      LogError("cannot remove a leftover sandbox", {{"dir", dir}, {"error", err}});
    }
  }
  return removed;
}

}  // namespace rw
