#pragma once
// BackupCatalogueCollector ("backup_catalogue"): backup freshness from the target's backup source
// (ctx.backup_source->Catalogue(), a listing, no restore), on its own interval
// (target.backup.catalogue_interval, default 5 min) so it never weighs on the monitor tick, and
// never on the scrape path: the board keeps its last result. Per kind (logical, full, incr, diff):
//   restorewatch_backups_available{kind}                                  backups available
//   restorewatch_backup_last_completion_timestamp_seconds{kind}      newest complete one
//   restorewatch_backup_last_size_bytes{kind}                        its size
// plus restorewatch_backup_max_age_seconds (target.backup.max_age, only when > 0). Returns nothing
// when the target has no backup source. Throws what Catalogue() throws (Error kIo when the
// location cannot be read). Called by one thread at a time.
#include "agent/collector.h"

namespace rw {

// The families of a catalogue (pure; empty families left out).
std::vector<MetricFamilyData> BackupCatalogueFamilies(const BackupCatalogue& catalogue,
                                                      Duration max_age);

class BackupCatalogueCollector : public Collector {
 public:
  std::string name() const override { return "backup_catalogue"; }
  Duration interval(const TargetConfig& t) const override { return t.backup.catalogue_interval; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
};

}  // namespace rw
