#include "agent/backup_source.h"

#include "agent/errors.h"
#include "agent/sources/pg_dump_source.h"

namespace rw {
namespace {

using Factory = std::unique_ptr<BackupSource> (*)(const Environment&, const TargetConfig&);

struct SourceEntry {
  const char* type;
  Factory make;
};

// The one table of backup sources: type = "..." in [target.backup] selects a row.
const SourceEntry kSources[] = {
    {"pg_dump", &MakePgDumpSource},
};

}  // namespace

std::unique_ptr<BackupSource> MakeBackupSource(const Environment& env, const TargetConfig& target) {
  for (const auto& s : kSources)
    if (target.backup.type == s.type) return s.make(env, target);
  throw Error(ErrorKind::kConfig, "unknown backup type '" + target.backup.type + "'");
}

std::vector<std::string> BackupSourceTypes() {
  std::vector<std::string> out;
  for (const auto& s : kSources) out.emplace_back(s.type);
  return out;
}

}  // namespace rw
