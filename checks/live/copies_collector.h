#pragma once
// CopiesCollector ("copies"): the 3-2-1 check of a target with backup.copies, on the catalogue's
// interval (target.backup.catalogue_interval), never on the scrape path: the board keeps its last
// result. For the primary's newest complete backup (ctx.backup_source->Catalogue()), every copy is
// checked by agent/copies.h (same relative paths, sizes, mtimes; SHA-256 with verify_checksum),
// and each copy's own catalogue gives its newest backup. Families (without `target`):
//   restorewatch_backup_copy_present{location,offsite}                  1 = holds the newest,
//   matching restorewatch_backup_copy_last_completion_timestamp_seconds{location}  newest backup it
//   holds restorewatch_backup_321_ok                                           3 copies, 2 media, 1
//   offsite
// location is "primary" for backup.path. A copy that cannot be read is not present; the reason
// goes to CollectContext::notes (the JSON API) and to the log when it changes. Throws what the
// primary's Catalogue() throws.
#include <map>
#include <memory>

#include "agent/collector.h"
#include "agent/copies.h"

namespace rw {

// The families of one check (pure).
std::vector<MetricFamilyData> CopiesFamilies(const std::vector<CopyState>& states);

class CopiesCollector : public Collector {
 public:
  std::string name() const override { return "copies"; }
  Duration interval(const TargetConfig& t) const override { return t.backup.catalogue_interval; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;

 private:
  // The newest completion in one copy's own catalogue; nullopt (and a note) when unreadable.
  std::optional<double> NewestIn(CollectContext& ctx, const CopyConfig& copy);

  struct CopySource {
    std::unique_ptr<TargetConfig> target;  // the source may keep a reference to it
    std::unique_ptr<BackupSource> source;
  };
  CopiesChecker checker_;
  std::map<std::string, CopySource> sources_;       // by copy name
  std::map<std::string, std::string> last_reason_;  // by location: what was logged last
};

}  // namespace rw
