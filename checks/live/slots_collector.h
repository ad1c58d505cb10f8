#pragma once
// SlotsCollector ("slots"): the source's replication slots (temporary ones excluded, they belong
// to a single session), labelled slot_name and slot_type; a dropped slot's series vanish with it.
//   restorewatch_replication_slot_active                1 if a consumer is connected
//   restorewatch_replication_slot_retained_wal_bytes    pg_wal_lsn_diff(current, restart_lsn);
//                                                       absent when restart_lsn is NULL
//   restorewatch_replication_slot_safe_wal_size_bytes   only when not NULL (max_slot_wal_keep_size
//                                                       set, slot not lost)
//   restorewatch_replication_slot_wal_status{slot_name, wal_status}   1 (reserved, extended,
//                                                       unreserved, lost)
// "current" is pg_current_wal_lsn() on a primary, the last received (else replayed) position on a
// standby. wal_status and safe_wal_size exist from PostgreSQL 13; on older servers those series
// are left out. Works for any role (pg_replication_slots is public). Throws Error when the source
// cannot be reached or queried. Called by one thread at a time.
#include <optional>

#include "agent/collector.h"

namespace rw {

struct SlotRow {
  std::string slot_name;
  std::string slot_type;  // physical, logical
  bool active = false;
  std::optional<double> retained_wal_bytes;
  std::optional<double> safe_wal_size_bytes;
  std::optional<std::string> wal_status;
};

// The families for these slots (pure; empty families left out).
std::vector<MetricFamilyData> SlotFamilies(const std::vector<SlotRow>& slots);

class SlotsCollector : public Collector {
 public:
  std::string name() const override { return "slots"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
};

}  // namespace rw
