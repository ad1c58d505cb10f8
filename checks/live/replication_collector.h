#pragma once
// ReplicationCollector ("replication"): the source's view of its standbys, one series set per
// walsender in pg_stat_replication, labelled application_name and client_addr (empty for a unix
// socket); never a pid, so series survive reconnects and vanish with the standby.
//   restorewatch_replica_lag_bytes{kind=sent|write|flush|replay}  pg_wal_lsn_diff(current, X_lsn)
//   restorewatch_replica_lag_seconds{kind=write|flush|replay}     the write/flush/replay_lag
//   columns restorewatch_replica_state{state}, restorewatch_replica_sync_state{sync_state}   1
//   restorewatch_replication_streaming_replicas                   walsenders in state streaming
// Lag seconds: PostgreSQL sets the lag columns to NULL once a standby has replayed everything and
// no new WAL arrives, so NULL is reported as 0 (caught up and idle); the byte lags say the same.
// "current" is pg_current_wal_lsn() on a primary, and on a cascading standby the last received
// (else replayed) position. Two walsenders with the same application_name and client_addr (e.g.
// pg_basebackup's two connections) share one series set: the larger lag of each kind is kept.
// Needs pg_monitor (or pg_read_all_stats): without it PostgreSQL hides other roles' walsender
// details, and the collector throws Error(kQuery) saying so instead of exporting blanks. Throws
// Error when the source cannot be reached or queried. Called by one thread at a time.
#include <optional>

#include "agent/collector.h"

namespace rw {

// One row of pg_stat_replication, as queried.
struct ReplicaRow {
  std::string application_name;
  std::string client_addr;  // "" for a unix socket
  std::string state;        // streaming, catchup, startup, backup, stopping
  std::string sync_state;   // async, potential, sync, quorum
  std::optional<double> sent_lag_bytes, write_lag_bytes, flush_lag_bytes, replay_lag_bytes;
  std::optional<double> write_lag_seconds, flush_lag_seconds, replay_lag_seconds;  // NULL = idle
};

// The families for these rows (pure; empty families left out, streaming_replicas always present).
std::vector<MetricFamilyData> ReplicationFamilies(const std::vector<ReplicaRow>& rows);

class ReplicationCollector : public Collector {
 public:
  std::string name() const override { return "replication"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
};

}  // namespace rw
