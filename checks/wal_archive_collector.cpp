#include "checks/wal_archive_collector.h"

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/sources/basebackup_catalogue.h"
#include "checks/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> WalArchiveFamilies(const wal::ContinuityReport& report) {
  std::vector<MetricFamilyData> out;
  auto gaps = Family("restorewatch_wal_archive_gaps",
                     "WAL segments missing (or present but not a valid segment) in the archive "
                     "between the oldest needed backup and the newest archived segment, plus "
                     "one when a timeline history file needed is missing or unreadable");
  AddSample(gaps, static_cast<double>(report.unusable()));
  AppendFamily(out, std::move(gaps));
  auto last = Family("restorewatch_wal_archive_last_segment_timestamp_seconds",
                     "Modification time of the newest WAL segment present in the archive");
  AddSample(last, report.newest_segment_mtime);
  AppendFamily(out, std::move(last));
  return out;
}

std::optional<wal::StartPoint> StartFromBackups(const std::string& backups_path,
                                                const std::string& archive_dir,
                                                CancelToken* cancel) {
  basebackup::CatalogueOptions co;
  co.wal_archive = archive_dir;
  auto cat = basebackup::ReadCatalogue(backups_path, co, cancel);
  const auto* oldest = cat.OldestComplete();
  if (!oldest) return std::nullopt;
  wal::StartPoint sp;
  sp.timeline = oldest->start_timeline;
  sp.lsn = oldest->start_lsn;
  sp.stop_lsn = oldest->stop_lsn;
  return sp;
}

WalArchiveCollector::WalArchiveCollector(WalArchiveOptions options) : opts_(std::move(options)) {
  if (opts_.archive_dir.empty())
    throw Error(ErrorKind::kConfig, "wal_archive: no archive directory given");
}

wal::ContinuityReport WalArchiveCollector::Check(CancelToken* cancel) {
  wal::ContinuityOptions co;
  co.archive_dir = opts_.archive_dir;
  co.state_dir = opts_.state_dir;
  co.segment_size = opts_.segment_size;
  co.settle = opts_.settle;
  co.start = opts_.start;
  if (!co.start && !opts_.backups_path.empty())
    co.start = StartFromBackups(opts_.backups_path, opts_.archive_dir, cancel);
  wal::ContinuityReport rep = wal::CheckContinuity(co, cancel);
  std::lock_guard<std::mutex> lk(mu_);
  const std::string summary = rep.Summary();
  if (!rep.ok() && summary != last_logged_)
    LogWarn("wal_archive: the archive is not continuous",
            {{"archive", opts_.archive_dir},
             {"reason", summary},
             {"missing", rep.missing},
             {"bad", static_cast<std::uint64_t>(rep.bad.size())}});
  last_logged_ = rep.ok() ? std::string() : summary;
  last_ = rep;
  return rep;
}

std::vector<MetricFamilyData> WalArchiveCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  if (opts_.state_dir.empty()) opts_.state_dir = ctx.state_dir;  // one thread calls Collect
  return WalArchiveFamilies(Check(&ctx.cancel));
}

std::optional<wal::ContinuityReport> WalArchiveCollector::LastReport() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_;
}

}  // namespace rw
