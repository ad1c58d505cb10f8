#include "agent/sources/pg_dump_options.h"

#include "agent/config_reader.h"

namespace rw {

void ReadPgDumpBackupOptions(config::Reader& backup, PgDumpBackupOptions* out) {
  backup.Name("pattern", &out->pattern);
  backup.Str("globals_pattern", &out->globals_pattern);
}

void ReadPgDumpDrillOptions(config::Reader& drill, PgDumpDrillOptions* out) {
  drill.Int("jobs", &out->jobs, 1, 64);
  drill.StrList("allow_restore_errors", &out->allow_restore_errors);
}

}  // namespace rw
