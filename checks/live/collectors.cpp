#include "checks/live/archiver_collector.h"
#include "checks/live/backup_catalogue_collector.h"
#include "checks/live/copies_collector.h"
#include "checks/live/replication_collector.h"
#include "checks/live/slots_collector.h"
#include "checks/live/source_collector.h"
#include "checks/live/standby_collector.h"
#include "checks/live/table_activity_collector.h"
#include "checks/live/wal_archive_collector.h"
#include "checks/registry.h"

namespace rw {
namespace {

// Whether a collector applies to a target (nullptr: always).
using Applies = bool (*)(const TargetConfig&);

struct CollectorEntry {
  const char* name;
  std::unique_ptr<Collector> (*make)(const TargetConfig&);
  Applies applies;
};

template <typename T>
std::unique_ptr<Collector> Make(const TargetConfig&) {
  return std::make_unique<T>();
}

bool HasStandbys(const TargetConfig& t) { return !t.standbys.empty(); }
bool HasWalArchive(const TargetConfig& t) { return !t.backup.wal_archive.empty(); }
bool HasCopies(const TargetConfig& t) { return !t.backup.copies.empty(); }

// The archive's continuity from the oldest complete base backup when the target's backups are
// base backups, else from the oldest segment it holds. What was verified is remembered in the
// target's state dir (CollectContext::state_dir).
std::unique_ptr<Collector> MakeWalArchive(const TargetConfig& t) {
  WalArchiveOptions o;
  o.archive_dir = t.backup.wal_archive;
  // Base backups on S3 are not read here: the archive is then checked from its oldest segment.
  if (t.backup.type == "basebackup" && !t.backup.paths.empty() && !IsS3Url(t.backup.paths[0]))
    o.backups_path = t.backup.paths[0];
  o.s3 = t.backup.s3;
  o.pitr_window = t.backup.pitr_window;
  return std::make_unique<WalArchiveCollector>(std::move(o));
}

// The one table of live collectors, in run order; the names are the `collector` label.
const CollectorEntry kCollectors[] = {
    {"source", &Make<SourceCollector>, nullptr},
    {"archiver", &Make<ArchiverCollector>, nullptr},
    {"replication", &Make<ReplicationCollector>, nullptr},
    {"slots", &Make<SlotsCollector>, nullptr},
    {"standby", &Make<StandbyCollector>, &HasStandbys},
    {"table_activity", &Make<TableActivityCollector>, nullptr},
    {"backup_catalogue", &Make<BackupCatalogueCollector>, nullptr},
    {"copies", &Make<CopiesCollector>, &HasCopies},
    {"wal_archive", &MakeWalArchive, &HasWalArchive},
};

}  // namespace

std::vector<std::unique_ptr<Collector>> MakeCollectors(const TargetConfig& target) {
  std::vector<std::unique_ptr<Collector>> out;
  for (const auto& e : kCollectors)
    if (!e.applies || e.applies(target)) out.push_back(e.make(target));
  return out;
}

}  // namespace rw
