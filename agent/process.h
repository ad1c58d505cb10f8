#pragma once
// Child processes: short-lived tools (initdb, pg_restore, psql, gzip) run to completion, and
// long-lived servers (postgres) owned by the agent. When the agent runs as root, children can drop
// to an unprivileged user (PostgreSQL refuses to run as root). Every child gets PR_SET_PDEATHSIG so
// it dies with the agent, runs in its own process group, and every wait is bounded. Thread-safe:
// each call owns its child.
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/units.h"

namespace rw {

// An unprivileged identity to run children as (resolved from a user name).
struct RunAs {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};
// When the agent is root: looks up `user` (Error kConfig if missing or if it is root itself).
// When not root: nullopt (children run as the agent's own user).
std::optional<RunAs> ResolveRunAs(const std::string& user);

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path or found in PATH
  // The child's environment beyond the minimal one it always gets (PATH, LANG/LC_*, TZ, TMPDIR
  // and *SAN_OPTIONS if set, HOME/USER/LOGNAME of run_as or of the agent); nothing else of the
  // agent's environment is passed on.
  std::map<std::string, std::string> env;
  std::optional<RunAs> run_as;
  std::string cwd;                            // empty: inherit
  std::string stdin_path;                     // empty: /dev/null
  std::string stdout_path;                    // empty: captured (bounded); "-" : discarded
  Duration timeout = std::chrono::hours(24);  // SIGTERM then SIGKILL after this
  std::size_t capture_limit = 256 * 1024;     // bytes kept of stdout/stderr (the tail)
};

struct ProcessResult {
  int exit_code = -1;   // valid when !signaled
  int term_signal = 0;  // non-zero when killed by a signal
  bool timed_out = false;
  bool cancelled = false;
  std::string out;  // captured stdout tail (unless redirected)
  std::string err;  // captured stderr tail
  double seconds = 0;
  bool ok() const { return !timed_out && !cancelled && term_signal == 0 && exit_code == 0; }
  // One line: "exit code 1: <last non-empty stderr line>" or "killed by signal 9".
  std::string Summary() const;
};

// Runs to completion. Throws Error(kProcess) only if the program cannot be started; a non-zero
// exit is reported in the result. Cancellation kills the child's process group.
ProcessResult RunProcess(const ProcessSpec& spec, CancelToken* cancel = nullptr);

// Runs `producer | consumer` (e.g. gzip -dc FILE | psql). The result is the consumer's, with the
// producer's failure folded in (a failing producer makes the result not ok, its stderr appended).
ProcessResult RunPipeline(const ProcessSpec& producer, const ProcessSpec& consumer,
                          CancelToken* cancel = nullptr);

// A long-running child (a postgres server) owned by the caller. Not copyable. The destructor
// stops it (SIGINT, then SIGKILL after a bound) and reaps it.
class ChildProcess {
 public:
  // Starts the child; output goes to log_path (appended). Throws Error(kProcess) on failure.
  ChildProcess(const ProcessSpec& spec, const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Sends `sig`, waits up to `wait`, then SIGKILL; returns the exit status as waitpid gives it.
  int Stop(int sig, Duration wait);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Which program: absolute path if `name` contains '/', else searched in PATH. nullopt if absent.
std::optional<std::string> FindProgram(const std::string& name);

// Recursively removes a directory tree (no symlink following). Best effort; returns false and a
// reason on failure. Refuses "/" and empty paths.
bool RemoveTree(const std::string& path, std::string* error = nullptr);
// mkdir -p with mode; chowns the leaf to run_as when given. Throws Error(kIo).
void MakeDirs(const std::string& path, unsigned mode = 0755,
              const std::optional<RunAs>& owner = {});
// mkdtemp under parent ("parent/prefixXXXXXX"), mode 0700, chowned to owner. Throws Error(kIo).
std::string MakeTempDir(const std::string& parent, const std::string& prefix,
                        const std::optional<RunAs>& owner = {});

}  // namespace rw
