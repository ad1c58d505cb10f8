// ActivityStore: persistence, delta encoding, torn lines, compaction, churn arithmetic.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "agent/state.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

ActivitySample Sample(double ts, std::map<std::string, TableCounters> tables) {
  return ActivitySample{ts, std::move(tables)};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void AppendRaw(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

std::uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

bool Same(const TableCounters& a, const TableCounters& b) {
  return a.n_tup_ins == b.n_tup_ins && a.n_tup_upd == b.n_tup_upd && a.n_tup_del == b.n_tup_del &&
         a.n_live_tup == b.n_live_tup;
}

}  // namespace

TEST_CASE("activity samples round-trip through the file", "[unit][checks][state]") {
  test::TestDir dir;
  const std::string sd = dir / "target";
  {
    ActivityStore store(sd);
    CHECK_FALSE(store.Latest());
    CHECK(store.SampleCount() == 0);
    store.Append(Sample(1000.25, {{"public.a", {1, 2, 3, 4}}, {"odd schema.t=1%x", {5, 0, 0, 5}}}));
    store.Append(Sample(1015.5, {{"public.a", {2, 2, 3, 5}}, {"odd schema.t=1%x", {5, 0, 0, 5}}}));
    store.Append(Sample(1030, {{"public.a", {2, 2, 3, 5}}, {"public.new", {7, 0, 0, 7}}}));
  }
  ActivityStore reader(sd);  // as another process would
  CHECK(reader.SampleCount() == 3);
  auto latest = reader.Latest();
  REQUIRE(latest);
  CHECK(latest->ts == Approx(1030));
  CHECK(latest->tables.size() == 2);
  CHECK(Same(latest->tables.at("public.a"), {2, 2, 3, 5}));
  CHECK(latest->tables.count("odd schema.t=1%x") == 0);

  auto first = reader.AtOrBefore(1015.4);
  REQUIRE(first);
  CHECK(first->ts == Approx(1000.25));
  CHECK(Same(first->tables.at("odd schema.t=1%x"), {5, 0, 0, 5}));
  auto second = reader.AtOrBefore(1015.5);
  REQUIRE(second);
  CHECK(second->ts == Approx(1015.5));
  CHECK(Same(second->tables.at("public.a"), {2, 2, 3, 5}));
  CHECK_FALSE(reader.AtOrBefore(999));
}

TEST_CASE("a torn or corrupt line costs only the samples built on it", "[unit][checks][state]") {
  test::TestDir dir;
  const std::string sd = dir / "t";
  const std::string file = sd + "/activity.log";
  ActivityStore store(sd);
  store.Append(Sample(100, {{"s.a", {1, 0, 0, 1}}}));
  store.Append(Sample(115, {{"s.a", {2, 0, 0, 2}}}));

  SECTION("a torn last line is ignored and the next append still lands") {
    AppendRaw(file, "A1 130000 D 115000 1 s.a=3,0,0");  // a writer died mid-line
    ActivityStore reader(sd);
    CHECK(reader.SampleCount() == 2);
    CHECK(reader.Latest()->ts == Approx(115));
    ActivityStore writer(sd);  // a restarted daemon
    writer.Append(Sample(145, {{"s.a", {4, 0, 0, 4}}}));
    CHECK(reader.SampleCount() == 3);
    CHECK(reader.Latest()->tables.at("s.a").n_tup_ins == 4);
  }
  SECTION("garbage in the middle breaks the delta chain until the next full sample") {
    AppendRaw(file, "A1 130000 D 115000 1 s.a=x,0,0,3\n");  // unparseable
    AppendRaw(file, "A1 145000 D 130000 1 s.a=4,0,0,4\n");  // builds on the bad one
    AppendRaw(file, "A1 160000 F 1 s.a=5,0,0,5\n");
    ActivityStore reader(sd);
    CHECK(reader.SampleCount() == 3);
    CHECK_FALSE(reader.AtOrBefore(150)->ts > 115);
    CHECK(reader.Latest()->tables.at("s.a").n_tup_ins == 5);
  }
}

TEST_CASE("two writers appending in turn both stay readable", "[unit][checks][state]") {
  test::TestDir dir;
  ActivityStore a(dir / "t"), b(dir / "t");
  for (int i = 0; i < 10; ++i) {
    ActivityStore& w = i % 2 ? b : a;
    w.Append(Sample(1000 + i, {{"s.t", {i, 0, 0, i}}, {"s.fixed", {1, 1, 1, 1}}}));
  }
  ActivityStore reader(dir / "t");
  CHECK(reader.SampleCount() == 10);
  for (int i = 0; i < 10; ++i) CHECK(reader.AtOrBefore(1000 + i)->tables.at("s.t").n_tup_ins == i);
}

TEST_CASE("only changed tables are written between full samples", "[unit][checks][state]") {
  test::TestDir dir;
  ActivityStore store(dir / "t");
  std::map<std::string, TableCounters> tables;
  for (int i = 0; i < 3000; ++i) tables["public.table_" + std::to_string(i)] = {i, 0, 0, i};
  store.Append(Sample(0, tables));
  const auto full_size = FileSize(dir / "t/activity.log");
  for (int s = 1; s < 30; ++s) {
    for (int k = 0; k < 5; ++k) tables["public.table_" + std::to_string(s * 7 + k)].n_tup_ins += 10;
    store.Append(Sample(s * 15, tables));
  }
  const auto total = FileSize(dir / "t/activity.log");
  INFO("full sample " << full_size << " bytes, 30 samples " << total << " bytes");
  CHECK(total < full_size + 30 * 200);
  auto back = ActivityStore(dir / "t").Latest();
  REQUIRE(back);
  CHECK(back->tables.size() == 3000);
  for (const auto& [name, c] : tables) CHECK(Same(back->tables.at(name), c));
}

TEST_CASE("compaction keeps 2 h of samples, then one per hour for 8 days",
          "[unit][checks][state]") {
  test::TestDir dir;
  const double day = 86400;
  const double end = 20 * day;
  {
    ActivityStore store(dir / "t");
    for (double t = end - 10 * day; t <= end; t += 600)  // every 10 min for 10 days
      store.Append(Sample(t, {{"s.t", {static_cast<std::int64_t>(t), 0, 0, 1}}}));
  }
  ActivityStore store(dir / "t");  // the first append of a process compacts
  store.Append(Sample(end + 600, {{"s.t", {static_cast<std::int64_t>(end + 600), 0, 0, 1}}}));
  const auto n = store.SampleCount();
  // 13 samples within 2 h of the newest, one per hour for 8 days before that (192, give or take
  // the bucket edges), nothing older.
  CHECK(n >= 13 + 190);
  CHECK(n <= 13 + 194);
  CHECK_FALSE(store.AtOrBefore(end + 600 - 2 * 3600 - 8 * day - 3600));
  auto old = store.AtOrBefore(end - 5 * day);
  REQUIRE(old);
  CHECK(old->ts > end - 5 * day - 3600);
  CHECK(old->tables.at("s.t").n_tup_ins == static_cast<std::int64_t>(old->ts));
  auto recent = store.AtOrBefore(end - 1800);
  REQUIRE(recent);
  CHECK(recent->ts == Approx(end - 1800));
  CHECK(ReadFile(dir / "t/activity.log").rfind("A1 ", 0) == 0);
}

TEST_CASE("churn between two samples", "[unit][checks][state]") {
  ActivitySample from = Sample(0, {{"s.a", {10, 5, 2, 8}}, {"s.b", {1, 1, 1, 0}}, {"s.gone", {}}});
  ActivitySample to =
      Sample(60, {{"s.a", {15, 6, 4, 9}}, {"s.b", {0, 1, 1, 0}}, {"s.new", {3, 0, 1, 4}}});
  auto churn = ActivityStore::Churn(from, to);
  REQUIRE(churn.at("s.a"));
  CHECK(churn.at("s.a")->inserted == 5);
  CHECK(churn.at("s.a")->updated == 1);
  CHECK(churn.at("s.a")->deleted == 2);
  CHECK(churn.at("s.a")->touched());
  CHECK_FALSE(churn.at("s.b"));  // counters went backwards: stats were reset
  REQUIRE(churn.at("s.new"));
  CHECK(churn.at("s.new")->inserted == 4);  // new: every live row counts as inserted
  CHECK(churn.at("s.new")->deleted == 1);
  CHECK(churn.count("s.gone") == 0);
  auto same = ActivityStore::Churn(from, from);
  CHECK_FALSE(same.at("s.a")->touched());
}

TEST_CASE("each sample keeps its own transaction snapshot through deltas and compaction",
          "[unit][checks][state]") {
  test::TestDir dir;
  const double day = 86400;
  {
    ActivityStore store(dir / "t");
    for (int i = 0; i < 300; ++i) {
      const double t = 10 * day + i * 600.0;
      const std::string snap = std::to_string(1000 + i) + ":" + std::to_string(1005 + i) + ":" +
                               std::to_string(1001 + i) + "," + std::to_string(1003 + i);
      // Every third sample has no snapshot (a role that may not read it): never inherited.
      store.Append(
          ActivitySample{t,
                         {{"s.t", {i, 0, 0, 1}}, {"s.u", {1, 0, 0, 1}}, {"s.v", {2, 0, 0, 2}}},
                         i % 3 == 2 ? "" : snap,
                         i % 2 == 0});
    }
  }
  ActivityStore store(dir / "t");  // compacts on its first append
  store.Append(ActivitySample{10 * day + 300 * 600.0, {{"s.t", {300, 0, 0, 1}}}, "1300:1300:"});
  const std::string file = ReadFile(dir / "t/activity.log");
  CHECK(file.find(" D ") != std::string::npos);  // deltas are in use
  for (int i : {0, 1, 2, 150, 298, 299}) {
    auto s = store.AtOrBefore(10 * day + i * 600.0);
    REQUIRE(s);
    if (s->ts != Approx(10 * day + i * 600.0)) continue;  // dropped by compaction
    CHECK(s->tables.at("s.t").n_tup_ins == i);
    if (i % 3 == 2)
      CHECK(s->snapshot.empty());
    else
      CHECK(s->snapshot == std::to_string(1000 + i) + ":" + std::to_string(1005 + i) + ":" +
                               std::to_string(1001 + i) + "," + std::to_string(1003 + i));
    CHECK(s->commit_timestamps == (i % 2 == 0));
  }
  CHECK(store.Latest()->snapshot == "1300:1300:");
  // A malformed snapshot token makes the line unreadable rather than wrong evidence.
  AppendRaw(dir / "t/activity.log", "A1 99999999999999 F 1 s.t=1,0,0,1 ~snap=1:x:\n");
  CHECK(store.Latest()->snapshot == "1300:1300:");
}
