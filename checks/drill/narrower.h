#pragma once
// Narrowing a content difference down to keys: bisects a table by key ranges on both sides (count
// + sum of 64-bit row hashes per range, data-diff's method) until ranges are small enough to
// compare row by row, within a query budget. Each side is one transaction of its own (a REPEATABLE
// READ snapshot when every query must see the same rows) plus an optional row filter, so the same
// code compares whole tables (checksum mismatches) and "rows unchanged since snapshot S" against
// "the copy's rows whose keys did not change since S" (row-level proof, checks/drill/row_proof.h).
// Key comparisons of text-like columns use COLLATE "C" so that both sides order alike whatever
// their database collation. Not thread-safe; one instance per table.
#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "agent/cancel.h"
#include "checks/drill/catalog.h"
#include "checks/drill/table_scan.h"

namespace rw {

using KeyValue = std::vector<std::string>;  // one text value per key column

struct NarrowSide {
  pqxx::transaction_base& tx;
  const TableInfo& table;
  std::string filter;  // extra SQL condition over alias t (empty: every row)
};

enum class RowDiff { kMissing, kExtra, kChanged };  // missing from / only in the copy; changed

struct DiffSample {
  RowDiff kind;
  std::string key;  // "col=value,col=value"
};

struct NarrowResult {
  std::int64_t only_source = 0;    // rows missing from the restored copy
  std::int64_t only_restored = 0;  // rows the source does not have
  std::int64_t changed = 0;        // same key, different content
  std::int64_t unexplored = 0;     // lower bound of differing rows in ranges left unexplored
  bool complete = true;
  std::vector<DiffSample> samples;
  std::int64_t total() const { return only_source + only_restored + changed + unexplored; }
};

struct NarrowLimits {
  int max_queries = 150;         // per table, both sides
  std::int64_t leaf_rows = 500;  // ranges this small are compared row by row
  int sample_keys = 5;           // keys named in all
};

class Narrower {
 public:
  // upto: append-only tables are compared over rows with key column <= this value. The key is
  // the restored table's (both sides must have the same key columns and types).
  Narrower(NarrowSide source, NarrowSide restored, HashMethod method,
           std::optional<std::pair<ColumnInfo, std::string>> upto, NarrowLimits limits,
           CancelToken& cancel);
  // source_rows/restored_rows: the counts of the whole (filtered) sides. Throws pqxx exceptions
  // and Error(kCancelled).
  NarrowResult Run(std::int64_t source_rows, std::int64_t restored_rows);

 private:
  struct KeyRange {
    std::optional<KeyValue> lo;  // inclusive
    std::optional<KeyValue> hi;  // exclusive
    std::int64_t source_rows = 0;
    std::int64_t restored_rows = 0;
  };
  const std::vector<ColumnInfo>& Key() const { return restored_.table.key; }
  std::string KeyExpr() const;
  std::string Literal(pqxx::transaction_base& tx, const KeyValue& v) const;
  std::string Where(const NarrowSide& side, const KeyRange& r) const;
  std::string KeyText() const;
  std::string OrderBy() const;
  pqxx::result Exec(pqxx::transaction_base& tx, const std::string& sql);
  std::vector<KeyRange> Split(const KeyRange& r);
  std::vector<RangeHash> Buckets(const NarrowSide& side, const KeyRange& r,
                                 const std::vector<KeyValue>& points);
  std::map<KeyValue, std::string> FetchRows(const NarrowSide& side, const KeyRange& r);
  void Sample(RowDiff kind, const KeyValue& v, NarrowResult& res);
  void CompareRows(const KeyRange& r, NarrowResult& res);

  NarrowSide source_, restored_;
  HashMethod method_;
  std::optional<std::pair<ColumnInfo, std::string>> upto_;
  NarrowLimits limits_;
  CancelToken& cancel_;
  int queries_ = 0;
};

// "3 rows differ (1 changed, 2 missing from the restored copy); keys: id=4 (changed); ..."
std::string DescribeDiff(const NarrowResult& n);
// "id=4 (changed)"
std::string DescribeSample(const DiffSample& s);

// Both tables have the same non-empty key (names and types).
bool KeysMatch(const TableInfo& a, const TableInfo& b);

}  // namespace rw
