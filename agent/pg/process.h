#pragma once
// Child processes: short-lived tools (initdb, pg_restore, psql, gzip) run to completion, and
// long-lived servers (postgres) owned by the agent. When the agent runs as root, children can drop
// to an unprivileged user (PostgreSQL refuses to run as root). Every child gets PR_SET_PDEATHSIG
// (SIGKILL) so it dies with the agent, runs in its own process group, and every wait is bounded.
// Thread-safe: each call owns its child.
//
// Parent-death signal, what it does and does not cover:
//  - It is armed in the child after the switch to run_as (setuid/setgid clear it), and the child
//    exits at once if the agent already died between fork() and that point.
//  - The kernel sends it when the THREAD that forked the child exits, not the process. So a
//    long-lived child (ChildProcess: the sandbox postmaster, a LocalCluster) must be started on a
//    thread that outlives it. Today every one is: the ephemeral sandbox's postmaster is started
//    and stopped by the drill on one thread (the scheduler thread in `run`, the main thread in
//    `verify`), the demo's clusters by the main thread. Never start a ChildProcess on a short-lived
//    helper thread (std::async, a per-request HTTP worker) and hand it to another thread: it
//    would be SIGKILLed when the helper returns.
//  - A kill -9 of the agent kills its direct children only; a killed postmaster's backends exit
//    on their own once they notice, and the work_dir sweep (agent/orphans.h) stops any postmaster
//    that survived anyway before removing its directory.
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
  // One line: "exit code 1: <the stderr line that names the cause>" or "killed by signal 9".
  std::string Summary() const;
};

// The line of a tool's output that names why it failed: one naming an OS cause (No space left on
// device, Permission denied, ...), else the last error-looking line, else the last line; clean-up
// lines printed after the failure ("initdb: removing data directory") are passed over.
std::string CauseLine(const std::string& text);

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
