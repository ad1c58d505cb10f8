#include "checks/live/archiver_collector.h"

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "checks/live/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> ArchiverFamilies(const ArchiverReading& r) {
  std::vector<MetricFamilyData> out;
  auto archived = Family("restorewatch_archiver_archived_total",
                         "WAL files archived successfully (pg_stat_archiver.archived_count)",
                         MetricType::kCounter);
  AddSample(archived, r.archived_count);
  AppendFamily(out, std::move(archived));
  auto failed = Family("restorewatch_archiver_failed_total",
                       "Failed attempts to archive WAL files (pg_stat_archiver.failed_count)",
                       MetricType::kCounter);
  AddSample(failed, r.failed_count);
  AppendFamily(out, std::move(failed));
  auto last_ok = Family("restorewatch_archiver_last_archived_timestamp_seconds",
                        "Time of the last successful archive_command (absent if none since the "
                        "statistics were reset)");
  AddSample(last_ok, r.last_archived_time);
  AppendFamily(out, std::move(last_ok));
  auto last_failed = Family("restorewatch_archiver_last_failed_timestamp_seconds",
                            "Time of the last failed archive_command (absent if none since the "
                            "statistics were reset)");
  AddSample(last_failed, r.last_failed_time);
  AppendFamily(out, std::move(last_failed));
  auto ready =
      Family("restorewatch_archiver_ready_segments",
             "WAL segments waiting to be archived (.ready files in pg_wal/archive_status)");
  AddSample(ready, r.ready_segments);
  AppendFamily(out, std::move(ready));
  auto lsn = Family("restorewatch_wal_current_lsn_bytes",
                    "Current WAL write position of the primary, as bytes since 0/0");
  AddSample(lsn, r.current_lsn_bytes);
  AppendFamily(out, std::move(lsn));
  return out;
}

std::vector<MetricFamilyData> ArchiverCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  ArchiverReading r;
  try {
    auto conn = OpenMonitorSession(ctx.target.source, ctx.target, ctx.cancel);
    int major = ServerMajor(*conn);
    {
      pqxx::nontransaction tx(*conn);
      if (tx.exec1("select pg_is_in_recovery()")[0].as<bool>()) return {};
      pqxx::row row = tx.exec1(
          "select archived_count, failed_count,"
          " extract(epoch from last_archived_time), extract(epoch from last_failed_time),"
          " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
          " from pg_stat_archiver");
      r.archived_count = row[0].as<double>();
      r.failed_count = row[1].as<double>();
      r.last_archived_time = OptDouble(row[2]);
      r.last_failed_time = OptDouble(row[3]);
      r.current_lsn_bytes = OptDouble(row[4]);
    }
    if (major >= 12) {
      // Its own statement and transaction: a permission error must not spoil the readings above.
      try {
        pqxx::nontransaction tx(*conn);
        r.ready_segments = tx.exec1(
                                 "select count(*) from pg_ls_archive_statusdir()"
                                 " where name like '%.ready'")[0]
                               .as<double>();
      } catch (const pqxx::sql_error& e) {
        // Only insufficient_privilege is tolerated (libpqxx 6 does not always fill sqlstate()).
        if (e.sqlstate() != "42501" && !dynamic_cast<const pqxx::insufficient_privilege*>(&e))
          throw;
        if (!warned_ready_)
          LogWarn("archiver: cannot count ready WAL segments",
                  {{"target", ctx.target.name},
                   {"reason", "permission denied for pg_ls_archive_statusdir()"},
                   {"hint", "GRANT pg_monitor TO the monitoring role"}});
        warned_ready_ = true;
      }
    }
  } catch (...) {
    RethrowAsError("archiver");
  }
  return ArchiverFamilies(r);
}

}  // namespace rw
