#pragma once
// The Barman source's own keys and their readers (a base of BackupConfig, like
// pg_dump_options.h): [target.backup] server (the Barman server name, required), config (the
// barman.conf path, required) and run_as (the OS user barman runs as; default: agent.run_as;
// never root). [target.drill] recovery_target is the basebackup key restricted to "latest",
// "immediate" or a time: Barman recovers from its own catalogue, and "random"/offsets need the
// real commit times, which restorewatch reads only from a plain WAL archive. With another backup
// type these are unknown keys.
#include <string>

namespace rw {
namespace config {
class Reader;
}
struct BasebackupDrillOptions;

struct BarmanBackupOptions {
  struct Barman {
    std::string server;  // SERVER as in `barman list-backups SERVER`
    std::string config;  // barman.conf, absolute: `barman -c CONFIG`
    // The user barman runs as (when the agent is root). It writes the sandbox's data directory,
    // which belongs to agent.run_as: the two must be the same user (checked at the drill).
    // Empty: agent.run_as.
    std::string run_as;
  } barman;
};

void ReadBarmanBackupOptions(config::Reader& backup, BarmanBackupOptions* out);
void ReadBarmanDrillOptions(config::Reader& drill, BasebackupDrillOptions* out);

}  // namespace rw
