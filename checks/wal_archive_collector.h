#pragma once
// WalArchiveCollector ("wal_archive"): WAL continuity of the target's archive directory (what
// archive_command `cp %p DIR/%f` writes), between drills. Every segment from the start point to
// the newest archived segment must be there and be a real WAL segment, across timeline switches
// (followed through the .history files); compressed segments (.gz, .zst, .lz4, .bz2, .xz) count.
//   restorewatch_wal_archive_gaps                            segments missing or unusable (+1
//                                                            when a .history cannot be followed)
//   restorewatch_wal_archive_last_segment_timestamp_seconds  mtime of the newest segment on the
//                                                            timeline path; absent when none
// The start point is `start` when given, else the start of the oldest complete base backup in
// `backups_path` (the oldest backup still needed), else the oldest segment on the path. What was
// verified is remembered in state_dir/wal_archive.state, so a run reads only new segments. A new
// gap or bad segment is logged (once per change) naming the first missing segment. Throws Error
// when the archive cannot be listed (then collector_success is 0). Called by one thread at a
// time; LastReport() may be called from any thread.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/collector.h"
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
};

// The two families of one report (pure).
std::vector<MetricFamilyData> WalArchiveFamilies(const wal::ContinuityReport& report);

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
  std::string last_logged_;  // the summary last logged, so a lasting gap is logged once
};

}  // namespace rw
