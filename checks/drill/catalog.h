#pragma once
// Shared plumbing of the drill checks: the sessions they open (source: read-only with the drill's
// statement and lock timeouts; restored copy: the sandbox), the inventory of tables whose rows
// they compare, table exclusion globs and query cancellation on drill cancel.
// Functions are thread-safe; a connection or transaction passed in is used by the calling thread
// only.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "agent/cancel.h"
#include "agent/check.h"

namespace rw {

// A read-only session on the target's source (Connect + DrillSourceLimits, row_security off so
// that row-level security errors out rather than hiding rows). Throws Error(kConnect/kQuery).
std::unique_ptr<pqxx::connection> ConnectDrillSource(const CheckContext& ctx);
// A session on the restored copy. Throws Error(kConnect), or Error(kQuery) when called before the
// restore finished (ctx.restored_conninfo empty).
std::unique_ptr<pqxx::connection> ConnectRestored(const CheckContext& ctx);

// True if "schema.table" matches one of the fnmatch globs (e.g. "audit.*", "*.tmp_*").
bool MatchesAny(const std::string& name, const std::vector<std::string>& globs);

struct ColumnInfo {
  std::string name;
  std::string type;         // format_type(atttypid, atttypmod)
  bool collatable = false;  // has a collation (text-like): compare keys with COLLATE "C"
  // Hashed through its text form: enums (and arrays of / domains over them) and reg* types hash
  // by OID, and OIDs differ between the source and a restored copy.
  bool hash_as_text = false;
  std::uint32_t type_oid = 0;  // atttypid: picks the type's own hash function (table_scan.cpp)
  bool is_array = false;       // an array type (or a domain over one): hash_array_extended
};

// One table holding rows (relkind 'r': plain tables and leaf partitions; partitioned parents
// hold none and are not listed). Excludes system schemas, temporary tables and tables that
// belong to an extension.
struct TableInfo {
  std::string name;    // "schema.table" as ActivityTableKey() writes it (the activity samples'
                       // key; parts holding '.' or '"' are double-quoted, QualifiedName() splits)
  std::string schema;  // unquoted
  std::string table;   // unquoted
  std::string root;    // the partition root's "schema.table" for a partition, else == name
  std::int64_t bytes = 0;           // pg_relation_size (main fork), to schedule big tables first
  std::vector<ColumnInfo> columns;  // sorted by name, so column order does not change hashes
  // Row identity: the primary key's columns in key order, or, without one, those of a unique
  // index over NOT NULL columns only (no predicate, no expressions; the one with the fewest
  // columns, then the oldest); empty without either.
  std::vector<ColumnInfo> key;
  bool key_is_primary = false;
  std::string Sql() const;  // "schema"."table"
  const ColumnInfo* Column(const std::string& name) const;
};

// Tables of the current database, sorted by name, without those matching `exclude` (by their own
// name or their partition root's). Throws Error(kQuery).
std::vector<TableInfo> ListTables(pqxx::transaction_base& tx,
                                  const std::vector<std::string>& exclude);

// While alive, cancels the connection's running query when `cancel` fires (polls every 100 ms on
// a thread of its own). Use around long statements. Ending it does not wait for the next poll: a
// drill opens several, and each used to cost up to 100 ms at its end.
class CancelWatch {
 public:
  CancelWatch(CancelToken& cancel, pqxx::connection& conn);
  ~CancelWatch();
  CancelWatch(const CancelWatch&) = delete;
  CancelWatch& operator=(const CancelWatch&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::thread thread_;
};

// "1m12s"-style age for messages (negative values get a leading '-').
std::string FormatAge(double seconds);

}  // namespace rw
