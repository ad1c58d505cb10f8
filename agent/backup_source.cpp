#include "agent/backup_source.h"

#include "agent/errors.h"
#include "agent/sources/barman_source.h"
#include "agent/sources/basebackup_source.h"
#include "agent/sources/command_source.h"
#include "agent/sources/pg_dump_options.h"
#include "agent/sources/pg_dump_source.h"
#include "agent/sources/pgbackrest_source.h"

namespace rw {
namespace {

using Factory = std::unique_ptr<BackupSource> (*)(const Environment&, const TargetConfig&);

struct SourceEntry {
  const char* type;
  Factory make;
  SourceOptionReaders options;
};

void ReadPgDumpBackup(config::Reader& r, BackupConfig* out) { ReadPgDumpBackupOptions(r, out); }
void ReadPgDumpDrill(config::Reader& r, DrillConfig* out) { ReadPgDumpDrillOptions(r, out); }
void ReadBasebackupDrill(config::Reader& r, DrillConfig* out) {
  ReadBasebackupDrillOptions(r, out);
}
void ReadPgbackrestBackup(config::Reader& r, BackupConfig* out) {
  ReadPgbackrestBackupOptions(r, out);
}
void ReadPgbackrestDrill(config::Reader& r, DrillConfig* out) {
  ReadPgbackrestDrillOptions(r, out);
}
void ReadBarmanBackup(config::Reader& r, BackupConfig* out) { ReadBarmanBackupOptions(r, out); }
void ReadBarmanDrill(config::Reader& r, DrillConfig* out) { ReadBarmanDrillOptions(r, out); }
void ReadCommandBackup(config::Reader& r, BackupConfig* out) { ReadCommandBackupOptions(r, out); }
// What fetch leaves is restored by the pg_dump or basebackup source: their drill keys apply.
void ReadCommandDrill(config::Reader& r, DrillConfig* out) {
  ReadPgDumpDrillOptions(r, out);
  ReadBasebackupDrillOptions(r, out);
}

// The one table of backup sources: type = "..." in [target.backup] selects a row: the factory and
// the readers of the source's own config keys.
const SourceEntry kSources[] = {
    {"pg_dump", &MakePgDumpSource, {&ReadPgDumpBackup, &ReadPgDumpDrill}},
    {"basebackup", &MakeBasebackupSource, {nullptr, &ReadBasebackupDrill}},
    {"pgbackrest", &MakePgbackrestSource, {&ReadPgbackrestBackup, &ReadPgbackrestDrill}},
    {"barman", &MakeBarmanSource, {&ReadBarmanBackup, &ReadBarmanDrill}},
    {"command", &MakeCommandSource, {&ReadCommandBackup, &ReadCommandDrill}},
};

}  // namespace

RestoredCopy BackupSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                   const RestoreOptions& options, CancelToken& cancel) {
  (void)backup, (void)host, (void)options, (void)cancel;
  throw Error(ErrorKind::kUnsupported,
              "the " + type() + " backup source does not implement the restore contract");
}

RestoreOutcome BackupSource::Restore(const BackupInfo& backup, Sandbox& sandbox,
                                     const RestoreOptions& options, CancelToken& cancel) {
  (void)backup, (void)sandbox, (void)options, (void)cancel;
  throw Error(ErrorKind::kUnsupported,
              "the " + type() + " backup source does not restore into a running cluster");
}

std::unique_ptr<BackupSource> MakeBackupSource(const Environment& env, const TargetConfig& target) {
  for (const auto& s : kSources)
    if (target.backup.type == s.type) return s.make(env, target);
  throw Error(ErrorKind::kConfig, "unknown backup type '" + target.backup.type + "'");
}

const SourceOptionReaders* BackupSourceOptionReaders(const std::string& type) {
  for (const auto& s : kSources)
    if (type == s.type) return &s.options;
  return nullptr;
}

std::vector<std::string> BackupSourceTypes() {
  std::vector<std::string> out;
  for (const auto& s : kSources) out.emplace_back(s.type);
  return out;
}

}  // namespace rw
