// Collectors without a database: the table, the row-to-metric conversions, naming rules, and the
// behaviour against servers that are not there (connection refused on loopback).
#include <catch2/catch.hpp>
#include <chrono>
#include <regex>
#include <set>

#include "agent/errors.h"
#include "agent/pg/pg_cluster.h"
#include "checks/live/archiver_collector.h"
#include "checks/live/backup_catalogue_collector.h"
#include "checks/live/collector_util.h"
#include "checks/registry.h"
#include "checks/live/replication_collector.h"
#include "checks/live/slots_collector.h"
#include "checks/live/source_collector.h"
#include "checks/live/standby_collector.h"
#include "checks/live/table_activity_collector.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

std::vector<MetricFamilyData> Run(Collector& c, const TargetConfig& t,
                                  BackupSource* backups = nullptr) {
  CancelToken cancel;
  CollectContext ctx{t, cancel, nullptr, backups, {}};
  return c.Collect(ctx);
}

// The metric contract's conventions, checked on every family a collector can produce.
void CheckConventions(const std::vector<MetricFamilyData>& families) {
  static const std::regex kName("^restorewatch_[a-z0-9_]+$");
  std::set<std::string> names;
  for (const auto& f : families) {
    INFO(f.name);
    CHECK(std::regex_match(f.name, kName));
    CHECK(names.insert(f.name).second);
    CHECK(!f.help.empty());
    CHECK(!f.samples.empty());
    bool total = f.name.size() > 6 && f.name.compare(f.name.size() - 6, 6, "_total") == 0;
    CHECK(total == (f.type == MetricType::kCounter));
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

std::vector<std::string> LabelNames(const MetricFamilyData& f) {
  std::vector<std::string> out;
  for (const auto& [k, v] : f.samples.at(0).labels) out.push_back(k);
  return out;
}

// A loopback address nothing listens on: connections are refused at once.
TargetConfig Unreachable() {
  TargetConfig t;
  t.name = "gone";
  std::string ci = "host=127.0.0.1 port=" + std::to_string(PickFreePort()) + " user=x dbname=x";
  t.source = ConnSpec(ci);
  t.standbys = {{ci, ""}, {ci, ""}};
  t.standby_names = {"a", ""};
  t.connect_timeout = 2s;
  return t;
}

class FakeSource : public BackupSource {
 public:
  BackupCatalogue catalogue;
  std::string type() const override { return "fake"; }
  BackupCatalogue Catalogue(CancelToken&) override { return catalogue; }
  BackupInfo Latest(CancelToken&) override { throw Error(ErrorKind::kBadInput, "not here"); }
  RestoreOutcome Restore(const BackupInfo&, Sandbox&, const RestoreOptions&,
                         CancelToken&) override {
    throw Error(ErrorKind::kBadInput, "not here");
  }
};

}  // namespace

TEST_CASE("the collector table builds what applies to a target", "[unit][collectors]") {
  TargetConfig t;
  t.monitor_interval = 15s;
  t.backup.catalogue_interval = 5min;
  auto names = [](const std::vector<std::unique_ptr<Collector>>& cs) {
    std::vector<std::string> out;
    for (const auto& c : cs) out.push_back(c->name());
    return out;
  };
  auto without = MakeCollectors(t);
  CHECK(names(without) == std::vector<std::string>{"source", "archiver", "replication", "slots",
                                                   "table_activity", "backup_catalogue"});
  t.standbys = {{"host=h", ""}};
  t.standby_names = {"h"};
  auto with = MakeCollectors(t);
  CHECK(names(with) == std::vector<std::string>{"source", "archiver", "replication", "slots",
                                                "standby", "table_activity", "backup_catalogue"});
  for (const auto& c : with) {
    INFO(c->name());
    CHECK(c->interval(t) == (c->name() == "backup_catalogue" ? Duration(5min) : Duration(15s)));
  }
}

TEST_CASE("archiver: counters, and never-happened is absence", "[unit][collectors]") {
  ArchiverReading r;
  r.archived_count = 12;
  r.failed_count = 0;
  r.current_lsn_bytes = 123456789;
  auto fams = ArchiverFamilies(r);
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_archiver_archived_total") == 12);
  CHECK(FindFamily(fams, "restorewatch_archiver_archived_total")->type == MetricType::kCounter);
  CHECK(FindValue(fams, "restorewatch_archiver_failed_total") == 0);
  CHECK(FindFamily(fams, "restorewatch_archiver_failed_total")->type == MetricType::kCounter);
  CHECK(FindValue(fams, "restorewatch_wal_current_lsn_bytes") == 123456789);
  CHECK_FALSE(FindFamily(fams, "restorewatch_archiver_last_archived_timestamp_seconds"));
  CHECK_FALSE(FindFamily(fams, "restorewatch_archiver_last_failed_timestamp_seconds"));
  CHECK_FALSE(FindFamily(fams, "restorewatch_archiver_ready_segments"));  // not permitted

  r.last_archived_time = 1700000000.5;
  r.last_failed_time = 1700000100;
  r.ready_segments = 3;
  fams = ArchiverFamilies(r);
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_archiver_last_archived_timestamp_seconds") == 1700000000.5);
  CHECK(FindValue(fams, "restorewatch_archiver_last_failed_timestamp_seconds") == 1700000100);
  CHECK(FindValue(fams, "restorewatch_archiver_ready_segments") == 3);
}

TEST_CASE("replication: labels, idle lag is 0, duplicates merge", "[unit][collectors]") {
  SECTION("no standbys: only the streaming count") {
    auto fams = ReplicationFamilies({});
    CheckConventions(fams);
    REQUIRE(fams.size() == 1);
    CHECK(FindValue(fams, "restorewatch_replication_streaming_replicas") == 0);
  }
  SECTION("one caught-up idle standby on a unix socket") {
    ReplicaRow r;
    r.application_name = "s1";
    r.client_addr = "";
    r.state = "streaming";
    r.sync_state = "async";
    r.sent_lag_bytes = r.write_lag_bytes = r.flush_lag_bytes = r.replay_lag_bytes = 0;
    auto fams = ReplicationFamilies({r});
    CheckConventions(fams);
    Labels base{{"application_name", "s1"}, {"client_addr", ""}};
    CHECK(FindValue(fams, "restorewatch_replication_streaming_replicas") == 1);
    for (const char* kind : {"write", "flush", "replay"}) {
      Labels l = base;
      l.emplace_back("kind", kind);
      CHECK(FindValue(fams, "restorewatch_replica_lag_seconds", l) == 0);  // NULL = idle
    }
    CHECK(FindFamily(fams, "restorewatch_replica_lag_bytes")->samples.size() == 4);
    CHECK(LabelNames(*FindFamily(fams, "restorewatch_replica_lag_bytes")) ==
          std::vector<std::string>{"application_name", "client_addr", "kind"});
    CHECK(LabelNames(*FindFamily(fams, "restorewatch_replica_state")) ==
          std::vector<std::string>{"application_name", "client_addr", "state"});
    CHECK(LabelNames(*FindFamily(fams, "restorewatch_replica_sync_state")) ==
          std::vector<std::string>{"application_name", "client_addr", "sync_state"});
    CHECK(FindValue(fams, "restorewatch_replica_state", {{"state", "streaming"}}) == 1);
    CHECK(FindValue(fams, "restorewatch_replica_sync_state", {{"sync_state", "async"}}) == 1);
  }
  SECTION("two walsenders with the same name and address keep the worst lag") {
    ReplicaRow a;
    a.application_name = "pg_basebackup";
    a.client_addr = "10.0.0.5";
    a.state = "backup";
    a.sync_state = "async";
    ReplicaRow b = a;
    b.state = "streaming";
    b.replay_lag_bytes = 4096;
    b.replay_lag_seconds = 2.5;
    a.replay_lag_bytes = 1024;
    auto fams = ReplicationFamilies({a, b});
    CheckConventions(fams);
    CHECK(FindValue(fams, "restorewatch_replication_streaming_replicas") == 1);
    CHECK(FindValue(fams, "restorewatch_replica_lag_bytes", {{"kind", "replay"}}) == 4096);
    CHECK_FALSE(FindValue(fams, "restorewatch_replica_lag_bytes", {{"kind", "sent"}}));
    CHECK(FindValue(fams, "restorewatch_replica_lag_seconds", {{"kind", "replay"}}) == 2.5);
    CHECK(FindValue(fams, "restorewatch_replica_state", {{"state", "backup"}}) == 1);
    CHECK(FindValue(fams, "restorewatch_replica_state", {{"state", "streaming"}}) == 1);
    CHECK(FindFamily(fams, "restorewatch_replica_sync_state")->samples.size() == 1);
  }
}

TEST_CASE("slots: optional columns and wal_status labels", "[unit][collectors]") {
  SlotRow s;
  s.slot_name = "s1";
  s.slot_type = "physical";
  s.active = false;
  s.retained_wal_bytes = 16 * 1024 * 1024;
  s.wal_status = "reserved";
  SlotRow lost;
  lost.slot_name = "old";
  lost.slot_type = "logical";
  lost.wal_status = "lost";
  auto fams = SlotFamilies({s, lost});
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_replication_slot_active",
                  {{"slot_name", "s1"}, {"slot_type", "physical"}}) == 0);
  CHECK(FindValue(fams, "restorewatch_replication_slot_retained_wal_bytes",
                  {{"slot_name", "s1"}}) == 16 * 1024 * 1024);
  CHECK_FALSE(
      FindValue(fams, "restorewatch_replication_slot_retained_wal_bytes", {{"slot_name", "old"}}));
  CHECK_FALSE(FindFamily(fams, "restorewatch_replication_slot_safe_wal_size_bytes"));
  CHECK(LabelNames(*FindFamily(fams, "restorewatch_replication_slot_wal_status")) ==
        std::vector<std::string>{"slot_name", "wal_status"});
  CHECK(FindValue(fams, "restorewatch_replication_slot_wal_status",
                  {{"slot_name", "old"}, {"wal_status", "lost"}}) == 1);
  s.safe_wal_size_bytes = 1e9;
  fams = SlotFamilies({s});
  CHECK(FindValue(fams, "restorewatch_replication_slot_safe_wal_size_bytes") == 1e9);
  CHECK(SlotFamilies({}).empty());
}

TEST_CASE("standby: replay delay is 0 when everything received is replayed", "[unit][collectors]") {
  StandbyReading r;
  r.in_recovery = true;
  r.received_lsn_bytes = 1000;
  r.replayed_lsn_bytes = 1000;
  r.since_last_replayed_commit_seconds = 3600;  // idle primary: the last commit is old
  CHECK(ReplayDelaySeconds(r) == 0);
  r.replayed_lsn_bytes = 1200;  // receive position reset after a restart
  CHECK(ReplayDelaySeconds(r) == 0);
  r.replayed_lsn_bytes = 800;
  CHECK(ReplayDelaySeconds(r) == 3600);
  r.since_last_replayed_commit_seconds = -2;  // the primary's clock is ahead
  CHECK(ReplayDelaySeconds(r) == 0);
  r.since_last_replayed_commit_seconds.reset();  // nothing replayed yet
  CHECK_FALSE(ReplayDelaySeconds(r));
  r.received_lsn_bytes.reset();  // archive recovery only: no receive position
  r.since_last_replayed_commit_seconds = 5;
  CHECK(ReplayDelaySeconds(r) == 5);
  r.in_recovery = false;
  CHECK_FALSE(ReplayDelaySeconds(r));
}

TEST_CASE("standby: a down standby keeps only standby_up 0", "[unit][collectors]") {
  StandbyReading up;
  up.in_recovery = true;
  up.receiver_status = "streaming";
  up.received_lsn_bytes = 10;
  up.replayed_lsn_bytes = 5;
  up.since_last_replayed_commit_seconds = 7;
  up.replay_paused = true;
  auto fams = StandbyFamilies({{"a", up}, {"b", std::nullopt}});
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_standby_up", {{"server", "a"}}) == 1);
  CHECK(FindValue(fams, "restorewatch_standby_up", {{"server", "b"}}) == 0);
  CHECK(FindValue(fams, "restorewatch_pg_in_recovery", {{"server", "a"}}) == 1);
  CHECK(FindValue(fams, "restorewatch_standby_wal_receiver_up", {{"server", "a"}}) == 1);
  CHECK(FindValue(fams, "restorewatch_standby_replay_delay_seconds", {{"server", "a"}}) == 7);
  CHECK(FindValue(fams, "restorewatch_standby_replay_paused", {{"server", "a"}}) == 1);
  for (const auto& f : fams)
    if (f.name != "restorewatch_standby_up")
      CHECK_FALSE(FindValue(fams, f.name, {{"server", "b"}}));
  up.receiver_status = "waiting";
  fams = StandbyFamilies({{"a", up}});
  CHECK(FindValue(fams, "restorewatch_standby_wal_receiver_up") == 0);

  TargetConfig t;
  t.standbys = {{"", ""}, {"", ""}};
  t.standby_names = {"east", ""};
  CHECK(StandbyLabel(t, 0) == "east");
  CHECK(StandbyLabel(t, 1) == "standby1");
}

TEST_CASE("backup_catalogue: newest per kind, objective, no source", "[unit][collectors]") {
  FakeSource src;
  BackupInfo b;
  b.kind = "logical";
  b.completed_at = 1700000000;
  b.size_bytes = 4096;
  BackupInfo old = b;
  old.completed_at = 1690000000;
  src.catalogue.by_kind["logical"] = {3, b, old};
  src.catalogue.by_kind["full"] = {0, std::nullopt, std::nullopt};
  TargetConfig t;
  t.backup.max_age = 26h;
  BackupCatalogueCollector c;
  auto fams = Run(c, t, &src);
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_backups_available", {{"kind", "logical"}}) == 3);
  CHECK(FindValue(fams, "restorewatch_backups_available", {{"kind", "full"}}) == 0);
  CHECK(FindValue(fams, "restorewatch_backup_last_completion_timestamp_seconds",
                  {{"kind", "logical"}}) == 1700000000);
  CHECK_FALSE(
      FindValue(fams, "restorewatch_backup_last_completion_timestamp_seconds", {{"kind", "full"}}));
  CHECK(FindValue(fams, "restorewatch_backup_last_size_bytes", {{"kind", "logical"}}) == 4096);
  CHECK(FindValue(fams, "restorewatch_backup_max_age_seconds") == 26 * 3600);
  CHECK(FindValue(fams, "restorewatch_backup_oldest_timestamp_seconds", {{"kind", "logical"}}) ==
        1690000000);
  CHECK_FALSE(FindFamily(fams, "restorewatch_backup_min_retention_seconds"));
  t.backup.min_retention = std::chrono::hours(24 * 30);
  CHECK(FindValue(Run(c, t, &src), "restorewatch_backup_min_retention_seconds") ==
        30 * 24 * 3600);
  t.backup.max_age = Duration::zero();
  CHECK_FALSE(FindFamily(Run(c, t, &src), "restorewatch_backup_max_age_seconds"));
  CHECK(Run(c, t, nullptr).empty());
}

TEST_CASE("table_activity keys round-trip through QualifiedName", "[unit][collectors]") {
  CHECK(ActivityTableKey("public", "t") == "public.t");
  CHECK(ActivityTableKey("odd.schema", "x") == "\"odd.schema\".x");
  CHECK(ActivityTableKey("s", "a\"b") == "s.\"a\"\"b\"");
}

TEST_CASE("an unreachable source: source_up 0, other collectors throw, standbys report 0",
          "[unit][collectors]") {
  TargetConfig t = Unreachable();
  auto start = std::chrono::steady_clock::now();
  SourceCollector source;
  auto fams = Run(source, t);
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_source_up") == 0);
  CHECK_FALSE(FindFamily(fams, "restorewatch_pg_in_recovery"));

  ArchiverCollector archiver;
  ReplicationCollector replication;
  SlotsCollector slots;
  TableActivityCollector activity;
  for (Collector* c :
       std::initializer_list<Collector*>{&archiver, &replication, &slots, &activity}) {
    INFO(c->name());
    try {
      Run(*c, t);
      FAIL("collected from nothing");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kConnect);
    }
  }

  StandbyCollector standby;
  fams = Run(standby, t);
  CheckConventions(fams);
  CHECK(FindValue(fams, "restorewatch_standby_up", {{"server", "a"}}) == 0);
  CHECK(FindValue(fams, "restorewatch_standby_up", {{"server", "standby1"}}) == 0);
  CHECK(fams.size() == 1);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(took < 2.0);  // refused connections do not wait for connect_timeout

  CancelToken cancelled;
  cancelled.Cancel();
  CollectContext ctx{t, cancelled, nullptr, nullptr, {}};
  CHECK_THROWS_AS(source.Collect(ctx), Error);
}
