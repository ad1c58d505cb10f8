// Check policies without a server: churn bounds, checksum plans, expectations, schema diffs, the
// check table.
#include <catch2/catch.hpp>

#include "checks/drill/catalog.h"
#include "checks/drill/churn.h"
#include "checks/registry.h"
#include "checks/drill/schema_check.h"
#include "checks/drill/sql_check.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

ChecksConfig Churny() {
  ChecksConfig c;
  c.compare = CompareMode::kChurn;
  c.row_count.slack_rows = 0;
  return c;
}

Outcome Judge(std::int64_t src, std::int64_t rst, const std::optional<TableChurn>& churn,
              const ChecksConfig& c) {
  return JudgeRowCount(src, rst, RowCountBoundFor(src, churn, c), c).outcome;
}

}  // namespace

TEST_CASE("row count bounds follow the churn since the backup", "[unit][checks]") {
  ChecksConfig c = Churny();
  const TableChurn untouched{0, 0, 0};
  const TableChurn grew{10, 3, 2};  // +10 inserted, 3 updated, -2 deleted

  SECTION("untouched tables must match exactly, slack or not") {
    c.row_count.slack_rows = 5;
    CHECK(Judge(100, 100, untouched, c) == Outcome::kPass);
    CHECK(Judge(100, 99, untouched, c) == Outcome::kFail);
    auto v = JudgeRowCount(100, 99, RowCountBoundFor(100, untouched, c), c);
    CHECK_THAT(v.message, Catch::Contains("untouched"));
  }
  SECTION("a touched table may have gained its inserts and lost its deletes") {
    CHECK(Judge(110, 100, grew, c) == Outcome::kPass);  // source gained 10
    CHECK(Judge(98, 100, grew, c) == Outcome::kPass);   // source lost 2
    CHECK(Judge(111, 100, grew, c) == Outcome::kFail);
    CHECK(Judge(97, 100, grew, c) == Outcome::kFail);  // only 2 deletes were counted
    c.row_count.slack_rows = 1;
    CHECK(Judge(97, 100, grew, c) == Outcome::kPass);
    CHECK(Judge(111, 100, grew, c) == Outcome::kPass);
    auto b = RowCountBoundFor(111, grew, c);
    CHECK(b.kind == BoundKind::kChurn);
    CHECK(b.above == 11);
    CHECK(b.below == 3);
  }
  SECTION("unknown churn: equality passes, any difference is unverified (an error)") {
    c.row_count.slack_rows = 5;  // slack widens churn bounds only, never unknown ones
    CHECK(Judge(1000, 1000, std::nullopt, c) == Outcome::kPass);
    CHECK(Judge(1000, 999, std::nullopt, c) == Outcome::kError);
    CHECK(Judge(1000, 1001, std::nullopt, c) == Outcome::kError);
    CHECK(Judge(1, 0, std::nullopt, c) == Outcome::kError);
    CHECK(Judge(0, 50, std::nullopt, c) == Outcome::kError);  // appended since: not a failure
    auto b = RowCountBoundFor(1001, std::nullopt, c);
    CHECK(b.kind == BoundKind::kUnknown);
    CHECK(b.above == 0);
    CHECK(b.below == 0);
    auto v = JudgeRowCount(1000, 999, b, c);
    CHECK_THAT(v.message, Catch::Contains("unverified"));
  }
  SECTION("exact mode ignores churn") {
    c.compare = CompareMode::kExact;
    c.row_count.slack_rows = 100;
    CHECK(Judge(110, 100, grew, c) == Outcome::kFail);
    CHECK(Judge(100, 100, grew, c) == Outcome::kPass);
    CHECK(Judge(100, 99, std::nullopt, c) == Outcome::kFail);
  }
}

TEST_CASE("checksum plans per table", "[unit][checks]") {
  ChecksConfig c = Churny();
  c.checksum.append_only = {{"public.events", "id"}};
  const TableChurn untouched{0, 0, 0}, touched{1, 0, 0};
  CHECK(PlanChecksum("public.a", untouched, c) == ChecksumPlan::kCompare);
  CHECK(PlanChecksum("public.a", touched, c) == ChecksumPlan::kSkipTouched);
  CHECK(PlanChecksum("public.a", std::nullopt, c) == ChecksumPlan::kCompareUnknown);
  CHECK(PlanChecksum("public.events", touched, c) == ChecksumPlan::kAppendOnly);
  CHECK(PlanChecksum("public.events", std::nullopt, c) == ChecksumPlan::kAppendOnly);
  CHECK(PlanChecksum("public.events", untouched, c) == ChecksumPlan::kCompare);
  c.compare = CompareMode::kExact;
  CHECK(PlanChecksum("public.a", touched, c) == ChecksumPlan::kCompare);
  CHECK(PlanChecksum("public.events", touched, c) == ChecksumPlan::kCompare);
}

TEST_CASE("churn basis from the activity store", "[unit][checks]") {
  ActivitySample now{2000, {{"s.a", {5, 0, 0, 5}}, {"s.b", {1, 0, 0, 1}}}};
  SECTION("no store: not covered") {
    auto b = ComputeChurn(nullptr, 1000, now);
    CHECK_FALSE(b.covered);
    CHECK_THAT(b.note,
               Catch::Contains("no activity history covers the backup time 1970-01-01T00:16:40Z") &&
                   Catch::Contains("no activity samples") && Catch::Contains("run the daemon"));
    CHECK_FALSE(b.For("s.a"));
  }
  test::TestDir dir;
  ActivityStore store(dir / "t");
  SECTION("only samples after the backup: not covered") {
    store.Append(ActivitySample{1500, {{"s.a", {5, 0, 0, 5}}}});
    auto b = ComputeChurn(&store, 1000, now);
    CHECK_FALSE(b.covered);
    CHECK_THAT(b.note, Catch::Contains("the daemon's samples start at 1970-01-01T00:25:00Z"));
  }
  SECTION("a sample before the backup covers it; a reset counter is unknown") {
    store.Append(ActivitySample{999, {{"s.a", {5, 0, 0, 5}}, {"s.b", {3, 0, 0, 3}}}});
    store.Append(ActivitySample{1200, {{"s.a", {6, 0, 0, 6}}, {"s.b", {3, 0, 0, 3}}}});
    auto b = ComputeChurn(&store, 1000, now);
    REQUIRE(b.covered);
    CHECK(b.sample_ts == Approx(999));
    REQUIRE(b.For("s.a"));
    CHECK_FALSE(b.For("s.a")->touched());
    CHECK_FALSE(b.For("s.b"));  // 3 -> 1: statistics were reset
    CHECK_FALSE(b.For("s.unknown"));
  }
}

TEST_CASE("sql expectations parse and compare", "[unit][checks]") {
  std::string err;
  auto e = ParseExpectation("= 5", &err);
  REQUIRE(e);
  CHECK(e->op == CompareOp::kEq);
  CHECK(e->value == "5");
  CHECK(Satisfies(std::string("5"), *e));
  CHECK(Satisfies(std::string("5.000"), *e));
  CHECK_FALSE(Satisfies(std::string("6"), *e));
  CHECK_FALSE(Satisfies(std::nullopt, *e));

  CHECK(ParseExpectation("5", &err)->op == CompareOp::kEq);
  CHECK(ParseExpectation("==5", &err)->op == CompareOp::kEq);
  CHECK(ParseExpectation("<> 0", &err)->op == CompareOp::kNe);
  CHECK(ParseExpectation("!= 0", &err)->op == CompareOp::kNe);
  CHECK(Satisfies(std::string("10"), *ParseExpectation(">= 9.5", &err)));
  CHECK(Satisfies(std::string("10"), *ParseExpectation("> 9", &err)));  // numeric, not "10" < "9"
  CHECK(Satisfies(std::string("-3"), *ParseExpectation("< -2", &err)));
  CHECK(Satisfies(std::string("1e3"), *ParseExpectation("= 1000", &err)));
  CHECK_FALSE(Satisfies(std::string("123456789012345678901"),
                        *ParseExpectation("= 123456789012345678900", &err)));  // exact
  CHECK(Satisfies(std::string("0.10"), *ParseExpectation("<= .1", &err)));

  auto q = ParseExpectation("'it''s'", &err);
  REQUIRE(q);
  CHECK(q->quoted);
  CHECK(q->value == "it's");
  CHECK(Satisfies(std::string("it's"), *q));
  CHECK_FALSE(Satisfies(std::string("5"), *ParseExpectation("'5.0'", &err)));  // quoted: string
  CHECK(Satisfies(std::string("abc"), *ParseExpectation("< abd", &err)));

  auto n = ParseExpectation("NULL", &err);
  REQUIRE(n);
  CHECK(n->is_null);
  CHECK(Satisfies(std::nullopt, *n));
  CHECK_FALSE(Satisfies(std::string("x"), *n));
  CHECK(Satisfies(std::string("x"), *ParseExpectation("!= null", &err)));

  CHECK_FALSE(ParseExpectation("", &err));
  CHECK_FALSE(ParseExpectation(">=", &err));
  CHECK_THAT(err, Catch::Contains("without a value"));
  CHECK_FALSE(ParseExpectation("'open", &err));
  CHECK_FALSE(ParseExpectation("< null", &err));

  CHECK(CompareValues("-0", "0") == 0);
  CHECK(CompareValues("007", "7") == 0);
  CHECK(CompareValues("NaN", "1") == 1);
}

TEST_CASE("schema comparison: missing fails, extra warns, a missing table folds its parts",
          "[unit][checks]") {
  SchemaCatalog src = {
      {"table public.a", {"", ""}},
      {"column public.a.id", {"integer not null", "table public.a"}},
      {"column public.a.v", {"text", "table public.a"}},
      {"index public.a_pkey",
       {"CREATE UNIQUE INDEX a_pkey ON public.a USING btree (id)", "table public.a"}},
      {"table public.b", {"", ""}},
      {"column public.b.x", {"integer", "table public.b"}},
      {"extension pgcrypto", {"version 1.3 schema public", ""}},
  };
  SchemaCatalog same = src;
  CHECK(CompareSchemas(src, same).outcome == Outcome::kPass);
  CHECK_THAT(CompareSchemas(src, same).message, Catch::Contains("all match"));

  SchemaCatalog rst = src;
  rst.erase("table public.a");
  rst.erase("column public.a.id");
  rst.erase("column public.a.v");
  rst.erase("index public.a_pkey");
  rst["column public.b.x"].definition = "bigint";
  rst["extension pgcrypto"].definition = "version 1.4 schema public";
  rst["view public.only_here"] = {"SELECT 1", ""};
  CheckResult r = CompareSchemas(src, rst);
  CHECK(r.outcome == Outcome::kFail);
  CHECK_THAT(r.message, Catch::Contains("table public.a"));
  REQUIRE(r.details.size() == 4);  // the missing table (with its parts), b.x, pgcrypto, the view
  auto find = [&](const std::string& key) -> const TableFinding* {
    for (const auto& d : r.details)
      if (d.table == key) return &d;
    return nullptr;
  };
  REQUIRE(find("table public.a"));
  CHECK(find("table public.a")->outcome == Outcome::kFail);
  CHECK_THAT(find("table public.a")->message, Catch::Contains("2 columns, 1 index"));
  REQUIRE(find("column public.b.x"));
  CHECK_THAT(find("column public.b.x")->message, Catch::Contains("bigint"));
  REQUIRE(find("extension pgcrypto"));
  CHECK(find("extension pgcrypto")->outcome == Outcome::kWarn);
  REQUIRE(find("view public.only_here"));
  CHECK(find("view public.only_here")->outcome == Outcome::kWarn);

  CheckResult later = CompareSchemas(src, rst, {"public.a"});  // a: created after the backup
  REQUIRE(find("table public.a"));
  for (const auto& d : later.details)
    if (d.table == "table public.a") CHECK(d.outcome == Outcome::kWarn);
  CHECK_THAT(later.message, Catch::Contains("created after the backup: table public.a"));
  CHECK(later.outcome == Outcome::kFail);  // b.x still differs

  SchemaCatalog extra = src;
  extra["table public.z"] = {"", ""};
  CHECK(CompareSchemas(src, extra).outcome == Outcome::kWarn);
}

TEST_CASE("the check table follows the config", "[unit][checks]") {
  ChecksConfig c;
  auto names = [](const std::vector<std::unique_ptr<Check>>& v) {
    std::vector<std::string> out;
    for (const auto& x : v) out.push_back(x->name());
    return out;
  };
  CHECK(names(MakeDrillChecks(c)) == std::vector<std::string>{"schema", "row_count", "checksum"});
  c.freshness["public.events"] = "created_at";
  c.sql.push_back({"users", "select count(*) from users", ">= 1", false});
  c.schema = false;
  c.checksum.enabled = false;
  CHECK(names(MakeDrillChecks(c)) ==
        std::vector<std::string>{"row_count", "freshness", "sql:users"});
}

TEST_CASE("exclusion globs match schema.table names", "[unit][checks]") {
  CHECK(MatchesAny("audit.log_2024", {"audit.*"}));
  CHECK(MatchesAny("public.tmp_x", {"x.y", "*.tmp_*"}));
  CHECK_FALSE(MatchesAny("public.users", {"audit.*"}));
  CHECK_FALSE(MatchesAny("public.users", {}));
}
