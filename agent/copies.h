#pragma once
// 3-2-1 copies: does every configured copy (backup.copies) hold the primary's newest complete
// backup, and does the whole meet 3 copies, 2 media, 1 offsite? The primary location
// (backup.path) is copy 1. A copy holds the backup when each of its parts (the backup's file or
// directory tree, its globals file and its `restorewatch dump` reference) is at the same relative
// path with the same size, a modification time not older than the primary's (cp writes a newer
// one, rsync -t/-a keeps it; an older one is an older file under the same name), and the same
// etag where both stores give one. Local files have no free checksum: verify_checksum adds a
// streamed SHA-256 of every file, recomputed only when the newest backup or a copy's listing
// changed. Also the drill's `from = "offsite"`: the same backup, read from the first offsite copy.
// Used by the copies collector (checks/live/copies_collector.h) and the drill runner.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/copy_lister.h"
#include "agent/model.h"

namespace rw {

// Label of the primary location in restorewatch_backup_copy_* series.
inline constexpr const char* kPrimaryLocation = "primary";

// Where a backup lies below the primary: the backup.path root holding it and the relative paths
// of its parts (the backup itself first).
struct BackupParts {
  std::string root;
  std::vector<std::string> rels;
};
// Throws Error(kUnsupported) when the backup's path is not below any backup.path.
BackupParts LocateBackup(const TargetConfig& target, const BackupInfo& backup);

// Why `copy` does not hold what `primary` lists at the same relative path; "" when it does
// (pure). A copy may hold more files than the primary (ignored).
std::string CompareListings(const std::string& rel, const Listing& primary, const Listing& copy);

// One location's state for the newest backup.
struct CopyState {
  std::string location;  // kPrimaryLocation or the copy's name
  std::string path;
  bool offsite = false;
  std::string medium;
  bool present = false;  // holds the newest backup, matching
  std::string reason;    // why not present; empty when present
  // How far a present copy was checked when verify_checksum could not read a checksum for every
  // file (an S3 object whose ETag is not a plain MD5: size only); empty otherwise.
  std::string note;
  // Completion of the newest complete backup found in this location (its own catalogue).
  std::optional<double> newest_completed_at;
};

struct Policy321 {
  int copies = 0;   // locations holding the newest backup
  int media = 0;    // distinct media among them
  int offsite = 0;  // offsite ones among them
  bool ok() const { return copies >= 3 && media >= 2 && offsite >= 1; }
  std::string ToString() const;  // "2 copies, 1 medium, 0 offsite (want 3, 2, 1)"
};
// Over the present locations only (pure).
Policy321 Evaluate321(const std::vector<CopyState>& states);

// The medium a copy counts as: its configured one, else its store's default.
std::string MediumOf(const CopyConfig& copy);

// Checks every copy of `target` for `newest` (the primary's newest complete backup). Keeps the
// SHA-256 results between runs (verify_checksum), so one instance per target, one thread at a
// time. Never throws for one copy: a copy that cannot be read is not present, with the reason.
// Throws Error(kCancelled), and Error(kIo) when the primary itself cannot be listed.
class CopiesChecker {
 public:
  std::vector<CopyState> Check(const TargetConfig& target, const BackupInfo& newest,
                               CancelToken& cancel);

 private:
  struct Verified {
    std::string signature;  // the primary's and the copy's listings the sums were compared for
    std::string reason;     // "" when every sum matched
    std::string note;       // files compared by size only (CopyState::note)
  };
  // Against an S3 copy (EtagIsMd5()): the primary's MD5 with each object's ETag; an object whose
  // ETag is not a plain MD5 is compared by size only, said in *note. Else SHA-256 of both.
  std::string ChecksumReason(CopyLister& primary, CopyLister& copy, const std::string& location,
                             const std::vector<Listing>& primary_listings,
                             const std::vector<Listing>& copy_listings, CancelToken& cancel,
                             std::string* note);
  std::map<std::string, std::string> primary_md5s_;  // rel -> md5 (S3 copies)
  std::string primary_signature_;                    // listings primary_sums_ is for
  std::map<std::string, std::string> primary_sums_;  // rel -> sha256
  std::map<std::string, Verified> verified_;         // location -> last result
};

// The first copy with offsite = true, or nullptr.
const CopyConfig* FirstOffsiteCopy(const TargetConfig& target);
// `target` reading `copy` instead of backup.path (for the copy's own catalogue).
TargetConfig CopyTarget(const TargetConfig& target, const CopyConfig& copy);

// drill.from = "offsite": `backup` (the primary's newest) as held by the first offsite copy: the
// same parts under the copy's path, checked like the collector does (size, mtime), with
// location = the copy's name. Throws Error(kIo) naming the copy when it cannot be read or lacks
// the backup (the drill is then an error, never a pass from the primary), Error(kConfig) when the
// target has no offsite copy. Returns `backup` unchanged for from = "primary".
BackupInfo BackupForDrill(const TargetConfig& target, const BackupInfo& backup,
                          CancelToken& cancel);

}  // namespace rw
