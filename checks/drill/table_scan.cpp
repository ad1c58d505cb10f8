#include "checks/drill/table_scan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/live/table_activity_collector.h"

namespace rw {
namespace {

constexpr const char* kCacheKey = "table_scan";
// SQLSTATE 42883 undefined_function: "could not identify an extended hash function for type".
constexpr const char* kNoHashFunction = "42883";
constexpr const char* kInsufficientPrivilege = "42501";

std::string OneLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}

bool IsSqlState(const pqxx::sql_error& e, const char* state) { return e.sqlstate() == state; }

// Runs `query` in a savepoint of tx (source: one snapshot for the whole scan) or in a fresh
// autocommit statement (restored copy), so a failing table does not end the scan.
template <typename F>
void Attempt(pqxx::connection& conn, pqxx::dbtransaction* tx, const F& f) {
  if (tx) {
    pqxx::subtransaction sub(*tx, "rw_table");
    f(static_cast<pqxx::transaction_base&>(sub));
    sub.commit();
  } else {
    pqxx::nontransaction nt(conn);
    f(static_cast<pqxx::transaction_base&>(nt));
  }
}

std::string ScanQuery(const TableInfo& t, HashMethod m, const AppendOnlyTable* append_only) {
  const std::string h = RowHashSql(t, m);
  if (!append_only)
    return "select count(*), coalesce(sum(" + h + "), 0)::text from only " + t.Sql() + " t";
  const std::string k = QuoteIdent(append_only->key);
  // offset 0 keeps the subquery from being flattened, so the row hash is computed once per row.
  return "select count(*), coalesce(sum(h), 0)::text, max(k)::text, count(k),"
         " coalesce(sum(h) filter (where k is not null), 0)::text from (select " +
         h + " as h, t." + k + " as k from only " + t.Sql() + " t offset 0) s";
}

// Every row's 64-bit hash goes through a second, non-linear hash before it is summed: a plain sum
// of row hashes that combine column hashes linearly (hash_record_extended: h * 31 + column hash;
// an XOR of column hashes) is a function of per-column sums, which a column's values swapped
// between two rows (or two large objects' contents) keep. Format 3 mixes by hashint4extended(0,
// h): h is the seed, which hash_uint32_extended feeds whole (both 32-bit halves) through Jenkins'
// mix and final; a function call, so nearly free. Format 2 went through h's decimal text, a
// quarter of the scan on pgbench_accounts. hashint8extended(h, 0) would be as cheap but folds its
// input to 32 bits first (to match int4's hash), so a changed row would go unseen with
// probability 2^-32, not 2^-64. bench/drill_bench.cpp measures the candidates.
std::string MixRowHash(const std::string& hash_sql, HashFormat format) {
  if (format == HashFormat::kV2) return "hashtextextended((" + hash_sql + ")::text, 0)";
  return "hashint4extended(0, " + hash_sql + ")";
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Formats 3 and 4: the keyed hash of one column, `seed` its place in the name-sorted list (from
// 1). The built-in types below are called by their own extended hash function (what
// hash_record_extended would call through the type cache, without forming and taking apart a
// record per row: a third cheaper on pgbench_accounts); a bigint is the seed of
// hashint4extended, so all 64 bits count. Format 4 puts the built-ins of kInArray below in a
// one-element array. Any other type goes through hash_record_extended(row(col), seed), which
// raises 42883 for a type without an extended hash function (the table then falls back to
// HashMethod::kText). NULL hashes as the seed itself (31 in an array). OIDs are the catalog's
// fixed ones for built-in types.
std::string ColumnHashSql(const ColumnInfo& c, int seed, HashFormat format) {
  const std::string col = "t." + QuoteIdent(c.name);
  const std::string k = std::to_string(seed);
  if (c.hash_as_text) return "coalesce(hashtextextended(" + col + "::text, " + k + "), " + k + ")";
  if (c.is_array) return "coalesce(hash_array_extended(" + col + ", " + k + "), " + k + ")";
  if (c.type_oid == 20)  // bigint: the seed, all 64 bits
    return "coalesce(hashint4extended(" + k + ", " + col + "), " + k + ")";
  // varchar is binary-coercible to text.
  static const std::map<std::uint32_t, const char*> kOwn = {
      {21, "hashint2extended"},          {23, "hashint4extended"},
      {25, "hashtextextended"},          {1043, "hashtextextended"},
      {26, "hashoidextended"},           {700, "hashfloat4extended"},
      {701, "hashfloat8extended"},       {1042, "hashbpcharextended"},
      {1114, "timestamp_hash_extended"}, {1700, "hash_numeric_extended"},
      {2950, "uuid_hash_extended"},      {3802, "jsonb_hash_extended"}};
  // Format 4: built-in types whose hash function takes another type (timestamptz's is
  // timestamp's, reached only through a cast that depends on TimeZone; date's is int4's, bool's
  // char's) or is not callable from SQL (bytea's takes `internal`), as the one element of an
  // array: hash_array_extended calls the element type's hash with the seed through the type
  // cache, without forming a record a row. A NULL element hashes as 31 (the array hash's start,
  // unkeyed: the other columns' keys still tell the columns apart).
  static const std::set<std::uint32_t> kInArray = {
      16,    // bool
      17,    // bytea
      18,    // "char"
      19,    // name
      650,   // cidr
      774,   // macaddr8
      829,   // macaddr
      869,   // inet
      1082,  // date
      1083,  // time
      1184,  // timestamptz
      1186,  // interval
      1266,  // timetz
      3220,  // pg_lsn
  };
  auto fn = kOwn.find(c.type_oid);
  if (fn == kOwn.end()) {
    if (format != HashFormat::kV3 && kInArray.count(c.type_oid))
      return "hash_array_extended(array[" + col + "], " + k + ")";
    return "hash_record_extended(row(" + col + "), " + k + ")";
  }
  return "coalesce(" + std::string(fn->second) + "(" + col + ", " + k + "), " + k + ")";
}

// Scans one table: count + hash in one pass, falling back to the text hash when a column type
// has no extended hash function. Per-table failures land in TableScan::error; a lost connection
// or a cancelled drill throws.
TableScan ScanTable(pqxx::connection& conn, pqxx::dbtransaction* tx, const TableInfo& t,
                    const AppendOnlyTable* append_only, CancelToken& cancel) {
  TableScan s;
  for (HashMethod m : {HashMethod::kRecord, HashMethod::kText}) {
    s.method = m;
    try {
      Attempt(conn, tx, [&](pqxx::transaction_base& q) {
        pqxx::row r = q.exec1(ScanQuery(t, m, append_only));
        s.rows = r[0].as<std::int64_t>();
        s.hash = r[1].as<std::string>();
        if (append_only) {
          if (!r[2].is_null()) s.max_key = r[2].as<std::string>();
          s.keyed_rows = r[3].as<std::int64_t>();
          s.keyed_hash = r[4].as<std::string>();
        }
      });
      s.error.clear();
      return s;
    } catch (const pqxx::broken_connection&) {
      RethrowAsError("cannot scan " + t.name);
    } catch (const pqxx::sql_error& e) {
      if (cancel.cancelled()) throw Error(ErrorKind::kCancelled, "table scan cancelled");
      s.error = OneLine(e.what());
      if (!IsSqlState(e, kNoHashFunction)) return s;
    }
  }
  return s;
}

LargeObjectScan ScanLargeObjects(pqxx::connection& conn, pqxx::dbtransaction* tx,
                                 HashFormat format) {
  LargeObjectScan lo;
  try {
    Attempt(conn, tx, [&](pqxx::transaction_base& q) {
      pqxx::row r =
          q.exec1("select count(*), coalesce(sum(" +
                  MixRowHash("hash_record_extended(row(m.oid, lo_get(m.oid)), 0)", format) +
                  "), 0)::text from pg_largeobject_metadata m");
      lo.count = r[0].as<std::int64_t>();
      lo.hash = r[1].as<std::string>();
      lo.scanned = true;
    });
  } catch (const pqxx::broken_connection&) {
    RethrowAsError("cannot scan large objects");
  } catch (const pqxx::sql_error& e) {
    lo.scanned = false;
    // libpqxx 6 throws insufficient_privilege without its SQLSTATE: test the type too.
    const bool denied = IsSqlState(e, kInsufficientPrivilege) ||
                        dynamic_cast<const pqxx::insufficient_privilege*>(&e) != nullptr;
    lo.note = denied ? "large objects not compared: the source role may not read them"
                     : "large objects not compared: " + OneLine(e.what());
  }
  return lo;
}

std::string RowHashSql(const TableInfo& table, HashMethod method, HashFormat format) {
  if (table.columns.empty()) return "0::bigint";
  std::string row = "row(";
  for (std::size_t i = 0; i < table.columns.size(); ++i) {
    if (i) row += ", ";
    row += "t." + QuoteIdent(table.columns[i].name);
    if (table.columns[i].hash_as_text) row += "::text";
  }
  row += ")";
  if (method == HashMethod::kText)
    return MixRowHash("hashtextextended(" + row + "::text, 0)", format);
  if (format == HashFormat::kV2) return MixRowHash("hash_record_extended(" + row + ", 0)", format);
  std::string x;
  for (std::size_t i = 0; i < table.columns.size(); ++i)
    x += (i ? " # " : "") + ColumnHashSql(table.columns[i], static_cast<int>(i) + 1, format);
  return MixRowHash("(" + x + ")", format);
}

const TableInfo* SideScan::Find(const std::string& name) const {
  for (const auto& t : tables)
    if (t.name == name) return &t;
  return nullptr;
}

ActivitySample ReadCounters(pqxx::transaction_base& tx) {
  ActivitySample s;
  WithPgErrors("cannot read table statistics", [&] {
    for (const auto& row :
         tx.exec("select schemaname, relname, n_tup_ins, n_tup_upd, n_tup_del, n_live_tup"
                 " from pg_stat_user_tables")) {
      TableCounters c;
      c.n_tup_ins = row[2].as<std::int64_t>(0);
      c.n_tup_upd = row[3].as<std::int64_t>(0);
      c.n_tup_del = row[4].as<std::int64_t>(0);
      c.n_live_tup = row[5].as<std::int64_t>(0);
      s.tables[ActivityTableKey(row[0].as<std::string>(), row[1].as<std::string>())] = c;
    }
  });
  s.ts = NowUnix();
  return s;
}

RangeHash HashRows(pqxx::transaction_base& tx, const TableInfo& table, HashMethod method,
                   const std::string& where, HashFormat format) {
  pqxx::row r = tx.exec1("select count(*), coalesce(sum(" + RowHashSql(table, method, format) +
                         "), 0)::text from only " + table.Sql() + " t" +
                         (where.empty() ? "" : " where " + where));
  return RangeHash{r[0].as<std::int64_t>(), r[1].as<std::string>()};
}

std::shared_ptr<ScanState> ScanState::For(CheckContext& ctx) {
  std::lock_guard<std::mutex> lk(ctx.cache_mu);
  auto& slot = ctx.cache[kCacheKey];
  if (auto* p = std::any_cast<std::shared_ptr<ScanState>>(&slot)) return *p;
  auto s = std::make_shared<ScanState>();
  slot = s;
  return s;
}

void ScanState::PrepareSource(CheckContext& ctx) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (source_phase_ != Phase::kNotStarted) return;
    source_phase_ = Phase::kRunning;
  }
  RunSource(ctx);
}

void ScanState::RunSource(CheckContext& ctx) {
  SideScan side;
  std::exception_ptr error;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    auto conn = ConnectDrillSource(ctx);
    CancelWatch watch(ctx.cancel, *conn);
    WithPgErrors("cannot scan the source", [&] {
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*conn, "rw_source_scan");
      // The first statement takes the snapshot; the counters are read right after it.
      side.snapshot_time =
          tx.exec1("select extract(epoch from clock_timestamp())::float8")[0].as<double>();
      side.counters = ReadCounters(tx);
      side.tables = ListTables(tx, ctx.target.checks.exclude_tables);
      for (const auto& t : side.tables) {
        ctx.cancel.ThrowIfCancelled();
        {
          std::lock_guard<std::mutex> lk(mu_);
          if (abort_source_) throw Error(ErrorKind::kCancelled, "source scan abandoned");
        }
        side.scans[t.name] = ScanTable(*conn, &tx, t, nullptr, ctx.cancel);
      }
      side.large_objects = ScanLargeObjects(*conn, &tx);
      tx.commit();
    });
  } catch (...) {
    error = std::current_exception();
  }
  side.seconds = Since(t0);
  {
    std::lock_guard<std::mutex> lk(mu_);
    source_ = std::move(side);
    source_error_ = error;
    source_phase_ = Phase::kDone;
  }
  cv_.notify_all();
}

std::vector<std::size_t> LargestFirst(const std::vector<TableInfo>& tables) {
  std::vector<std::size_t> order(tables.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return tables[a].bytes > tables[b].bytes; });
  return order;
}

void ForEachOnRestored(CheckContext& ctx, pqxx::connection& first, std::size_t n, int workers,
                       const std::function<void(pqxx::connection&, std::size_t)>& each) {
  std::atomic<std::size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  auto work = [&](pqxx::connection& c) {
    CancelWatch watch(ctx.cancel, c);
    for (std::size_t k; !failed && (k = next++) < n;) {
      ctx.cancel.ThrowIfCancelled();
      each(c, k);
      if (ctx.progress)
        ctx.progress->Items(static_cast<std::int64_t>(++done), static_cast<std::int64_t>(n),
                            "tables hashed in the copy");
    }
  };
  workers =
      static_cast<int>(std::min<std::size_t>(std::max(workers, 1), std::max<std::size_t>(n, 1)));
  std::vector<std::exception_ptr> errors(workers);
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        auto c = ConnectRestored(ctx);
        work(*c);
      } catch (...) {
        errors[w] = std::current_exception();
        failed = true;
      }
    });
  }
  try {
    work(first);
  } catch (...) {
    errors[0] = std::current_exception();
    failed = true;
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

void ScanState::ScanRestored(CheckContext& ctx, SideScan& side, int workers) {
  auto conn = ConnectRestored(ctx);
  WithPgErrors("cannot scan the restored copy", [&] {
    pqxx::nontransaction nt(*conn);
    side.snapshot_time =
        nt.exec1("select extract(epoch from clock_timestamp())::float8")[0].as<double>();
    side.tables = ListTables(nt, ctx.target.checks.exclude_tables);
  });
  const std::vector<std::size_t> order = LargestFirst(side.tables);
  std::vector<TableScan> results(order.size());
  ForEachOnRestored(ctx, *conn, order.size(), workers, [&](pqxx::connection& c, std::size_t k) {
    WithPgErrors("cannot scan the restored copy", [&] {
      const TableInfo& t = side.tables[order[k]];
      const AppendOnlyTable* ao = FindAppendOnly(t.name, ctx.target.checks);
      if (ao && !t.Column(ao->key)) ao = nullptr;  // reported by checksum
      const auto t0 = std::chrono::steady_clock::now();
      results[order[k]] = ScanTable(c, nullptr, t, ao, ctx.cancel);
      LogDebug("table hashed in the copy",
               {{"table", t.name}, {"rows", results[order[k]].rows}, {"seconds", Since(t0)}});
    });
  });
  for (std::size_t i = 0; i < results.size(); ++i)
    side.scans[side.tables[i].name] = std::move(results[i]);
  CancelWatch watch(ctx.cancel, *conn);
  WithPgErrors("cannot scan the restored copy",
               [&] { side.large_objects = ScanLargeObjects(*conn, nullptr); });
}

void ScanState::Ensure(CheckContext& ctx) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!ensured_) {
    std::thread source_thread;
    const bool source_done = source_phase_ == Phase::kDone;
    if (source_phase_ == Phase::kNotStarted) {
      source_phase_ = Phase::kRunning;
      source_thread = std::thread([this, &ctx] { RunSource(ctx); });
    }
    lk.unlock();
    SideScan side;
    std::exception_ptr error;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      // The sandbox is ours: with the source done, both cores go to the restored side.
      ScanRestored(ctx, side, source_done ? kRestoredScanWorkers : 1);
    } catch (...) {
      error = std::current_exception();
    }
    side.seconds = Since(t0);
    lk.lock();
    if (error) abort_source_ = true;
    restored_ = std::move(side);
    restored_error_ = error;
    lk.unlock();
    if (source_thread.joinable()) source_thread.join();
    lk.lock();
    cv_.wait(lk, [this] { return source_phase_ == Phase::kDone; });
    ensured_ = true;
  }
  // The restored side's error first: when it failed, the source scan was abandoned on purpose.
  if (restored_error_) std::rethrow_exception(restored_error_);
  if (source_error_) std::rethrow_exception(source_error_);
}

const ChurnBasis& ScanState::Churn(CheckContext& ctx) {
  std::lock_guard<std::mutex> lk(churn_mu_);
  if (!churn_) churn_ = ComputeChurn(ctx.activity, ctx.CopyPoint(), source_.counters);
  return *churn_;
}

const ChurnBasis& ScanState::SettledChurn(CheckContext& ctx) {
  std::lock_guard<std::mutex> lk(churn_mu_);
  if (settled_) return *settled_;
  const double settle = ToSeconds(ctx.target.checks.stats_settle);
  const double left = source_.counters.ts + settle - NowUnix();
  if (left > 0 &&
      !ctx.cancel.SleepFor(std::chrono::milliseconds(static_cast<std::int64_t>(left * 1000.0) + 1)))
    throw Error(ErrorKind::kCancelled, "cancelled while waiting for table statistics to settle");
  auto conn = ConnectDrillSource(ctx);
  ActivitySample counters;
  WithPgErrors("cannot re-read table statistics", [&] {
    pqxx::read_transaction tx(*conn);
    counters = ReadCounters(tx);
  });
  settled_ = ComputeChurn(ctx.activity, ctx.CopyPoint(), counters);
  return *settled_;
}

std::optional<TableScan> ScanState::AppendOnlySource(CheckContext& ctx, const std::string& table) {
  std::lock_guard<std::mutex> lk(churn_mu_);
  if (!append_only_) {
    std::map<std::string, TableScan> out;
    std::unique_ptr<pqxx::connection> conn;
    for (const auto& a : ctx.target.checks.checksum.append_only) {
      const TableInfo* t = restored_.Find(a.table);
      auto rs = restored_.scans.find(a.table);
      if (!t || rs == restored_.scans.end() || !rs->second.max_key) continue;
      const ColumnInfo* key = t->Column(a.key);
      TableScan s;
      s.method = rs->second.method;
      if (!key) {
        s.error = "key column " + a.key + " not found";
        out[a.table] = s;
        continue;
      }
      if (!conn) {
        conn = ConnectDrillSource(ctx);
      }
      try {
        CancelWatch watch(ctx.cancel, *conn);
        pqxx::read_transaction tx(*conn);
        const std::string where =
            "t." + QuoteIdent(a.key) + " <= " + tx.quote(*rs->second.max_key) + "::" + key->type;
        RangeHash h = HashRows(tx, *t, s.method, where);
        s.rows = h.rows;
        s.hash = h.hash;
      } catch (const pqxx::broken_connection&) {
        RethrowAsError("cannot hash " + a.table + " on the source");
      } catch (const pqxx::sql_error& e) {
        if (ctx.cancel.cancelled()) throw Error(ErrorKind::kCancelled, "checksum cancelled");
        s.error = OneLine(e.what());
      }
      out[a.table] = s;
    }
    append_only_ = std::move(out);
  }
  auto it = append_only_->find(table);
  if (it == append_only_->end()) return std::nullopt;
  return it->second;
}

}  // namespace rw
