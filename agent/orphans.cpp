#include "agent/orphans.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "agent/log.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string Hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

// Fields of /proc/PID/stat after the command name: state is [0], starttime (field 22) is [19].
std::vector<std::string> StatFields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(in, content);
  auto close = content.rfind(')');
  std::vector<std::string> out;
  if (close == std::string::npos || close + 2 > content.size()) return out;
  std::istringstream rest(content.substr(close + 2));
  for (std::string f; rest >> f;) out.push_back(f);
  return out;
}

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!realpath(p.c_str(), buf)) return {};
  return buf;
}

// True only when `pid` is a live postgres whose working directory is `data_dir` (a postmaster
// chdirs into its data directory at start). Anything unreadable is "no".
bool IsPostmasterOf(pid_t pid, const std::string& data_dir) {
  if (pid <= 1 || !ProcessStartTicks(pid)) return false;
  std::string comm = ReadFirstLine("/proc/" + std::to_string(pid) + "/comm");
  if (comm != "postgres") return false;
  char buf[PATH_MAX];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  std::string cwd(buf, static_cast<std::size_t>(n));
  std::string want = RealPath(data_dir);
  return !want.empty() && cwd == want;
}

// Waits until the process that had `start` ticks is gone (or is a zombie); bounded.
bool WaitGone(pid_t pid, unsigned long long start, std::chrono::milliseconds bound) {
  auto deadline = Clock::now() + bound;
  while (true) {
    auto now_start = ProcessStartTicks(pid);
    if (!now_start || *now_start != start) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// What is running in an orphaned sandbox dir.
enum class Server { kNone, kStopped, kStillRunning, kUnsure };

// Stops the postmaster named by DATA/postmaster.pid for every data dir directly in `dir` (and
// `dir` itself), if it provably is that dir's postmaster.
Server StopLeftoverPostmasters(const std::string& dir, std::string* detail) {
  std::vector<std::string> data_dirs = {dir};
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d)) {
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      struct stat st {};
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN)
        is_dir = lstat((dir + "/" + e->d_name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      if (is_dir) data_dirs.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  Server result = Server::kNone;
  for (const auto& data : data_dirs) {
    std::string first = ReadFirstLine(data + "/postmaster.pid");
    if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(first));
    auto start = ProcessStartTicks(pid);
    if (!start) continue;  // that postmaster is gone: a stale pid file
    if (!IsPostmasterOf(pid, data)) {
      // A live pid that we cannot prove is this dir's server: a reused pid (then the server is
      // gone) or one we may not inspect. Leave it alone; keep the dir if it could be a postgres.
      if (ReadFirstLine("/proc/" + std::to_string(pid) + "/comm") == "postgres") {
        *detail = "pid " + std::to_string(pid) + " may still serve " + data;
        result = Server::kUnsure;
      }
      continue;
    }
    LogWarn("stopping a sandbox server left by a previous run",
            {{"dir", dir}, {"pid", static_cast<int64_t>(pid)}});
    kill(pid, SIGQUIT);  // immediate shutdown: its backends are stopped too
    if (!WaitGone(pid, *start, std::chrono::seconds(10))) {
      // Check again right before the SIGKILL: never signal a pid that is not provably it.
      if (IsPostmasterOf(pid, data) && ProcessStartTicks(pid) == start) kill(pid, SIGKILL);
      if (!WaitGone(pid, *start, std::chrono::seconds(5))) {
        *detail = "postmaster " + std::to_string(pid) + " did not stop";
        return Server::kStillRunning;
      }
    }
    result = result == Server::kUnsure ? result : Server::kStopped;
  }
  return result;
}

}  // namespace

const ProcessIdentity& SelfIdentity() {
  static const ProcessIdentity self = [] {
    ProcessIdentity id;
    id.host = Hostname();
    id.boot_id = ReadFirstLine("/proc/sys/kernel/random/boot_id");
    id.pid = getpid();
    id.start_ticks = ProcessStartTicks(id.pid).value_or(0);
    return id;
  }();
  return self;
}

std::string FormatIdentity(const ProcessIdentity& id) {
  return "host=" + (id.host.empty() ? std::string("?") : id.host) +
         " boot=" + (id.boot_id.empty() ? std::string("?") : id.boot_id) +
         " pid=" + std::to_string(id.pid) + " start=" + std::to_string(id.start_ticks);
}

std::optional<ProcessIdentity> ParseIdentity(const std::string& text) {
  auto token = [&text](const char* key) -> std::optional<std::string> {
    std::regex re(std::string(R"((?:^|\s))") + key + R"(=(\S+))");
    std::smatch m;
    if (!std::regex_search(text, m, re)) return std::nullopt;
    return m[1].str();
  };
  auto pid = token("pid");
  if (!pid || pid->find_first_not_of("0123456789") != std::string::npos || pid->size() > 9)
    return std::nullopt;
  ProcessIdentity id;
  id.pid = static_cast<pid_t>(std::stol(*pid));
  if (auto h = token("host"); h && *h != "?") id.host = *h;
  if (auto b = token("boot"); b && *b != "?") id.boot_id = *b;
  if (auto s = token("start");
      s && !s->empty() && s->size() < 20 && s->find_first_not_of("0123456789") == std::string::npos)
    id.start_ticks = std::stoull(*s);
  return id;
}

std::optional<unsigned long long> ProcessStartTicks(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  auto f = StatFields(pid);
  if (f.size() < 20 || f[0] == "Z" || f[0] == "X") return std::nullopt;
  try {
    return std::stoull(f[19]);
  } catch (...) {
    return std::nullopt;
  }
}

OwnerState OwnerStateOf(const ProcessIdentity& id) {
  const ProcessIdentity& self = SelfIdentity();
  if (id.host.empty() || id.host != self.host) return OwnerState::kUnknown;
  if (!id.boot_id.empty() && !self.boot_id.empty() && id.boot_id != self.boot_id)
    return OwnerState::kGone;  // started before this machine's last boot
  if (id.pid <= 0) return OwnerState::kUnknown;
  if (kill(id.pid, 0) != 0 && errno == ESRCH) return OwnerState::kGone;
  auto start = ProcessStartTicks(id.pid);
  if (!start) return OwnerState::kGone;  // a zombie, or it just exited
  if (id.start_ticks != 0 && *start != id.start_ticks) return OwnerState::kGone;  // pid reused
  return OwnerState::kAlive;
}

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
    std::stringstream all;
    all << marker.rdbuf();
    const std::string text = all.str();
    std::string first = text.substr(0, text.find('\n'));
    std::smatch m;
    if (!std::regex_search(first, m, kPid) || m[1].length() > 9) continue;
    pid_t pid = static_cast<pid_t>(std::stol(m[1]));
    // The second line of newer markers carries the full identity (host, boot, start time): a pid
    // reused since is then not taken for the owner. Older markers have the pid only, and the work
    // dir is local, so the pid alone decides.
    auto id = ParseIdentity(text.substr(first.size()));
    if (id && id->pid == pid && !id->host.empty()) {
      if (OwnerStateOf(*id) != OwnerState::kGone) continue;
    } else if (kill(pid, 0) == 0 || errno == EPERM) {
      continue;  // owner alive
    }
    std::string detail;
    Server server = StopLeftoverPostmasters(dir, &detail);
    if (server == Server::kStillRunning || server == Server::kUnsure) {
      LogError("kept a leftover sandbox: a server may still run in it",
               {{"dir", dir}, {"error", detail}});
      continue;
    }
    std::string err;
    if (RemoveTree(dir, &err)) {
      removed.push_back(dir);
      LogWarn("removed a sandbox left by a previous run",
              {{"dir", dir},
               {"owner_pid", static_cast<int64_t>(pid)},
               {"server_stopped", server == Server::kStopped ? "yes" : "no"}});
    } else {
      LogError("cannot remove a leftover sandbox", {{"dir", dir}, {"error", err}});
    }
  }
  return removed;
}

}  // namespace rw
