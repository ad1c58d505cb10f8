#pragma once
// Reading Barman's catalogue from its machine-readable output (barman 3.4, `-f json`):
// `barman -f json list-backups SERVER` lists every backup with its status, end time and size;
// `barman -f json show-backup SERVER ID` adds begin time, WAL and LSN bounds, timeline and
// PostgreSQL version. Only status DONE is a complete backup (WAITING_FOR_WALS, STARTED, FAILED,
// EMPTY, SYNCING are not). Pure functions over the text, so a unit test can feed saved output;
// thread-safe.
#include <cstdint>
#include <string>
#include <vector>

namespace rw::barman {

struct BarmanBackup {
  std::string id;                // backup_id, e.g. "20261204T143317"
  std::string status;            // DONE, WAITING_FOR_WALS, FAILED, ...
  double begin_time = 0;         // Unix seconds (show-backup; 0 when unknown)
  double end_time = 0;           // Unix seconds
  std::uint64_t size_bytes = 0;  // the backup with its WAL, as Barman counts it
  // show-backup only:
  std::string begin_wal, end_wal;  // "000000010000000000000004"
  std::string begin_lsn, end_lsn;  // "0/4000028"
  int timeline = 0;
  int server_major = 0;  // 15 for postgresql_version 150018
  bool complete() const { return status == "DONE"; }
};

// The messages barman put under "_ERROR" in its JSON output, joined by "; " (empty when none or
// when `text` is not JSON). E.g. "Unknown server 'nosuch'".
std::string JsonErrors(const std::string& text);

// Parses `barman -f json list-backups SERVER`, in barman's order (newest first). False with
// *error naming what is wrong when the text is not that document.
bool ParseListBackups(const std::string& text, const std::string& server,
                      std::vector<BarmanBackup>* out, std::string* error);

// Parses `barman -f json show-backup SERVER ID` into *b (fills id, status, times, WAL, LSN,
// timeline, version; keeps size_bytes when the document has none). False with *error.
bool ParseShowBackup(const std::string& text, const std::string& server, BarmanBackup* b,
                     std::string* error);

// The newest complete backup of `backups` (greatest end time), or nullptr.
const BarmanBackup* NewestComplete(const std::vector<BarmanBackup>& backups);

}  // namespace rw::barman
