#pragma once
// StandbyCollector ("standby"): each configured standby connection (target.standbys), seen from
// the standby itself, labelled server = target.standby_names[i] ("standby<i>" when unnamed).
//   restorewatch_standby_up{server}                    1 if it could be reached and queried, else 0
//   restorewatch_pg_in_recovery{server}                1 while it is a standby
//   restorewatch_standby_wal_receiver_up{server}       1 if pg_stat_wal_receiver.status = streaming
//   restorewatch_standby_received_lsn_bytes{server}    pg_last_wal_receive_lsn() as bytes
//   restorewatch_standby_replayed_lsn_bytes{server}    pg_last_wal_replay_lsn() as bytes
//   restorewatch_standby_replay_delay_seconds{server}  now() - pg_last_xact_replay_timestamp(), but
//                                                      0 once everything received is replayed (an
//                                                      idle primary must not look like lag)
//   restorewatch_standby_replay_paused{server}         1 if replay is paused or a pause is
//   requested
// One standby being down is a finding, not a failure: its standby_up is 0 and its other series
// vanish. The collector throws only for cancellation and for a role that may not see
// pg_stat_wal_receiver's status (Error kQuery with a GRANT hint: reporting "receiver down" would be
// a lie). The standbys are probed one after the other,
// each bounded by connect_timeout and statement_timeout. Needs pg_monitor (pg_stat_wal_receiver
// hides its status from other roles). Called by one thread at a time.
#include <optional>

#include "agent/collector.h"

namespace rw {

// What one standby said (nullopt = SQL NULL).
struct StandbyReading {
  bool in_recovery = false;
  std::optional<std::string> receiver_status;  // nullopt: no WAL receiver running
  std::optional<double> received_lsn_bytes;
  std::optional<double> replayed_lsn_bytes;
  std::optional<double> since_last_replayed_commit_seconds;  // now() - last replayed commit time
  std::optional<bool> replay_paused;                         // only in recovery
  bool receiver_hidden = false;  // a WAL receiver runs but this role may not see its status
};

// The replay delay to report: absent when not in recovery or when no commit was ever replayed,
// 0 when the replayed position has reached the received one, else the time since the last
// replayed commit (never negative: the commit time comes from the primary's clock).
std::optional<double> ReplayDelaySeconds(const StandbyReading& r);

// The families for all standbys; a nullopt reading means that standby was unreachable (pure).
std::vector<MetricFamilyData> StandbyFamilies(
    const std::vector<std::pair<std::string, std::optional<StandbyReading>>>& readings);

// The server label of standby i.
std::string StandbyLabel(const TargetConfig& target, std::size_t i);

class StandbyCollector : public Collector {
 public:
  std::string name() const override { return "standby"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;

 private:
  std::vector<bool> was_up_;  // per standby, for logging transitions only
};

}  // namespace rw
