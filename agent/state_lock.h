#pragma once
// Advisory locks between restorewatch processes that share a state dir:
//  - state_dir/agent.lock: held by a daemon for its whole life, so a second `restorewatch run`
//    on the same state dir fails at start (exit 2) instead of running every drill twice.
//  - state_dir/<target>/drill.lock: held for the length of one drill of that target, by the
//    daemon and by `verify`, so the two never restore the same target at the same time.
// The locks are Linux open-file-description locks (fcntl F_OFD_SETLK): like flock(2) they belong
// to an open file, not a process, so two opens in one process conflict too, and they are released
// when the file is closed; unlike flock they can be probed (F_OFD_GETLK) without being taken, so a
// probe never makes a real attempt fail. Each lock file holds the holder's pid (for the message);
// the file is never deleted. Locks are
// opened O_CLOEXEC, so child processes (postmasters, pg_restore) never inherit them and a lock
// goes away with its process, also on kill -9. Thread-safe (each FileLock is owned by one thread).
#include <sys/types.h>

#include <memory>
#include <string>

namespace rw {

class FileLock {
 public:
  // Takes the lock on `path` (created if missing) without waiting. Returns nullptr when another
  // open file (another process, or another lock object in this one) holds it; *holder is then
  // the pid written in the file (0 when unknown). Throws Error(kIo) when the file cannot be
  // opened.
  static std::unique_ptr<FileLock> TryAcquire(const std::string& path, pid_t* holder = nullptr);
  // Whether some open file holds the lock on `path` now, without taking it.
  static bool IsHeld(const std::string& path, pid_t* holder = nullptr);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// The daemon's lock on the state dir (created if missing). Throws Error(kConfig) naming the pid
// that holds it.
std::unique_ptr<FileLock> LockStateDir(const std::string& state_dir);

// The drill lock of one target. nullptr when held, with *message set to
// "a drill of TARGET is already running (pid N)".
std::unique_ptr<FileLock> TryLockDrill(const std::string& state_dir, const std::string& target,
                                       std::string* message);

// Whether some process holds the drill lock of `target` right now (a probe; the answer may be
// stale by the time it is used). *message as for TryLockDrill.
bool DrillLockHeld(const std::string& state_dir, const std::string& target, std::string* message);

}  // namespace rw
