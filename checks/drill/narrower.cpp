#include "checks/drill/narrower.h"

#include <algorithm>
#include <cstdlib>
#include <deque>

#include "agent/pg/pg_conn.h"

namespace rw {
namespace {

constexpr int kSplit = 16;  // ranges per split

std::string Rows(std::int64_t n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

const char* KindName(RowDiff k) {
  switch (k) {
    case RowDiff::kMissing:
      return "missing from the restored copy";
    case RowDiff::kExtra:
      return "only in the restored copy";
    case RowDiff::kChanged:
      return "changed";
  }
  return "";
}

}  // namespace

Narrower::Narrower(NarrowSide source, NarrowSide restored, HashMethod method,
                   std::optional<std::pair<ColumnInfo, std::string>> upto, NarrowLimits limits,
                   CancelToken& cancel)
    : source_(std::move(source)),
      restored_(std::move(restored)),
      method_(method),
      upto_(std::move(upto)),
      limits_(limits),
      cancel_(cancel) {}

NarrowResult Narrower::Run(std::int64_t source_rows, std::int64_t restored_rows) {
  NarrowResult res;
  std::deque<KeyRange> todo;
  todo.push_back(KeyRange{std::nullopt, std::nullopt, source_rows, restored_rows});
  while (!todo.empty()) {
    cancel_.ThrowIfCancelled();
    KeyRange r = std::move(todo.front());
    todo.pop_front();
    const std::int64_t larger = std::max(r.source_rows, r.restored_rows);
    const int cost = larger <= limits_.leaf_rows ? 2 : 3;
    if (queries_ + cost > limits_.max_queries) {
      res.complete = false;
      res.unexplored += std::max<std::int64_t>(1, std::llabs(r.source_rows - r.restored_rows));
      continue;
    }
    if (larger <= limits_.leaf_rows) {
      CompareRows(r, res);
      continue;
    }
    for (auto& sub : Split(r)) todo.push_back(std::move(sub));
  }
  return res;
}

std::string Narrower::KeyExpr() const {
  std::string out = Key().size() > 1 ? "(" : "";
  for (std::size_t i = 0; i < Key().size(); ++i) {
    if (i) out += ", ";
    out += "t." + QuoteIdent(Key()[i].name);
    if (Key()[i].collatable) out += " collate \"C\"";
  }
  return out + (Key().size() > 1 ? ")" : "");
}

std::string Narrower::Literal(pqxx::transaction_base& tx, const KeyValue& v) const {
  std::string out = Key().size() > 1 ? "(" : "";
  for (std::size_t i = 0; i < Key().size(); ++i) {
    if (i) out += ", ";
    out += tx.quote(v[i]) + "::" + Key()[i].type;
    if (Key()[i].collatable) out += " collate \"C\"";
  }
  return out + (Key().size() > 1 ? ")" : "");
}

std::string Narrower::Where(const NarrowSide& side, const KeyRange& r) const {
  std::vector<std::string> parts;
  if (r.lo) parts.push_back(KeyExpr() + " >= " + Literal(side.tx, *r.lo));
  if (r.hi) parts.push_back(KeyExpr() + " < " + Literal(side.tx, *r.hi));
  if (upto_)
    parts.push_back("t." + QuoteIdent(upto_->first.name) + " <= " + side.tx.quote(upto_->second) +
                    "::" + upto_->first.type);
  if (!side.filter.empty()) parts.push_back("(" + side.filter + ")");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? " where " : " and ") + p;
  return out;
}

std::string Narrower::KeyText() const {
  std::string out;
  for (std::size_t i = 0; i < Key().size(); ++i)
    out += (i ? ", " : "") + ("t." + QuoteIdent(Key()[i].name)) + "::text";
  return out;
}

std::string Narrower::OrderBy() const {
  std::string out;
  for (std::size_t i = 0; i < Key().size(); ++i) {
    out += (i ? ", " : "") + ("t." + QuoteIdent(Key()[i].name));
    if (Key()[i].collatable) out += " collate \"C\"";
  }
  return out;
}

pqxx::result Narrower::Exec(pqxx::transaction_base& tx, const std::string& sql) {
  ++queries_;
  return tx.exec(sql);
}

// Splits r into up to kSplit ranges at key quantiles of the side with more rows; returns the
// sub-ranges whose count or hash differ between the sides.
std::vector<Narrower::KeyRange> Narrower::Split(const KeyRange& r) {
  const bool from_restored = r.restored_rows >= r.source_rows;
  const NarrowSide& side = from_restored ? restored_ : source_;
  const std::int64_t rows = std::max(r.source_rows, r.restored_rows);
  const std::int64_t step = (rows + kSplit - 1) / kSplit;
  std::vector<KeyValue> points;
  for (const auto& row :
       Exec(side.tx, "select " + KeyText() + " from (select t.*, row_number() over (order by " +
                         OrderBy() + ") as rw_rn from only " + side.table.Sql() + " t" +
                         Where(side, r) + ") t where rw_rn > 1 and (rw_rn - 1) % " +
                         std::to_string(step) + " = 0")) {
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
  auto src = Buckets(source_, r, points);
  auto rst = Buckets(restored_, r, points);
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
std::vector<RangeHash> Narrower::Buckets(const NarrowSide& side, const KeyRange& r,
                                         const std::vector<KeyValue>& points) {
  std::string bucket = "case";
  for (std::size_t i = 0; i < points.size(); ++i)
    bucket +=
        " when " + KeyExpr() + " < " + Literal(side.tx, points[i]) + " then " + std::to_string(i);
  bucket += " else " + std::to_string(points.size()) + " end";
  std::vector<RangeHash> out(points.size() + 1);
  for (const auto& row :
       Exec(side.tx, "select b, count(*), coalesce(sum(h), 0)::text from (select " + bucket +
                         " as b, " + RowHashSql(side.table, method_) + " as h from only " +
                         side.table.Sql() + " t" + Where(side, r) + " offset 0) s group by b")) {
    auto b = static_cast<std::size_t>(row[0].as<int>());
    if (b < out.size()) out[b] = RangeHash{row[1].as<std::int64_t>(), row[2].as<std::string>()};
  }
  return out;
}

std::map<KeyValue, std::string> Narrower::FetchRows(const NarrowSide& side, const KeyRange& r) {
  std::map<KeyValue, std::string> out;
  for (const auto& row :
       Exec(side.tx, "select " + KeyText() + ", (" + RowHashSql(side.table, method_) +
                         ")::text from only " + side.table.Sql() + " t" + Where(side, r))) {
    KeyValue v;
    const pqxx::row::size_type n = row.size();
    for (pqxx::row::size_type i = 0; i + 1 < n; ++i) v.push_back(row[i].as<std::string>());
    out[std::move(v)] = row[n - 1].as<std::string>();
  }
  return out;
}

void Narrower::Sample(RowDiff kind, const KeyValue& v, NarrowResult& res) {
  if (static_cast<int>(res.samples.size()) >= limits_.sample_keys) return;
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + Key()[i].name + "=" + v[i];
  res.samples.push_back(DiffSample{kind, s});
}

void Narrower::CompareRows(const KeyRange& r, NarrowResult& res) {
  auto src = FetchRows(source_, r);
  auto rst = FetchRows(restored_, r);
  auto a = src.begin();
  auto b = rst.begin();
  while (a != src.end() || b != rst.end()) {
    if (b == rst.end() || (a != src.end() && a->first < b->first)) {
      ++res.only_source;
      Sample(RowDiff::kMissing, a->first, res);
      ++a;
    } else if (a == src.end() || b->first < a->first) {
      ++res.only_restored;
      Sample(RowDiff::kExtra, b->first, res);
      ++b;
    } else {
      if (a->second != b->second) {
        ++res.changed;
        Sample(RowDiff::kChanged, a->first, res);
      }
      ++a, ++b;
    }
  }
}

std::string DescribeSample(const DiffSample& s) { return s.key + " (" + KindName(s.kind) + ")"; }

std::string DescribeDiff(const NarrowResult& n) {
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
    for (std::size_t i = 0; i < n.samples.size(); ++i)
      out += (i ? "; " : "") + DescribeSample(n.samples[i]);
  }
  return out;
}

bool KeysMatch(const TableInfo& a, const TableInfo& b) {
  if (a.key.size() != b.key.size() || a.key.empty()) return false;
  for (std::size_t i = 0; i < a.key.size(); ++i)
    if (a.key[i].name != b.key[i].name || a.key[i].type != b.key[i].type) return false;
  return true;
}

}  // namespace rw
