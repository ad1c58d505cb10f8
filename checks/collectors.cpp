#include "checks/archiver_collector.h"
#include "checks/backup_catalogue_collector.h"
#include "checks/registry.h"
#include "checks/replication_collector.h"
#include "checks/slots_collector.h"
#include "checks/source_collector.h"
#include "checks/standby_collector.h"
#include "checks/table_activity_collector.h"

namespace rw {
namespace {

// Whether a collector applies to a target (nullptr: always).
using Applies = bool (*)(const TargetConfig&);

struct CollectorEntry {
  const char* name;
  std::unique_ptr<Collector> (*make)();
  Applies applies;
};

template <typename T>
std::unique_ptr<Collector> Make() {
  return std::make_unique<T>();
}

bool HasStandbys(const TargetConfig& t) { return !t.standbys.empty(); }

// The one table of live collectors, in run order; the names are the `collector` label.
const CollectorEntry kCollectors[] = {
    {"source", &Make<SourceCollector>, nullptr},
    {"archiver", &Make<ArchiverCollector>, nullptr},
    {"replication", &Make<ReplicationCollector>, nullptr},
    {"slots", &Make<SlotsCollector>, nullptr},
    {"standby", &Make<StandbyCollector>, &HasStandbys},
    {"table_activity", &Make<TableActivityCollector>, nullptr},
    {"backup_catalogue", &Make<BackupCatalogueCollector>, nullptr},
};

}  // namespace

std::vector<std::unique_ptr<Collector>> MakeCollectors(const TargetConfig& target) {
  std::vector<std::unique_ptr<Collector>> out;
  for (const auto& e : kCollectors)
    if (!e.applies || e.applies(target)) out.push_back(e.make());
  return out;
}

}  // namespace rw
