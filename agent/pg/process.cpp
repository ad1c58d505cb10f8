#include "agent/pg/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "agent/errors.h"

extern char** environ;

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Keeps the last `limit` bytes of a stream.
void AppendTail(std::string& buf, const char* data, size_t n, size_t limit) {
  buf.append(data, n);
  if (buf.size() > limit) buf.erase(0, buf.size() - limit);
}

// Names of the agent's variables a child may inherit: the search path, locale and time zone,
// the temp dir, and the sanitizers' options (so a sanitizer build's children behave like the
// agent). Nothing else: the agent's environment holds the secrets ${VAR} expanded, and a
// PostgreSQL child running as run_as exposes its environment in /proc/PID/environ.
bool Inherited(const std::string& name) {
  static const char* const kNames[] = {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR"};
  for (const char* n : kNames)
    if (name == n) return true;
  if (name.rfind("LC_", 0) == 0) return true;
  const std::string san = "SAN_OPTIONS";  // ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS, ...
  return name.size() > san.size() && name.compare(name.size() - san.size(), san.size(), san) == 0 &&
         name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == std::string::npos;
}

// A child's environment: the few inherited variables above, HOME/USER/LOGNAME (of run_as when
// dropping privileges, else the agent's), then spec.env (PGPASSWORD for a client tool, ...).
std::vector<std::string> BuildEnv(const ProcessSpec& spec) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = kv.substr(0, eq);
    const bool identity = name == "HOME" || name == "USER" || name == "LOGNAME";
    if (Inherited(name) || (identity && !spec.run_as)) env[name] = kv.substr(eq + 1);
  }
  if (env.find("PATH") == env.end()) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  if (spec.run_as) {
    env["HOME"] = spec.run_as->home;
    env["USER"] = spec.run_as->user;
    env["LOGNAME"] = spec.run_as->user;
  }
  for (const auto& [k, v] : spec.env) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// In the child after fork(): only async-signal-safe calls until exec.
// parent: the agent's pid captured before fork(), to close the race where the agent died before
// PR_SET_PDEATHSIG was armed (the child would then never get the signal).
// groups: run_as's supplementary groups, looked up before fork() (initgroups() reads the group
// database and allocates: after fork() in a threaded agent it can deadlock on a lock another
// thread held at the fork, which hung initdb under the sanitizers once the progress ticker ran).
[[noreturn]] void ExecChild(const ProcessSpec& spec, char* const* argv, char* const* envp,
                            int in_fd, int out_fd, int err_fd, pid_t parent,
                            const std::vector<gid_t>& groups) {
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) signal(sig, SIG_DFL);
  if (in_fd >= 0) dup2(in_fd, 0);
  if (out_fd >= 0) dup2(out_fd, 1);
  if (err_fd >= 0) dup2(err_fd, 2);
  // Close everything else so children don't hold the agent's sockets.
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  if (spec.run_as) {
    if (setgroups(groups.size(), groups.data()) != 0 ||
        setgid(spec.run_as->gid) != 0 || setuid(spec.run_as->uid) != 0 || setuid(0) == 0) {
      _exit(126);
    }
  }
  // After the credential change: setuid/setgid clear the parent-death signal (prctl(2)), so set
  // before the switch it was silently lost and a run_as child (the sandbox postmaster) outlived a
  // kill -9 of the agent.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(126);
  if (getppid() != parent) _exit(126);  // the agent died before the signal was armed
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) _exit(126);
  execve(argv[0], argv, envp);
  _exit(127);
}

struct Spawned {
  pid_t pid = -1;
  int out_fd = -1;  // read end of stdout pipe, or -1
  int err_fd = -1;  // read end of stderr pipe
};

// Starts a child. stdin_fd/stdout_fd override the spec's redirections when >= 0.
Spawned Spawn(const ProcessSpec& spec, int stdin_fd = -1, int stdout_fd = -1, int stderr_fd = -1) {
  if (spec.argv.empty()) throw Error(ErrorKind::kProcess, "empty command");
  auto prog = FindProgram(spec.argv[0]);
  if (!prog) throw Error(ErrorKind::kProcess, "program not found: " + spec.argv[0]);

  std::vector<std::string> args = spec.argv;
  args[0] = *prog;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envs = BuildEnv(spec);
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_fd = stdin_fd;
  bool close_in = false;
  if (in_fd < 0) {
    in_fd =
        open(spec.stdin_path.empty() ? "/dev/null" : spec.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) throw Error(ErrorKind::kIo, Errno("cannot open " + spec.stdin_path));
    close_in = true;
  }
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  int child_out = stdout_fd;
  bool close_out = false;
  if (child_out < 0) {
    if (spec.stdout_path == "-") {
      child_out = open("/dev/null", O_WRONLY | O_CLOEXEC);
      close_out = true;
    } else if (!spec.stdout_path.empty()) {
      child_out = open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (child_out < 0) {
        if (close_in) close(in_fd);
        throw Error(ErrorKind::kIo, Errno("cannot open " + spec.stdout_path));
      }
      close_out = true;
    } else {
      if (pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(ErrorKind::kProcess, Errno("pipe"));
      child_out = out_pipe[1];
    }
  }
  if (stderr_fd < 0 && pipe2(err_pipe, O_CLOEXEC) != 0)
    throw Error(ErrorKind::kProcess, Errno("pipe"));
  int child_err = stderr_fd >= 0 ? stderr_fd : err_pipe[1];

  std::vector<gid_t> groups;
  if (spec.run_as) {
    int n = 16;
    for (int attempt = 0; attempt < 4; ++attempt) {
      groups.resize(static_cast<std::size_t>(n));
      if (getgrouplist(spec.run_as->user.c_str(), spec.run_as->gid, groups.data(), &n) >= 0) break;
    }
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    if (groups.empty()) groups.push_back(spec.run_as->gid);
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw Error(ErrorKind::kProcess, Errno("fork"));
  if (pid == 0)
    ExecChild(spec, argv.data(), envp.data(), in_fd, child_out, child_err, parent, groups);
  setpgid(pid, pid);  // also in the parent, to avoid the race with killpg
  if (close_in) close(in_fd);
  if (close_out) close(child_out);
  if (out_pipe[1] >= 0) close(out_pipe[1]);
  if (err_pipe[1] >= 0) close(err_pipe[1]);
  return Spawned{pid, out_pipe[0], err_pipe[0]};
}

void KillGroup(pid_t pid, int sig) {
  if (pid > 0) {
    killpg(pid, sig);
    kill(pid, sig);
  }
}

// Drains the pipes of the given children and waits for all of them, enforcing timeout/cancel.
// Returns the wait statuses in order.
struct Waited {
  std::vector<int> status;
  bool timed_out = false;
  bool cancelled = false;
};

Waited DrainAndWait(const std::vector<pid_t>& pids, std::vector<std::pair<int, std::string*>> fds,
                    size_t limit, Duration timeout, CancelToken* cancel) {
  Waited w;
  w.status.assign(pids.size(), 0);
  std::vector<bool> done(pids.size(), false);
  auto deadline = Clock::now() + timeout;
  bool killing = false;
  Clock::time_point kill_deadline;
  char buf[16384];
  while (true) {
    // Reap whatever has exited.
    bool all = true;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int st = 0;
      pid_t r = waitpid(pids[i], &st, WNOHANG);
      if (r == pids[i] || (r < 0 && errno == ECHILD)) {
        done[i] = true;
        w.status[i] = st;
      } else {
        all = false;
      }
    }
    bool fds_open = false;
    for (auto& f : fds) fds_open |= f.first >= 0;
    if (all && !fds_open) break;

    if (!killing) {
      if (cancel && cancel->cancelled()) w.cancelled = true;
      if (Clock::now() > deadline) w.timed_out = true;
      if (w.cancelled || w.timed_out) {
        for (size_t i = 0; i < pids.size(); ++i)
          if (!done[i]) KillGroup(pids[i], SIGTERM);
        killing = true;
        kill_deadline = Clock::now() + std::chrono::seconds(3);
      }
    } else if (Clock::now() > kill_deadline) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) KillGroup(pids[i], SIGKILL);
      kill_deadline = Clock::now() + std::chrono::hours(1);
    }

    std::vector<pollfd> pfds;
    for (auto& f : fds)
      if (f.first >= 0) pfds.push_back({f.first, POLLIN, 0});
    if (pfds.empty()) {
      usleep(20000);
      continue;
    }
    int n = poll(pfds.data(), pfds.size(), 100);
    if (n <= 0) continue;
    for (auto& p : pfds) {
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (auto& f : fds) {
        if (f.first != p.fd) continue;
        ssize_t r = read(f.first, buf, sizeof buf);
        if (r > 0) {
          AppendTail(*f.second, buf, static_cast<size_t>(r), limit);
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
          close(f.first);
          f.first = -1;
        }
      }
    }
  }
  return w;
}

void FillStatus(ProcessResult& r, int st) {
  if (WIFEXITED(st)) r.exit_code = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) r.term_signal = WTERMSIG(st);
}

}  // namespace

std::optional<RunAs> ResolveRunAs(const std::string& user) {
  if (geteuid() != 0) return std::nullopt;
  if (user.empty())
    throw Error(ErrorKind::kConfig,
                "agent.run_as must name an unprivileged user when running as root");
  struct passwd pw {};
  struct passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res)
    throw Error(ErrorKind::kConfig, "run_as user '" + user + "' does not exist",
                "create it (e.g. the postgres user of the postgresql package) or set agent.run_as");
  if (res->pw_uid == 0)
    throw Error(ErrorKind::kConfig,
                "run_as user '" + user + "' is root; PostgreSQL refuses to run as root");
  return RunAs{user, res->pw_uid, res->pw_gid, res->pw_dir ? res->pw_dir : "/"};
}

namespace {

// Lines tools print after the real problem (initdb's clean-up, pg_ctl's echo of the exit code):
// true causes come before them.
bool IsTrailer(const std::string& line) {
  static const char* kTrailers[] = {"removing data directory",
                                    "removing contents of data directory",
                                    "child process exited with exit code",
                                    "not removed at user's request",
                                    "Try \"",
                                    "The files belonging to this database system"};
  for (const char* t : kTrailers)
    if (line.find(t) != std::string::npos) return true;
  return false;
}

}  // namespace

std::string CauseLine(const std::string& text) {
  static const char* kCauses[] = {"No space left on device", "Disk quota exceeded",
                                  "Read-only file system",   "Permission denied",
                                  "Cannot allocate memory",  "Too many open files"};
  static const char* kProblems[] = {"error:", "ERROR:", "FATAL:", "PANIC:", "could not", "cannot"};
  std::string last, problem, cause;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    for (const char* c : kCauses)
      if (line.find(c) != std::string::npos) cause = line;
    if (IsTrailer(line)) continue;
    last = line;
    for (const char* p : kProblems)
      if (line.find(p) != std::string::npos) problem = line;
  }
  if (!cause.empty()) return cause;
  if (!problem.empty()) return problem;
  return last;
}

std::string ProcessResult::Summary() const {
  if (cancelled) return "cancelled";
  if (timed_out) return "timed out";
  const std::string why = CauseLine(err);
  std::string head = term_signal ? "killed by signal " + std::to_string(term_signal)
                                 : "exit code " + std::to_string(exit_code);
  return why.empty() ? head : head + ": " + why;
}

ProcessResult RunProcess(const ProcessSpec& spec, CancelToken* cancel) {
  auto t0 = Clock::now();
  Spawned s = Spawn(spec);
  ProcessResult r;
  std::vector<std::pair<int, std::string*>> fds;
  if (s.out_fd >= 0) fds.push_back({s.out_fd, &r.out});
  fds.push_back({s.err_fd, &r.err});
  Waited w = DrainAndWait({s.pid}, fds, spec.capture_limit, spec.timeout, cancel);
  FillStatus(r, w.status[0]);
  r.timed_out = w.timed_out;
  r.cancelled = w.cancelled;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

ProcessResult RunPipeline(const ProcessSpec& producer, const ProcessSpec& consumer,
                          CancelToken* cancel) {
  auto t0 = Clock::now();
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw Error(ErrorKind::kProcess, Errno("pipe"));
  Spawned a;
  try {
    a = Spawn(producer, -1, p[1]);
  } catch (...) {
    close(p[0]);
    close(p[1]);
    throw;
  }
  close(p[1]);
  Spawned b;
  try {
    b = Spawn(consumer, p[0], -1);
  } catch (...) {
    close(p[0]);
    KillGroup(a.pid, SIGKILL);
    waitpid(a.pid, nullptr, 0);
    close(a.err_fd);
    throw;
  }
  close(p[0]);
  ProcessResult r;
  std::string producer_err;
  std::vector<std::pair<int, std::string*>> fds;
  if (b.out_fd >= 0) fds.push_back({b.out_fd, &r.out});
  fds.push_back({b.err_fd, &r.err});
  fds.push_back({a.err_fd, &producer_err});
  Waited w = DrainAndWait({a.pid, b.pid}, fds, consumer.capture_limit,
                          std::min(producer.timeout, consumer.timeout), cancel);
  FillStatus(r, w.status[1]);
  ProcessResult pr;
  FillStatus(pr, w.status[0]);
  // A producer killed by SIGPIPE after the consumer failed is a consequence, not the cause.
  bool producer_failed = !(pr.exit_code == 0 && pr.term_signal == 0) &&
                         !(pr.term_signal == SIGPIPE && !(r.exit_code == 0 && r.term_signal == 0));
  if (producer_failed) {
    if (r.exit_code == 0 && r.term_signal == 0)
      r.exit_code = pr.term_signal ? 128 + pr.term_signal : pr.exit_code;
    if (!producer_err.empty()) r.err += (r.err.empty() ? "" : "\n") + producer_err;
  }
  r.timed_out = w.timed_out;
  r.cancelled = w.cancelled;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

ChildProcess::ChildProcess(const ProcessSpec& spec, const std::string& log_path) {
  ProcessSpec s = spec;
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorKind::kIo, Errno("cannot open " + log_path));
  if (spec.run_as) (void)!fchown(fd, spec.run_as->uid, spec.run_as->gid);
  // stdout and stderr both go to the log file; nothing is captured in memory.
  Spawned sp;
  try {
    sp = Spawn(s, -1, fd, fd);
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
  pid_ = sp.pid;
}

ChildProcess::~ChildProcess() {
  if (!reaped_) Stop(SIGINT, std::chrono::seconds(10));
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    reaped_ = true;
    status_ = st;
    return false;
  }
  return true;
}

int ChildProcess::Stop(int sig, Duration wait) {
  if (reaped_) return status_;
  kill(pid_, sig);
  auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    if (!Running()) return status_;
    usleep(20000);
  }
  KillGroup(pid_, SIGKILL);
  int st = 0;
  waitpid(pid_, &st, 0);
  reaped_ = true;
  status_ = st;
  return status_;
}

std::optional<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream in(p);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    std::string full = dir + "/" + name;
    if (access(full.c_str(), X_OK) == 0) return full;
  }
  return std::nullopt;
}

static bool RemoveTreeAt(int parent_fd, const char* name, std::string* error) {
  int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) {
      if (unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT) return true;
    }
    if (errno == ENOENT) return true;
    if (error) *error = Errno(std::string("cannot open ") + name);
    return false;
  }
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    if (error) *error = Errno("fdopendir");
    return false;
  }
  bool ok = true;
  while (struct dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (e->d_type == DT_DIR) {
      ok &= RemoveTreeAt(dirfd(d), e->d_name, error);
    } else if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
      if (errno == EISDIR) {
        ok &= RemoveTreeAt(dirfd(d), e->d_name, error);
      } else {
        ok = false;
        if (error) *error = Errno(std::string("cannot remove ") + e->d_name);
      }
    }
  }
  closedir(d);
  if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    if (error && ok) *error = Errno(std::string("cannot remove ") + name);
    return false;
  }
  return ok;
}

bool RemoveTree(const std::string& path, std::string* error) {
  if (path.empty() || path == "/") {
    if (error) *error = "refusing to remove '" + path + "'";
    return false;
  }
  return RemoveTreeAt(AT_FDCWD, path.c_str(), error);
}

void MakeDirs(const std::string& path, unsigned mode, const std::optional<RunAs>& owner) {
  if (path.empty()) throw Error(ErrorKind::kIo, "empty directory path");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
      throw Error(ErrorKind::kIo, Errno("cannot create directory " + cur));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(ErrorKind::kIo, "not a directory: " + path);
  if (owner && chown(path.c_str(), owner->uid, owner->gid) != 0)
    throw Error(ErrorKind::kIo, Errno("cannot chown " + path));
}

std::string MakeTempDir(const std::string& parent, const std::string& prefix,
                        const std::optional<RunAs>& owner) {
  MakeDirs(parent, 0755);
  std::string tmpl = parent + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data()))
    throw Error(ErrorKind::kIo, Errno("cannot create a temp dir in " + parent));
  std::string dir(buf.data());
  if (owner && chown(dir.c_str(), owner->uid, owner->gid) != 0) {
    std::string e = Errno("cannot chown " + dir);
    rmdir(dir.c_str());
    throw Error(ErrorKind::kIo, e);
  }
  return dir;
}

}  // namespace rw
