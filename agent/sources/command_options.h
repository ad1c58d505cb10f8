#pragma once
// The command source's own [target.backup] keys and their reader (a base of BackupConfig, like
// pg_dump_options.h). With another backup type they are unknown keys.
//   list    = ["argv", ...]  prints a JSON array of backups: [{"id", "time" (RFC 3339), "size"
//                            (bytes, optional), "kind" (optional)}] (docs/command-source.md)
//   fetch   = ["argv", ...]  materialises backup {id} into directory {dir} (both replaced in every
//                            argument); {dir} is an empty directory inside agent.work_dir that the
//                            agent removes afterwards
//   format  = "pg_dump" | "basebackup"  what fetch leaves: a pg_dump file (or directory-format
//                            dump), or a pg_basebackup output (with backup.wal_archive for
//                            recovery)
//   shell   = false          true: run list/fetch through /bin/sh -c with the argv joined by
//                            spaces (pipes, jq); false: exec'd directly, no shell
//   timeout = "1h"           per command; past it the command's process group is killed
#include <string>
#include <vector>

#include "agent/units.h"

namespace rw {
namespace config {
class Reader;
}

enum class CommandFormat { kPgDump, kBasebackup };

struct CommandBackupOptions {
  struct Command {
    std::vector<std::string> list;
    std::vector<std::string> fetch;
    CommandFormat format = CommandFormat::kPgDump;
    bool shell = false;
    Duration timeout = std::chrono::hours(1);
  } command;
};

void ReadCommandBackupOptions(config::Reader& backup, CommandBackupOptions* out);

}  // namespace rw
