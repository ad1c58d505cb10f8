#pragma once
// One pass per table and side computing count(*) and an order-independent content hash together,
// shared by row_count and checksum through CheckContext::cache so each table is read once per
// side and drill.
//
// Hash: the sum (as numeric, so it cannot overflow) of a 64-bit hash of every row, computed inside
// PostgreSQL: hashint4extended(0, h) (h as the seed, all 64 bits mixed) of the row's hash h, the
// XOR of one keyed hash per column (HashFormat below). Keying each column by its place in the
// name-sorted list makes the hash independent of column order and tells columns apart; sum +
// count (not xor) keeps duplicate rows from cancelling. The outer hash is there because a plain
// sum of h is a sum of per-column sums, which a column's values swapped between two rows keep
// (references written so, format version 1, are refused). Enum and reg* columns
// are hashed as text (their hash is of an OID, which differs between source and copy). Tables with
// a column type lacking an extended hash function (json, point, xml, money, ...) use h =
// hashtextextended(row(...)::text, 0) instead, under the same outer hash; the row's text form
// depends on output settings that pg_conn pins on both sides (TimeZone, DateStyle, IntervalStyle,
// extra_float_digits, bytea_output, lc_monetary). Large objects are hashed alike, with h =
// hash_record_extended(row(oid, lo_get(oid)), 0); when the source role may not read them, they are
// not compared, with a note.
//
// The source side runs in one read-only REPEATABLE READ transaction (counts and hashes of one
// snapshot, with pg_stat_user_tables read right after the snapshot was taken), either during the
// restore (Check::BeforeRestore) or concurrently with the restored side's scan on a second thread.
// The restored side (the agent's own sandbox) is scanned with two sessions when the source side
// has already finished.
//
// Threads: PrepareSource() may run on a helper thread while Ensure() runs on the drill thread;
// every method is thread-safe. Results returned by reference stay valid and unchanged once
// Ensure() returned without throwing.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "agent/check.h"
#include "checks/drill/catalog.h"
#include "checks/drill/churn.h"

namespace rw {

enum class HashMethod { kRecord, kText };
// How rows are hashed, by reference format version (checks/drill/reference.h):
// - kV4 (this version): HashMethod::kRecord rows hash as the XOR of one keyed 64-bit hash per
//   column (column k of the name-sorted list under seed k), each by its type's own extended hash
//   function where the type is a known built-in; a built-in whose hash function cannot be called
//   on it as it is (timestamptz's is timestamp's, reached only through a cast that depends on
//   TimeZone; date's is int4's, bool's char's, ...) as the one element of an array,
//   hash_array_extended(array[col], k); any other type as hash_record_extended(row(col), k).
//   bigint goes in as the seed of hashint4extended (hashint8extended folds it to 32 bits first,
//   so 1 and 4294967296 hashed alike). The row's hash is then mixed by hashint4extended(0, h): h
//   as the seed, all 64 bits through Jenkins' mix. HashMethod::kText:
//   hashtextextended(row::text, 0), mixed alike.
// - kV3 (references of format 3, read still): as kV4, with every type without a function of its
//   own in the list through hash_record_extended(row(col), k) (a record formed and taken apart per
//   row: timestamptz cost 37 to 42 ns a row that way in the bench, 21 through an array).
// - kV2 (references of format 2, read still): hashtextextended(h::text, 0) of h =
//   hash_record_extended(row(...), 0), or of the text form's hash.
enum class HashFormat { kV4, kV3, kV2 };

// SQL of one row's 64-bit hash for table alias `t`, over the table's columns sorted by name (the
// outer, non-linear hash included).
std::string RowHashSql(const TableInfo& table, HashMethod method,
                       HashFormat format = HashFormat::kV4);

// The keyed 64-bit hash of one column of alias `t` (HashMethod::kRecord, formats 3 and 4), `seed`
// its place in the name-sorted list from 1: one term of RowHashSql's XOR (the bench times each).
std::string ColumnHashSql(const ColumnInfo& c, int seed, HashFormat format = HashFormat::kV4);

struct TableScan {
  std::int64_t rows = 0;
  std::string hash = "0";  // decimal sum of the rows' 64-bit hashes
  HashMethod method = HashMethod::kRecord;
  std::string error;  // non-empty: the table could not be read on this side (one line)
  // Restored side of an append-only table: max(key) as text (nullopt when no row has a key), and
  // count and hash of the rows with a key, i.e. with key <= max(key).
  std::optional<std::string> max_key;
  std::int64_t keyed_rows = 0;
  std::string keyed_hash = "0";
};

struct LargeObjectScan {
  bool scanned = false;  // false: not readable here (note says why)
  std::string note;
  std::int64_t count = 0;
  std::string hash = "0";
};

struct SideScan {
  std::vector<TableInfo> tables;           // inventory, sorted by name
  std::map<std::string, TableScan> scans;  // by TableInfo::name
  LargeObjectScan large_objects;
  double snapshot_time = 0;  // Unix seconds: clock_timestamp() when the snapshot was taken
  double seconds = 0;        // duration of the scan
  ActivitySample counters;   // source only: pg_stat_user_tables read in the scan's transaction
  const TableInfo* Find(const std::string& name) const;
};

// pg_stat_user_tables of the connected database as a sample stamped now. Throws Error(kQuery).
ActivitySample ReadCounters(pqxx::transaction_base& tx);

// count(*) and the hash sum over the rows of `table` matching `where` (SQL over alias t, or empty
// for all). Throws pqxx exceptions (callers decide what a failure means).
struct RangeHash {
  std::int64_t rows = 0;
  std::string hash = "0";
};
RangeHash HashRows(pqxx::transaction_base& tx, const TableInfo& table, HashMethod method,
                   const std::string& where, HashFormat format = HashFormat::kV4);

// One table's count + hash in one pass, as the drill computes it on either side: in a savepoint
// of `tx` when given (so a failing table does not end the transaction), else in an autocommit
// statement on `conn`; falls back to HashMethod::kText when a column type has no extended hash
// function. A per-table failure lands in TableScan::error; a lost connection throws Error, a
// cancelled `cancel` Error(kCancelled). append_only: also the keyed count/hash (restored side).
// Also used by `restorewatch dump` to write a reference (checks/drill/reference.h).
TableScan ScanTable(pqxx::connection& conn, pqxx::dbtransaction* tx, const TableInfo& t,
                    const AppendOnlyTable* append_only, CancelToken& cancel);
// Count and hash of the large objects, like ScanTable (scanned == false with a note when the role
// may not read them).
LargeObjectScan ScanLargeObjects(pqxx::connection& conn, pqxx::dbtransaction* tx,
                                 HashFormat format = HashFormat::kV4);

// Sessions that scan the restored copy when nothing else competes for it (the sandbox is the
// agent's own; the source always gets one session, to stay gentle with production).
constexpr int kRestoredScanWorkers = 2;

// Indexes of `tables`, largest first: handed out one at a time so workers finish together.
std::vector<std::size_t> LargestFirst(const std::vector<TableInfo>& tables);

// Runs each(session, k) for k = 0 .. n-1, handed out in that order one at a time, over `workers`
// sessions to the restored copy: `first` and workers - 1 more of its own (ConnectRestored). The
// first exception stops the others from taking more and is rethrown once all have stopped; a
// cancelled ctx.cancel cancels the running statements. Each item done counts on ctx.progress as a
// table hashed in the copy.
void ForEachOnRestored(CheckContext& ctx, pqxx::connection& first, std::size_t n, int workers,
                       const std::function<void(pqxx::connection&, std::size_t)>& each);

class ScanState {
 public:
  // The drill's shared instance, created on first use in ctx.cache.
  static std::shared_ptr<ScanState> For(CheckContext& ctx);

  // Scans the source now on the calling thread, unless a scan has started already. Never throws:
  // an error is kept and rethrown by Ensure().
  void PrepareSource(CheckContext& ctx);
  // Both sides scanned: runs the restored side's scan here and the source's concurrently on a
  // second thread if it has not run yet, or waits for a running one. Throws the Error of a side
  // that failed (the same one on every call).
  void Ensure(CheckContext& ctx);
  const SideScan& source() const { return source_; }
  const SideScan& restored() const { return restored_; }

  // Churn since the backup per the counters read in the source scan. After Ensure().
  const ChurnBasis& Churn(CheckContext& ctx);
  // Churn per counters re-read from the source at least ChecksConfig::stats_settle after the
  // scan's counters (sleeping, cancellably, only for what is left of that bound), so that writes
  // whose statistics were still pending in some backend are counted. Done once per drill.
  // Throws Error (kCancelled, kConnect, kQuery).
  const ChurnBasis& SettledChurn(CheckContext& ctx);
  // Source count and hash of an append-only table over key <= the restored copy's max(key), from
  // a new read-only source session (all append-only tables at once, on first call). nullopt when
  // the restored copy has no keyed rows; TableScan::error set when it could not be computed.
  std::optional<TableScan> AppendOnlySource(CheckContext& ctx, const std::string& table);

 private:
  enum class Phase { kNotStarted, kRunning, kDone };
  void RunSource(CheckContext& ctx);
  // Scans the restored copy with `workers` sessions (tables largest first). Throws Error.
  void ScanRestored(CheckContext& ctx, SideScan& side, int workers);
  std::mutex mu_;
  std::condition_variable cv_;
  Phase source_phase_ = Phase::kNotStarted;
  std::exception_ptr source_error_;
  bool ensured_ = false;
  std::exception_ptr restored_error_;
  SideScan source_, restored_;
  bool abort_source_ = false;  // the restored side failed: stop the source scan early

  std::mutex churn_mu_;
  std::optional<ChurnBasis> churn_, settled_;
  std::optional<std::map<std::string, TableScan>> append_only_;
};

}  // namespace rw
