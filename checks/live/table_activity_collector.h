#pragma once
// TableActivityCollector ("table_activity"): samples pg_stat_user_tables of the source's database
// (n_tup_ins, n_tup_upd, n_tup_del, n_live_tup per table) and the source's transaction horizon
// (pg_current_snapshot(), the evidence row-level proof needs, checks/drill/row_proof.h; and whether
// track_commit_timestamp is on), and appends the sample to
// ctx.activity (the ActivityStore the drill's row_count/checksum checks read to bound churn since
// a backup's snapshot). Skips the store when ctx.activity is null. Exports only two aggregate
// series, never per-table ones (cardinality):
//   restorewatch_table_activity_tables                          tables in the last sample
//   restorewatch_table_activity_last_sample_timestamp_seconds   when it was read
// The sample is stamped with the agent's clock after the query returned, so a sample never claims
// to predate the counters it holds (counters themselves trail writes by up to the pgstat flush
// interval, which only makes the churn bound larger). Table keys are "schema.table"; a name part
// containing '.' or '"' is double-quoted (so QualifiedName() splits it back). Throws Error when
// the source cannot be reached or queried, or the store cannot be written. Called by one thread at
// a time.
#include "agent/collector.h"

namespace rw {

// The ActivitySample key of a table.
std::string ActivityTableKey(const std::string& schema, const std::string& table);

class TableActivityCollector : public Collector {
 public:
  std::string name() const override { return "table_activity"; }
  std::vector<MetricFamilyData> Collect(CollectContext& ctx) override;
};

}  // namespace rw
