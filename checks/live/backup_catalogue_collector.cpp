#include "checks/live/backup_catalogue_collector.h"

#include <set>

#include "agent/ledger.h"
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
  auto running = Family("restorewatch_backup_running",
                        "1 while a backup of this kind is being taken (the catalogue shows one in "
                        "progress), else 0");
  std::set<std::string> kinds;
  for (const auto& [kind, k] : catalogue.by_kind) {
    kinds.insert(kind);
    Labels labels{{"kind", kind}};
    AddSample(count, static_cast<double>(k.count), labels);
    if (!k.newest) continue;
    AddSample(completion, k.newest->completed_at, labels);
    AddSample(size, static_cast<double>(k.newest->size_bytes), labels);
    if (k.oldest) AddSample(oldest, k.oldest->completed_at, labels);
  }
  for (const auto& [kind, n] : catalogue.running) kinds.insert(kind);
  for (const auto& kind : kinds) {
    auto it = catalogue.running.find(kind);
    AddSample(running, it != catalogue.running.end() && it->second > 0 ? 1 : 0, {{"kind", kind}});
  }
  std::vector<MetricFamilyData> out;
  AppendFamily(out, std::move(completion));
  AppendFamily(out, std::move(size));
  AppendFamily(out, std::move(count));
  AppendFamily(out, std::move(oldest));
  AppendFamily(out, std::move(running));
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

std::vector<MetricFamilyData> BackupObjectiveFamilies(const BackupConfig& backup) {
  auto by_kind = Family("restorewatch_backup_kind_max_age_seconds",
                        "Configured freshness objective for backups of this kind "
                        "(backup.max_age_by_kind)");
  for (const auto& [kind, d] : backup.max_age_by_kind)
    AddSample(by_kind, ToSeconds(d), {{"kind", kind}});
  std::vector<MetricFamilyData> out;
  AppendFamily(out, std::move(by_kind));
  return out;
}

std::vector<MetricFamilyData> VerifiedFamilies(const BackupCatalogue& catalogue,
                                               const Ledger& ledger) {
  VerifiedCounts c = CountVerified(catalogue.backups, ledger);
  return {Gauge("restorewatch_backups_verified",
                "Complete backups in the catalogue whose latest drill passed (the verification "
                "ledger)",
                static_cast<double>(c.verified)),
          Gauge("restorewatch_backups_unverified",
                "Complete backups in the catalogue never drilled, or whose latest drill did not "
                "pass",
                static_cast<double>(c.unverified))};
}

std::vector<MetricFamilyData> BackupCatalogueCollector::Collect(CollectContext& ctx) {
  if (!ctx.backup_source) return {};
  ctx.cancel.ThrowIfCancelled();
  const BackupCatalogue catalogue = ctx.backup_source->Catalogue(ctx.cancel);
  auto out = BackupCatalogueFamilies(catalogue, ctx.target.backup.max_age,
                                     ctx.target.backup.min_retention);
  for (auto& f : BackupObjectiveFamilies(ctx.target.backup)) out.push_back(std::move(f));
  if (!ctx.state_dir.empty())
    for (auto& f : VerifiedFamilies(catalogue, VerificationLedger(ctx.state_dir).Load()))
      out.push_back(std::move(f));
  return out;
}

}  // namespace rw
