#pragma once
// The pg_dump source's own options and their reader. The structs are bases of BackupConfig and
// DrillConfig, so the keys keep the places users (and code) know them by: [target.backup]
// pattern and globals_pattern, [target.drill] jobs and allow_restore_errors. Only the pg_dump row
// of the source table (agent/backup_source.cpp) reads them; with another backup type they are
// unknown keys.
#include <string>
#include <vector>

namespace rw {
namespace config {
class Reader;
}

// [target.backup] keys of type = "pg_dump".
struct PgDumpBackupOptions {
  std::string pattern = "*";    // file-name glob of backups inside backup.path
  std::string globals_pattern;  // optional glob of a pg_dumpall --globals-only file
};

// [target.drill] keys of type = "pg_dump".
struct PgDumpDrillOptions {
  int jobs = 2;                                   // pg_restore -j (1..64)
  std::vector<std::string> allow_restore_errors;  // substrings of pg_restore errors accepted
};

// Readers, registered in the pg_dump row of the source table. Errors go to the Reader's loader.
void ReadPgDumpBackupOptions(config::Reader& backup, PgDumpBackupOptions* out);
void ReadPgDumpDrillOptions(config::Reader& drill, PgDumpDrillOptions* out);

}  // namespace rw
