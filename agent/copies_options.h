#pragma once
// The 3-2-1 copies options (agent/copies.h) and their readers. The structs are bases of
// BackupConfig and DrillConfig, so the keys sit where users look for them:
//   [target.backup] copies = [{ name, path, offsite, medium }, ...], verify_checksum
//   [target.drill]  from = "primary" | "offsite"
// The primary location (backup.path) is copy 1; each entry of `copies` is one more.
#include <string>
#include <vector>

namespace rw {
struct TargetConfig;
namespace config {
class Reader;
}

// One more place the target's backups are copied to (rsync, rclone, a NAS, an offsite mount).
struct CopyConfig {
  // The `location` label and the name in reasons; default: the path as written (unambiguous).
  // "primary" is reserved for backup.path.
  std::string name;
  // Absolute local path laid out like backup.path (the same relative paths below it), or an
  // s3://bucket/prefix URL (read by the S3 lister once it is plugged in).
  std::string path;
  bool offsite = false;  // outside the primary's site: counts toward the "1" of 3-2-1
  // What the copy is stored on, for the "2 media" of 3-2-1 (any text: "nas", "tape", "s3").
  // Default: "dev:MAJOR:MINOR", the file-system device of the path (of its nearest existing
  // ancestor), so two directories on one disk count as one medium; "s3:BUCKET" for s3:// paths.
  std::string medium;
};

// [target.backup] keys (any path-based source: pg_dump, basebackup).
struct CopiesBackupOptions {
  std::vector<CopyConfig> copies;
  // Also compare the SHA-256 of every file of the newest backup in each copy with the primary's
  // (streamed; only when the newest backup or a copy's listing changed). Off by default: it reads
  // the whole backup from every location, while size + mtime are free.
  bool verify_checksum = false;
};

enum class DrillFrom { kPrimary, kOffsite };

// [target.drill] keys.
struct CopiesDrillOptions {
  // "offsite": the drill restores the primary's newest backup from the first offsite copy (its
  // own files), since in a disaster that copy is what must work; missing there is an error.
  DrillFrom from = DrillFrom::kPrimary;
};

// Readers, called from agent/config.cpp. Errors go to the Reader's loader.
void ReadCopiesBackupOptions(config::Reader& backup, CopiesBackupOptions* out);
void ReadCopiesDrillOptions(config::Reader& drill, CopiesDrillOptions* out);
// Checks across [target.backup] and [target.drill] once both are read: copies only for path-based
// sources, no copy at a primary path, from = "offsite" needs an offsite copy. `target` is the
// target's Reader.
void ValidateCopies(config::Reader& target, const TargetConfig& t);

// A path without trailing slashes ("/" stays "/"), for comparisons and default names.
std::string TrimSlashes(const std::string& path);

}  // namespace rw
