// Whole drills through RunDrill: discover, restore, checks, cleanup, with real PostgreSQL 15.
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "agent/environment.h"
#include "agent/runtime/drill_metrics.h"
#include "agent/runtime/drill_runner.h"
#include "agent/state.h"
#include "exporters/metrics_exporter.h"
#include "exporters/report.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

struct DrillFixture {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> source;
  Environment env;
  TargetConfig target;
  DrillFixture() {
    source = test::StartCluster(dir);
    source->Psql("create database app");
    source->Psql(
        "create schema sales;"
        "create table sales.customers(id int primary key, name text not null, tags text[], profile "
        "jsonb);"
        "create table sales.orders(id bigint primary key, customer_id int references "
        "sales.customers(id),"
        "  amount numeric(10,2), placed_at timestamptz default now(), raw bytea);"
        "create table public.notes(body text, at timestamptz);"  // no primary key
        "insert into sales.customers select g, 'c' || g, array['a','b'], jsonb_build_object('n', "
        "g) from generate_series(1, 3000) g;"
        "insert into sales.orders select g, 1 + g % 3000, g * 0.5, now() - (g || ' s')::interval, "
        "decode(md5(g::text), 'hex')"
        "  from generate_series(1, 20000) g;"
        "insert into public.notes select 'note ' || g, now() from generate_series(1, 500) g;",
        "app");
    env.pg = test::Tools();
    env.run_as = test::ServerUser();
    env.work_dir = dir / "work";
    env.state_dir = dir / "state";
    MakeDirs(env.work_dir);
    MakeDirs(env.state_dir);
    MakeDirs(dir / "backups");
    target.name = "app";
    target.source = ConnSpec(source->ConnInfo("app"));
    target.backup.paths = {dir / "backups"};
    target.backup.pattern = "app-*";
    target.backup.settle = std::chrono::milliseconds(100);
    target.checks.stats_settle = std::chrono::seconds(1);
    target.checks.freshness = {{"sales.orders", "placed_at"}};
  }
  void Dump(const std::string& name, const std::string& format, const std::string& db = "app") {
    auto r = test::RunPgTool(
        "pg_dump", {"-F" + format, "-d", source->ConnInfo(db), "-f", dir / ("backups/" + name)});
    REQUIRE(r.ok());
  }
};

const CheckResult* FindCheck(const DrillReport& r, const std::string& name) {
  for (const auto& c : r.checks)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

TEST_CASE("a drill of a good dump passes every stage and leaves nothing behind",
          "[integration][drill]") {
  DrillFixture f;
  f.Dump("app-1.dump", "c");
  CancelToken cancel;
  DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
  INFO(RenderReportText(r));
  CHECK(r.result == DrillResult::kSuccess);
  CHECK(r.reason.empty());
  REQUIRE(r.backup);
  CHECK(r.backup->id.find("app-1.dump") != std::string::npos);
  std::vector<std::string> stages;
  for (const auto& s : r.stages) stages.push_back(s.name);
  CHECK(stages == std::vector<std::string>{"discover", "restore", "checks", "cleanup", "total"});
  for (const auto& s : r.stages) CHECK(s.outcome == Outcome::kPass);
  for (const char* name : {"schema", "row_count", "checksum", "freshness"}) {
    const CheckResult* c = FindCheck(r, name);
    REQUIRE(c);
    CHECK((c->outcome == Outcome::kPass || c->outcome == Outcome::kWarn));
  }
  CHECK(r.restored_size_bytes > 0);
  CHECK(test::ListDir(f.env.work_dir).empty());

  // Its metrics, as the agent would export them.
  DrillHistory history(f.env.state_dir + "/app");
  history.Record(r);
  auto text = RenderFamilies(DrillFamilies(f.target, history.Load(), false));
  CHECK(text.find("restorewatch_drill_success 1") != std::string::npos);
  CHECK(text.find("restorewatch_drill_runs_total{result=\"success\"} 1") != std::string::npos);
  CHECK(text.find("restorewatch_drill_stage_duration_seconds{stage=\"restore\"}") !=
        std::string::npos);
  CHECK(text.find("restorewatch_drill_check_success{check=\"checksum\"} 1") != std::string::npos);
}

TEST_CASE("a dump of the wrong database fails the drill with the reason", "[integration][drill]") {
  DrillFixture f;
  f.source->Psql("create database other");
  f.source->Psql("create table t(i int); insert into t values (1);", "other");
  f.Dump("app-1.dump", "c", "other");
  CancelToken cancel;
  DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
  INFO(RenderReportText(r));
  CHECK(r.result == DrillResult::kFailure);
  CHECK(r.reason.find("other") != std::string::npos);
  CHECK(test::ListDir(f.env.work_dir).empty());
}

TEST_CASE("no backup, an unreachable source and a timeout end as clear non-passes",
          "[integration][drill]") {
  DrillFixture f;
  CancelToken cancel;
  SECTION("empty directory") {
    DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
    CHECK(r.result == DrillResult::kFailure);
    CHECK(r.reason.find("no backup") != std::string::npos);
    CHECK(r.checks.empty());
  }
  SECTION("unreachable source") {
    f.Dump("app-1.dump", "c");
    f.target.source = ConnSpec("host=" + f.dir.path() + " port=1 dbname=app user=postgres");
    f.target.connect_timeout = std::chrono::seconds(2);
    DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
    INFO(RenderReportText(r));
    CHECK(r.result == DrillResult::kError);
    for (const auto& c : r.checks)
      if (c.name != "freshness" && c.name.rfind("sql:", 0) != 0) CHECK(c.outcome != Outcome::kPass);
    CHECK(test::ListDir(f.env.work_dir).empty());
  }
  SECTION("drill timeout") {
    f.Dump("app-1.dump", "c");
    f.target.drill.timeout = std::chrono::milliseconds(300);
    DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
    INFO(RenderReportText(r));
    CHECK(r.result == DrillResult::kError);
    CHECK(r.reason.find("timed out") != std::string::npos);
    CHECK(test::ListDir(f.env.work_dir).empty());
  }
  SECTION("binaries that do not exist") {
    f.Dump("app-1.dump", "c");
    f.env.pg.bin_dir = f.dir / "nowhere";
    DrillReport r = RunDrill(f.env, f.target, nullptr, cancel);
    INFO(RenderReportText(r));
    CHECK(r.result == DrillResult::kError);
    CHECK(!r.reason.empty());
    CHECK(test::ListDir(f.env.work_dir).empty());
  }
}
