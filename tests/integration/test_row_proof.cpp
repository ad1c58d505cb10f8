// Row-level proof (checks/drill/row_proof.h) through the checksum check, against real PostgreSQL 15:
// a source whose tables keep changing after the backup, the daemon's own sampling code recording
// the evidence (counters and pg_current_snapshot()) before the backup, and restored copies that
// are faithful or broken in one row. Broken rows in tables written since the backup must fail,
// naming the key; rows changed on the source since must not.
#include <catch2/catch.hpp>

#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/registry.h"
#include "checks/drill/row_proof.h"
#include "checks/live/table_activity_collector.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

const char* kSetup = R"SQL(
create table busy (id int primary key, v int not null, note text);
insert into busy select g, g, 'n' || g from generate_series(1, 5000) g;
create table still (id int primary key, v text);
insert into still select g, 's' || g from generate_series(1, 1000) g;
create table applog (at int, msg text);
insert into applog select g, 'm' from generate_series(1, 100) g;
create table grow (id bigserial primary key, v text);
create table ukeyed (code text not null, v int);
create unique index ukeyed_code on ukeyed (code);
insert into ukeyed select 'c' || lpad(g::text, 4, '0'), g from generate_series(1, 500) g;
select pg_stat_force_next_flush();
)SQL";

// After the sample, before the dump: in the backup, but not "unchanged since the snapshot".
const char* kBeforeDump =
    "update busy set v = -v where id = 4500; select pg_stat_force_next_flush();";

// After the dump: the source moves on.
const char* kAfterDump = R"SQL(
update busy set v = v + 1 where id <= 100;
delete from busy where id between 4001 and 4010;
insert into busy select g, g, 'new' from generate_series(5001, 5050) g;
insert into grow (v) select 'x' from generate_series(1, 200);
insert into applog select g, 'later' from generate_series(1, 30) g;
update ukeyed set v = v + 1 where v <= 50;
select pg_stat_force_next_flush();
)SQL";

TargetConfig Target(const std::string& source) {
  TargetConfig t;
  t.name = "rp";
  t.source = ConnSpec{source, ""};
  t.checks.stats_settle = std::chrono::seconds(1);
  t.checks.checksum.sample_keys = 20;
  return t;
}

struct World {
  test::TestDir dir{"rwproof-"};
  std::unique_ptr<LocalCluster> src, rst;
  std::string dump;
  double dump_time = 0;
  ActivitySample sample;  // what the daemon recorded before the backup
  World() {
    src = test::StartCluster(dir, test::ClusterSpec{false, false, {{"autovacuum", "off"}}});
    rst = test::StartCluster(dir, test::ClusterSpec{false, true, {}});
    src->Psql("create database rp");
    src->Psql(kSetup, "rp");
    // The daemon's own sampling code, into a throwaway store.
    test::TestDir state("rwproof-state-");
    ActivityStore store(state / "rp");
    TargetConfig t = Target(src->ConnInfo("rp"));
    CancelToken cancel;
    CollectContext cc{t, cancel, &store, nullptr, {}};
    TableActivityCollector().Collect(cc);
    sample = *store.Latest();
    REQUIRE_FALSE(sample.snapshot.empty());
    src->Psql(kBeforeDump, "rp");
    dump_time = NowUnix();
    dump = dir / "rp.dump";
    REQUIRE(test::RunPgTool("pg_dump", {"-Fc", "-f", dump, "-d", src->ConnInfo("rp")}).ok());
    src->Psql(kAfterDump, "rp");
  }
};

World& W() {
  static std::unique_ptr<World> w;
  if (!w) w = std::make_unique<World>();
  return *w;
}

class RestoredDb {
 public:
  explicit RestoredDb(const std::string& name) : name_(name) {
    W().rst->Psql("create database " + name_);
    auto r = test::RunPgTool("pg_restore", {"-d", W().rst->ConnInfo(name_), W().dump});
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

struct Evidence {
  test::TestDir dir{"rwproof-ev-"};
  ActivityStore store{dir / "rp"};
  explicit Evidence(ActivitySample s) {
    s.ts = W().dump_time - 0.5;
    store.Append(s);
  }
};

std::map<std::string, CheckResult> Run(const RestoredDb& copy, ActivityStore* store) {
  TargetConfig t = Target(W().src->ConnInfo("rp"));
  BackupInfo b;
  b.id = "rp.dump";
  b.started_at = W().dump_time;
  CancelToken cancel;
  CheckContext ctx{t, b, "", store, cancel, {}, {}};
  auto checks = MakeDrillChecks(t.checks);
  for (auto& c : checks) c->BeforeRestore(ctx);
  ctx.restored_conninfo = copy.conninfo();
  std::map<std::string, CheckResult> out;
  for (auto& c : checks) {
    CheckResult r;
    try {
      r = c->Run(ctx);
    } catch (const Error& e) {
      r.outcome = Outcome::kError;
      r.message = e.what();
    }
    UNSCOPED_INFO(c->name() << ": " << OutcomeName(r.outcome) << ": " << r.message);
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

bool Names(const TableFinding* f, const std::string& key) {
  if (!f) return false;
  for (const auto& k : f->sample_keys)
    if (k == key) return true;
  return false;
}

}  // namespace

TEST_CASE("snapshot text parses and rejects junk", "[unit][row_proof]") {
  auto s = ParseSnapshotText("100:105:101,103");
  REQUIRE(s);
  CHECK(s->xmin == 100);
  CHECK(s->xmax == 105);
  CHECK(ParseSnapshotText("7:7:"));
  CHECK_FALSE(ParseSnapshotText(""));
  CHECK_FALSE(ParseSnapshotText("9:7:"));
  CHECK_FALSE(ParseSnapshotText("a:7:"));
  CHECK_FALSE(ParseSnapshotText("1:7:"));  // not a normal xid
  CHECK_FALSE(ParseSnapshotText("99999999999999999999999:7:"));
}

TEST_CASE("row-level proof verifies the unchanged rows of tables written since the backup",
          "[integration][row_proof]") {
  RestoredDb copy("p_good");
  Evidence ev(W().sample);
  auto res = Run(copy, &ev.store);
  const CheckResult& cs = res.at("checksum");
  CHECK(cs.outcome == Outcome::kPass);
  CHECK_THAT(cs.message, Catch::Contains("proven row by row"));
  // busy: 5000 rows at the backup, of which 100 updated, 10 deleted since, and 1 changed between
  // the sample and the dump: 4889 unchanged rows proven; ukeyed 450. still: 1000 exactly; grow:
  // empty then.
  CHECK_THAT(cs.message,
             Catch::Contains("5339 rows unchanged since the evidence snapshot verified"));
  // rows on the source: busy 5040, still 1000, applog 130, grow 200, ukeyed 500 (50 updated;
  // identified by its unique index over a NOT NULL column)
  CHECK(cs.rows_verified == 4889 + 1000 + 450);
  CHECK(cs.rows_unverified == (5040 - 4889) + 130 + 200 + 50);
  CHECK(cs.tables_unverified == 1);  // applog: no key
  REQUIRE(cs.unverified.size() == 1);
  CHECK_THAT(cs.unverified[0], Catch::Contains("applog") && Catch::Contains("no primary key"));
  CHECK(res.at("row_count").outcome == Outcome::kPass);
}

TEST_CASE("row-level proof fails a copy that lost, changed or gained one row of a busy table",
          "[integration][row_proof]") {
  Evidence ev(W().sample);
  SECTION("a row missing") {
    RestoredDb copy("p_missing");
    copy.Sql("delete from busy where id = 2000");
    auto res = Run(copy, &ev.store);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    const TableFinding* f = Finding(cs, "public.busy");
    REQUIRE(f);
    CHECK(f->outcome == Outcome::kFail);
    CHECK_THAT(f->message, Catch::Contains("1 missing from the restored copy"));
    CHECK(Names(f, "id=2000"));
  }
  SECTION("a value changed") {
    RestoredDb copy("p_changed");
    copy.Sql("update busy set note = 'tampered' where id = 2001");
    auto res = Run(copy, &ev.store);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    const TableFinding* f = Finding(cs, "public.busy");
    REQUIRE(f);
    CHECK_THAT(f->message, Catch::Contains("1 changed"));
    CHECK(Names(f, "id=2001"));
  }
  SECTION("an extra row beyond the deletes counted since") {
    RestoredDb copy("p_extra");
    copy.Sql("insert into busy values (90000, 1, 'ghost')");
    auto res = Run(copy, &ev.store);
    const CheckResult& cs = res.at("checksum");
    CHECK(cs.outcome == Outcome::kFail);
    const TableFinding* f = Finding(cs, "public.busy");
    REQUIRE(f);
    CHECK_THAT(f->message,
               Catch::Contains("11 rows only in the copy") && Catch::Contains("10 deletes"));
    CHECK(Names(f, "id=90000"));
  }
  SECTION("a value changed in a table identified by a unique NOT NULL key") {
    RestoredDb copy("p_ukey");
    copy.Sql("update ukeyed set v = -1 where code = 'c0300'");
    auto res = Run(copy, &ev.store);
    const TableFinding* f = Finding(res.at("checksum"), "public.ukeyed");
    REQUIRE(f);
    CHECK(f->outcome == Outcome::kFail);
    CHECK(Names(f, "code=c0300"));
  }
  SECTION("a row changed on the source since the backup may differ: explained, still a pass") {
    RestoredDb copy("p_explained");
    copy.Sql("update busy set note = 'older version' where id = 50");
    auto res = Run(copy, &ev.store);
    CHECK(res.at("checksum").outcome == Outcome::kPass);
  }
}

TEST_CASE("without a recorded snapshot, written tables stay unverified and say why",
          "[integration][row_proof]") {
  ActivitySample old = W().sample;
  old.snapshot.clear();  // a sample from before the evidence was recorded
  Evidence ev(old);
  RestoredDb copy("p_nosnap");
  auto res = Run(copy, &ev.store);
  const CheckResult& cs = res.at("checksum");
  CHECK(cs.outcome == Outcome::kPass);  // nothing differs that was compared
  CHECK(cs.tables_unverified == 4);     // busy, grow, applog, ukeyed
  CHECK(cs.rows_verified == 1000);      // still
  bool said = false;
  for (const auto& u : cs.unverified)
    said = said || (u.find("public.busy") != std::string::npos &&
                    u.find("no transaction snapshot recorded") != std::string::npos);
  CHECK(said);
}
