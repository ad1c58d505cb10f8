// Drill checks against real PostgreSQL 15 clusters: a source with several schemas and types, and a
// "restored" copy made with pg_dump -Fc | pg_restore into a database of a second cluster. The two
// clusters and the base dump are made once (a shared fixture) and removed at exit; every test
// restores its own copies (and clones the source when it changes it) and drops them.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>

#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/drill/catalog.h"
#include "checks/drill/checksum_check.h"
#include "checks/drill/freshness_check.h"
#include "checks/drill/row_count_check.h"
#include "checks/drill/schema_check.h"
#include "checks/drill/sql_check.h"
#include "checks/drill/table_scan.h"
#include "checks/registry.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

const char* kSetup = R"SQL(
create schema app;
create schema audit;
create type app.mood as enum ('ok', 'meh');
create table app.customers (
  id int primary key, name text not null, email varchar(80) unique,
  balance numeric(12,2) check (balance >= -1000), tags text[], mood app.mood,
  created_at timestamptz not null, photo bytea, note text);
insert into app.customers
  select g, 'customer ' || g, 'c' || g || '@example.com', (g % 1000) * 1.25,
         array['t' || (g % 7), 'x'], case when g % 3 = 0 then 'ok'::app.mood end,
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
         case when g % 5 = 0 then decode(md5(g::text), 'hex') end,
         case when g % 2 = 0 then null else 'note ' || g end
  from generate_series(1, 3000) g;
create table app.orders (
  id bigint primary key, customer_id int not null references app.customers(id),
  total numeric, placed_at timestamp, data jsonb);
insert into app.orders
  select g, 1 + g % 3000, g * 0.01, timestamp '2024-02-01' + g * interval '10 seconds',
         jsonb_build_object('n', g, 'items', jsonb_build_array(g, g + 1))
  from generate_series(1, 2000) g;
create index orders_customer on app.orders (customer_id);
create table app.nokey (a int, b text);
insert into app.nokey select g % 10, 'dup' from generate_series(1, 50) g;
create table app.events (id bigserial primary key, at timestamptz not null, payload json);
insert into app.events (at, payload)
  select timestamptz '2024-03-01 00:00:00+00' + g * interval '1 second', json_build_object('g', g)
  from generate_series(1, 1000) g;
create table app.measurements (id int not null, region text not null, v double precision,
  primary key (id, region)) partition by list (region);
create table app.measurements_eu partition of app.measurements for values in ('eu');
create table app.measurements_us partition of app.measurements for values in ('us');
create table app.measurements_other partition of app.measurements default;
insert into app.measurements
  select g, (array['eu', 'us', 'ap'])[1 + g % 3], g / 7.0 from generate_series(1, 900) g;
create table audit.log (id int primary key, msg text, at timestamp, pos point);
insert into audit.log
  select g, 'msg ' || g, timestamp '2024-04-01' + g * interval '1 hour', point(g, g)
  from generate_series(1, 200) g;
create view app.rich as select id, name from app.customers where balance > 1000;
create function app.order_total(cid int) returns numeric language sql stable
  as $$ select coalesce(sum(total), 0) from app.orders where customer_id = cid $$;
create sequence app.ticket_seq start 100;
select lo_from_bytea(0, convert_to('large object payload', 'UTF8'));
select pg_stat_force_next_flush();
)SQL";

// Leaf tables and their rows in the base source.
const std::map<std::string, std::int64_t> kRows = {{"app.customers", 3000},
                                                   {"app.orders", 2000},
                                                   {"app.nokey", 50},
                                                   {"app.events", 1000},
                                                   {"app.measurements_eu", 300},
                                                   {"app.measurements_us", 300},
                                                   {"app.measurements_other", 300},
                                                   {"audit.log", 200}};

std::int64_t TotalRows() {
  std::int64_t n = 0;
  for (const auto& [t, r] : kRows) n += r;
  return n;
}

ActivitySample ReadSourceCounters(const std::string& conninfo) {
  auto c = ConnectSandbox(conninfo);
  pqxx::nontransaction tx(*c);
  return ReadCounters(tx);
}

void Dump(const std::string& conninfo, const std::string& file) {
  auto r = test::RunPgTool("pg_dump", {"-Fc", "-f", file, "-d", conninfo});
  REQUIRE(r.ok());
}

// The shared clusters: the source with database "src" and its dump taken at dump_time, with the
// counters read just before it (the sample a daemon would have written).
struct World {
  test::TestDir dir{"rwchecks-"};
  std::unique_ptr<LocalCluster> src, rst;
  std::string dump;
  double dump_time = 0;
  ActivitySample before;
  World() {
    src = test::StartCluster(dir, test::ClusterSpec{false, false, {{"autovacuum", "off"}}});
    rst = test::StartCluster(dir, test::ClusterSpec{false, true, {}});
    src->Psql("create database src");
    src->Psql(kSetup, "src");
    before = ReadSourceCounters(src->ConnInfo("src"));
    dump = dir / "src.dump";
    dump_time = NowUnix();
    Dump(src->ConnInfo("src"), dump);
  }
};

World& W() {
  static std::unique_ptr<World> w;
  if (!w) w = std::make_unique<World>();
  return *w;
}

// A database restored from a dump on the restored-side cluster; dropped on destruction.
class RestoredDb {
 public:
  RestoredDb(const std::string& name, const std::string& dump) : name_(name) {
    W().rst->Psql("create database " + name_);
    auto r = test::RunPgTool("pg_restore", {"-d", W().rst->ConnInfo(name_), dump});
    INFO(r.err);
    REQUIRE(r.ok());
  }
  ~RestoredDb() {
    try {
      W().rst->Psql("drop database if exists " + name_ + " with (force)");
    } catch (...) {
    }
  }
  std::string conninfo() const { return W().rst->ConnInfo(name_); }
  void Sql(const std::string& sql) const { W().rst->Psql(sql, name_); }

 private:
  std::string name_;
};

// A copy of the source database for tests that change the source; dropped on destruction.
class SourceClone {
 public:
  explicit SourceClone(const std::string& name) : name_(name) {
    W().src->Psql("create database " + name_ + " template src");
  }
  ~SourceClone() {
    try {
      W().src->Psql("drop database if exists " + name_ + " with (force)");
    } catch (...) {
    }
  }
  std::string conninfo() const { return W().src->ConnInfo(name_); }
  // Writes, then flushes this session's table statistics (PostgreSQL 15 delays them).
  void Sql(const std::string& sql) const {
    W().src->Psql(sql + "; select pg_stat_force_next_flush();", name_);
  }

 private:
  std::string name_;
};

ChecksConfig TestChecks() {
  ChecksConfig c;
  c.stats_settle = std::chrono::seconds(1);
  c.checksum.append_only = {{"app.events", "id"}};
  return c;
}

// One drill's context, built by hand.
struct Drill {
  TargetConfig target;
  BackupInfo backup;
  CancelToken cancel;
  std::unique_ptr<CheckContext> ctx;
  Drill(const std::string& source, const std::string& restored, double backup_time,
        ActivityStore* store, const ChecksConfig& checks) {
    target.name = "test";
    target.source = ConnSpec{source, ""};
    target.checks = checks;
    backup.id = "test.dump";
    backup.started_at = backup_time;
    ctx.reset(new CheckContext{target, backup, restored, store, cancel, {}, {}});
  }
};

CheckResult RunOne(Check& c, CheckContext& ctx) {
  try {
    return c.Run(ctx);
  } catch (const Error& e) {
    CheckResult r;
    r.name = c.name();
    r.outcome = Outcome::kError;
    r.message = e.what();
    return r;
  }
}

// Runs the configured checks like the drill runner: BeforeRestore() first (with the restored copy
// not yet known) when `before`, then Run().
std::map<std::string, CheckResult> RunChecks(Drill& d, bool before = true) {
  auto checks = MakeDrillChecks(d.target.checks);
  const std::string restored = d.ctx->restored_conninfo;
  if (before) {
    d.ctx->restored_conninfo.clear();
    for (auto& c : checks) c->BeforeRestore(*d.ctx);
    d.ctx->restored_conninfo = restored;
  }
  std::map<std::string, CheckResult> out;
  for (auto& c : checks) {
    CheckResult r = RunOne(*c, *d.ctx);
    UNSCOPED_INFO(r.name << ": " << OutcomeName(r.outcome) << ": " << r.message);
    for (const auto& f : r.details)
      UNSCOPED_INFO("  " << f.table << ": " << OutcomeName(f.outcome) << ": " << f.message);
    out[c->name()] = r;
  }
  return out;
}

const TableFinding* Finding(const CheckResult& r, const std::string& table) {
  for (const auto& f : r.details)
    if (f.table == table) return &f;
  return nullptr;
}

// An activity store holding the sample a daemon would have taken just before the backup.
struct Samples {
  test::TestDir dir{"rwstate-"};
  ActivityStore store{dir / "test"};
  Samples(double ts, const ActivitySample& counters) {
    ActivitySample s = counters;
    s.ts = ts;
    store.Append(s);
  }
};

}  // namespace

TEST_CASE("a faithful restore passes every check", "[integration][checks]") {
  RestoredDb copy("r_faithful", W().dump);
  Samples samples(W().dump_time - 1, W().before);
  ChecksConfig cfg = TestChecks();
  cfg.freshness["app.events"] = "at";
  cfg.sql.push_back({"customers", "select count(*) from app.customers", "= 3000", true});
  cfg.sql.push_back(
      {"moods", "select count(*) from app.customers where mood = 'ok'", "> 0", false});

  SECTION("churn mode with activity samples, source scanned during the restore") {
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto res = RunChecks(d);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WARN("checks on " << TotalRows() << " rows took " << secs << " s");
    for (const char* n :
         {"schema", "row_count", "checksum", "freshness", "sql:customers", "sql:moods"})
      CHECK(OutcomeName(res.at(n).outcome) == std::string("pass"));
    CHECK_THAT(res.at("schema").message, Catch::Contains("all match"));
    CHECK(res.at("row_count").tables_compared == static_cast<std::int64_t>(kRows.size()));
    CHECK(res.at("checksum").tables_compared == static_cast<std::int64_t>(kRows.size()));
    CHECK(res.at("checksum").tables_mismatched == 0);
    CHECK(res.at("checksum").rows_checksummed == TotalRows());
    CHECK_THAT(res.at("row_count").message, Catch::Contains("activity samples"));
    REQUIRE(res.at("freshness").recovered_timestamp);
    CHECK(*res.at("freshness").recovered_timestamp ==
          Approx(*ParseTimestamp("2024-03-01T00:16:40Z")));
    CHECK_THAT(res.at("sql:customers").message, Catch::Contains("same on the source"));
  }
  SECTION("exact mode, both sides scanned concurrently after the restore") {
    cfg.compare = CompareMode::kExact;
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, nullptr, cfg);
    auto res = RunChecks(d, /*before=*/false);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
    CHECK(res.at("checksum").outcome == Outcome::kPass);
    CHECK_THAT(res.at("checksum").message, Catch::Contains("exact mode"));
    CHECK(res.at("checksum").tables_compared == static_cast<std::int64_t>(kRows.size()));
  }
  SECTION("without activity samples, tables that match exactly still pass, and it says why") {
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, nullptr, cfg);
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
    CHECK_THAT(res.at("row_count").message,
               Catch::Contains("no activity history covers the backup time") &&
                   Catch::Contains("run the daemon"));
    CHECK(res.at("checksum").outcome == Outcome::kPass);
    CHECK(res.at("checksum").tables_unverified == 0);
    CHECK(res.at("checksum").rows_verified > 0);
    CHECK(res.at("checksum").rows_unverified == 0);
  }
}

TEST_CASE("a row deleted from the copy fails row_count and checksum", "[integration][checks]") {
  RestoredDb copy("r_deleted", W().dump);
  copy.Sql("delete from app.customers where id = 2500");
  Samples samples(W().dump_time - 1, W().before);
  Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, TestChecks());
  auto res = RunChecks(d);

  const CheckResult& rc = res.at("row_count");
  CHECK(rc.outcome == Outcome::kFail);
  CHECK_THAT(rc.message, Catch::Contains("app.customers"));
  CHECK(rc.tables_mismatched == 1);
  const TableFinding* f = Finding(rc, "app.customers");
  REQUIRE(f);
  CHECK(f->source_rows == 3000);
  CHECK(f->restored_rows == 2999);

  const CheckResult& cs = res.at("checksum");
  CHECK(cs.outcome == Outcome::kFail);
  CHECK_THAT(cs.message, Catch::Contains("app.customers"));
  CHECK(cs.tables_mismatched == 1);
  f = Finding(cs, "app.customers");
  REQUIRE(f);
  CHECK_THAT(f->message, Catch::Contains("1 row differs (1 missing from the restored copy)"));
  CHECK(f->sample_keys == std::vector<std::string>{"id=2500"});
  CHECK(res.at("schema").outcome == Outcome::kPass);
}

TEST_CASE("a value changed in an untouched table fails checksum naming the key",
          "[integration][checks]") {
  RestoredDb copy("r_changed", W().dump);
  copy.Sql(
      "update app.orders set total = total + 1 where id = 77;"
      "update audit.log set pos = point(-1, -1) where id = 5;"  // text-hash table
      "update app.measurements set v = -1 where id = 10;"       // composite key, a partition
      "update app.customers set note = 'x' where id in (10, 1500, 2999);"
      "update app.nokey set b = 'changed' where ctid = (select min(ctid) from app.nokey)");
  Samples samples(W().dump_time - 1, W().before);
  ChecksConfig cfg = TestChecks();
  cfg.checksum.sample_keys = 2;
  Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, cfg);
  auto res = RunChecks(d);

  CHECK(res.at("row_count").outcome == Outcome::kPass);
  const CheckResult& cs = res.at("checksum");
  CHECK(cs.outcome == Outcome::kFail);
  CHECK(cs.tables_mismatched == 5);
  CHECK_THAT(cs.message, Catch::Contains("app.orders"));
  const TableFinding* f = Finding(cs, "app.orders");
  REQUIRE(f);
  CHECK_THAT(f->message, Catch::Contains("1 row differs (1 changed)"));
  CHECK(f->sample_keys == std::vector<std::string>{"id=77"});
  f = Finding(cs, "audit.log");
  REQUIRE(f);
  CHECK(f->sample_keys == std::vector<std::string>{"id=5"});
  f = Finding(cs, "app.measurements_us");  // id 10: region 'us' (index 1 + 10 % 3)
  REQUIRE(f);
  CHECK(f->sample_keys == std::vector<std::string>{"id=10,region=us"});
  f = Finding(cs, "app.customers");  // 3000 rows: narrowed through key ranges
  REQUIRE(f);
  CHECK_THAT(f->message, Catch::Contains("3 rows differ (3 changed)"));
  CHECK(f->sample_keys.size() == 2);
  f = Finding(cs, "app.nokey");
  REQUIRE(f);
  CHECK_THAT(f->message, Catch::Contains("no primary key"));
}

TEST_CASE("values swapped between two rows fail checksum", "[integration][checks]") {
  // A row's hash combines its columns linearly (hash_record_extended: h * 31 + column hash), so a
  // plain sum of row hashes is a sum of per-column sums: a column's values swapped between two
  // rows kept it (orders 80 and 81: their swapped totals gave the very same sum before the rows'
  // hashes were mixed). The copy differs, the source is untouched: a fail.
  SECTION("a column's values swapped between two rows of a table") {
    RestoredDb copy("r_swapped", W().dump);
    copy.Sql(
        "update app.orders o set total = s.total from app.orders s"
        " where (o.id, s.id) in ((80, 81), (81, 80))");
    Samples samples(W().dump_time - 1, W().before);
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, TestChecks());
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    CHECK(cs.tables_mismatched == 1);
    const TableFinding* f = Finding(cs, "app.orders");
    REQUIRE(f);
    CHECK_THAT(f->message, Catch::Contains("2 rows differ (2 changed)"));
  }
  SECTION("a bigint changed to another of the same 32-bit fold") {
    // hashint8extended (what hash_record_extended calls for bigint) folds its input to 32 bits
    // (low XOR high half) first: 1 and 4294967296 hashed alike, so this copy passed before.
    RestoredDb copy("r_fold", W().dump);
    copy.Sql("update app.orders set id = 4294967296 where id = 1");
    Samples samples(W().dump_time - 1, W().before);
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, TestChecks());
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    CHECK(cs.tables_mismatched == 1);
    CHECK(Finding(cs, "app.orders") != nullptr);
  }
  SECTION("the contents of two large objects swapped") {
    // Same for row(oid, lo_get(oid)): oids 91011 and 91012 with these contents kept the old sum.
    SourceClone source("s_loswap");
    source.Sql("select lo_from_bytea(91011, 'alpha'::bytea), lo_from_bytea(91012, 'bravo'::bytea)");
    const double backup_time = NowUnix();
    Dump(source.conninfo(), W().dir / "loswap.dump");
    RestoredDb copy("r_loswap", W().dir / "loswap.dump");
    copy.Sql("select lo_put(91011, 0, 'bravo'::bytea), lo_put(91012, 0, 'alpha'::bytea)");
    ChecksConfig cfg = TestChecks();
    cfg.compare = CompareMode::kExact;  // large objects have no activity counters
    Drill d(source.conninfo(), copy.conninfo(), backup_time, nullptr, cfg);
    auto res = RunChecks(d);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    const TableFinding* f = Finding(cs, "pg_largeobject");
    REQUIRE(f);
    CHECK(f->outcome == Outcome::kFail);
    CHECK_THAT(f->message, Catch::Contains("large object contents differ"));
  }
}

TEST_CASE("types hashed as a one-element array: equal copies pass, a changed value fails",
          "[integration][checks]") {
  // Format 4 hashes the built-ins whose hash function takes another type (timestamptz, date,
  // bool, ...) as hash_array_extended(array[col], k). One table per type, a NULL in each: the
  // faithful copy passes with every table hashed that way (no fallback to text), and one value
  // changed per table fails every table.
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> types = {
      {"bool", {"true", "false"}},
      {"bytea", {"'\\x01'", "'\\x0102'"}},
      {"\"char\"", {"'a'", "'b'"}},
      {"name", {"'n1'", "'n2'"}},
      {"cidr", {"'10.0.0.0/8'", "'10.1.0.0/16'"}},
      {"macaddr8", {"'08:00:2b:01:02:03:04:05'", "'08:00:2b:01:02:03:04:06'"}},
      {"macaddr", {"'08:00:2b:01:02:03'", "'08:00:2b:01:02:04'"}},
      {"inet", {"'10.0.0.1'", "'10.0.0.2'"}},
      {"date", {"'2024-01-01'", "'2024-01-02'"}},
      {"time", {"'10:00'", "'10:00:00.000001'"}},
      {"timestamptz", {"'2024-01-01 00:00:00+00'", "'2024-01-01 00:00:00.000001+00'"}},
      {"interval", {"'1 day'", "'2 days'"}},
      {"timetz", {"'10:00+00'", "'11:00+00'"}},
      {"pg_lsn", {"'0/1'", "'0/2'"}},
  };
  SourceClone source("s_arraytypes");
  std::string ddl;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const std::string t = "app.ty" + std::to_string(i);
    ddl += "create table " + t + " (id int primary key, v " + types[i].first + "); insert into " +
           t + " values (1, " + types[i].second.first + "), (2, null), (3, " +
           types[i].second.second + ");";
  }
  source.Sql(ddl);
  {
    auto c = ConnectSandbox(source.conninfo());
    pqxx::read_transaction tx(*c);
    int hashed = 0;
    for (const auto& t : ListTables(tx, {})) {
      if (t.table.rfind("ty", 0) != 0) continue;
      INFO(t.name);
      CHECK_THAT(RowHashSql(t, HashMethod::kRecord), Catch::Contains("hash_array_extended(array["));
      CHECK(RowHashSql(t, HashMethod::kRecord, HashFormat::kV3).find("hash_array_extended") ==
            std::string::npos);
      CancelToken cancel;
      TableScan sc = ScanTable(*c, &tx, t, nullptr, cancel);
      CHECK(sc.error.empty());
      CHECK(sc.method == HashMethod::kRecord);
      CHECK(sc.rows == 3);
      ++hashed;
    }
    CHECK(hashed == static_cast<int>(types.size()));
  }
  const double backup_time = NowUnix();
  Dump(source.conninfo(), W().dir / "arraytypes.dump");
  RestoredDb copy("r_arraytypes", W().dir / "arraytypes.dump");
  ChecksConfig cfg = TestChecks();
  cfg.compare = CompareMode::kExact;
  {
    Drill d(source.conninfo(), copy.conninfo(), backup_time, nullptr, cfg);
    auto res = RunChecks(d, /*before=*/false);
    CHECK(res.at("checksum").outcome == Outcome::kPass);
    CHECK(res.at("checksum").tables_mismatched == 0);
  }
  std::string change;
  for (std::size_t i = 0; i < types.size(); ++i)
    change += "update app.ty" + std::to_string(i) + " set v = " + types[i].second.second +
              " where id = 1;";
  copy.Sql(change);
  Drill d(source.conninfo(), copy.conninfo(), backup_time, nullptr, cfg);
  auto res = RunChecks(d, /*before=*/false);
  const CheckResult& cs = res.at("checksum");
  CHECK(cs.outcome == Outcome::kFail);
  for (std::size_t i = 0; i < types.size(); ++i) {
    INFO(types[i].first);
    CHECK(Finding(cs, "app.ty" + std::to_string(i)) != nullptr);
  }
}

TEST_CASE("without activity history a missing row or a changed value is never a pass",
          "[integration][checks]") {
  // The false passes of the 1% fallback and of "a mismatch without churn data is a warning":
  // nobody writes these tables, but no sample proves it, so the difference is unverified.
  SECTION("one row missing") {
    RestoredDb copy("r_nohist_deleted", W().dump);
    copy.Sql("delete from app.customers where id = 2500");
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, nullptr, TestChecks());
    auto res = RunChecks(d);
    const CheckResult& rc = res.at("row_count");
    CHECK(rc.outcome == Outcome::kError);
    CHECK(rc.tables_unverified == 1);
    const TableFinding* f = Finding(rc, "app.customers");
    REQUIRE(f);
    CHECK(f->outcome == Outcome::kError);
    CHECK_THAT(f->message, Catch::Contains("restored 2999 rows, source 3000: unverified"));
    CHECK(res.at("checksum").outcome == Outcome::kError);
  }
  SECTION("one value changed") {
    RestoredDb copy("r_nohist_changed", W().dump);
    copy.Sql("update app.orders set total = total + 1 where id = 77");
    Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, nullptr, TestChecks());
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kPass);  // the counts do match
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kError);
    CHECK(cs.tables_unverified == 1);
    CHECK_THAT(cs.message, Catch::Contains("1 tables unverified (app.orders)") &&
                               Catch::Contains("no activity history covers the backup time"));
    const TableFinding* f = Finding(cs, "app.orders");
    REQUIRE(f);
    CHECK(f->outcome == Outcome::kError);
    CHECK(cs.rows_unverified == *f->source_rows);
    CHECK(cs.rows_verified > 0);
  }
}

TEST_CASE("a table dropped from the copy fails schema, row_count and freshness",
          "[integration][checks]") {
  RestoredDb copy("r_dropped", W().dump);
  copy.Sql("drop table audit.log");
  ChecksConfig cfg = TestChecks();
  cfg.freshness["audit.log"] = "at";
  cfg.sql.push_back({"log", "select count(*) from audit.log", "= 200", false});
  Samples samples(W().dump_time - 1, W().before);
  Drill d(W().src->ConnInfo("src"), copy.conninfo(), W().dump_time, &samples.store, cfg);
  auto res = RunChecks(d);

  const CheckResult& sc = res.at("schema");
  CHECK(sc.outcome == Outcome::kFail);
  CHECK_THAT(sc.message, Catch::Contains("table audit.log"));
  const TableFinding* f = Finding(sc, "table audit.log");
  REQUIRE(f);
  CHECK_THAT(f->message, Catch::Contains("missing from the restored copy with its"));
  CHECK(res.at("row_count").outcome == Outcome::kFail);
  CHECK_THAT(res.at("row_count").message, Catch::Contains("audit.log"));
  CHECK(res.at("checksum").outcome == Outcome::kPass);  // nothing left to compare differs
  CHECK(res.at("freshness").outcome == Outcome::kFail);
  CHECK_THAT(res.at("freshness").message, Catch::Contains("audit.log.at: table missing"));
  CHECK(res.at("sql:log").outcome == Outcome::kFail);
  CHECK_THAT(res.at("sql:log").message, Catch::Contains("failed on the restored copy"));
}

TEST_CASE("a source changed after the dump within its sampled churn", "[integration][checks]") {
  SourceClone source("s_churn");
  // What a daemon sampled before the backup, then the backup.
  const ActivitySample before = ReadSourceCounters(source.conninfo());
  const double backup_time = NowUnix();
  Dump(source.conninfo(), W().dir / "churn.dump");
  RestoredDb copy("r_churn", W().dir / "churn.dump");
  Samples samples(backup_time - 1, before);
  // The source moves on: new customers, deleted orders, appended events.
  source.Sql(
      "insert into app.customers (id, name, created_at) select g, 'new ' || g, now()"
      "  from generate_series(3001, 3020) g;"
      "delete from app.orders where id <= 5;"
      "insert into app.events (at, payload) select now(), '{}' from generate_series(1, 5)");

  SECTION("churn mode: counts within the churn, touched tables not checksummed") {
    Drill d(source.conninfo(), copy.conninfo(), backup_time, &samples.store, TestChecks());
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
    CHECK_THAT(res.at("row_count").message, Catch::Contains("3 tables touched"));
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kPass);
    CHECK_THAT(
        cs.message,
        Catch::Contains("2 touched since the backup not compared (app.customers, app.orders)"));
    CHECK(cs.tables_compared ==
          static_cast<std::int64_t>(kRows.size()) - 2);  // events: append-only

    // An old row of the append-only table changes: that is a finding.
    source.Sql("update app.events set payload = '{\"g\": -1}' where id = 10");
    Drill again(source.conninfo(), copy.conninfo(), backup_time, &samples.store, TestChecks());
    ChecksumCheck check;
    CheckResult r = RunOne(check, *again.ctx);
    CHECK(r.outcome == Outcome::kFail);
    const TableFinding* f = Finding(r, "app.events");
    REQUIRE(f);
    CHECK(f->sample_keys == std::vector<std::string>{"id=10"});

    // A partition created after the backup is absent from the copy, legitimately.
    source.Sql(
        "create table app.measurements_new partition of app.measurements for values in ('new');"
        "insert into app.measurements values (1, 'new', 1)");
    Drill later(source.conninfo(), copy.conninfo(), backup_time, &samples.store, TestChecks());
    SchemaCheck schema;
    RowCountCheck rows;
    CheckResult sr = RunOne(schema, *later.ctx);
    CHECK(sr.outcome == Outcome::kWarn);
    CHECK_THAT(sr.message, Catch::Contains("created after the backup: table app.measurements_new"));
    CheckResult rr = RunOne(rows, *later.ctx);
    CHECK(rr.outcome == Outcome::kWarn);
    f = Finding(rr, "app.measurements_new");
    REQUIRE(f);
    CHECK(f->message == "created on the source after the backup");
  }
  SECTION("without activity samples: later writes leave the tables unverified, an error") {
    Drill d(source.conninfo(), copy.conninfo(), backup_time, nullptr, TestChecks());
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kError);
    CHECK_THAT(res.at("row_count").message,
               Catch::Contains("tables unverified") &&
                   Catch::Contains("no activity history covers the backup time") &&
                   Catch::Contains("run the daemon"));
    CHECK(res.at("checksum").outcome == Outcome::kError);
    CHECK(res.at("checksum").tables_unverified > 0);
    CHECK(res.at("checksum").rows_unverified > 0);
  }
  SECTION("exact mode fails on a changed source") {
    ChecksConfig cfg = TestChecks();
    cfg.compare = CompareMode::kExact;
    Drill d(source.conninfo(), copy.conninfo(), backup_time, &samples.store, cfg);
    auto res = RunChecks(d);
    CHECK(res.at("row_count").outcome == Outcome::kFail);
    CHECK_THAT(res.at("row_count").message, Catch::Contains("app.customers"));
    CHECK(res.at("checksum").outcome == Outcome::kFail);
  }
}

TEST_CASE("source sessions of the checks refuse writes", "[integration][checks]") {
  Drill d(W().src->ConnInfo("src"), "", W().dump_time, nullptr, TestChecks());
  d.target.drill_statement_timeout = std::chrono::minutes(7);
  auto c = ConnectDrillSource(*d.ctx);
  pqxx::work tx(*c);
  CHECK(tx.exec1("show statement_timeout")[0].as<std::string>() == "7min");
  CHECK_THROWS_WITH(tx.exec0("insert into app.nokey values (1, 'x')"),
                    Catch::Contains("read-only"));
}

TEST_CASE("what the source role may not read is an error, never a mismatch or a pass",
          "[integration][checks]") {
  SourceClone source("s_role");
  RestoredDb copy("r_role", W().dump);
  W().src->Psql(
      "do $$ begin if not exists (select from pg_roles where rolname = 'rw_monitor') then"
      " create role rw_monitor login; end if; end $$");
  source.Sql(
      "grant usage on schema app, audit to rw_monitor;"
      "grant select on all tables in schema app to rw_monitor;"  // not audit.log
      "alter table app.nokey enable row level security;"
      "create policy small_a on app.nokey for select using (a < 5)");
  Drill d(source.conninfo() + " user=rw_monitor", copy.conninfo(), W().dump_time, nullptr,
          TestChecks());
  auto res = RunChecks(d);
  for (const char* check : {"row_count", "checksum"}) {
    const CheckResult& r = res.at(check);
    CHECK(r.outcome == Outcome::kError);
    const TableFinding* f = Finding(r, "audit.log");
    REQUIRE(f);
    CHECK_THAT(f->message, Catch::Contains("permission denied"));
    f = Finding(r, "app.nokey");
    REQUIRE(f);
    CHECK_THAT(f->message, Catch::Contains("row-level security"));
  }
  CHECK_THAT(res.at("row_count").message,
             Catch::Contains("large objects not compared: the source role may not read them"));
}

// Not run by default ([.bench]): the cost of the row_count + checksum scans on the reference data
// of RECIPES.md (pgbench plus three wide tables; RW_BENCH_SCALE, default 20), against a bare
// pg_restore -j 2 of the same dump.
TEST_CASE("scan cost on the reference data", "[.bench]") {
  const char* env = getenv("RW_BENCH_SCALE");
  const std::string scale = env && *env ? env : "20";
  const std::string wide_rows = std::to_string(25000 * std::stoi(scale));
  test::TestDir dir{"rwbench-"};
  auto src = test::StartCluster(dir, test::ClusterSpec{false, false, {{"autovacuum", "off"}}});
  auto rst = test::StartCluster(dir, test::ClusterSpec{false, true, {}});
  src->Psql("create database bench");
  auto init = test::RunPgTool("pgbench", {"-i", "-q", "-s", scale, src->ConnInfo("bench")});
  REQUIRE(init.ok());
  for (const char* t : {"wide1", "wide2", "wide3"})
    src->Psql(
        std::string("create table ") + t +
            " (id bigint primary key, t text, j jsonb, n numeric, ts timestamptz, u uuid,"
            " a int[]); insert into " +
            t +
            " select g, repeat(md5(g::text), 3), jsonb_build_object('g', g, 'h', md5(g::text)),"
            " g * 1.5, now() + g * interval '1 s', md5(g::text)::uuid, array[g, g + 1, g + 2]"
            " from generate_series(1, " +
            wide_rows + ") g",
        "bench");
  const std::string dump = dir / "bench.dump";
  Dump(src->ConnInfo("bench"), dump);
  rst->Psql("create database bench");
  auto restore = test::RunPgTool("pg_restore", {"-j", "2", "-d", rst->ConnInfo("bench"), dump});
  REQUIRE(restore.ok());
  WARN("bare pg_restore -j 2: " << restore.seconds << " s");

  ChecksConfig cfg;
  cfg.compare = CompareMode::kExact;
  auto timed = [](const std::function<void()>& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  {
    Drill d(src->ConnInfo("bench"), rst->ConnInfo("bench"), NowUnix(), nullptr, cfg);
    auto scan = ScanState::For(*d.ctx);
    double s = timed([&] { scan->PrepareSource(*d.ctx); });
    double r = timed([&] { scan->Ensure(*d.ctx); });
    WARN("source scan alone " << s << " s; restored scan after it " << r << " s");
  }
  {
    Drill d(src->ConnInfo("bench"), rst->ConnInfo("bench"), NowUnix(), nullptr, cfg);
    std::map<std::string, CheckResult> res;
    double both = timed([&] { res = RunChecks(d, false); });
    WARN("schema + row_count + checksum, both sides concurrently: " << both << " s");
    CHECK(res.at("checksum").outcome == Outcome::kPass);
    CHECK(res.at("row_count").outcome == Outcome::kPass);
  }
}
