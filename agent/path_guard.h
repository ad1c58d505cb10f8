#pragma once
// Guards for the directories the agent writes into. A sandbox is created (and later removed)
// under work_dir, so a work_dir that is "/", a system directory, the state dir, or a PostgreSQL
// data directory (or anything inside one) could put throwaway clusters inside the source's
// PGDATA or next to the agent's own state. These checks run at config load (check-config reports
// them) and again when the agent starts. Pure functions of the file system; thread-safe.
#include <cstdint>
#include <optional>
#include <string>

namespace rw {

// Why `work_dir` may not be used (one line), or nullopt when it is acceptable. Paths are
// compared after resolving symlinks of the part that exists, so a link into PGDATA is caught too.
std::optional<std::string> UnsafeWorkDir(const std::string& work_dir, const std::string& state_dir);

// The PostgreSQL data directory `path` is, or lies inside (a directory holding PG_VERSION and
// global/pg_control), or nullopt.
std::optional<std::string> EnclosingDataDir(const std::string& path);

// Free bytes for an unprivileged writer in the file system holding `path` (the nearest existing
// ancestor). nullopt when it cannot be read.
std::optional<std::uint64_t> FreeBytes(const std::string& path);

}  // namespace rw

namespace rw {

// How much room a restore of one backup needs in work_dir, and how that was estimated.
struct SpaceNeed {
  std::uint64_t bytes = 0;
  std::string basis;  // e.g. "2 x the last restored size of 1.2 GiB plus 64 MiB for the cluster"
};
// last_restored_bytes: the restored size of the target's last drill (0 when unknown). Without
// it, a multiple of the backup's own size (larger for compressed formats).
SpaceNeed RestoreSpaceNeed(std::uint64_t backup_bytes, const std::string& format,
                           std::uint64_t last_restored_bytes);
// True when a tool's or server's message says a file system is full: ENOSPC itself, or
// PostgreSQL's short-write errors ("could not extend file ... wrote only", HINT "Check free disk
// space").
bool LooksLikeDiskFull(const std::string& message);
// A one-line reason when `free_bytes` is below the need, else nullopt.
std::optional<std::string> ShortOfSpace(const std::string& dir, std::uint64_t free_bytes,
                                        const SpaceNeed& need);

}  // namespace rw
