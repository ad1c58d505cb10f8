#include "checks/live/backup_catalogue_collector.h"

#include "checks/live/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> BackupCatalogueFamilies(const BackupCatalogue& catalogue,
                                                      Duration max_age, Duration min_retention) {
  auto completion = Family("restorewatch_backup_last_completion_timestamp_seconds",
                           "When the newest complete backup of this kind completed");
  auto size = Family("restorewatch_backup_last_size_bytes",
                     "Size of the newest complete backup of this kind");
  auto count = Family("restorewatch_backups_available", "Complete backups of this kind available");
  auto oldest = Family("restorewatch_backup_oldest_timestamp_seconds",
                       "When the oldest complete backup of this kind still present completed "
                       "(the retention actually kept)");
  for (const auto& [kind, k] : catalogue.by_kind) {
    Labels labels{{"kind", kind}};
    AddSample(count, static_cast<double>(k.count), labels);
    if (!k.newest) continue;
    AddSample(completion, k.newest->completed_at, labels);
    AddSample(size, static_cast<double>(k.newest->size_bytes), labels);
    if (k.oldest) AddSample(oldest, k.oldest->completed_at, labels);
  }
  std::vector<MetricFamilyData> out;
  AppendFamily(out, std::move(completion));
  AppendFamily(out, std::move(size));
  AppendFamily(out, std::move(count));
  AppendFamily(out, std::move(oldest));
  if (max_age.count() > 0)
    out.push_back(Gauge("restorewatch_backup_max_age_seconds",
                        "Configured freshness objective for backups (backup.max_age)",
                        ToSeconds(max_age)));
  if (min_retention.count() > 0)
    out.push_back(Gauge("restorewatch_backup_min_retention_seconds",
                        "Configured retention objective (backup.min_retention): the oldest "
                        "backup kept must be at least this old",
                        ToSeconds(min_retention)));
  return out;
}

std::vector<MetricFamilyData> BackupCatalogueCollector::Collect(CollectContext& ctx) {
  if (!ctx.backup_source) return {};
  ctx.cancel.ThrowIfCancelled();
  return BackupCatalogueFamilies(ctx.backup_source->Catalogue(ctx.cancel),
                                 ctx.target.backup.max_age, ctx.target.backup.min_retention);
}

}  // namespace rw
