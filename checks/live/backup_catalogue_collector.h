#pragma once
// BackupCatalogueCollector ("backup_catalogue"): backup freshness from the target's backup source
// (ctx.backup_source->Catalogue(), a listing, no restore), on its own interval
// (target.backup.catalogue_interval, default 5 min) so it never weighs on the monitor tick, and
// never on the scrape path: the board keeps its last result. Per kind (logical, full, incr, diff):
//   restorewatch_backups_available{kind}                                  backups available
//   restorewatch_backup_last_completion_timestamp_seconds{kind}      newest complete one
//   restorewatch_backup_last_size_bytes{kind}                        its size
//   restorewatch_backup_running{kind}                                1 while one is being taken
//   restorewatch_backup_kind_max_age_seconds{kind}                   backup.max_age_by_kind
// plus restorewatch_backup_max_age_seconds (target.backup.max_age, only when > 0) and, from the
// verification ledger in ctx.state_dir (agent/ledger.h), restorewatch_backups_verified and
// restorewatch_backups_unverified. Returns nothing when the target has no backup source. Throws
// what Catalogue() throws (Error kIo when the location cannot be read). Called by one thread at a
// time.
#include "agent/collector.h"
#include "agent/ledger.h"

namespace rw {

// The families of a catalogue (pure; empty families left out).
std::vector<MetricFamilyData> BackupCatalogueFamilies(const BackupCatalogue& catalogue,
                                                      Duration max_age, Duration min_retention);
// restorewatch_backup_kind_max_age_seconds{kind} (empty without backup.max_age_by_kind).
std::vector<MetricFamilyData> BackupObjectiveFamilies(const BackupConfig& backup);
// restorewatch_backups_verified and _unverified of the catalogue's complete backups.
std::vector<MetricFamilyData> VerifiedFamilies(const BackupCatalogue& catalogue,
                                               const Ledger& ledger);

class BackupCatalogueCollector : public Collector {
 public:
  std::string name() const override { return "backup_catalogue"; }
  Duration interval(const TargetConfig& t) const override { return t.backup.catalogue_interval; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
};

}  // namespace rw
