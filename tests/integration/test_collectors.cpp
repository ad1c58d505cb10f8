// Live collectors against real PostgreSQL 15 on loopback: a primary archiving WAL, a streaming
// standby on a physical slot made with pg_basebackup, a pgbench workload. Values are compared with
// what the server's own views say at about the same time; every wait is bounded.
#include <signal.h>
#include <sys/types.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "agent/state.h"
#include "agent/units.h"
#include "checks/live/archiver_collector.h"
#include "checks/live/collector_util.h"
#include "checks/live/replication_collector.h"
#include "checks/live/slots_collector.h"
#include "checks/live/source_collector.h"
#include "checks/live/standby_collector.h"
#include "checks/live/table_activity_collector.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs one collection, as the monitor would.
std::vector<MetricFamilyData> Run(Collector& c, const TargetConfig& t,
                                  ActivityStore* store = nullptr) {
  CancelToken cancel;
  CollectContext ctx{t, cancel, store, nullptr, {}};
  return c.Collect(ctx);
}

// What /metrics would refuse: duplicate families, duplicate label sets, missing help, a target
// or pid label.
void CheckWellFormed(const std::vector<MetricFamilyData>& families) {
  std::set<std::string> names;
  for (const auto& f : families) {
    INFO(f.name);
    CHECK(names.insert(f.name).second);
    CHECK(!f.help.empty());
    CHECK(!f.samples.empty());
    std::set<std::vector<std::pair<std::string, std::string>>> label_sets;
    for (const auto& s : f.samples) {
      CHECK(label_sets.insert(s.labels).second);
      for (const auto& [k, v] : s.labels) {
        CHECK(k != "target");
        CHECK(k != "pid");
      }
    }
  }
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// One row of psql -A -t output, split at '|'.
std::vector<std::string> Row(const LocalCluster& c, const std::string& sql) {
  std::vector<std::string> out;
  std::stringstream in(Trim(c.Psql(sql)));
  std::string part;
  while (std::getline(in, part, '|')) out.push_back(part);
  return out;
}

double Num(const LocalCluster& c, const std::string& sql) { return std::stod(Trim(c.Psql(sql))); }

// Polls `done` every `step` until it holds or `limit` passes (bounded in count and time).
template <typename F>
bool WaitUntil(F done, Duration limit, Duration step = 250ms) {
  auto deadline = Clock::now() + limit;
  for (int i = 0; i < 1000 && Clock::now() < deadline; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(step);
  }
  return done();
}

const Labels kS1{{"application_name", "s1"}, {"client_addr", "127.0.0.1"}};

Labels With(Labels l, const std::string& k, const std::string& v) {
  l.emplace_back(k, v);
  return l;
}

std::vector<std::string> PgbenchArgs(const LocalCluster& c, std::vector<std::string> extra) {
  std::vector<std::string> a = {"-h", c.socket_dir(), "-p", std::to_string(c.port()),
                                "-U", "postgres"};
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back("postgres");
  return a;
}

// Stops a process (the postmaster) and resumes it on scope exit, also when a REQUIRE fails.
class Freeze {
 public:
  explicit Freeze(pid_t pid) : pid_(pid) { kill(pid_, SIGSTOP); }
  ~Freeze() { kill(pid_, SIGCONT); }

 private:
  pid_t pid_;
};

pid_t PostmasterPid(const LocalCluster& c) {
  std::ifstream in(c.data_dir() + "/postmaster.pid");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

}  // namespace

TEST_CASE("collectors follow a primary, its streaming standby, slot and WAL archive",
          "[integration][collectors]") {
  auto t0 = Clock::now();
  test::TestDir dir("rwcoll-");
  std::string archive = dir / "archive";
  MakeDirs(archive, 0700, test::ServerUser());
  std::string archive_command = "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'";

  test::ClusterSpec ps;
  ps.tcp = true;
  ps.settings = {{"wal_level", "'replica'"},           {"archive_mode", "'on'"},
                 {"archive_command", archive_command}, {"max_wal_senders", "10"},
                 {"max_replication_slots", "10"},      {"wal_sender_timeout", "'10s'"}};
  auto primary = test::StartCluster(dir, ps);
  // The monitoring role the README documents, and one without pg_monitor.
  primary->Psql(
      "create role rw_monitor login; grant pg_monitor to rw_monitor;"
      " create role rw_plain login;"
      " select pg_create_physical_replication_slot('s1')");

  // A streaming standby over TCP (so client_addr and application_name are filled).
  std::string sdir = MakeTempDir(dir.path(), "standby-", test::ServerUser());
  ProcessSpec bb;
  bb.argv = {test::Tools().Path("pg_basebackup"),
             "-D",
             sdir + "/data",
             "-X",
             "stream",
             "-c",
             "fast",
             "-R",
             "-S",
             "s1",
             "-d",
             primary->TcpConnInfo() + " application_name=s1"};
  bb.run_as = test::ServerUser();
  bb.timeout = 2min;
  ProcessResult bbr = RunProcess(bb);
  REQUIRE(bbr.ok());
  ClusterOptions so;
  so.tools = test::Tools();
  so.parent_dir = dir.path();
  so.run_as = test::ServerUser();
  so.throwaway = false;
  // Replies every second, so the primary's lag columns follow quickly.
  so.settings = {{"wal_receiver_status_interval", "'1s'"}, {"hot_standby", "on"}};
  auto standby = LocalCluster::Adopt(so, sdir, sdir + "/data");

  auto init = test::RunPgTool("pgbench", PgbenchArgs(*primary, {"-i", "-s", "1", "-q"}));
  REQUIRE(init.ok());
  auto bench = test::RunPgTool("pgbench", PgbenchArgs(*primary, {"-T", "2", "-c", "2"}));
  REQUIRE(bench.ok());
  primary->Psql("select pg_switch_wal()");

  TargetConfig t;
  t.name = "coll";
  t.source = ConnSpec(primary->ConnInfo() + " user=rw_monitor");
  t.standbys = {{standby->ConnInfo() + " user=rw_monitor", ""},
                {primary->ConnInfo() + " user=rw_monitor", ""}};
  t.standby_names = {"s1", "primary-as-standby"};
  t.connect_timeout = 2s;
  t.statement_timeout = 5s;

  SourceCollector source;
  ArchiverCollector archiver;
  ReplicationCollector replication;
  SlotsCollector slots;
  StandbyCollector standbys;

  // Caught up, streaming, and something archived.
  REQUIRE(WaitUntil(
      [&] {
        return Num(*primary,
                   "select count(*) from pg_stat_replication, pg_stat_archiver"
                   " where state = 'streaming' and replay_lsn = pg_current_wal_lsn()"
                   " and archived_count > 0") == 1;
      },
      30s));
  INFO("set-up took " << SecondsSince(t0) << " s");

  {
    INFO("step: values match the server's views");
    auto before = Row(*primary,
                      "select archived_count, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
                      " from pg_stat_archiver");
    auto src = Run(source, t);
    auto arch = Run(archiver, t);
    auto repl = Run(replication, t);
    auto sl = Run(slots, t);
    auto sb = Run(standbys, t);
    auto psr = Row(*primary,
                   "select state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),"
                   " coalesce(extract(epoch from replay_lag), 0),"
                   " pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)"
                   " from pg_stat_replication where application_name = 's1'");
    auto slot = Row(*primary,
                    "select active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), wal_status"
                    " from pg_replication_slots where slot_name = 's1'");
    auto after = Row(*primary,
                     "select archived_count, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'),"
                     " extract(epoch from last_archived_time) from pg_stat_archiver");
    for (const auto* f : {&src, &arch, &repl, &sl, &sb}) CheckWellFormed(*f);
    REQUIRE(psr.size() == 5);
    REQUIRE(slot.size() == 3);
    // WAL written between the two readings bounds every byte comparison.
    double moved = std::stod(after[1]) - std::stod(before[1]) + 64 * 1024;

    CHECK(FindValue(src, "restorewatch_source_up") == 1);
    CHECK(FindValue(src, "restorewatch_pg_in_recovery", {{"server", "source"}}) == 0);

    auto archived = FindValue(arch, "restorewatch_archiver_archived_total");
    REQUIRE(archived);
    CHECK(*archived >= std::stod(before[0]));
    CHECK(*archived <= std::stod(after[0]));
    CHECK(FindFamily(arch, "restorewatch_archiver_archived_total")->type == MetricType::kCounter);
    CHECK(FindValue(arch, "restorewatch_archiver_failed_total") == 0);
    CHECK(FindValue(arch, "restorewatch_archiver_last_archived_timestamp_seconds").value_or(0) ==
          Approx(std::stod(after[2])).margin(60));
    CHECK_FALSE(FindFamily(arch, "restorewatch_archiver_last_failed_timestamp_seconds"));
    CHECK(FindValue(arch, "restorewatch_archiver_ready_segments"));  // pg_monitor may count them
    auto lsn = FindValue(arch, "restorewatch_wal_current_lsn_bytes");
    REQUIRE(lsn);
    CHECK(*lsn >= std::stod(before[1]));
    CHECK(*lsn <= std::stod(after[1]));

    CHECK(FindValue(repl, "restorewatch_replication_streaming_replicas") == 1);
    CHECK(FindValue(repl, "restorewatch_replica_state", With(kS1, "state", psr[0])) == 1);
    CHECK(FindValue(repl, "restorewatch_replica_sync_state", With(kS1, "sync_state", psr[1])) == 1);
    CHECK(FindValue(repl, "restorewatch_replica_lag_bytes", With(kS1, "kind", "replay"))
              .value_or(-1) == Approx(std::stod(psr[2])).margin(moved));
    CHECK(
        FindValue(repl, "restorewatch_replica_lag_bytes", With(kS1, "kind", "sent")).value_or(-1) ==
        Approx(std::stod(psr[4])).margin(moved));
    for (const char* kind : {"write", "flush", "replay"})
      CHECK(FindValue(repl, "restorewatch_replica_lag_seconds", With(kS1, "kind", kind)));
    CHECK(FindValue(repl, "restorewatch_replica_lag_seconds", With(kS1, "kind", "replay"))
              .value_or(-1) == Approx(std::stod(psr[3])).margin(1.0));

    Labels s1slot{{"slot_name", "s1"}, {"slot_type", "physical"}};
    CHECK(FindValue(sl, "restorewatch_replication_slot_active", s1slot) == (slot[0] == "t"));
    CHECK(FindValue(sl, "restorewatch_replication_slot_retained_wal_bytes", s1slot).value_or(-1) ==
          Approx(std::stod(slot[1])).margin(moved));
    CHECK(FindValue(sl, "restorewatch_replication_slot_wal_status",
                    {{"slot_name", "s1"}, {"wal_status", slot[2]}}) == 1);
    CHECK_FALSE(FindFamily(sl, "restorewatch_replication_slot_safe_wal_size_bytes"));

    Labels s1{{"server", "s1"}};
    CHECK(FindValue(sb, "restorewatch_standby_up", s1) == 1);
    CHECK(FindValue(sb, "restorewatch_pg_in_recovery", s1) == 1);
    CHECK(FindValue(sb, "restorewatch_standby_wal_receiver_up", s1) == 1);
    CHECK(FindValue(sb, "restorewatch_standby_replay_paused", s1) == 0);
    auto received = FindValue(sb, "restorewatch_standby_received_lsn_bytes", s1);
    auto replayed = FindValue(sb, "restorewatch_standby_replayed_lsn_bytes", s1);
    REQUIRE(received);
    REQUIRE(replayed);
    CHECK(*replayed == Approx(*lsn).margin(moved));
    // Caught up on an idle primary: no delay, however old the last commit is.
    if (*received == *replayed)
      CHECK(FindValue(sb, "restorewatch_standby_replay_delay_seconds", s1) == 0);
    Labels p{{"server", "primary-as-standby"}};
    CHECK(FindValue(sb, "restorewatch_standby_up", p) == 1);
    CHECK(FindValue(sb, "restorewatch_pg_in_recovery", p) == 0);
    CHECK(FindValue(sb, "restorewatch_standby_wal_receiver_up", p) == 0);
    CHECK_FALSE(FindValue(sb, "restorewatch_standby_replay_delay_seconds", p));
  }

  {
    INFO("step: a role without pg_monitor");
    TargetConfig plain = t;
    plain.source = ConnSpec(primary->ConnInfo() + " user=rw_plain");
    plain.standbys = {{standby->ConnInfo() + " user=rw_plain", ""}};
    plain.standby_names = {"s1"};
    ArchiverCollector a;
    auto arch = Run(a, plain);
    CHECK(FindValue(arch, "restorewatch_archiver_archived_total"));
    CHECK_FALSE(FindFamily(arch, "restorewatch_archiver_ready_segments"));
    CHECK_THROWS_WITH(Run(replication, plain), Catch::Contains("hides"));
    try {
      Run(replication, plain);
    } catch (const Error& e) {
      CHECK(e.hint().find("pg_monitor") != std::string::npos);
    }
    StandbyCollector sc;
    CHECK_THROWS_WITH(Run(sc, plain), Catch::Contains("pg_stat_wal_receiver hides"));
    // Public views are enough for these.
    CHECK(FindValue(Run(source, plain), "restorewatch_source_up") == 1);
    TableActivityCollector activity;
    CHECK(FindValue(Run(activity, plain), "restorewatch_table_activity_tables") == 4);  // pgbench
    CHECK(FindValue(Run(slots, plain), "restorewatch_replication_slot_active",
                    {{"slot_name", "s1"}}) == 1);
  }

  {
    INFO("step: pausing replay makes lag rise, resuming makes it fall");
    standby->Psql("select pg_wal_replay_pause()");
    ProcessResult load;
    std::thread writer([&] {
      load = test::RunPgTool("pgbench", PgbenchArgs(*primary, {"-T", "4", "-c", "2"}), 30s);
    });
    double bytes = 0, seconds = 0, delay = 0, paused = 0;
    double first_seconds = -1;
    bool rose = WaitUntil(
        [&] {
          auto repl = Run(replication, t);
          auto sb = Run(standbys, t);
          bytes = FindValue(repl, "restorewatch_replica_lag_bytes", With(kS1, "kind", "replay"))
                      .value_or(0);
          seconds = FindValue(repl, "restorewatch_replica_lag_seconds", With(kS1, "kind", "replay"))
                        .value_or(0);
          if (first_seconds < 0) first_seconds = seconds;
          delay = FindValue(sb, "restorewatch_standby_replay_delay_seconds", {{"server", "s1"}})
                      .value_or(0);
          paused =
              FindValue(sb, "restorewatch_standby_replay_paused", {{"server", "s1"}}).value_or(0);
          return bytes > 256 * 1024 && seconds > 1.5 && delay > 1.5 && paused == 1;
        },
        15s, 500ms);
    writer.join();
    CHECK(load.ok());
    INFO("replay lag " << bytes << " bytes, " << seconds << " s; standby delay " << delay
                       << " s; first lag seconds " << first_seconds);
    CHECK(rose);
    CHECK(seconds > first_seconds);

    standby->Psql("select pg_wal_replay_resume()");
    bool fell = WaitUntil(
        [&] {
          auto repl = Run(replication, t);
          auto sb = Run(standbys, t);
          bytes = FindValue(repl, "restorewatch_replica_lag_bytes", With(kS1, "kind", "replay"))
                      .value_or(-1);
          seconds = FindValue(repl, "restorewatch_replica_lag_seconds", With(kS1, "kind", "replay"))
                        .value_or(-1);
          delay = FindValue(sb, "restorewatch_standby_replay_delay_seconds", {{"server", "s1"}})
                      .value_or(-1);
          paused =
              FindValue(sb, "restorewatch_standby_replay_paused", {{"server", "s1"}}).value_or(-1);
          return bytes == 0 && seconds >= 0 && seconds < 0.5 && delay == 0 && paused == 0;
        },
        20s, 500ms);
    INFO("after resume: " << bytes << " bytes, " << seconds << " s, delay " << delay);
    CHECK(fell);
  }

  {
    INFO("step: a stopped standby takes its series with it, its slot retains WAL");
    standby->Stop();
    std::vector<MetricFamilyData> repl, sl;
    bool gone = WaitUntil(
        [&] {
          repl = Run(replication, t);
          sl = Run(slots, t);
          return !FindValue(repl, "restorewatch_replica_state", kS1) &&
                 FindValue(sl, "restorewatch_replication_slot_active", {{"slot_name", "s1"}}) == 0;
        },
        15s);
    CHECK(gone);
    CheckWellFormed(repl);
    CHECK(FindValue(repl, "restorewatch_replication_streaming_replicas") == 0);
    CHECK_FALSE(FindFamily(repl, "restorewatch_replica_lag_bytes"));
    double retained0 =
        FindValue(sl, "restorewatch_replication_slot_retained_wal_bytes", {{"slot_name", "s1"}})
            .value_or(-1);
    REQUIRE(retained0 >= 0);
    primary->Psql("create table more as select g from generate_series(1, 10000) g");
    primary->Psql("select pg_switch_wal()");
    sl = Run(slots, t);
    CHECK(FindValue(sl, "restorewatch_replication_slot_retained_wal_bytes", {{"slot_name", "s1"}})
              .value_or(-1) > retained0);

    auto start = Clock::now();
    auto sb = Run(standbys, t);  // never throws for one standby down
    CHECK(SecondsSince(start) < 5);
    CheckWellFormed(sb);
    CHECK(FindValue(sb, "restorewatch_standby_up", {{"server", "s1"}}) == 0);
    CHECK_FALSE(FindValue(sb, "restorewatch_pg_in_recovery", {{"server", "s1"}}));
    CHECK_FALSE(FindValue(sb, "restorewatch_standby_wal_receiver_up", {{"server", "s1"}}));
    CHECK(FindValue(sb, "restorewatch_standby_up", {{"server", "primary-as-standby"}}) == 1);
  }

  {
    INFO("step: a failing archive_command moves the failure counter and time");
    auto arch = Run(archiver, t);
    double failed0 = FindValue(arch, "restorewatch_archiver_failed_total").value_or(-1);
    REQUIRE(failed0 == 0);
    double since = NowUnix() - 1;
    primary->AppendConf({{"archive_command", "'false'"}});
    primary->Psql("select pg_reload_conf()");
    primary->Psql("create table failing as select g from generate_series(1, 1000) g");
    primary->Psql("select pg_switch_wal()");
    bool moved = WaitUntil(
        [&] {
          arch = Run(archiver, t);
          return FindValue(arch, "restorewatch_archiver_failed_total").value_or(0) > failed0 &&
                 FindValue(arch, "restorewatch_archiver_last_failed_timestamp_seconds")
                         .value_or(0) >= since;
        },
        15s);
    CHECK(moved);
    CheckWellFormed(arch);
    CHECK(FindValue(arch, "restorewatch_archiver_ready_segments").value_or(0) >= 1);
    // Archiving works again, so the shutdown below does not wait on the failing command.
    primary->AppendConf({{"archive_command", archive_command}});
    primary->Psql("select pg_reload_conf()");
  }

  {
    INFO("step: a hung primary bounds every collector by connect_timeout");
    Freeze frozen(PostmasterPid(*primary));
    auto start = Clock::now();
    auto src = Run(source, t);
    double took = SecondsSince(start);
    CHECK(FindValue(src, "restorewatch_source_up") == 0);
    CHECK(took < 4.5);
    start = Clock::now();
    CHECK_THROWS_AS(Run(archiver, t), Error);
    CHECK(SecondsSince(start) < 4.5);
  }

  {
    INFO("step: a stopped primary: source_up 0 at once, the others throw");
    primary->Stop();
    auto start = Clock::now();
    auto src = Run(source, t);
    CHECK(SecondsSince(start) < 2.5);
    CheckWellFormed(src);
    CHECK(FindValue(src, "restorewatch_source_up") == 0);
    CHECK_FALSE(FindFamily(src, "restorewatch_pg_in_recovery"));
    TableActivityCollector activity;
    for (Collector* c :
         std::initializer_list<Collector*>{&archiver, &replication, &slots, &activity}) {
      INFO(c->name());
      start = Clock::now();
      try {
        Run(*c, t);
        FAIL("collected from a stopped server");
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::kConnect);
      }
      CHECK(SecondsSince(start) < 2.5);
    }
    auto sb = Run(standbys, t);
    CHECK(FindValue(sb, "restorewatch_standby_up", {{"server", "s1"}}) == 0);
    CHECK(FindValue(sb, "restorewatch_standby_up", {{"server", "primary-as-standby"}}) == 0);
  }
  INFO("whole test took " << SecondsSince(t0) << " s");
}

TEST_CASE("table_activity samples pg_stat_user_tables into the activity store",
          "[integration][collectors]") {
  test::TestDir dir("rwcoll-");
  auto primary = test::StartCluster(dir);
  // pg_stat_force_next_flush(): the writing session publishes its counters before it answers.
  primary->Psql(
      "create table t(i int primary key, v text);"
      " create schema \"odd.schema\"; create table \"odd.schema\".x(i int);"
      " insert into t select g, 'x' from generate_series(1, 1000) g;"
      " select pg_stat_force_next_flush()");
  TargetConfig target;
  target.name = "act";
  target.source = ConnSpec(primary->ConnInfo());
  target.connect_timeout = 2s;
  ActivityStore store(dir / "state");
  TableActivityCollector collector;

  double before = NowUnix();
  auto first = Run(collector, target, &store);
  CheckWellFormed(first);
  CHECK(FindValue(first, "restorewatch_table_activity_tables") == 2);
  CHECK(FindValue(first, "restorewatch_table_activity_last_sample_timestamp_seconds").value_or(0) >=
        before);
  auto s1 = store.Latest();
  REQUIRE(s1);
  REQUIRE(s1->tables.count("public.t"));
  CHECK(s1->tables.count("\"odd.schema\".x"));
  CHECK(s1->tables.at("public.t").n_tup_ins == 1000);
  CHECK(s1->tables.at("public.t").n_live_tup == 1000);

  primary->Psql(
      "update t set v = 'y' where i <= 10; delete from t where i > 995;"
      " select pg_stat_force_next_flush()");
  auto second = Run(collector, target, &store);
  CHECK(FindValue(second, "restorewatch_table_activity_tables") == 2);
  auto s2 = store.Latest();
  REQUIRE(s2);
  CHECK(s2->ts >= s1->ts);
  CHECK(store.SampleCount() == 2);
  const auto& c = s2->tables.at("public.t");
  CHECK(c.n_tup_ins == 1000);
  CHECK(c.n_tup_upd == 10);
  CHECK(c.n_tup_del == 5);
  auto churn = ActivityStore::Churn(*s1, *s2);
  REQUIRE(churn.count("public.t"));
  REQUIRE(churn.at("public.t"));
  CHECK(churn.at("public.t")->inserted == 0);
  CHECK(churn.at("public.t")->updated == 10);
  CHECK(churn.at("public.t")->deleted == 5);

  // Without a store it still reports, and writes nothing.
  auto third = Run(collector, target, nullptr);
  CHECK(FindValue(third, "restorewatch_table_activity_tables") == 2);
  CHECK(store.SampleCount() == 2);
}
