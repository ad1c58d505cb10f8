#pragma once
// ArchiverCollector ("archiver"): WAL archiving on the source, when it is a primary (on a standby
// it returns no series: archiving and pg_current_wal_lsn() belong to the primary).
//   restorewatch_archiver_archived_total / _failed_total        pg_stat_archiver counters
//   restorewatch_archiver_last_archived_timestamp_seconds       absent until something was archived
//   restorewatch_archiver_last_failed_timestamp_seconds         absent until an attempt failed
//   restorewatch_archiver_ready_segments                        *.ready files in archive_status
//   restorewatch_wal_current_lsn_bytes                          pg_current_wal_lsn() as bytes
// It never decides "stalled": an idle database stops archiving naturally, so rules combine the
// ready count, the times and the LSN. The ready count needs pg_ls_archive_statusdir() (PostgreSQL
// 12+, superuser or pg_monitor); when the role may not call it, that one series is left out (and
// a warning logged once) instead of failing the collector. Throws Error when the source cannot be
// reached or queried. Called by one thread at a time.
#include <optional>

#include "agent/collector.h"

namespace rw {

// One reading of the archiver, as queried (nullopt = SQL NULL or not readable).
struct ArchiverReading {
  double archived_count = 0;
  double failed_count = 0;
  std::optional<double> last_archived_time;  // Unix seconds
  std::optional<double> last_failed_time;    // Unix seconds
  std::optional<double> ready_segments;      // nullopt when not permitted or not available
  std::optional<double> current_lsn_bytes;
};

// The families of one reading (pure; empty families left out).
std::vector<MetricFamilyData> ArchiverFamilies(const ArchiverReading& r);

class ArchiverCollector : public Collector {
 public:
  std::string name() const override { return "archiver"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;

 private:
  bool warned_ready_ = false;  // the ready-count permission warning is logged once
};

}  // namespace rw
