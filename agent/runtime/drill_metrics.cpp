#include "agent/runtime/drill_metrics.h"

#include <set>

#include "agent/drill_failure.h"
#include "agent/runtime/schedule.h"
#include "checks/registry.h"

namespace rw {

std::vector<MetricFamilyData> DrillFamilies(const TargetConfig& target,
                                            const DrillHistorySummary& h, bool running) {
  std::vector<MetricFamilyData> f;
  f.push_back(Gauge("restorewatch_drill_running", "1 while a restore drill runs for the target.",
                    running ? 1 : 0));
  if (target.drill.rto.count() > 0)
    f.push_back(Gauge("restorewatch_drill_rto_objective_seconds",
                      "Configured recovery time objective.", ToSeconds(target.drill.rto)));
  // Counters for every result, so rate() works from the first drill on.
  MetricFamilyData runs{"restorewatch_drill_runs_total",
                        "Restore drills ended, by result.",
                        MetricType::kCounter,
                        {}};
  for (const char* res : {"success", "failure", "error"}) {
    auto it = h.runs_by_result.find(res);
    runs.samples.push_back(
        {{{"result", res}}, static_cast<double>(it == h.runs_by_result.end() ? 0 : it->second)});
  }
  f.push_back(runs);
  if (h.last_run)
    f.push_back(Gauge("restorewatch_drill_last_run_timestamp_seconds",
                      "End of the last drill, whatever its result.", *h.last_run));
  if (h.last_success)
    f.push_back(Gauge("restorewatch_drill_last_success_timestamp_seconds",
                      "End of the last drill that passed every check.", *h.last_success));
  if (h.last_failure)
    f.push_back(Gauge("restorewatch_drill_last_failure_timestamp_seconds",
                      "End of the last drill that failed or could not run.", *h.last_failure));
  if (!h.last_report) return f;
  const DrillReport& r = *h.last_report;
  f.push_back(Gauge("restorewatch_drill_success", "1 if the last drill passed every check.",
                    r.result == DrillResult::kSuccess ? 1 : 0));
  // Why the last drill did not pass, as bounded labels for the alert; absent when it passed.
  if (auto why = ClassifyDrillFailure(r))
    f.push_back(Gauge("restorewatch_drill_last_failure_info",
                      "1 when the last drill did not pass: the stage that ended it and the kind "
                      "of failure; absent when it passed.",
                      1, {{"stage", why->stage}, {"kind", why->kind}}));
  MetricFamilyData stages{"restorewatch_drill_stage_duration_seconds",
                          "Duration of each stage of the last drill; total is the measured RTO.",
                          MetricType::kGauge,
                          {}};
  std::set<std::string> seen;
  for (const auto& s : r.stages)
    if (seen.insert(s.name).second)
      stages.samples.push_back({{{"stage", s.name}}, s.duration_seconds});
  f.push_back(stages);
  if (r.backup) {
    f.push_back(
        Gauge("restorewatch_drill_backup_info", "The backup the last drill used.", 1,
              {{"backup_id", r.backup->id}, {"kind", r.backup->kind}, {"tool", r.backup->tool}}));
    f.push_back(Gauge("restorewatch_drill_backup_start_timestamp_seconds",
                      "Snapshot time of the backup the last drill used.", r.backup->started_at));
  }
  if (r.restored_size_bytes)
    f.push_back(Gauge("restorewatch_drill_restored_size_bytes", "Size of the restored database(s).",
                      static_cast<double>(r.restored_size_bytes)));
  MetricFamilyData check_ok{"restorewatch_drill_check_success",
                            "1 if the check passed (or warned), 0 if it failed or "
                            "could not run; absent when not run.",
                            MetricType::kGauge,
                            {}};
  MetricFamilyData compared{"restorewatch_drill_tables_compared",
                            "Tables compared in the last drill.",
                            MetricType::kGauge,
                            {}};
  MetricFamilyData mismatched{"restorewatch_drill_tables_mismatched",
                              "Tables that did not match in the last drill.",
                              MetricType::kGauge,
                              {}};
  MetricFamilyData indexes{"restorewatch_drill_indexes_checked",
                           "Indexes verified in the last drill.",
                           MetricType::kGauge,
                           {}};
  double rows = 0;
  std::optional<double> recovered;
  for (const auto& c : r.checks) {
    if (c.outcome != Outcome::kSkipped)
      check_ok.samples.push_back(
          {{{"check", c.name}},
           c.outcome == Outcome::kPass || c.outcome == Outcome::kWarn ? 1.0 : 0.0});
    if (MetricsOfCheck(c.name).tables) {
      compared.samples.push_back({{{"check", c.name}}, static_cast<double>(c.tables_compared)});
      mismatched.samples.push_back({{{"check", c.name}}, static_cast<double>(c.tables_mismatched)});
    }
    if (MetricsOfCheck(c.name).indexes)
      indexes.samples.push_back({{{"check", c.name}}, static_cast<double>(c.indexes_checked)});
    rows += static_cast<double>(c.rows_checksummed);
    if (c.recovered_timestamp) recovered = std::max(recovered.value_or(0), *c.recovered_timestamp);
  }
  f.push_back(check_ok);
  f.push_back(compared);
  f.push_back(mismatched);
  if (!indexes.samples.empty()) f.push_back(indexes);
  for (const auto& c : r.checks)
    if (MetricsOfCheck(c.name).rows_checksummed && c.outcome != Outcome::kSkipped &&
        c.outcome != Outcome::kError) {
      f.push_back(Gauge("restorewatch_drill_rows_checksummed",
                        "Rows hashed on the restored side in the last drill.", rows));
      break;
    }
  // Coverage of the last drill (from the check whose row declares it: checksum, which proves
  // content): absent when that check did not run.
  for (const auto& c : r.checks) {
    if (!MetricsOfCheck(c.name).coverage || c.outcome == Outcome::kSkipped) continue;
    if (c.rows_verified + c.rows_unverified + c.tables_unverified + c.tables_compared == 0) break;
    f.push_back(
        Gauge("restorewatch_drill_rows_verified",
              "Source rows the last drill proved the copy holds as they were at the backup.",
              static_cast<double>(c.rows_verified)));
    f.push_back(Gauge("restorewatch_drill_rows_unverified",
                      "Source rows the last drill could not prove (written since the backup, or "
                      "an unexplained difference).",
                      static_cast<double>(c.rows_unverified)));
    f.push_back(Gauge("restorewatch_drill_tables_unverified",
                      "Tables the last drill could not prove, see the report for each reason.",
                      static_cast<double>(c.tables_unverified)));
    break;
  }
  // A physical copy knows its own recovery point: the last commit recovery replayed.
  if (!r.copy_lsn.empty() && r.copy_consistent_at > 0)
    recovered = std::max(recovered.value_or(0), r.copy_consistent_at);
  if (recovered)
    f.push_back(Gauge("restorewatch_drill_recovered_timestamp_seconds",
                      "Newest row time present in the restored copy: the real recovery point.",
                      *recovered));
  return f;
}

MetricFamilyData DrillSkippedFamily(const std::map<std::string, std::int64_t>& skipped) {
  MetricFamilyData f{"restorewatch_drill_skipped_total",
                     "Scheduled drill slots not run, by reason (still_running: the previous drill "
                     "of the target was still running; concurrency_limit: no free drill slot "
                     "before the next slot came).",
                     MetricType::kCounter,
                     {}};
  for (SkipReason r : kSkipReasons) {
    auto it = skipped.find(SkipReasonName(r));
    f.samples.push_back({{{"reason", SkipReasonName(r)}},
                         static_cast<double>(it == skipped.end() ? 0 : it->second)});
  }
  return f;
}

}  // namespace rw
