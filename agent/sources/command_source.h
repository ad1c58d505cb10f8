#pragma once
// BackupSource "command": backups of tools restorewatch does not know (WAL-G, cloud snapshots,
// scripts), reached through two commands of the user's (agent/sources/command_options.h,
// docs/command-source.md):
//  - `list` prints a JSON array of backups {id, time (RFC 3339), size, kind}; the newest by time
//    is drilled.
//  - `fetch` materialises one backup ({id}) into an empty directory ({dir}) inside agent.work_dir
//    (drill stage fetch); the directory is removed when the drill's restore ends, whatever
//    happened.
// What fetch left is then restored as the pg_dump source restores a dump file (format =
// "pg_dump"), or as the basebackup source restores a pg_basebackup output, recovering with
// backup.wal_archive (format = "basebackup"): those sources' own Restore(), not a copy.
// Commands run without a shell unless shell = true, as agent.run_as when the agent is root, each
// bounded by backup.timeout and the drill's cancel (its process group is killed); a failing
// command is an error quoting its stderr. Holds no mutable state.
#include <memory>
#include <string>
#include <vector>

#include "agent/backup_source.h"
#include "agent/sources/command_options.h"

namespace rw {

std::unique_ptr<BackupSource> MakeCommandSource(const Environment& env, const TargetConfig& target);

// Parses the list command's output (the contract in docs/command-source.md) into backups with
// id, kind (default `default_kind`), started_at = completed_at = time, size_bytes. Ids are
// limited to letters, digits and . _ - : + @ (they are put into the fetch command). False with
// *error naming what is wrong and where ("entry 2: time \"yesterday\" is not RFC 3339").
bool ParseCommandList(const std::string& text, const std::string& default_kind,
                      std::vector<BackupInfo>* out, std::string* error);

}  // namespace rw
