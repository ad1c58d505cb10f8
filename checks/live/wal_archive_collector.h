#pragma once
// WalArchiveCollector ("wal_archive"): WAL continuity of the target's archive directory (what
// archive_command `cp %p DIR/%f` writes), between drills. Every segment from the start point to
// the newest archived segment must be there and be a real WAL segment, across timeline switches
// (followed through the .history files); compressed segments (.gz, .zst, .lz4, .bz2, .xz) count.
//   restorewatch_wal_archive_gaps                            segments missing or unusable (+1
//                                                            when a .history cannot be followed)
//   restorewatch_wal_archive_last_segment_timestamp_seconds  mtime of the newest segment on the
//                                                            timeline path; absent when none
//   restorewatch_pitr_window_start_timestamp_seconds /        (backups_path only) the recoverable
//   restorewatch_pitr_window_end_timestamp_seconds            window: from the end of the oldest
//                                                            base backup with no gap or bad
//                                                            segment after its start, to the
//                                                            newest segment; start == end when
//                                                            no backup has an unbroken chain
//   restorewatch_pitr_window_objective_seconds               backup.pitr_window, when set
// The start point is `start` when given, else the start of the oldest complete base backup in
// `backups_path` (the oldest backup still needed), else the oldest segment on the path. What was
// verified is remembered in state_dir/wal_archive.state, so a run reads only new segments. A new
// gap or bad segment is logged (once per change) naming the first missing segment. Throws Error
// when the archive cannot be listed (then collector_success is 0). Called by one thread at a
// time; LastReport() may be called from any thread.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/collector.h"
#include "agent/storage/s3_wal_mirror.h"
#include "agent/wal_archive.h"

namespace rw {

struct WalArchiveOptions {
  std::string archive_dir;   // required: the directory archive_command writes into
  std::string state_dir;     // memory of verified segments ("" = the CollectContext's state_dir
                             // in Collect(), nothing remembered in Check())
  std::string backups_path;  // a directory of pg_basebackup outputs ("" = none)
  std::optional<wal::StartPoint> start;        // explicit start point (wins over backups_path)
  std::uint32_t segment_size = 0;              // 0 = from the segments' headers, else 16 MiB
  Duration settle = std::chrono::seconds(60);  // a short newest segment younger than this is in
                                               // flight, not corrupt
  Duration pitr_window = Duration::zero();     // objective (backup.pitr_window); 0 = none
  // archive_dir = "s3://bucket/prefix": how to reach it ([target.backup.s3]). The archive is
  // read through a local mirror in state_dir (agent/storage/s3_wal_mirror.h), listed
  // incrementally.
  S3Options s3;
};

// A complete base backup as the PITR window sees it.
struct WindowBackup {
  std::uint32_t timeline = 0;
  wal::Lsn start_lsn = 0;
  double completed_at = 0;  // recovery can target any point after this
};

// The recoverable window [start, end] (Unix seconds): end is the newest segment's mtime; start is
// the completion of the oldest backup whose WAL chain has no gap and no bad segment from its
// start to the newest segment (start == end when none has). nullopt without a backup or a
// segment.
std::optional<std::pair<double, double>> PitrWindow(const wal::ContinuityReport& report,
                                                    const std::vector<WindowBackup>& backups);

// The families of one report (pure): gaps and the newest segment; the PITR window when `window`
// is given, and its objective when non-zero.
std::vector<MetricFamilyData> WalArchiveFamilies(
    const wal::ContinuityReport& report,
    const std::optional<std::pair<double, double>>& window = std::nullopt,
    Duration objective = Duration::zero());

// The start point from the oldest complete base backup in `backups_path`, nullopt when none.
std::optional<wal::StartPoint> StartFromBackups(const std::string& backups_path,
                                                const std::string& archive_dir,
                                                CancelToken* cancel = nullptr);

class WalArchiveCollector : public Collector {
 public:
  explicit WalArchiveCollector(WalArchiveOptions options);
  std::string name() const override { return "wal_archive"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
  // The report of the last successful run (for status and tests); nullopt before the first.
  std::optional<wal::ContinuityReport> LastReport() const;
  // One run without a CollectContext (verify, tests).
  wal::ContinuityReport Check(CancelToken* cancel = nullptr);

 private:
  WalArchiveOptions opts_;
  mutable std::mutex mu_;
  std::optional<wal::ContinuityReport> last_;
  std::vector<WindowBackup> backups_;    // of the last Check() (backups_path only)
  std::string last_logged_;              // the summary last logged, so a lasting gap is logged once
  std::unique_ptr<S3WalMirror> mirror_;  // archive_dir on S3: its local mirror
  bool last_ok_ = false;                 // the last check found the archive continuous
};

}  // namespace rw
