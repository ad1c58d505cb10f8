#pragma once
// The verification ledger: which backups of a target a drill has restored, and with what verdict,
// kept in state_dir/<target>/ledger.toml across restarts. DrillRecorder writes it after every
// drill that named a backup; drill.pick = "random" reads it to choose what to drill next (never
// verified first), the backup_catalogue collector to export restorewatch_backups_verified and
// _unverified, and the API to show it (/api/v1/targets/NAME/ledger).
//
// Durability: the file is replaced atomically (agent/state_file.h). A damaged file (does not
// parse, cut short, impossible values) is moved aside as ledger.toml.corrupt-<UTC time> with a
// warning and read as empty: the agent keeps running, and backups count as unverified again
// until drilled. Writers: one drill per target at a time across processes (the drill lock), so
// the read-modify-write in Record() does not race. Readers may run any time (atomic rename).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/model.h"

namespace rw {

struct LedgerEntry {
  std::string id;                     // the backup's id (BackupInfo::id): the key
  std::string kind;                   // logical, full, incr, diff
  double completed_at = 0;            // the backup's completion time, as the drill saw it
  std::string verdict;                // the last drill's result: success, failure, error
  double last_drilled = 0;            // when the last drill of it finished (Unix seconds)
  std::optional<double> last_passed;  // when a drill of it last succeeded
  std::int64_t drills = 0;            // drills of it recorded
  std::string run_id;                 // the last drill's
  std::string reason;                 // the last drill's reason when it did not pass
  // Physical copies: the WAL position (and timeline) the last passing copy recovered to, i.e. the
  // WAL from the backup's start up to here was replayed without error. "" for logical ones.
  std::string wal_verified_to;
  int wal_timeline = 0;
  // Verified: its latest drill passed.
  bool verified() const { return verdict == "success"; }
};

using Ledger = std::map<std::string, LedgerEntry>;  // by backup id

class VerificationLedger {
 public:
  // dir: state_dir/<target> (must exist for Record(); Load() of a missing one is empty).
  explicit VerificationLedger(std::string dir);
  // Every entry. Never throws: a damaged file is moved aside (warning) and read as empty; an
  // unreadable one (permissions) is logged and read as empty.
  Ledger Load();
  // Records the drill of report.backup (nothing when the report names no backup, e.g. discover
  // failed). Keeps at most kMaxEntries, dropping the least recently drilled. Throws Error(kIo).
  void Record(const DrillReport& report);
  const std::string& path() const { return path_; }
  static constexpr std::size_t kMaxEntries = 1000;

 private:
  std::string path_;
};

// The ledger as JSON, for the API: {"target", "backups": [{id, kind, verdict, ...}], "verified",
// "unverified"} with the catalogue's counts when one is given.
std::string LedgerToJson(const std::string& target, const Ledger& ledger,
                         const BackupCatalogue* catalogue);

// Of the catalogue's complete backups: how many are verified (latest drill passed) and how many
// not (never drilled, or the latest drill did not pass).
struct VerifiedCounts {
  std::size_t verified = 0;
  std::size_t unverified = 0;
};
VerifiedCounts CountVerified(const std::vector<BackupInfo>& backups, const Ledger& ledger);

// drill.pick = "random": one of `backups` (complete ones), never drilled first, then those whose
// latest drill did not pass, each chosen at random among its tier (rng seeded with `seed`); when
// every one is verified, the least recently verified. nullopt when `backups` is empty. `reason`
// says why, in a few words with the counts ("never drilled (2 of 3 backups), chosen at random").
struct PickedBackup {
  BackupInfo backup;
  std::string reason;
  bool newest = false;  // the newest of `backups`: completion time, then start time, then id
};
std::optional<PickedBackup> PickBackup(const std::vector<BackupInfo>& backups, const Ledger& ledger,
                                       std::uint64_t seed);

}  // namespace rw
