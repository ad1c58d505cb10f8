#include "checks/drill/row_count_check.h"

#include <set>

#include "agent/units.h"
#include "checks/drill/churn.h"
#include "checks/drill/reference.h"
#include "checks/drill/table_scan.h"

namespace rw {
namespace {

std::string NameList(const std::vector<std::string>& names, std::size_t max = 5) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += " and " + std::to_string(names.size() - max) + " more";
  return out;
}

struct Judged {
  TableFinding finding;
  RowCountBound bound;
};

// Against an exact reference (checks/drill/reference.h): every table's count must equal the one
// recorded in the dump's snapshot; no churn bounds.
CheckResult RunAgainstReference(CheckContext& ctx, const std::string& name) {
  auto ref = ReferenceState::For(ctx);
  ref->Ensure(ctx);
  CheckResult r;
  r.name = name;
  if (!ref->problem().empty()) {
    r.outcome = Outcome::kFail;
    r.message = ref->problem();
    return r;
  }
  std::vector<std::string> bad;
  Outcome outcome = Outcome::kPass;
  for (const auto& [n, t] : ref->tables()) {
    TableFinding f;
    f.table = n;
    if (t.ref) f.source_rows = t.ref->rows;
    if (!t.ref) {
      f.outcome = Outcome::kWarn;
      f.message = "only in the restored copy: not in the reference";
      f.restored_rows = t.rows;
    } else if (!t.in_restored) {
      f.outcome = Outcome::kFail;
      f.message = "missing from the restored copy (the reference has it)";
    } else if (!t.error.empty()) {
      f.outcome = Outcome::kError;
      f.message = "cannot count in the restored copy: " + t.error;
      ++r.tables_unverified;
    } else {
      ++r.tables_compared;
      f.restored_rows = t.rows;
      if (t.rows == t.ref->rows) continue;
      f.outcome = Outcome::kFail;
      f.message = "restored " + std::to_string(t.rows) + " rows, the reference has " +
                  std::to_string(t.ref->rows);
      ++r.tables_mismatched;
    }
    if (f.outcome == Outcome::kFail) bad.push_back(n);
    outcome = Worse(outcome, f.outcome);
    r.details.push_back(f);
  }
  const Reference& rf = ref->reference();
  const LargeObjectScan& lo = ref->restored_large_objects();
  std::string lo_note;
  if (rf.large_objects && lo.scanned && rf.large_objects->count != lo.count) {
    TableFinding f;
    f.table = "pg_largeobject";
    f.source_rows = rf.large_objects->count;
    f.restored_rows = lo.count;
    f.outcome = Outcome::kFail;
    f.message = "restored " + std::to_string(lo.count) + " large objects, the reference has " +
                std::to_string(rf.large_objects->count);
    bad.push_back(f.table);
    outcome = Outcome::kFail;
    r.details.push_back(f);
  } else if (!rf.large_objects) {
    lo_note = "; large objects not in the reference";
  }
  std::string msg = std::to_string(r.tables_compared) +
                    " tables compared exactly against the " +
                    ref->Label(ctx) + " (snapshot at " +
                    FormatTimestamp(rf.snapshot_time) + "), " +
                    std::to_string(r.tables_mismatched) + " mismatched" + lo_note;
  if (!bad.empty()) msg = "row counts differ from the reference: " + NameList(bad) + "; " + msg;
  if (ref->tables().empty()) msg = "no tables to compare (the reference lists none)";
  r.outcome = outcome;
  r.message = msg;
  return r;
}

}  // namespace

void RowCountCheck::BeforeRestore(CheckContext& ctx) {
  if (ctx.exact_point) return;  // the runner takes the live reference
  if (!ctx.backup.reference_path.empty()) return ReferenceState::For(ctx)->Prepare(ctx);
  ScanState::For(ctx)->PrepareSource(ctx);
}

CheckResult RowCountCheck::Run(CheckContext& ctx) {
  if (ReferenceState::InUse(ctx)) return RunAgainstReference(ctx, name());
  const ChecksConfig& cfg = ctx.target.checks;
  auto scan = ScanState::For(ctx);
  scan->Ensure(ctx);
  const SideScan& src = scan->source();
  const SideScan& rst = scan->restored();
  const bool churn_mode = cfg.compare == CompareMode::kChurn;
  const ChurnBasis* churn = churn_mode ? &scan->Churn(ctx) : nullptr;

  CheckResult r;
  r.name = name();
  std::set<std::string> names;
  for (const auto& t : src.tables) names.insert(t.name);
  for (const auto& t : rst.tables) names.insert(t.name);

  std::vector<Judged> judged;
  std::vector<TableFinding> other;  // missing tables, unreadable tables
  std::size_t touched = 0;
  for (const auto& n : names) {
    auto s = src.scans.find(n);
    auto d = rst.scans.find(n);
    TableFinding f;
    f.table = n;
    if (d == rst.scans.end()) {
      const bool created = churn && churn->created_since.count(n);
      f.outcome = created ? Outcome::kWarn : Outcome::kFail;
      f.message =
          created ? "created on the source after the backup" : "missing from the restored copy";
      if (s != src.scans.end() && s->second.error.empty()) f.source_rows = s->second.rows;
      other.push_back(f);
      continue;
    }
    if (s == src.scans.end()) {
      f.outcome = Outcome::kWarn;
      f.message = "only in the restored copy (dropped on the source since the backup?)";
      if (d->second.error.empty()) f.restored_rows = d->second.rows;
      other.push_back(f);
      continue;
    }
    if (!s->second.error.empty() || !d->second.error.empty()) {
      f.outcome = Outcome::kError;
      f.message = !s->second.error.empty()
                      ? "cannot count on the source: " + s->second.error
                      : "cannot count in the restored copy: " + d->second.error;
      other.push_back(f);
      continue;
    }
    Judged j;
    j.finding = f;
    j.finding.source_rows = s->second.rows;
    j.finding.restored_rows = d->second.rows;
    std::optional<TableChurn> c = churn ? churn->For(n) : std::nullopt;
    j.bound = RowCountBoundFor(s->second.rows, c, cfg);
    if (c && c->touched()) ++touched;
    judged.push_back(std::move(j));
  }

  auto judge = [&](Judged& j) {
    RowCountVerdict v =
        JudgeRowCount(*j.finding.source_rows, *j.finding.restored_rows, j.bound, cfg);
    j.finding.outcome = v.outcome;
    j.finding.message = v.message;
    j.finding.allowed_drift = j.bound.below + j.bound.above;
    if (j.bound.kind == BoundKind::kChurn)
      j.finding.allowed_drift =
          j.bound.churn->inserted + j.bound.churn->deleted + cfg.row_count.slack_rows;
  };
  bool settle_needed = false;
  for (auto& j : judged) {
    judge(j);
    if (j.finding.outcome == Outcome::kFail && churn_mode) settle_needed = true;
  }
  bool settled = false;
  if (settle_needed) {
    // Counters may lag the writes by seconds: read them again before calling a table broken.
    const ChurnBasis& again = scan->SettledChurn(ctx);
    settled = true;
    for (auto& j : judged) {
      if (j.finding.outcome != Outcome::kFail) continue;
      j.bound = RowCountBoundFor(*j.finding.source_rows, again.For(j.finding.table), cfg);
      judge(j);
    }
  }

  std::vector<std::string> bad, unverified;
  Outcome outcome = Outcome::kPass;
  for (auto& j : judged) {
    ++r.tables_compared;
    if (j.finding.outcome == Outcome::kError) {
      unverified.push_back(j.finding.table);
      ++r.tables_unverified;
    }
    if (j.finding.outcome == Outcome::kPass) continue;
    ++r.tables_mismatched;
    if (j.finding.outcome == Outcome::kFail) bad.push_back(j.finding.table);
    outcome = Worse(outcome, j.finding.outcome);
    r.details.push_back(j.finding);
  }
  for (auto& f : other) {
    if (f.outcome == Outcome::kFail) bad.push_back(f.table);
    outcome = Worse(outcome, f.outcome);
    r.details.push_back(f);
  }

  std::vector<std::string> notes;
  const auto& slo = src.large_objects;
  const auto& rlo = rst.large_objects;
  if (slo.scanned && rlo.scanned) {
    if (slo.count != rlo.count) {
      TableFinding f;
      f.table = "pg_largeobject";
      f.source_rows = slo.count;
      f.restored_rows = rlo.count;
      f.outcome = churn_mode ? Outcome::kWarn : Outcome::kFail;
      f.message = "restored " + std::to_string(rlo.count) + " large objects, source " +
                  std::to_string(slo.count) +
                  (churn_mode ? " (large objects have no activity counters)" : " (exact mode)");
      if (f.outcome == Outcome::kFail) bad.push_back(f.table);
      outcome = Worse(outcome, f.outcome);
      r.details.push_back(f);
    }
  } else {
    notes.push_back(!slo.scanned ? slo.note : rlo.note);
  }

  std::string msg = std::to_string(r.tables_compared) + " tables compared, " +
                    std::to_string(r.tables_mismatched) + " mismatched";
  if (!bad.empty()) msg = "row counts differ: " + NameList(bad) + "; " + msg;
  if (!unverified.empty())
    msg = std::to_string(unverified.size()) + " tables unverified (" + NameList(unverified) +
          "): their counts differ and nothing records their churn since the backup; " + msg;
  if (!churn_mode) {
    msg += "; exact mode";
  } else if (!churn->covered) {
    msg += "; " + churn->note;
  } else {
    msg += "; churn since the backup from activity samples at " +
           FormatTimestamp(churn->sample_ts) + " to the source snapshot at " +
           FormatTimestamp(src.snapshot_time) + " (" + std::to_string(touched) + " tables touched)";
    if (!unverified.empty())
      msg += "; statistics of the unverified tables were reset or missing in the samples";
  }
  if (settled) msg += "; statistics re-read after " + FormatDuration(cfg.stats_settle);
  for (const auto& n : notes) msg += "; " + n;
  if (names.empty()) msg = "no tables to compare";
  r.outcome = outcome;
  r.message = msg;
  return r;
}

}  // namespace rw
