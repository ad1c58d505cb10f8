#pragma once
// What `pgbackrest info --output=json` says about one stanza, parsed (pure, no I/O, thread-safe):
// its status, the repositories' statuses, every backup set (full, diff, incr) with its times,
// sizes, LSNs and WAL range, and the archive's range per database. pgBackRest lists only complete
// backups (one in progress holds the backup lock and is not in the list).
//
// Note that `info` exits 0 for a stanza it cannot read (status code 1 "missing stanza path",
// 99 "other" with the repository's error): the status, not the exit code, tells.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rw::pgbackrest {

struct Backup {
  std::string label;             // 20261204-143211F, 20261204-143211F_20261204-143224I
  std::string type;              // full, diff, incr
  std::string prior;             // the backup an incr/diff is based on, "" for a full
  double start = 0;              // Unix seconds (timestamp.start)
  double stop = 0;               // Unix seconds (timestamp.stop): when it was complete
  std::uint64_t size = 0;        // database size: what a restore writes (info.size)
  std::uint64_t repo_size = 0;   // in the repository, with the backups it references
  std::uint64_t repo_delta = 0;  // in the repository, this backup's own files
  std::string start_lsn;         // "0/2000028"
  std::string stop_lsn;
  std::string wal_start;  // first WAL segment the backup needs
  std::string wal_stop;   // last one
  bool error = false;     // pgBackRest found page checksum errors while backing up
  int db_id = 0;          // database.id: which entry of `db`/`archive` it belongs to
  int repo_key = 0;       // database.repo-key: the repository it is in
};

struct ArchiveRange {
  std::string id;  // "15-1"
  int db_id = 0;
  int repo_key = 0;
  std::string min;  // oldest segment, "" when the archive is empty
  std::string max;  // newest segment
};

struct Database {
  int id = 0;
  int repo_key = 0;
  std::string version;    // "15"
  std::string system_id;  // kept as text (a 64-bit number)
};

struct RepoStatus {
  int key = 0;
  int code = 0;  // 0 ok
  std::string message;
};

struct StanzaInfo {
  std::string name;
  int status_code = -1;  // 0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza
                         // data, ..., 99 other
  std::string status_message;
  bool backup_running = false;  // status.lock.backup.held
  std::vector<RepoStatus> repos;
  std::vector<Backup> backups;  // as listed: oldest first
  std::vector<ArchiveRange> archives;
  std::vector<Database> databases;

  // The newest backup by stop time (any kind), or nullptr.
  const Backup* Newest() const;
  const Backup* Find(const std::string& label) const;
  // The PostgreSQL major version of `b` ("15"), "" when unknown.
  std::string VersionOf(const Backup& b) const;
  // The archive range of the database and repository of `b`, or nullptr.
  const ArchiveRange* ArchiveOf(const Backup& b) const;
  // Why the stanza cannot be used (status and the first failing repository, as pgBackRest says
  // it), or "" when its status is ok or just "no valid backups".
  std::string Problem() const;
};

// Parses the output of `info --output=json` for `stanza`. nullopt and *error ("not JSON: ...",
// "no stanza 'x' in the output") when it is not what pgBackRest writes.
std::optional<StanzaInfo> ParseInfo(const std::string& json, const std::string& stanza,
                                    std::string* error = nullptr);

}  // namespace rw::pgbackrest

namespace rw::pgbackrest {

// Judges the output (stdout and stderr together) of `pgbackrest verify --set=LABEL --output=text
// --log-level-console=info`: "" when it reports `status: ok`, else one line naming the problem as
// pgBackRest wrote it, the file first ("file missing '20261204-143211F/pg_data/base/5/3456.gz'",
// "invalid checksum '...'"), else its ERROR line, else the backup's "status: invalid" line.
// verify exits 0 after reporting invalid files: its output is what counts.
std::string VerifyProblem(const std::string& output);

}  // namespace rw::pgbackrest
