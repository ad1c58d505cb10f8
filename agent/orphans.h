#pragma once
// Crash cleanup and process identity.
//
// Process identity: a pid alone does not name a process for long (pids are reused, and a state
// dir or a scratch server outlives reboots), so marks the agent leaves behind (sandbox markers,
// scratch database comments, the drill-in-progress marker) carry host name, boot id
// (/proc/sys/kernel/random/boot_id), pid and the process's start time (field 22 of
// /proc/PID/stat, clock ticks since boot). An owner is gone only when that is provable on this
// host: another boot, no such pid, or a pid now held by a process started at another time.
//
// Work dir sweep: dirs under work_dir that carry the agent's marker (.restorewatch, written by
// LocalCluster) but whose owning process is gone are leftovers of a crash or a kill -9. Only such
// marked dirs are ever removed. A postmaster still running in one (its postmaster.pid names a live
// postgres whose working directory is that data dir) is stopped first (SIGQUIT, SIGKILL after a
// bound) and waited for; a pid that is not provably that sandbox's postmaster is never signalled,
// and its dir is then kept. Safe to call at start-up while other restorewatch processes (a
// `verify` beside the daemon) run: their dirs name a live owner and are kept. Thread-safe.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace rw {

struct ProcessIdentity {
  std::string host;     // gethostname()
  std::string boot_id;  // empty when unknown
  pid_t pid = 0;
  unsigned long long start_ticks = 0;  // 0 when unknown
};

// This process.
const ProcessIdentity& SelfIdentity();
// "host=H boot=B pid=P start=S" (tokens without spaces; parseable by ParseIdentity).
std::string FormatIdentity(const ProcessIdentity& id);
// Reads the host=, boot=, pid= and start= tokens from anywhere in `text` (the first of each).
// nullopt without a pid.
std::optional<ProcessIdentity> ParseIdentity(const std::string& text);
// Start time of a live (non-zombie) process in clock ticks since boot; nullopt if it is gone.
std::optional<unsigned long long> ProcessStartTicks(pid_t pid);

enum class OwnerState {
  kAlive,    // that very process still runs here
  kGone,     // provably gone: other boot, no such pid, or the pid was reused
  kUnknown,  // another host (or no way to tell): treat as alive
};
// Host must match; an empty boot id or start time is not compared (pid liveness only).
OwnerState OwnerStateOf(const ProcessIdentity& id);

// Returns the dirs removed; problems are logged.
std::vector<std::string> RemoveOrphanedWorkDirs(const std::string& work_dir);

}  // namespace rw
