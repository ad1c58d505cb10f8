#pragma once
// The pgBackRest source's own [target.backup] keys and their reader (a base of BackupConfig, like
// pg_dump_options.h), plus its reader of [target.drill] recovery_target. With another backup type
// they are unknown keys.
//
// [target.backup] of type = "pgbackrest":
//   stanza = "main"                         required: the stanza name (--stanza)
//   config = "/etc/pgbackrest/pgbackrest.conf"  required, absolute: the file (--config). It holds
//                                           the repository's secrets (S3 keys, cipher pass): the
//                                           agent passes its path and never reads or prints it.
//   repo = 2                                optional (1..256): the repository (--repo); default:
//                                           pgBackRest's choice (the first configured)
//   run_as = "postgres"                     optional: the OS user pgbackrest runs as (the owner of
//                                           the repository); default agent.run_as. Never root.
// [target.drill] recovery_target: "latest" (default: the end of the archive), "immediate"
// (consistency) or a time ("2026-11-24 03:00:00+00"). "random" and offsets are refused: choosing
// them needs the commit times in the WAL, which pgBackRest keeps compressed in its repository.
#include <string>

namespace rw {
namespace config {
class Reader;
}
struct BasebackupDrillOptions;

struct PgbackrestOptions {
  std::string stanza;
  std::string config;
  int repo = 0;        // 0: not given (pgBackRest's default repository)
  std::string run_as;  // empty: agent.run_as
};

// Nested under one member so its field names (config, stanza) cannot clash with another source's.
struct PgbackrestBackupOptions {
  PgbackrestOptions pgbackrest;
};

void ReadPgbackrestBackupOptions(config::Reader& backup, PgbackrestBackupOptions* out);
// recovery_target is the one key every physical source shares (declared in
// BasebackupDrillOptions, a base of DrillConfig); pgBackRest accepts fewer values.
void ReadPgbackrestDrillOptions(config::Reader& drill, BasebackupDrillOptions* out);

}  // namespace rw
