// The amcheck drill check ([target.checks] amcheck = true) and the data_checksums check of
// physical drills. First the check alone on a real PostgreSQL 15 copy (tables, partitions,
// unlogged and materialized relations; an index that no longer matches its table; a heap tuple
// with an impossible xmin; a role that may not run amcheck; the source itself refused), then end
// to end through `restorewatch verify`: a pg_dump drill and physical drills of a primary with
// data checksums and a pgbench workload, clean and then corrupt. Every wait is bounded; TestDir
// removes everything.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "checks/drill/amcheck_check.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/physical_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

struct Ctx {
  TargetConfig target;
  BackupInfo backup;
  CancelToken cancel;
  std::unique_ptr<CheckContext> ctx;
  Ctx(const std::string& source, const std::string& restored) {
    target.name = "test";
    target.source = ConnSpec{source, ""};
    target.connect_timeout = 2s;
    backup.id = "b";
    ctx.reset(new CheckContext{target, backup, restored, nullptr, cancel, {}, {}});
  }
};

// Flips a heap tuple's xmin (the first tuple of block 0 of `table`) to a transaction id from the
// future, with the server stopped.
void CorruptXmin(LocalCluster& c, const std::string& db, const std::string& table) {
  const std::string rel = test::Trim(c.Psql("select pg_relation_filepath('" + table + "')", db));
  c.Psql("checkpoint");
  c.Stop();
  const std::string path = c.data_dir() + "/" + rel;
  std::string page = test::ReadFile(path);
  REQUIRE(page.size() >= 8192);
  std::uint32_t lp = 0;
  std::memcpy(&lp, page.data() + 24, 4);  // the first line pointer, after the page header
  const std::uint32_t off = lp & 0x7fff;
  REQUIRE(off > 24);
  REQUIRE(off < 8192);
  const std::uint32_t future = 0xfffffff0u;
  std::memcpy(&page[off], &future, 4);  // t_xmin
  test::WriteFile(path, page);
  c.Start();
}

}  // namespace

TEST_CASE("amcheck verifies every table and B-tree index of the restored copy",
          "[integration][amcheck]") {
  test::TestDir dir("rwamcheck-");
  auto copy = test::StartCluster(dir);  // stands in for a restored copy
  copy->Psql("create database app");
  copy->Psql(
      "create table items (id int primary key, name text, body text);"
      "create index items_name on items (name);"
      "create index items_hash on items using hash (id);"  // not a B-tree: not checked
      "insert into items select g, 'item ' || g, repeat(md5(g::text), 200)"
      "  from generate_series(1, 3000) g;"
      "create table events (id int, at date not null) partition by range (at);"
      "create table events_2025 partition of events for values from ('2025-01-01') to "
      "('2026-01-01');"
      "create table events_2026 partition of events for values from ('2026-01-01') to "
      "('2027-01-01');"
      "create index events_at on events (at);"
      "insert into events select g, date '2025-06-01' + g from generate_series(1, 400) g;"
      "create unlogged table scratch (id int primary key);"
      "insert into scratch select generate_series(1, 10);"
      "create materialized view item_names as select id, name from items;"
      "create index item_names_id on item_names (id);"
      "create table audit (id int primary key);",
      "app");
  Ctx c("host=/nonexistent port=1 dbname=x user=x", copy->ConnInfo("app"));
  AmcheckCheck check;

  SECTION("a sound copy passes with its counts; unlogged relations are skipped") {
    c.target.checks.exclude_tables = {"public.audit"};
    CheckResult r = check.Run(*c.ctx);
    INFO(r.message);
    CHECK(r.outcome == Outcome::kPass);
    // User tables: items, two partitions, the matview (the parent holds no rows); audit excluded;
    // plus the catalogs.
    CHECK(r.tables_compared > 4);
    CHECK(r.indexes_checked > 6);
    CHECK(r.tables_mismatched == 0);
    CHECK(r.message.find("no corruption") != std::string::npos);
    CHECK(r.message.find("skipped 2 unlogged relations, 2 excluded") != std::string::npos);
    // It created the extension and dropped it again.
    CHECK(test::Trim(copy->Psql("select count(*) from pg_extension where extname = 'amcheck'",
                                "app")) == "0");
  }
  SECTION("an index that no longer matches its table fails naming it") {
    copy->Psql(
        "create function twice(int) returns int language sql immutable as 'select $1 * 2';"
        "create index items_twice on items (twice(id));"
        "create or replace function twice(int) returns int language sql immutable as "
        "'select $1 * 3';",
        "app");
    CheckResult r = check.Run(*c.ctx);
    INFO(r.message);
    CHECK(r.outcome == Outcome::kFail);
    CHECK(r.message.find("index public.items_twice: ") == 0);
    CHECK(r.message.find("lacks matching index tuple within index \"items_twice\"") !=
          std::string::npos);
    CHECK(r.tables_mismatched == 1);
    REQUIRE(r.details.size() == 1);
    CHECK(r.details[0].table == "public.items_twice");
  }
  SECTION("a heap tuple with an impossible xmin fails naming the table, block and offset") {
    copy->Psql("create table hot (id int); insert into hot select generate_series(1, 50);", "app");
    CorruptXmin(*copy, "app", "hot");
    CheckResult r = check.Run(*c.ctx);
    INFO(r.message);
    CHECK(r.outcome == Outcome::kFail);
    // amcheck's own words (the xid is "before the oldest valid" one, modulo 2^32).
    CHECK(r.message.find("table public.hot: block 0, offset 1: xmin 4294967280 precedes oldest "
                         "valid transaction ID") == 0);
  }
  SECTION("a role that may not run amcheck makes it an error, never a pass") {
    copy->Psql("create role checker login");
    Ctx nc("host=/nonexistent port=1 dbname=x user=x",
           copy->ConnInfo("app").replace(copy->ConnInfo("app").find("user=postgres"), 13,
                                         "user=checker"));
    // Without the extension it may not create it.
    try {
      check.Run(*nc.ctx);
      FAIL("amcheck ran without its extension");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("cannot create extension amcheck in the restored copy: "
                                       "permission denied to create extension \"amcheck\"") == 0);
    }
    // With it, it may not call its functions.
    copy->Psql("create extension amcheck", "app");
    CheckResult r = check.Run(*nc.ctx);
    INFO(r.message);
    CHECK(r.outcome == Outcome::kError);
    CHECK(r.message.find("could not be checked, first table ") != std::string::npos);
    CHECK(r.message.find("permission denied for function verify_heapam") != std::string::npos);
    // An extension it did not create stays.
    CHECK(test::Trim(copy->Psql("select count(*) from pg_extension where extname = 'amcheck'",
                                "app")) == "1");
  }
  SECTION("a cancelled drill stops it: an error, never a verdict") {
    c.cancel.Cancel();
    try {
      check.Run(*c.ctx);
      FAIL("amcheck judged a cancelled drill");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kCancelled);
    }
  }
  SECTION("a restored session that reaches the source is refused before anything is created") {
    Ctx same(copy->ConnInfo("postgres"), copy->ConnInfo("app"));
    try {
      check.Run(*same.ctx);
      FAIL("amcheck wrote to the source");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("refusing to create extension amcheck") == 0);
    }
    CHECK(test::Trim(copy->Psql("select count(*) from pg_extension where extname = 'amcheck'",
                                "app")) == "0");
  }
}

TEST_CASE("amcheck in a pg_dump drill", "[integration][amcheck]") {
  test::TestDir dir("rwamdump-");
  auto src = test::StartCluster(dir);
  src->Psql("create database app");
  test::Pgbench(*src, "app", {"-i", "-s", "1", "-q"});
  test::Pgbench(*src, "app", {"-t", "100", "-c", "2"});
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(
      test::RunPgTool("pg_dump", {"-Fc", "-d", src->ConnInfo("app"), "-f", backups + "/db-1.dump"})
          .ok());
  const std::string cfg = dir / "agent.toml";
  test::WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
                           "\"\nwork_dir = \"" + (dir / "work") +
                           "\"\n\n[[target]]\nname = \"t1\"\nsource = \"" + src->ConnInfo("app") +
                           "\"\n\n[target.backup]\npath = \"" + backups +
                           "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                           "stats_settle = \"1s\"\ncompare = \"exact\"\namcheck = true\n");
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("amcheck") != std::string::npos);
  CHECK(r.out.find("B-tree indexes verified (catalogs included): no corruption") !=
        std::string::npos);
  CHECK(r.out.find("data_checksums") == std::string::npos);  // a logical copy has none to check
  CHECK(test::ListDir(dir / "work").empty());
}

TEST_CASE("physical drills with amcheck and data checksums, sound and corrupt",
          "[integration][amcheck]") {
  test::TestDir dir("rwamphys-");
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  test::EnableDataChecksums(*primary);
  primary->Psql("create database app");
  test::Pgbench(*primary, "app", {"-i", "-s", "1", "-q"});
  test::Pgbench(*primary, "app", {"-t", "100", "-c", "2"});
  const std::string backups = dir / "backups";
  MakeDirs(backups, 0755, test::ServerUser());
  const std::string cfg = dir / "agent.toml";
  // The comparing checks are off: this is about what the copy says of itself.
  const std::string checks = "row_count = false\nchecksum = false\namcheck = true\n";
  test::WriteFile(cfg, test::PhysicalConfig(dir, primary->ConnInfo("app"), backups, archive,
                                            "latest", "4m", checks));

  test::BaseBackup(*primary, backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*primary, archive);
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("B-tree indexes verified (catalogs included): no corruption") !=
        std::string::npos);
  CHECK(r.out.find("pg_checksums --check: no bad block") != std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());

  // Corrupt the primary before the next backup: an index that no longer matches its table, and
  // a block whose checksum no longer matches (the backup copies both as they are).
  primary->Psql(
      "create function twice(int) returns int language sql immutable as 'select $1 * 2';"
      "create index accounts_twice on pgbench_accounts (twice(aid));"
      "create or replace function twice(int) returns int language sql immutable as "
      "'select $1 * 3';"
      "create table cold (id int, pad text);"
      "insert into cold select g, repeat('x', 200) from generate_series(1, 200) g;",
      "app");
  const std::string rel = test::Trim(primary->Psql("select pg_relation_filepath('cold')", "app"));
  primary->Psql("checkpoint");
  primary->Stop();
  {
    std::string data = test::ReadFile(primary->data_dir() + "/" + rel);
    REQUIRE(data.size() >= 8192);
    data[5000] = static_cast<char>(data[5000] ^ 0x5a);
    test::WriteFile(primary->data_dir() + "/" + rel, data);
  }
  primary->Start();
  test::BaseBackup(*primary, backups + "/b2", {"-Fp", "--no-verify-checksums"});
  test::SwitchAndWait(*primary, archive);
  r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("index public.accounts_twice") != std::string::npos);
  CHECK(r.out.find("lacks matching index tuple") != std::string::npos);
  CHECK(r.out.find("checksum verification failed in file \"" + rel + "\", block 0") !=
        std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());
}
