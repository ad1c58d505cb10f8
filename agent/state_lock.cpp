#include "agent/state_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "agent/errors.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

pid_t ReadPid(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  return static_cast<pid_t>(std::atol(buf));
}

std::string HolderText(pid_t pid) { return pid > 0 ? "pid " + std::to_string(pid) : "pid unknown"; }

struct flock WholeFile(short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // to the end, however long
  return fl;
}

int OpenLockFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(ErrorKind::kIo, "cannot open lock file " + path + ": " + std::strerror(errno));
  return fd;
}

}  // namespace

std::unique_ptr<FileLock> FileLock::TryAcquire(const std::string& path, pid_t* holder) {
  if (holder) *holder = 0;
  int fd = OpenLockFile(path);
  struct flock fl = WholeFile(F_WRLCK);
  while (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    if (holder) *holder = ReadPid(fd);
    close(fd);
    if (err == EAGAIN || err == EACCES) return nullptr;
    throw Error(ErrorKind::kIo, "cannot lock " + path + ": " + std::strerror(err));
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; only the message of a second process gets poorer.
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

bool FileLock::IsHeld(const std::string& path, pid_t* holder) {
  if (holder) *holder = 0;
  int fd = OpenLockFile(path);
  struct flock fl = WholeFile(F_WRLCK);
  bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  if (held && holder) *holder = ReadPid(fd);
  close(fd);
  return held;
}

FileLock::~FileLock() {
  // Closing releases the lock. The pid stays in the file; a reader only sees it while locked.
  close(fd_);
}

std::unique_ptr<FileLock> LockStateDir(const std::string& state_dir) {
  MakeDirs(state_dir, 0750);
  pid_t holder = 0;
  auto lock = FileLock::TryAcquire(state_dir + "/agent.lock", &holder);
  if (!lock)
    throw Error(ErrorKind::kConfig,
                "state dir " + state_dir + " is in use by another restorewatch daemon (" +
                    HolderText(holder) + ")",
                "stop that daemon, or give this one its own agent.state_dir");
  return lock;
}

std::unique_ptr<FileLock> TryLockDrill(const std::string& state_dir, const std::string& target,
                                       std::string* message) {
  const std::string dir = state_dir + "/" + target;
  MakeDirs(dir);
  pid_t holder = 0;
  auto lock = FileLock::TryAcquire(dir + "/drill.lock", &holder);
  if (!lock && message)
    *message = "a drill of " + target + " is already running (" + HolderText(holder) + ")";
  return lock;
}

bool DrillLockHeld(const std::string& state_dir, const std::string& target, std::string* message) {
  const std::string dir = state_dir + "/" + target;
  MakeDirs(dir);
  pid_t holder = 0;
  if (!FileLock::IsHeld(dir + "/drill.lock", &holder)) return false;
  if (message)
    *message = "a drill of " + target + " is already running (" + HolderText(holder) + ")";
  return true;
}

}  // namespace rw
