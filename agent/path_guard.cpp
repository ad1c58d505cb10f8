#include "agent/path_guard.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

#include "agent/units.h"

namespace rw {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string Parent(const std::string& p) {
  const std::size_t slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

std::string Absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == nullptr) return p;
  return std::string(cwd) + "/" + p;
}

// Removes "." and ".." components and duplicate slashes, without touching the file system.
std::string Lexical(const std::string& p) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string part = p.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

// The canonical form of a path that may not exist yet: realpath of the longest existing prefix,
// with the rest appended.
std::string Canonical(const std::string& path) {
  std::string p = Lexical(Absolute(path));
  std::string rest;
  while (p != "/" && !Exists(p)) {
    const std::size_t slash = p.find_last_of('/');
    rest = p.substr(slash) + rest;
    p = Parent(p);
  }
  char buf[PATH_MAX];
  std::string base = realpath(p.c_str(), buf) != nullptr ? std::string(buf) : p;
  if (base == "/") return rest.empty() ? "/" : rest;
  return base + rest;
}

bool IsInside(const std::string& inner, const std::string& outer) {
  if (outer == "/") return true;
  return inner == outer ||
         (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
          inner[outer.size()] == '/');
}

}  // namespace

std::optional<std::string> EnclosingDataDir(const std::string& path) {
  std::string p = Canonical(path);
  while (true) {
    if (Exists(p + "/PG_VERSION") && Exists(p + "/global/pg_control")) return p;
    if (p == "/") return std::nullopt;
    p = Parent(p);
  }
}

std::optional<std::string> UnsafeWorkDir(const std::string& work_dir,
                                         const std::string& state_dir) {
  const std::string w = Canonical(work_dir);
  static const char* kSystem[] = {"/",      "/bin", "/boot", "/dev",  "/etc",     "/home",   "/lib",
                                  "/lib64", "/opt", "/proc", "/root", "/run",     "/sbin",   "/srv",
                                  "/sys",   "/tmp", "/usr",  "/var",  "/var/lib", "/var/tmp"};
  for (const char* s : kSystem)
    if (w == s)
      return "must be a directory of its own, not " + w +
             " (sandboxes are created and removed inside it); e.g. /var/tmp/restorewatch";
  if (auto data = EnclosingDataDir(w))
    return w == *data ? "is a PostgreSQL data directory (" + *data + "); use a directory of its own"
                      : "lies inside the PostgreSQL data directory " + *data +
                            "; use a directory outside any PGDATA";
  const std::string s = Canonical(state_dir);
  if (w == s) return "must not be the state dir (" + s + ")";
  if (IsInside(s, w)) return "must not contain the state dir (" + s + ")";
  if (IsInside(w, s)) return "must not lie inside the state dir (" + s + ")";
  return std::nullopt;
}

std::optional<std::uint64_t> FreeBytes(const std::string& path) {
  std::string p = Canonical(path);
  while (p != "/" && !Exists(p)) p = Parent(p);
  struct statvfs vfs {};
  if (statvfs(p.c_str(), &vfs) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace rw

namespace rw {

namespace {
// An initdb'd cluster with its first WAL segments, before any data.
constexpr std::uint64_t kClusterBase = 64ull << 20;
}  // namespace

SpaceNeed RestoreSpaceNeed(std::uint64_t backup_bytes, const std::string& format,
                           std::uint64_t last_restored_bytes) {
  SpaceNeed n;
  if (last_restored_bytes > 0) {
    // The data files, plus about as much WAL written while loading them (the sandbox keeps up
    // to max_wal_size of it before a checkpoint recycles it).
    n.bytes = 2 * last_restored_bytes + kClusterBase;
    n.basis = "2 x the last drill's restored size of " + FormatSize(last_restored_bytes) +
              " plus " + FormatSize(kClusterBase) + " for the cluster";
    return n;
  }
  // pgbackrest: the size is the database's (what the restore writes), not the repository's.
  const bool uncompressed = format == "plain" || format == "tar" || format == "pgbackrest";
  const std::uint64_t factor = uncompressed ? 2 : 4;
  n.bytes = factor * backup_bytes + kClusterBase;
  n.basis = std::to_string(factor) + " x the backup's size of " + FormatSize(backup_bytes) +
            " plus " + FormatSize(kClusterBase) +
            " for the cluster (no earlier drill of this target gives its restored size)";
  return n;
}

bool LooksLikeDiskFull(const std::string& m) {
  return m.find("No space left on device") != std::string::npos ||
         m.find("Disk quota exceeded") != std::string::npos ||
         m.find("Check free disk space") != std::string::npos ||
         (m.find("could not extend file") != std::string::npos &&
          m.find("wrote only") != std::string::npos);
}

std::optional<std::string> ShortOfSpace(const std::string& dir, std::uint64_t free_bytes,
                                        const SpaceNeed& need) {
  if (free_bytes >= need.bytes) return std::nullopt;
  return "not enough free space in work_dir " + dir + ": " + FormatSize(free_bytes) +
         " free, the restore needs about " + FormatSize(need.bytes) + " (" + need.basis + ")";
}

}  // namespace rw
