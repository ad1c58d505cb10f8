#include "checks/live/replication_collector.h"

#include <algorithm>
#include <map>
#include <set>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "checks/live/collector_util.h"

namespace rw {
namespace {

// Worst (largest) of two optional lags.
std::optional<double> Max(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

// The reference position: the primary's current WAL position, or on a cascading standby what it
// has received (replayed when it only restores from an archive).
const char* kReplicationSql =
    "with cur as (select case when pg_is_in_recovery()"
    "   then coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
    "   else pg_current_wal_lsn() end as lsn)"
    " select coalesce(application_name, ''), coalesce(host(client_addr), ''), state, sync_state,"
    "  pg_wal_lsn_diff(cur.lsn, sent_lsn), pg_wal_lsn_diff(cur.lsn, write_lsn),"
    "  pg_wal_lsn_diff(cur.lsn, flush_lsn), pg_wal_lsn_diff(cur.lsn, replay_lsn),"
    "  extract(epoch from write_lag), extract(epoch from flush_lag),"
    "  extract(epoch from replay_lag)"
    " from pg_stat_replication, cur"
    " order by application_name, client_addr, pid";

}  // namespace

std::vector<MetricFamilyData> ReplicationFamilies(const std::vector<ReplicaRow>& rows) {
  using Key = std::pair<std::string, std::string>;  // application_name, client_addr
  struct Merged {
    ReplicaRow row;
    std::set<std::string> states, sync_states;
  };
  std::map<Key, Merged> by_key;
  int streaming = 0;
  for (const auto& r : rows) {
    if (r.state == "streaming") ++streaming;
    auto [it, fresh] = by_key.try_emplace(Key{r.application_name, r.client_addr});
    Merged& m = it->second;
    if (fresh) {
      m.row = r;
    } else {
      m.row.sent_lag_bytes = Max(m.row.sent_lag_bytes, r.sent_lag_bytes);
      m.row.write_lag_bytes = Max(m.row.write_lag_bytes, r.write_lag_bytes);
      m.row.flush_lag_bytes = Max(m.row.flush_lag_bytes, r.flush_lag_bytes);
      m.row.replay_lag_bytes = Max(m.row.replay_lag_bytes, r.replay_lag_bytes);
      m.row.write_lag_seconds = Max(m.row.write_lag_seconds.value_or(0), r.write_lag_seconds);
      m.row.flush_lag_seconds = Max(m.row.flush_lag_seconds.value_or(0), r.flush_lag_seconds);
      m.row.replay_lag_seconds = Max(m.row.replay_lag_seconds.value_or(0), r.replay_lag_seconds);
    }
    if (!r.state.empty()) m.states.insert(r.state);
    if (!r.sync_state.empty()) m.sync_states.insert(r.sync_state);
  }

  auto lag_bytes = Family("restorewatch_replica_lag_bytes",
                          "Bytes of WAL a standby is behind the source's current position, by "
                          "stage (sent, write, flush, replay)");
  auto lag_seconds = Family("restorewatch_replica_lag_seconds",
                            "pg_stat_replication write_lag, flush_lag and replay_lag; 0 when the "
                            "standby is caught up and idle (NULL in PostgreSQL)");
  auto state = Family("restorewatch_replica_state",
                      "1 for the walsender state of each standby (pg_stat_replication.state)");
  auto sync_state = Family("restorewatch_replica_sync_state",
                           "1 for the synchronous state of each standby "
                           "(pg_stat_replication.sync_state)");
  for (const auto& [key, m] : by_key) {
    const auto& [app, addr] = key;
    auto labels = [&](const char* name, const std::string& value) {
      return Labels{{"application_name", app}, {"client_addr", addr}, {name, value}};
    };
    const ReplicaRow& r = m.row;
    AddSample(lag_bytes, r.sent_lag_bytes, labels("kind", "sent"));
    AddSample(lag_bytes, r.write_lag_bytes, labels("kind", "write"));
    AddSample(lag_bytes, r.flush_lag_bytes, labels("kind", "flush"));
    AddSample(lag_bytes, r.replay_lag_bytes, labels("kind", "replay"));
    AddSample(lag_seconds, r.write_lag_seconds.value_or(0), labels("kind", "write"));
    AddSample(lag_seconds, r.flush_lag_seconds.value_or(0), labels("kind", "flush"));
    AddSample(lag_seconds, r.replay_lag_seconds.value_or(0), labels("kind", "replay"));
    for (const auto& s : m.states) AddSample(state, 1, labels("state", s));
    for (const auto& s : m.sync_states) AddSample(sync_state, 1, labels("sync_state", s));
  }

  std::vector<MetricFamilyData> out;
  out.push_back(Gauge("restorewatch_replication_streaming_replicas",
                      "Standbys (walsenders) in state streaming, as the source sees them",
                      streaming));
  AppendFamily(out, std::move(lag_bytes));
  AppendFamily(out, std::move(lag_seconds));
  AppendFamily(out, std::move(state));
  AppendFamily(out, std::move(sync_state));
  return out;
}

std::vector<MetricFamilyData> ReplicationCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  std::vector<ReplicaRow> rows;
  try {
    auto conn = OpenMonitorSession(ctx.target.source, ctx.target, ctx.cancel);
    pqxx::nontransaction tx(*conn);
    for (const auto& f : tx.exec(kReplicationSql)) {
      if (f[2].is_null())
        throw Error(ErrorKind::kQuery,
                    "replication: pg_stat_replication hides walsender details from this role",
                    "GRANT pg_monitor TO the monitoring role");
      ReplicaRow r;
      r.application_name = f[0].as<std::string>();
      r.client_addr = f[1].as<std::string>();
      r.state = f[2].as<std::string>();
      r.sync_state = TextOr(f[3]);
      r.sent_lag_bytes = OptDouble(f[4]);
      r.write_lag_bytes = OptDouble(f[5]);
      r.flush_lag_bytes = OptDouble(f[6]);
      r.replay_lag_bytes = OptDouble(f[7]);
      r.write_lag_seconds = OptDouble(f[8]);
      r.flush_lag_seconds = OptDouble(f[9]);
      r.replay_lag_seconds = OptDouble(f[10]);
      rows.push_back(std::move(r));
    }
  } catch (...) {
    RethrowAsError("replication");
  }
  return ReplicationFamilies(rows);
}

}  // namespace rw
