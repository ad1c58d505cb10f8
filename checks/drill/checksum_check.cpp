#include "checks/drill/checksum_check.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <set>

#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/drill/catalog.h"
#include "checks/drill/churn.h"
#include "checks/drill/narrower.h"
#include "checks/drill/reference.h"
#include "checks/drill/row_proof.h"
#include "checks/drill/table_scan.h"

namespace rw {
namespace {

std::string NameList(const std::vector<std::string>& names, std::size_t max = 5) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += " and " + std::to_string(names.size() - max) + " more";
  return out;
}

struct Mismatch {
  std::string table;
  ChecksumPlan plan;
  HashMethod method;
  std::optional<std::pair<ColumnInfo, std::string>> upto;  // append-only: key <= restored max
  std::int64_t source_rows = 0;
  std::int64_t restored_rows = 0;
};

TableFinding ErrorFinding(const std::string& table, const std::string& message) {
  TableFinding f;
  f.table = table;
  f.outcome = Outcome::kError;
  f.message = message;
  return f;
}

// A reference holds one hash per table: to name the differing keys, the copy is compared row by
// row with the live source's rows unchanged since the reference's own snapshot (row-level proof
// with S = the dump's snapshot). The verdict is already the reference's; this only names keys.
std::string NameKeysAgainstSource(CheckContext& ctx, const Reference& rf,
                                  const ReferenceState::TableResult& t,
                                  std::vector<std::string>& keys) {
  if (rf.horizon.empty() || !t.info || t.info->key.empty())
    return rf.horizon.empty() ? "; the reference records no snapshot horizon, so the differing "
                                "rows are not named"
                              : "; no primary key, so the differing rows are not named";
  try {
    auto src = ConnectDrillSource(ctx);
    auto rst = ConnectRestored(ctx);
    RowProofInput in(*t.info, *t.info);
    in.method = t.ref->method;
    in.snapshot = rf.horizon;
    in.deletes_since = std::numeric_limits<std::int64_t>::max();  // naming only
    in.limits.sample_keys = ctx.target.checks.checksum.sample_keys;
    RowProof p = ProveRows(*src, *rst, in, ctx.cancel);
    if (p.diff.total() == 0)
      return "; against the live source no row unchanged since the reference's snapshot differs (the differing "
             "rows changed on the source since), so they are not named";
    for (const auto& s : p.diff.samples) keys.push_back(s.key);
    return "; against the live source's rows unchanged since the reference's snapshot: " +
           DescribeDiff(p.diff);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCancelled) throw;
    return std::string("; the differing rows could not be named: ") + e.what();
  }
}

// Against an exact reference (checks/drill/reference.h): every table's count and content hash must
// equal the ones recorded in the dump's snapshot; every table is covered, no churn. A difference
// cannot be narrowed down by key (the reference holds one hash per table).
CheckResult RunAgainstReference(CheckContext& ctx, const std::string& name) {
  auto ref = ReferenceState::For(ctx);
  ref->Ensure(ctx);
  CheckResult r;
  r.name = name;
  const Reference& rf = ref->reference();
  std::int64_t reference_rows = 0;
  for (const auto& [n, t] : ref->tables())
    if (t.ref) reference_rows += t.ref->rows;
  if (!ref->problem().empty()) {
    r.outcome = Outcome::kFail;
    r.message = ref->problem();
    r.tables_unverified = static_cast<std::int64_t>(ref->tables().size());
    r.rows_unverified = reference_rows;
    r.unverified.push_back("all tables: " + ref->problem());
    return r;
  }
  std::vector<std::string> bad, unverified;
  Outcome outcome = Outcome::kPass;
  for (const auto& [n, t] : ref->tables()) {
    if (t.in_restored && t.error.empty()) r.rows_checksummed += t.rows;
    TableFinding f;
    f.table = n;
    if (t.ref) f.source_rows = t.ref->rows;
    if (!t.ref) {
      f.outcome = Outcome::kWarn;
      f.message = "only in the restored copy: not in the reference";
    } else if (!t.in_restored) {
      f.outcome = Outcome::kFail;
      f.message = "missing from the restored copy (the reference has it)";
    } else if (!t.error.empty()) {
      f.outcome = Outcome::kError;
      f.message = "cannot hash in the restored copy: " + t.error;
      unverified.push_back(n + ": cannot hash in the restored copy");
    } else {
      ++r.tables_compared;
      f.restored_rows = t.rows;
      if (t.rows == t.ref->rows && t.hash == t.ref->hash) {
        r.rows_verified += t.ref->rows;
        continue;
      }
      f.outcome = Outcome::kFail;
      f.message = "content differs from the reference (" + std::to_string(t.rows) +
                  " rows restored, " + std::to_string(t.ref->rows) + " in the reference)";
      f.message += NameKeysAgainstSource(ctx, rf, t, f.sample_keys);
      ++r.tables_mismatched;
    }
    if (t.ref) {
      ++r.tables_unverified;
      r.rows_unverified += t.ref->rows;
    }
    if (f.outcome == Outcome::kFail) bad.push_back(n);
    outcome = Worse(outcome, f.outcome);
    r.details.push_back(f);
  }
  const LargeObjectScan& lo = ref->restored_large_objects();
  std::string lo_note;
  if (!rf.large_objects) {
    lo_note = "; large objects not in the reference";
  } else if (!lo.scanned) {
    lo_note = "; " + lo.note;
  } else if (rf.large_objects->count != lo.count || rf.large_objects->hash != lo.hash) {
    TableFinding f;
    f.table = "pg_largeobject";
    f.source_rows = rf.large_objects->count;
    f.restored_rows = lo.count;
    f.outcome = Outcome::kFail;
    f.message = "large object contents differ from the reference";
    bad.push_back(f.table);
    outcome = Outcome::kFail;
    r.details.push_back(f);
  }
  for (std::size_t i = 0; i < unverified.size() && i < 10; ++i)
    r.unverified.push_back(unverified[i]);
  std::string msg =
      std::to_string(r.tables_compared) +
      " tables compared exactly against the " +
      ref->Label(ctx) + " (snapshot at " + FormatTimestamp(rf.snapshot_time) + "), " +
      std::to_string(r.tables_mismatched) + " mismatched; " + std::to_string(r.rows_verified) +
      " rows verified, " + std::to_string(r.rows_unverified) + " unverified" + lo_note;
  if (!bad.empty()) msg = "content differs from the reference: " + NameList(bad) + "; " + msg;
  if (ref->tables().empty()) msg = "no tables to compare (the reference lists none)";
  r.outcome = outcome;
  r.message = msg;
  return r;
}

}  // namespace

void ChecksumCheck::BeforeRestore(CheckContext& ctx) {
  if (ctx.exact_point) return;  // the runner takes the live reference
  if (!ctx.backup.reference_path.empty()) return ReferenceState::For(ctx)->Prepare(ctx);
  ScanState::For(ctx)->PrepareSource(ctx);
}

CheckResult ChecksumCheck::Run(CheckContext& ctx) {
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
  for (const auto& [n, s] : rst.scans)
    if (s.error.empty()) r.rows_checksummed += s.rows;

  std::unique_ptr<pqxx::connection> src_conn, rst_conn;
  auto connections = [&] {
    if (!src_conn) src_conn = ConnectDrillSource(ctx);
    if (!rst_conn) rst_conn = ConnectRestored(ctx);
  };

  std::vector<std::string> touched, not_both, bad;
  std::vector<std::string> unverified;  // "table: why", for the report
  std::vector<Mismatch> mismatches;
  Outcome outcome = Outcome::kPass;
  auto add = [&](TableFinding f) {
    outcome = Worse(outcome, f.outcome);
    if (f.outcome == Outcome::kFail) bad.push_back(f.table);
    r.details.push_back(std::move(f));
  };

  // Decides one table by plan; mismatches are collected for settling and narrowing.
  auto compare = [&](const std::string& n, ChecksumPlan plan) {
    const TableScan& s = src.scans.at(n);
    const TableScan& d = rst.scans.at(n);
    if (plan == ChecksumPlan::kSkipTouched) {
      touched.push_back(n);
      return;
    }
    Mismatch m{n, plan, s.method, std::nullopt, s.rows, d.rows};
    if (plan == ChecksumPlan::kAppendOnly) {
      const AppendOnlyTable* ao = FindAppendOnly(n, cfg);
      if (!rst.Find(n)->Column(ao->key)) {
        add(ErrorFinding(n, "append-only key column " + ao->key + " not found"));
        return;
      }
      ++r.tables_compared;
      if (!d.max_key) return;  // no keyed rows restored: nothing to compare over
      auto a = scan->AppendOnlySource(ctx, n);
      if (!a) return;
      if (!a->error.empty()) {
        add(ErrorFinding(n, "cannot hash on the source: " + a->error));
        return;
      }
      if (a->rows == d.keyed_rows && a->hash == d.keyed_hash) return;
      const ColumnInfo* key = rst.Find(n)->Column(ao->key);
      m.method = d.method;
      m.source_rows = a->rows;
      m.restored_rows = d.keyed_rows;
      m.upto = std::make_pair(*key, *d.max_key);
      mismatches.push_back(m);
      return;
    }
    ++r.tables_compared;
    if (s.method == d.method) {
      if (s.rows == d.rows && s.hash == d.hash) return;
    } else {
      // A type without an extended hash made one side fall back to the text hash (its first
      // row triggers that): compare both sides with the text hash.
      connections();
      m.method = HashMethod::kText;
      RangeHash a, b;
      WithPgErrors("cannot hash " + n, [&] {
        pqxx::nontransaction ts(*src_conn);
        a = HashRows(ts, *src.Find(n), HashMethod::kText, "");
        pqxx::nontransaction tr(*rst_conn);
        b = HashRows(tr, *rst.Find(n), HashMethod::kText, "");
      });
      if (a.rows == b.rows && a.hash == b.hash) return;
    }
    mismatches.push_back(m);
  };

  std::set<std::string> names;
  for (const auto& t : src.tables) names.insert(t.name);
  for (const auto& t : rst.tables) names.insert(t.name);
  for (const auto& n : names) {
    auto s = src.scans.find(n);
    auto d = rst.scans.find(n);
    if (s == src.scans.end() || d == rst.scans.end()) {
      not_both.push_back(n);
      continue;
    }
    if (!s->second.error.empty() || !d->second.error.empty()) {
      add(ErrorFinding(n, !s->second.error.empty()
                              ? "cannot hash on the source: " + s->second.error
                              : "cannot hash in the restored copy: " + d->second.error));
      continue;
    }
    compare(n, PlanChecksum(n, churn ? churn->For(n) : std::nullopt, cfg));
  }

  // A table that looked untouched may have been written just before the scan, its statistics
  // still pending: re-read the counters once before calling it corrupt.
  bool settled = false;
  if (churn_mode && std::any_of(mismatches.begin(), mismatches.end(), [](const Mismatch& m) {
        return m.plan == ChecksumPlan::kCompare;
      })) {
    const ChurnBasis& again = scan->SettledChurn(ctx);
    settled = true;
    std::vector<Mismatch> pending;
    pending.swap(mismatches);
    for (auto& m : pending) {
      ChecksumPlan p = m.plan == ChecksumPlan::kCompare
                           ? PlanChecksum(m.table, again.For(m.table), cfg)
                           : m.plan;
      if (p == m.plan) {
        mismatches.push_back(m);
        continue;
      }
      --r.tables_compared;
      compare(m.table, p);  // re-decided under the settled churn; appends if it still differs
    }
  }

  for (const auto& m : mismatches) {
    ++r.tables_mismatched;
    TableFinding f;
    f.table = m.table;
    f.source_rows = m.source_rows;
    f.restored_rows = m.restored_rows;
    if (m.plan == ChecksumPlan::kCompareUnknown) {
      // No evidence says whether the source changed since the backup: not a pass, not a warning.
      f.outcome = Outcome::kError;
      f.message =
          "unverified: content differs, and nothing records this table's churn since the backup "
          "(the difference may come from the backup or from later writes)";
      unverified.push_back(m.table + ": content differs, churn unknown");
      add(f);
      continue;
    }
    f.outcome = Outcome::kFail;
    const TableInfo* ts = src.Find(m.table);
    const TableInfo* tr = rst.Find(m.table);
    if (!KeysMatch(*ts, *tr)) {
      f.message = "content differs (no primary key: not narrowed down)";
      add(f);
      continue;
    }
    connections();
    CancelWatch w1(ctx.cancel, *src_conn), w2(ctx.cancel, *rst_conn);
    NarrowResult nr;
    WithPgErrors("cannot narrow down the mismatch of " + m.table, [&] {
      pqxx::nontransaction stx(*src_conn), rtx(*rst_conn);
      NarrowLimits limits;
      limits.sample_keys = cfg.checksum.sample_keys;
      Narrower nw(NarrowSide{stx, *ts, ""}, NarrowSide{rtx, *tr, ""}, m.method, m.upto, limits,
                  ctx.cancel);
      nr = nw.Run(m.source_rows, m.restored_rows);
    });
    for (const auto& smp : nr.samples) f.sample_keys.push_back(smp.key);
    if (nr.total() == 0) {
      // The source moved between the scan and the narrowing: the difference is real but
      // unexplained, so the table is unverified rather than passed.
      f.outcome = Outcome::kError;
      f.message =
          "unverified: content differed in the scan, but no differing row was found on "
          "re-reading (the source changed meanwhile)";
      unverified.push_back(m.table + ": difference not found again on re-reading");
    } else {
      f.message = "content differs: " + DescribeDiff(nr);
    }
    add(f);
  }

  // Row-level proof of the tables written since the backup (checks/drill/row_proof.h): the rows
  // unchanged since the snapshot recorded with the sample before the backup must be in the copy.
  std::map<std::string, RowProof> proofs;      // tables whose unchanged rows were proven
  std::map<std::string, std::string> why_not;  // touched table -> why it was not proven
  std::int64_t proven_rows = 0, changed_rows = 0;
  const std::string snapshot = churn ? churn->snapshot : std::string();
  for (const auto& n : touched) {
    const TableInfo* ts = src.Find(n);
    const TableInfo* tr = rst.Find(n);
    if (snapshot.empty()) {
      why_not[n] = "no transaction snapshot recorded with the sample before the backup";
      continue;
    }
    if (!KeysMatch(*ts, *tr)) {
      why_not[n] =
          ts->key.empty()
              ? "no primary key (nor a unique key over NOT NULL columns), so rows cannot be matched"
              : "its key differs between the source and the copy";
      continue;
    }
    const TableScan& s = src.scans.at(n);
    const TableScan& d = rst.scans.at(n);
    RowProofInput in(*ts, *tr);
    in.method = s.method == d.method ? s.method : HashMethod::kText;
    in.snapshot = snapshot;
    auto c = churn->For(n);
    in.deletes_since = c ? c->deleted : 0;
    in.limits.sample_keys = cfg.checksum.sample_keys;
    RowProof p;
    try {
      connections();
      p = ProveRows(*src_conn, *rst_conn, in, ctx.cancel);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCancelled) throw;
      why_not[n] = std::string("row-level proof could not run: ") + e.what();
      // A failed statement leaves the sessions usable (its transactions were rolled back), but a
      // lost connection does not: start over with new ones.
      src_conn.reset();
      rst_conn.reset();
      continue;
    }
    if (p.verdict == ProofVerdict::kFail) {
      ++r.tables_mismatched;
      TableFinding f;
      f.table = n;
      f.source_rows = s.rows;
      f.restored_rows = d.rows;
      f.outcome = Outcome::kFail;
      f.message = p.message;
      for (const auto& smp : p.diff.samples)
        if (smp.kind != RowDiff::kExtra || p.diff.only_restored > in.deletes_since)
          f.sample_keys.push_back(smp.key);
      add(f);
      continue;
    }
    if (p.verdict == ProofVerdict::kUnverified) {
      why_not[n] = p.message;
      continue;
    }
    ++r.tables_compared;
    proven_rows += p.unchanged_rows;
    changed_rows += p.changed_rows;
    proofs[n] = std::move(p);
  }

  // Large objects: compared when both sides could read them and their number matches.
  std::vector<std::string> notes;
  const auto& slo = src.large_objects;
  const auto& rlo = rst.large_objects;
  if (!slo.scanned || !rlo.scanned) {
    notes.push_back(!slo.scanned ? slo.note : rlo.note);
  } else if (slo.count == rlo.count || !churn_mode) {
    if (slo.count != rlo.count || slo.hash != rlo.hash) {
      TableFinding f;
      f.table = "pg_largeobject";
      f.source_rows = slo.count;
      f.restored_rows = rlo.count;
      f.outcome = churn_mode ? Outcome::kWarn : Outcome::kFail;
      f.message = std::string("large object contents differ") +
                  (churn_mode ? " (large objects have no activity counters)" : "");
      add(f);
    }
  } else {
    notes.push_back("large objects not compared: their number changed since the backup");
  }

  // Coverage. Rows are the source's, at the scan.
  std::set<std::string> differing;
  for (const auto& m : mismatches) differing.insert(m.table);
  for (const auto& f : r.details)
    if (f.outcome == Outcome::kError || f.outcome == Outcome::kFail) differing.insert(f.table);
  for (const auto& n : touched) {
    if (proofs.count(n) || differing.count(n)) continue;
    auto w = why_not.find(n);
    unverified.push_back(n + ": written since the backup, not compared" +
                         (w != why_not.end() ? " (" + w->second + ")" : std::string()));
  }
  for (const auto& n : names) {
    auto s = src.scans.find(n);
    if (s == src.scans.end() || !rst.scans.count(n) || !s->second.error.empty()) continue;
    if (auto p = proofs.find(n); p != proofs.end() && !differing.count(n)) {
      // Rows on the source at the scan: the proven ones count as verified, the rest not.
      const std::int64_t verified = std::min(p->second.unchanged_rows, s->second.rows);
      r.rows_verified += verified;
      r.rows_unverified += s->second.rows - verified;
      continue;
    }
    const bool skipped = std::find(touched.begin(), touched.end(), n) != touched.end();
    if (skipped || differing.count(n)) {
      ++r.tables_unverified;
      r.rows_unverified += s->second.rows;
    } else {
      r.rows_verified += s->second.rows;
    }
  }
  for (std::size_t i = 0; i < unverified.size() && i < 10; ++i)
    r.unverified.push_back(unverified[i]);

  std::string msg = std::to_string(r.tables_compared) + " tables compared, " +
                    std::to_string(r.tables_mismatched) + " mismatched";
  if (!bad.empty()) msg = "content differs: " + NameList(bad) + "; " + msg;
  std::vector<std::string> unexplained;
  for (const auto& m : mismatches)
    if (m.plan == ChecksumPlan::kCompareUnknown) unexplained.push_back(m.table);
  if (!unexplained.empty())
    msg = std::to_string(unexplained.size()) + " tables unverified (" + NameList(unexplained) +
          "): content differs and nothing records their churn since the backup; " + msg;
  if (!proofs.empty()) {
    std::vector<std::string> names_proven;
    for (const auto& [n, p] : proofs) names_proven.push_back(n);
    msg += "; " + std::to_string(proofs.size()) + " written since the backup proven row by row (" +
           NameList(names_proven) + "): " + std::to_string(proven_rows) +
           " rows unchanged since the evidence snapshot verified, " + std::to_string(changed_rows) +
           " changed since not compared";
  }
  std::vector<std::string> not_proven;
  for (const auto& n : touched)
    if (!proofs.count(n) && !differing.count(n)) not_proven.push_back(n);
  if (!not_proven.empty())
    msg += "; " + std::to_string(not_proven.size()) + " touched since the backup not compared (" +
           NameList(not_proven) + ")";
  if (!not_both.empty()) msg += "; " + std::to_string(not_both.size()) + " not on both sides";
  if (!churn_mode)
    msg += "; exact mode";
  else if (!churn->covered)
    msg += "; " + churn->note;
  msg += "; " + std::to_string(r.rows_verified) + " rows verified, " +
         std::to_string(r.rows_unverified) + " unverified";
  if (settled) msg += "; statistics re-read after " + FormatDuration(cfg.stats_settle);
  for (const auto& n : notes) msg += "; " + n;
  if (names.empty()) {
    msg = "no tables to compare";
  } else if (r.tables_compared == 0 && outcome == Outcome::kPass) {
    outcome = Outcome::kSkipped;
    msg = "no table could be compared: " + msg;
  }
  r.outcome = outcome;
  r.message = msg;
  return r;
}

}  // namespace rw
