#include "checks/live/slots_collector.h"

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "checks/live/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> SlotFamilies(const std::vector<SlotRow>& slots) {
  auto active = Family("restorewatch_replication_slot_active",
                       "1 if the replication slot is in use by a consumer, else 0");
  auto retained = Family("restorewatch_replication_slot_retained_wal_bytes",
                         "Bytes of WAL kept for the replication slot (current position minus "
                         "restart_lsn)");
  auto safe = Family("restorewatch_replication_slot_safe_wal_size_bytes",
                     "Bytes of WAL that can still be written before the slot is lost "
                     "(pg_replication_slots.safe_wal_size; only with max_slot_wal_keep_size)");
  auto status =
      Family("restorewatch_replication_slot_wal_status",
             "1 for the slot's current wal_status (reserved, extended, unreserved, lost)");
  for (const auto& s : slots) {
    Labels labels{{"slot_name", s.slot_name}, {"slot_type", s.slot_type}};
    AddSample(active, s.active ? 1 : 0, labels);
    AddSample(retained, s.retained_wal_bytes, labels);
    AddSample(safe, s.safe_wal_size_bytes, labels);
    if (s.wal_status)
      AddSample(status, 1, {{"slot_name", s.slot_name}, {"wal_status", *s.wal_status}});
  }
  std::vector<MetricFamilyData> out;
  AppendFamily(out, std::move(active));
  AppendFamily(out, std::move(retained));
  AppendFamily(out, std::move(safe));
  AppendFamily(out, std::move(status));
  return out;
}

std::vector<MetricFamilyData> SlotsCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  std::vector<SlotRow> slots;
  try {
    auto conn = OpenMonitorSession(ctx.target.source, ctx.target, ctx.cancel);
    // wal_status and safe_wal_size appeared in PostgreSQL 13.
    std::string extra =
        ServerMajor(*conn) >= 13 ? "wal_status, safe_wal_size" : "null::text, null::bigint";
    pqxx::nontransaction tx(*conn);
    pqxx::result res = tx.exec(
        "with cur as (select case when pg_is_in_recovery()"
        "   then coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
        "   else pg_current_wal_lsn() end as lsn)"
        " select slot_name, slot_type, active, pg_wal_lsn_diff(cur.lsn, restart_lsn), " +
        extra + " from pg_replication_slots, cur where not temporary order by slot_name");
    for (const auto& f : res) {
      SlotRow s;
      s.slot_name = f[0].as<std::string>();
      s.slot_type = f[1].as<std::string>();
      s.active = f[2].as<bool>();
      s.retained_wal_bytes = OptDouble(f[3]);
      s.safe_wal_size_bytes = OptDouble(f[5]);
      if (!f[4].is_null()) s.wal_status = f[4].as<std::string>();
      slots.push_back(std::move(s));
    }
  } catch (...) {
    RethrowAsError("slots");
  }
  return SlotFamilies(slots);
}

}  // namespace rw
