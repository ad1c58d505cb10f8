#include "checks/live/wal_archive_collector.h"

#include <algorithm>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/sources/basebackup_catalogue.h"
#include "checks/live/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> WalArchiveFamilies(
    const wal::ContinuityReport& report, const std::optional<std::pair<double, double>>& window,
    Duration objective) {
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
  if (window) {
    out.push_back(Gauge("restorewatch_pitr_window_start_timestamp_seconds",
                        "Start of the point-in-time recovery window: the end of the oldest base "
                        "backup with an unbroken WAL chain to the newest archived segment",
                        window->first));
    out.push_back(Gauge("restorewatch_pitr_window_end_timestamp_seconds",
                        "End of the point-in-time recovery window: the newest archived segment",
                        window->second));
  }
  if (objective.count() > 0)
    out.push_back(Gauge("restorewatch_pitr_window_objective_seconds",
                        "Configured point-in-time recovery objective (backup.pitr_window)",
                        ToSeconds(objective)));
  return out;
}

std::optional<std::pair<double, double>> PitrWindow(const wal::ContinuityReport& report,
                                                    const std::vector<WindowBackup>& backups) {
  if (backups.empty() || !report.newest_segment_mtime) return std::nullopt;
  const double end = *report.newest_segment_mtime;
  if (!report.problem.empty()) return std::make_pair(end, end);
  // The last break in the chain, as the segment number part of a name (the last 16 hex digits
  // order segments across timelines).
  std::string last_break;
  auto note = [&](const std::string& name) {
    if (name.size() >= 24) last_break = std::max(last_break, name.substr(8, 16));
  };
  for (const auto& g : report.gaps) note(g.last_missing);
  for (const auto& b : report.bad) note(b.name.substr(0, 24));
  std::optional<double> start;
  for (const auto& b : backups) {
    const std::string first =
        wal::SegmentName(b.timeline, wal::SegmentNo(b.start_lsn, report.segment_size),
                         report.segment_size)
            .substr(8, 16);
    if (!last_break.empty() && first <= last_break) continue;
    if (!start || b.completed_at < *start) start = b.completed_at;
  }
  return std::make_pair(std::min(start.value_or(end), end), end);
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
  if (IsS3Url(opts_.archive_dir)) {
    if (opts_.state_dir.empty())
      throw Error(ErrorKind::kConfig, "wal_archive on S3 needs a state dir for its mirror");
    if (!mirror_)
      mirror_ = std::make_unique<S3WalMirror>(opts_.archive_dir, opts_.s3,
                                              opts_.state_dir + "/wal_archive.s3");
    CancelToken none;
    // A gap may be filled by a late upload below the last key seen: list everything then.
    const auto st = mirror_->Sync(!last_ok_, cancel ? *cancel : none);
    LogDebug("wal_archive: S3 mirror synced", {{"archive", opts_.archive_dir},
                                               {"requests", std::to_string(st.requests)},
                                               {"fetched", std::to_string(st.fetched)},
                                               {"full", st.full ? "true" : "false"}});
    co.archive_dir = mirror_->dir();
  }
  co.state_dir = opts_.state_dir;
  co.segment_size = opts_.segment_size;
  co.settle = opts_.settle;
  co.start = opts_.start;
  std::vector<WindowBackup> backups;
  if (!opts_.backups_path.empty()) {
    basebackup::CatalogueOptions bo;
    bo.wal_archive = co.archive_dir;
    auto cat = basebackup::ReadCatalogue(opts_.backups_path, bo, cancel);
    for (const auto& b : cat.backups)
      if (b.complete) backups.push_back({b.start_timeline, b.start_lsn, b.stop_time});
    if (!co.start)
      if (const auto* oldest = cat.OldestComplete())
        co.start = wal::StartPoint{oldest->start_timeline, oldest->start_lsn, oldest->stop_lsn};
  }
  wal::ContinuityReport rep = wal::CheckContinuity(co, cancel);
  std::lock_guard<std::mutex> lk(mu_);
  backups_ = std::move(backups);
  const std::string summary = rep.Summary();
  if (!rep.ok() && summary != last_logged_)
    LogWarn("wal_archive: the archive is not continuous",
            {{"archive", opts_.archive_dir},
             {"reason", summary},
             {"missing", rep.missing},
             {"bad", static_cast<std::uint64_t>(rep.bad.size())}});
  last_logged_ = rep.ok() ? std::string() : summary;
  last_ok_ = rep.ok();
  last_ = rep;
  return rep;
}

std::vector<MetricFamilyData> WalArchiveCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  if (opts_.state_dir.empty()) opts_.state_dir = ctx.state_dir;  // one thread calls Collect
  wal::ContinuityReport rep = Check(&ctx.cancel);
  std::optional<std::pair<double, double>> window;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!opts_.backups_path.empty()) window = PitrWindow(rep, backups_);
  }
  return WalArchiveFamilies(rep, window, opts_.pitr_window);
}

std::optional<wal::ContinuityReport> WalArchiveCollector::LastReport() const {
  std::lock_guard<std::mutex> lk(mu_);
  return last_;
}

}  // namespace rw
