#include "checks/drill/row_proof.h"

#include <cstdlib>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"

namespace rw {
namespace {

constexpr std::uint64_t kXidSpace = 1ULL << 32;
// age() compares 32-bit xids circularly: S must be well within 2^31 transactions of now.
constexpr std::uint64_t kMaxSnapshotAge = (1ULL << 31) - 10'000'000;
constexpr std::size_t kInsertBatch = 1000;

std::string Num(std::int64_t n) { return std::to_string(n); }

bool ParseU64(const std::string& s, std::uint64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    std::uint64_t next = r * 10 + static_cast<std::uint64_t>(c - '0');
    if (next / 10 != r) return false;
    r = next;
  }
  v = r;
  return true;
}

std::string KeyColumns(const TableInfo& t, const std::string& alias) {
  std::string out;
  for (std::size_t i = 0; i < t.key.size(); ++i)
    out += (i ? ", " : "") + alias + "." + QuoteIdent(t.key[i].name);
  return out;
}

RangeHash Hash(pqxx::transaction_base& tx, const TableInfo& t, HashMethod m,
               const std::string& filter) {
  pqxx::row row =
      tx.exec1("select count(*), coalesce(sum(h), 0)::text from (select " + RowHashSql(t, m) +
               " as h from only " + t.Sql() + " t where " + filter + " offset 0) s");
  return RangeHash{row[0].as<std::int64_t>(), row[1].as<std::string>()};
}

}  // namespace

std::optional<SnapshotText> ParseSnapshotText(const std::string& text) {
  auto c1 = text.find(':');
  if (c1 == std::string::npos) return std::nullopt;
  auto c2 = text.find(':', c1 + 1);
  if (c2 == std::string::npos) return std::nullopt;
  SnapshotText s;
  if (!ParseU64(text.substr(0, c1), s.xmin) || !ParseU64(text.substr(c1 + 1, c2 - c1 - 1), s.xmax))
    return std::nullopt;
  if (s.xmin > s.xmax || s.xmin < 3) return std::nullopt;
  return s;
}

RowProof ProveRows(pqxx::connection& source, pqxx::connection& restored, const RowProofInput& in,
                   CancelToken& cancel) {
  RowProof p;
  auto snap = ParseSnapshotText(in.snapshot);
  if (!snap) {
    p.message = "the recorded snapshot '" + in.snapshot + "' cannot be read";
    return p;
  }
  if (!KeysMatch(in.source_table, in.restored_table)) {
    p.message =
        in.source_table.key.empty()
            ? "no primary key (nor a unique key over NOT NULL columns): rows cannot be matched"
            : "the key differs between the source and the copy";
    return p;
  }
  CancelWatch ws(cancel, source), wr(cancel, restored);
  const std::string sx32 = std::to_string(snap->xmin % kXidSpace);
  const std::string unchanged = "age(t.xmin) > age('" + sx32 + "'::xid)";
  const TableInfo& st = in.source_table;
  const TableInfo& rt = in.restored_table;

  pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> stx(source, "rw_row_proof");
  pqxx::work rtx(restored, "rw_row_proof");
  RangeHash su, ru;
  bool attempted = false;
  WithPgErrors("row-level proof of " + st.name, [&] {
    const std::uint64_t next = std::strtoull(
        stx.exec1("select pg_snapshot_xmax(pg_current_snapshot())::text")[0].c_str(), nullptr, 10);
    if (snap->xmin > next) {
      p.message =
          "the recorded snapshot is ahead of the source's transaction counter (was the "
          "source replaced since?)";
      return;
    }
    if (next - snap->xmin > kMaxSnapshotAge) {
      p.message = "the recorded snapshot is " + std::to_string(next - snap->xmin) +
                  " transactions old, too old to compare transaction ids with";
      return;
    }
    // C first, in the same snapshot as U: every visible row is in exactly one of them.
    pqxx::result changed =
        stx.exec("select " + KeyColumns(st, "t") + " from only " + st.Sql() + " t where not (" +
                 unchanged + ") limit " + Num(in.max_changed_keys + 1));
    p.changed_rows = static_cast<std::int64_t>(changed.size());
    if (p.changed_rows > in.max_changed_keys) {
      p.message = "more than " + Num(in.max_changed_keys) +
                  " rows changed since the evidence snapshot: not compared row by row";
      return;
    }
    cancel.ThrowIfCancelled();
    su = Hash(stx, st, in.method, unchanged);
    p.unchanged_rows = su.rows;

    rtx.exec0("create temporary table rw_changed on commit drop as select " + KeyColumns(rt, "t") +
              " from only " + rt.Sql() + " t limit 0");
    for (std::size_t i = 0; i < changed.size(); i += kInsertBatch) {
      cancel.ThrowIfCancelled();
      std::string sql = "insert into pg_temp.rw_changed values ";
      for (std::size_t j = i; j < changed.size() && j < i + kInsertBatch; ++j) {
        sql += j > i ? ",(" : "(";
        for (std::size_t k = 0; k < rt.key.size(); ++k) {
          if (k) sql += ",";
          sql += rtx.quote(changed[j][static_cast<pqxx::row::size_type>(k)].as<std::string>()) +
                 "::" + rt.key[k].type;
        }
        sql += ")";
      }
      rtx.exec0(sql);
    }
    rtx.exec0("analyze pg_temp.rw_changed");
    attempted = true;
  });
  if (!attempted) return p;

  std::string match;
  for (std::size_t k = 0; k < rt.key.size(); ++k)
    match += (k ? " and " : "") + ("c." + QuoteIdent(rt.key[k].name)) + " = t." +
             QuoteIdent(rt.key[k].name);
  const std::string not_changed =
      "not exists (select 1 from pg_temp.rw_changed c where " + match + ")";
  WithPgErrors("row-level proof of " + st.name,
               [&] { ru = Hash(rtx, rt, in.method, not_changed); });
  const std::string counts = Num(p.unchanged_rows) + " rows unchanged since the evidence snapshot";
  if (su.rows == ru.rows && su.hash == ru.hash) {
    p.verdict = ProofVerdict::kProven;
    p.message = counts + " verified row by row; " + Num(p.changed_rows) +
                " changed or inserted since, not compared";
    return p;
  }
  WithPgErrors("narrowing the row-level difference of " + st.name, [&] {
    Narrower nw(NarrowSide{stx, st, unchanged}, NarrowSide{rtx, rt, not_changed}, in.method,
                std::nullopt, in.limits, cancel);
    p.diff = nw.Run(su.rows, ru.rows);
  });
  const NarrowResult& d = p.diff;
  const std::int64_t unexplained = d.only_source + d.changed;
  const bool extra_explained = d.only_restored <= in.deletes_since;
  if (unexplained > 0 || !extra_explained) {
    p.verdict = ProofVerdict::kFail;
    NarrowResult shown = d;
    if (extra_explained) {
      // Name only the unexplained keys.
      shown.only_restored = 0;
      std::vector<DiffSample> keep;
      for (const auto& s : d.samples)
        if (s.kind != RowDiff::kExtra) keep.push_back(s);
      shown.samples = keep;
    }
    p.message = "rows unchanged on the source since the evidence snapshot differ in the copy: " +
                DescribeDiff(shown);
    if (!extra_explained)
      p.message += "; " + Num(d.only_restored) +
                   " rows only in the copy, but the source recorded " + Num(in.deletes_since) +
                   " deletes since the backup";
    return p;
  }
  p.extra_rows = d.only_restored;
  if (!d.complete) {
    p.message = counts + " compared, but the differences could not all be classified (" +
                DescribeDiff(d) + ")";
    return p;  // unverified
  }
  p.verdict = ProofVerdict::kProven;
  p.message = counts + " verified row by row; " + Num(p.changed_rows) +
              " changed or inserted since, not compared; " + Num(d.only_restored) +
              " rows deleted since (within the " + Num(in.deletes_since) +
              " deletes counted since the backup)";
  return p;
}

}  // namespace rw
