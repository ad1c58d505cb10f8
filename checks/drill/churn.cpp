#include "checks/drill/churn.h"

#include <cmath>
#include <cstdlib>

#include "agent/errors.h"
#include "agent/units.h"

namespace rw {

std::optional<TableChurn> ChurnBasis::For(const std::string& table) const {
  if (!covered) return std::nullopt;
  auto it = tables.find(table);
  if (it == tables.end()) return std::nullopt;
  return it->second;
}

namespace {

// What would have supplied the missing evidence.
constexpr const char* kAdvice =
    "run the daemon (restorewatch run) so that its activity samples cover the next backup, or "
    "take the backup with `restorewatch dump` (an exact reference)";

std::string NoHistory(ActivityStore* store, double backup_time) {
  std::string what = "no activity history covers the backup time " + FormatTimestamp(backup_time);
  std::optional<double> first;
  if (store) {
    try {
      first = store->Earliest();
    } catch (const Error&) {
    }
  }
  what += first ? " (the daemon's samples start at " + FormatTimestamp(*first) + ")"
                : " (there are no activity samples for this target)";
  return what + "; " + kAdvice;
}

}  // namespace

ChurnBasis ComputeChurn(ActivityStore* store, double backup_time, const ActivitySample& now) {
  ChurnBasis b;
  b.counters_ts = now.ts;
  if (!store) {
    b.note = NoHistory(nullptr, backup_time);
    return b;
  }
  std::optional<ActivitySample> s0;
  try {
    s0 = store->AtOrBefore(backup_time);
  } catch (const Error& e) {
    b.note = std::string("activity samples unreadable (") + e.what() + "); " + kAdvice;
    return b;
  }
  if (!s0) {
    b.note = NoHistory(store, backup_time);
    return b;
  }
  b.covered = true;
  b.sample_ts = s0->ts;
  b.snapshot = s0->snapshot;
  b.tables = ActivityStore::Churn(*s0, now);
  for (const auto& [name, c] : now.tables)
    if (!s0->tables.count(name)) b.created_since.insert(name);
  return b;
}

RowCountBound RowCountBoundFor(std::int64_t source_rows, const std::optional<TableChurn>& churn,
                               const ChecksConfig& config) {
  RowCountBound b;
  if (config.compare == CompareMode::kExact) return b;
  const std::int64_t slack = config.row_count.slack_rows;
  if (churn) {
    b.churn = churn;
    if (!churn->touched()) return b;  // untouched: exact, slack does not apply
    b.kind = BoundKind::kChurn;
    b.below = churn->deleted + slack;
    b.above = churn->inserted + slack;
    return b;
  }
  b.kind = BoundKind::kUnknown;
  (void)source_rows;
  return b;
}

RowCountVerdict JudgeRowCount(std::int64_t source_rows, std::int64_t restored_rows,
                              const RowCountBound& bound, const ChecksConfig& config) {
  RowCountVerdict v;
  const std::int64_t diff = source_rows - restored_rows;  // > 0: the source has more rows
  if (diff == 0) return v;
  const std::string counts =
      "restored " + std::to_string(restored_rows) + " rows, source " + std::to_string(source_rows);
  const bool within = diff > 0 ? diff <= bound.above : -diff <= bound.below;
  switch (bound.kind) {
    case BoundKind::kExact:
      v.outcome = Outcome::kFail;
      v.message = counts + (config.compare == CompareMode::kExact
                                ? " (exact mode)"
                                : ": untouched since the backup, counts must match");
      return v;
    case BoundKind::kChurn:
      if (within) {
        v.message = counts + ": within the churn since the backup";
        return v;
      }
      v.outcome = Outcome::kFail;
      v.message = counts + ": beyond the churn since the backup (+" +
                  std::to_string(bound.churn->inserted) + " inserted, -" +
                  std::to_string(bound.churn->deleted) + " deleted, slack " +
                  std::to_string(config.row_count.slack_rows) + ")";
      return v;
    case BoundKind::kUnknown:
      v.outcome = Outcome::kError;
      v.message = counts +
                  ": unverified (the difference may come from the backup or from writes since; "
                  "nothing records this table's churn since the backup)";
      return v;
  }
  return v;
}

const AppendOnlyTable* FindAppendOnly(const std::string& table, const ChecksConfig& config) {
  for (const auto& a : config.checksum.append_only)
    if (a.table == table) return &a;
  return nullptr;
}

ChecksumPlan PlanChecksum(const std::string& table, const std::optional<TableChurn>& churn,
                          const ChecksConfig& config) {
  if (config.compare == CompareMode::kExact) return ChecksumPlan::kCompare;
  if (churn && !churn->touched()) return ChecksumPlan::kCompare;
  if (FindAppendOnly(table, config)) return ChecksumPlan::kAppendOnly;
  if (!churn) return ChecksumPlan::kCompareUnknown;
  return ChecksumPlan::kSkipTouched;
}

}  // namespace rw
