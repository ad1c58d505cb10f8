#include "checks/checksum_check.h"

#include <algorithm>
#include <deque>
#include <set>

#include "agent/pg_conn.h"
#include "agent/units.h"
#include "checks/catalog.h"
#include "checks/churn.h"
#include "checks/reference.h"
#include "checks/table_scan.h"

namespace rw {
namespace {

constexpr int kSplit = 16;                // ranges per split
constexpr std::int64_t kLeafRows = 500;   // ranges this small are compared row by row
constexpr int kMaxQueriesPerTable = 150;  // narrowing work per mismatching table (both sides)

std::string NameList(const std::vector<std::string>& names, std::size_t max = 5) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += " and " + std::to_string(names.size() - max) + " more";
  return out;
}

std::string Rows(std::int64_t n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

using KeyValue = std::vector<std::string>;  // one text value per key column

struct KeyRange {
  std::optional<KeyValue> lo;  // inclusive
  std::optional<KeyValue> hi;  // exclusive
  std::int64_t source_rows = 0;
  std::int64_t restored_rows = 0;
};

struct NarrowResult {
  std::int64_t only_source = 0;    // rows missing from the restored copy
  std::int64_t only_restored = 0;  // rows the source does not have
  std::int64_t changed = 0;        // same key, different content
  std::int64_t unexplored = 0;     // lower bound of differing rows in ranges left unexplored
  bool complete = true;
  std::vector<std::string> samples;
  std::int64_t total() const { return only_source + only_restored + changed + unexplored; }
};

// Bisects a mismatching table by primary-key ranges. Each side is queried on its own connection
// with the same method and restriction; key comparisons of text-like columns use COLLATE "C" so
// that both sides order alike whatever their database collation.
class Narrower {
 public:
  // upto: append-only tables are compared over rows with key column <= this value.
  Narrower(pqxx::connection& src, pqxx::connection& rst, const TableInfo& src_table,
           const TableInfo& rst_table, HashMethod method,
           std::optional<std::pair<ColumnInfo, std::string>> upto, int sample_keys,
           CancelToken& cancel)
      : src_(src),
        rst_(rst),
        src_table_(src_table),
        rst_table_(rst_table),
        method_(method),
        upto_(std::move(upto)),
        sample_keys_(sample_keys),
        cancel_(cancel) {}

  NarrowResult Run(std::int64_t source_rows, std::int64_t restored_rows) {
    NarrowResult res;
    std::deque<KeyRange> todo;
    todo.push_back(KeyRange{std::nullopt, std::nullopt, source_rows, restored_rows});
    while (!todo.empty()) {
      cancel_.ThrowIfCancelled();
      KeyRange r = std::move(todo.front());
      todo.pop_front();
      const std::int64_t larger = std::max(r.source_rows, r.restored_rows);
      const int cost = larger <= kLeafRows ? 2 : 3;
      if (queries_ + cost > kMaxQueriesPerTable) {
        res.complete = false;
        res.unexplored += std::max<std::int64_t>(1, std::llabs(r.source_rows - r.restored_rows));
        continue;
      }
      if (larger <= kLeafRows) {
        CompareRows(r, res);
        continue;
      }
      for (auto& sub : Split(r)) todo.push_back(std::move(sub));
    }
    return res;
  }

 private:
  const std::vector<ColumnInfo>& Key() const { return rst_table_.key; }

  std::string KeyExpr() const {
    std::string out = Key().size() > 1 ? "(" : "";
    for (std::size_t i = 0; i < Key().size(); ++i) {
      if (i) out += ", ";
      out += "t." + QuoteIdent(Key()[i].name);
      if (Key()[i].collatable) out += " collate \"C\"";
    }
    return out + (Key().size() > 1 ? ")" : "");
  }

  std::string Literal(pqxx::connection& c, const KeyValue& v) const {
    std::string out = Key().size() > 1 ? "(" : "";
    for (std::size_t i = 0; i < Key().size(); ++i) {
      if (i) out += ", ";
      out += c.quote(v[i]) + "::" + Key()[i].type;
      if (Key()[i].collatable) out += " collate \"C\"";
    }
    return out + (Key().size() > 1 ? ")" : "");
  }

  std::string Where(pqxx::connection& c, const KeyRange& r) const {
    std::vector<std::string> parts;
    if (r.lo) parts.push_back(KeyExpr() + " >= " + Literal(c, *r.lo));
    if (r.hi) parts.push_back(KeyExpr() + " < " + Literal(c, *r.hi));
    if (upto_)
      parts.push_back("t." + QuoteIdent(upto_->first.name) + " <= " + c.quote(upto_->second) +
                      "::" + upto_->first.type);
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? " where " : " and ") + p;
    return out;
  }

  std::string KeyText() const {
    std::string out;
    for (std::size_t i = 0; i < Key().size(); ++i)
      out += (i ? ", " : "") + ("t." + QuoteIdent(Key()[i].name)) + "::text";
    return out;
  }

  std::string OrderBy() const {
    std::string out;
    for (std::size_t i = 0; i < Key().size(); ++i) {
      out += (i ? ", " : "") + ("t." + QuoteIdent(Key()[i].name));
      if (Key()[i].collatable) out += " collate \"C\"";
    }
    return out;
  }

  pqxx::result Exec(pqxx::connection& c, const std::string& sql) {
    ++queries_;
    pqxx::nontransaction tx(c);
    return tx.exec(sql);
  }

  // Splits r into up to kSplit ranges at key quantiles of the side with more rows; returns the
  // sub-ranges whose count or hash differ between the sides.
  std::vector<KeyRange> Split(const KeyRange& r) {
    const bool from_restored = r.restored_rows >= r.source_rows;
    pqxx::connection& c = from_restored ? rst_ : src_;
    const TableInfo& t = from_restored ? rst_table_ : src_table_;
    const std::int64_t rows = std::max(r.source_rows, r.restored_rows);
    const std::int64_t step = (rows + kSplit - 1) / kSplit;
    std::vector<KeyValue> points;
    for (const auto& row :
         Exec(c, "select " + KeyText() + " from (select t.*, row_number() over (order by " +
                     OrderBy() + ") as rw_rn from only " + t.Sql() + " t" + Where(c, r) +
                     ") t where rw_rn > 1 and (rw_rn - 1) % " + std::to_string(step) + " = 0")) {
      KeyValue v;
      for (const auto& f : row) v.push_back(f.as<std::string>());
      points.push_back(std::move(v));
    }
    std::vector<KeyRange> subs;
    std::optional<KeyValue> lo = r.lo;
    for (const auto& p : points) {
      subs.push_back(KeyRange{lo, p, 0, 0});
      lo = p;
    }
    subs.push_back(KeyRange{lo, r.hi, 0, 0});
    auto src = Buckets(src_, src_table_, r, points);
    auto rst = Buckets(rst_, rst_table_, r, points);
    std::vector<KeyRange> out;
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (src[i].rows == rst[i].rows && src[i].hash == rst[i].hash) continue;
      subs[i].source_rows = src[i].rows;
      subs[i].restored_rows = rst[i].rows;
      out.push_back(subs[i]);
    }
    return out;
  }

  // count + hash per sub-range of r delimited by points, in one pass.
  std::vector<RangeHash> Buckets(pqxx::connection& c, const TableInfo& t, const KeyRange& r,
                                 const std::vector<KeyValue>& points) {
    std::string bucket = "case";
    for (std::size_t i = 0; i < points.size(); ++i)
      bucket += " when " + KeyExpr() + " < " + Literal(c, points[i]) + " then " + std::to_string(i);
    bucket += " else " + std::to_string(points.size()) + " end";
    std::vector<RangeHash> out(points.size() + 1);
    for (const auto& row :
         Exec(c, "select b, count(*), coalesce(sum(h), 0)::text from (select " + bucket +
                     " as b, " + RowHashSql(t, method_) + " as h from only " + t.Sql() + " t" +
                     Where(c, r) + " offset 0) s group by b")) {
      auto b = static_cast<std::size_t>(row[0].as<int>());
      if (b < out.size()) out[b] = RangeHash{row[1].as<std::int64_t>(), row[2].as<std::string>()};
    }
    return out;
  }

  std::map<KeyValue, std::string> FetchRows(pqxx::connection& c, const TableInfo& t,
                                            const KeyRange& r) {
    std::map<KeyValue, std::string> out;
    for (const auto& row : Exec(c, "select " + KeyText() + ", (" + RowHashSql(t, method_) +
                                       ")::text from only " + t.Sql() + " t" + Where(c, r))) {
      KeyValue v;
      const pqxx::row::size_type n = row.size();
      for (pqxx::row::size_type i = 0; i + 1 < n; ++i) v.push_back(row[i].as<std::string>());
      out[std::move(v)] = row[n - 1].as<std::string>();
    }
    return out;
  }

  void Sample(const KeyValue& v, NarrowResult& res) {
    if (static_cast<int>(res.samples.size()) >= sample_keys_) return;
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + Key()[i].name + "=" + v[i];
    res.samples.push_back(s);
  }

  void CompareRows(const KeyRange& r, NarrowResult& res) {
    auto src = FetchRows(src_, src_table_, r);
    auto rst = FetchRows(rst_, rst_table_, r);
    auto a = src.begin();
    auto b = rst.begin();
    while (a != src.end() || b != rst.end()) {
      if (b == rst.end() || (a != src.end() && a->first < b->first)) {
        ++res.only_source;
        Sample(a->first, res);
        ++a;
      } else if (a == src.end() || b->first < a->first) {
        ++res.only_restored;
        Sample(b->first, res);
        ++b;
      } else {
        if (a->second != b->second) {
          ++res.changed;
          Sample(a->first, res);
        }
        ++a, ++b;
      }
    }
  }

  pqxx::connection& src_;
  pqxx::connection& rst_;
  const TableInfo& src_table_;
  const TableInfo& rst_table_;
  HashMethod method_;
  std::optional<std::pair<ColumnInfo, std::string>> upto_;
  int sample_keys_;
  CancelToken& cancel_;
  int queries_ = 0;
};

std::string Describe(const NarrowResult& n) {
  std::vector<std::string> parts;
  if (n.changed) parts.push_back(std::to_string(n.changed) + " changed");
  if (n.only_source)
    parts.push_back(std::to_string(n.only_source) + " missing from the restored copy");
  if (n.only_restored)
    parts.push_back(std::to_string(n.only_restored) + " only in the restored copy");
  std::string out = (n.complete ? "" : "at least ") + Rows(n.total()) +
                    (n.total() == 1 && n.complete ? " differs" : " differ");
  if (!parts.empty()) {
    out += " (";
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
    out += ")";
  }
  if (!n.complete) out += "; narrowing stopped at its query budget";
  if (!n.samples.empty()) {
    out += "; keys: ";
    for (std::size_t i = 0; i < n.samples.size(); ++i) out += (i ? "; " : "") + n.samples[i];
  }
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

bool KeysMatch(const TableInfo& a, const TableInfo& b) {
  if (a.key.size() != b.key.size() || a.key.empty()) return false;
  for (std::size_t i = 0; i < a.key.size(); ++i)
    if (a.key[i].name != b.key[i].name || a.key[i].type != b.key[i].type) return false;
  return true;
}

// Against an exact reference (checks/reference.h): every table's count and content hash must
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
                  " rows restored, " + std::to_string(t.ref->rows) +
                  " in the reference; a reference holds one hash per table, so the differing "
                  "rows are not narrowed down)";
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
      " tables compared exactly against the "
      "reference " +
      ctx.backup.reference_path + " (snapshot at " + FormatTimestamp(rf.snapshot_time) + "), " +
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
  if (!ctx.backup.reference_path.empty()) return ReferenceState::For(ctx)->Prepare(ctx);
  ScanState::For(ctx)->PrepareSource(ctx);
}

CheckResult ChecksumCheck::Run(CheckContext& ctx) {
  if (!ctx.backup.reference_path.empty()) return RunAgainstReference(ctx, name());
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
      Narrower nw(*src_conn, *rst_conn, *ts, *tr, m.method, m.upto, cfg.checksum.sample_keys,
                  ctx.cancel);
      nr = nw.Run(m.source_rows, m.restored_rows);
    });
    f.sample_keys = nr.samples;
    if (nr.total() == 0) {
      // The source moved between the scan and the narrowing: the difference is real but
      // unexplained, so the table is unverified rather than passed.
      f.outcome = Outcome::kError;
      f.message =
          "unverified: content differed in the scan, but no differing row was found on "
          "re-reading (the source changed meanwhile)";
      unverified.push_back(m.table + ": difference not found again on re-reading");
    } else {
      f.message = "content differs: " + Describe(nr);
    }
    add(f);
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
  for (const auto& n : touched)
    unverified.push_back(n + ": written since the backup, not compared");
  for (const auto& n : names) {
    auto s = src.scans.find(n);
    if (s == src.scans.end() || !rst.scans.count(n) || !s->second.error.empty()) continue;
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
  if (!touched.empty())
    msg += "; " + std::to_string(touched.size()) + " touched since the backup not compared (" +
           NameList(touched) + ")";
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
