#include "checks/live/table_activity_collector.h"

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/live/collector_util.h"

namespace rw {
namespace {

std::string KeyPart(const std::string& name) {
  if (name.find_first_of(".\"") == std::string::npos) return name;
  return QuoteIdent(name);
}

}  // namespace

std::string ActivityTableKey(const std::string& schema, const std::string& table) {
  return KeyPart(schema) + "." + KeyPart(table);
}

std::vector<MetricFamilyData> TableActivityCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  ActivitySample sample;
  try {
    auto conn = OpenMonitorSession(ctx.target.source, ctx.target, ctx.cancel);
    pqxx::nontransaction tx(*conn);
    // The horizon first: a backup taken after this sample's stamp saw at least these commits.
    // Its own statement, so a role that may not call it (or a standby) still gets counters.
    try {
      pqxx::row h = tx.exec1(
          "select pg_current_snapshot()::text, current_setting('track_commit_timestamp') = 'on'");
      sample.snapshot = h[0].as<std::string>("");
      sample.commit_timestamps = h[1].as<bool>(false);
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error&) {
      sample.snapshot.clear();
    }
    // pg_stat_user_tables' rows, but only the four counters read here: the view computes some
    // twenty pg_stat_get_* per table and joins pg_index for the index columns, which on 1,000
    // tables was most of a tick's database time. Same tables: relkind r, t, m, p outside
    // pg_catalog, information_schema and pg_toast*.
    pqxx::result res = tx.exec(
        "select n.nspname, c.relname, pg_stat_get_tuples_inserted(c.oid),"
        " pg_stat_get_tuples_updated(c.oid), pg_stat_get_tuples_deleted(c.oid),"
        " pg_stat_get_live_tuples(c.oid)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 't', 'm', 'p')"
        " and n.nspname not in ('pg_catalog', 'information_schema')"
        " and n.nspname !~ '^pg_toast'");
    for (const auto& f : res) {
      TableCounters c;
      c.n_tup_ins = f[2].as<std::int64_t>(0);
      c.n_tup_upd = f[3].as<std::int64_t>(0);
      c.n_tup_del = f[4].as<std::int64_t>(0);
      c.n_live_tup = f[5].as<std::int64_t>(0);
      sample.tables[ActivityTableKey(f[0].as<std::string>(), f[1].as<std::string>())] = c;
    }
  } catch (...) {
    RethrowAsError("table_activity");
  }
  sample.ts = NowUnix();
  if (ctx.activity) ctx.activity->Append(sample);
  std::vector<MetricFamilyData> out;
  out.push_back(Gauge("restorewatch_table_activity_tables",
                      "Tables in the last pg_stat_user_tables sample of the source's database",
                      static_cast<double>(sample.tables.size())));
  out.push_back(Gauge("restorewatch_table_activity_last_sample_timestamp_seconds",
                      "When the last table activity sample was read", sample.ts));
  return out;
}

}  // namespace rw
