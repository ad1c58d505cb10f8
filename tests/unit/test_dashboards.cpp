// dashboards/: the Prometheus alert rules pass `promtool check rules`, their unit tests pass
// `promtool test rules`, the Grafana dashboard is valid JSON of the expected shape, and both use
// only metric names the project documents. Without promtool or python3 the tool-based parts WARN
// and skip (`.ci/setup` installs prometheus, which brings promtool).
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "agent/process.h"

namespace {

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The metric contract (../shared/docs/METRICS.md) ...
const std::set<std::string> kContractMetrics = {
    "restorewatch_build_info",
    "restorewatch_config_last_reload_successful",
    "restorewatch_collector_success",
    "restorewatch_collector_duration_seconds",
    "restorewatch_source_up",
    "restorewatch_backup_last_completion_timestamp_seconds",
    "restorewatch_backup_last_size_bytes",
    "restorewatch_backup_max_age_seconds",
    "restorewatch_drill_last_run_timestamp_seconds",
    "restorewatch_drill_last_success_timestamp_seconds",
    "restorewatch_drill_last_failure_timestamp_seconds",
    "restorewatch_drill_success",
    "restorewatch_drill_running",
    "restorewatch_drill_runs_total",
    "restorewatch_drill_stage_duration_seconds",
    "restorewatch_drill_rto_objective_seconds",
    "restorewatch_drill_backup_info",
    "restorewatch_drill_recovered_timestamp_seconds",
    "restorewatch_drill_restored_size_bytes",
    "restorewatch_drill_check_success",
    "restorewatch_drill_tables_compared",
    "restorewatch_drill_tables_mismatched",
    "restorewatch_drill_rows_checksummed",
    "restorewatch_archiver_archived_total",
    "restorewatch_archiver_failed_total",
    "restorewatch_archiver_last_archived_timestamp_seconds",
    "restorewatch_archiver_last_failed_timestamp_seconds",
    "restorewatch_archiver_ready_segments",
    "restorewatch_wal_archive_last_segment_timestamp_seconds",
    "restorewatch_wal_archive_gaps",
    "restorewatch_pg_in_recovery",
    "restorewatch_replication_streaming_replicas",
    "restorewatch_replica_lag_bytes",
    "restorewatch_replica_lag_seconds",
    "restorewatch_standby_replay_delay_seconds",
    "restorewatch_standby_wal_receiver_up",
    "restorewatch_replication_slot_active",
    "restorewatch_replication_slot_retained_wal_bytes",
    "restorewatch_replication_slot_safe_wal_size_bytes",
    "restorewatch_replication_slot_wal_status",
};

// ... plus the documented metrics the agent exports beyond the contract.
const std::set<std::string> kExtraMetrics = {
    // METRICS.md names it restorewatch_backup_count, which `promtool check metrics` rejects (a
    // _count suffix belongs to histograms and summaries); the agent exports this name instead.
    "restorewatch_backups_available",
    "restorewatch_wal_current_lsn_bytes",
    "restorewatch_replica_state",
    "restorewatch_replica_sync_state",
    "restorewatch_standby_replay_paused",
    "restorewatch_standby_up",
    "restorewatch_standby_received_lsn_bytes",
    "restorewatch_standby_replayed_lsn_bytes",
    "restorewatch_table_activity_tables",
    "restorewatch_table_activity_last_sample_timestamp_seconds",
    "restorewatch_drill_backup_start_timestamp_seconds",
    "restorewatch_config_last_reload_success_timestamp_seconds",
    "restorewatch_start_time_seconds",
};

std::set<std::string> MetricNamesIn(const std::string& text) {
  static const std::regex kName("restorewatch_[a-z_]+");
  std::set<std::string> names;
  for (std::sregex_iterator it(text.begin(), text.end(), kName), end; it != end; ++it)
    names.insert(it->str());
  return names;
}

std::set<std::string> Matches(const std::string& text, const std::regex& re, int group = 1) {
  std::set<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it)
    out.insert((*it)[group].str());
  return out;
}

std::size_t Count(const std::string& text, const std::regex& re) {
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

rw::ProcessResult Run(std::vector<std::string> argv) {
  rw::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = RW_SOURCE_DIR;
  spec.timeout = std::chrono::minutes(2);
  return rw::RunProcess(spec);
}

}  // namespace

TEST_CASE("alerts.yml passes promtool check rules", "[unit][dashboards]") {
  auto promtool = rw::FindProgram("promtool");
  if (!promtool) {
    WARN("promtool not found (apt-get install prometheus): skipping the rule lint");
    return;
  }
  auto r = Run({*promtool, "check", "rules", SourcePath("dashboards/alerts.yml")});
  INFO(r.out << r.err);
  CHECK(r.ok());
  CHECK(r.out.find("SUCCESS") != std::string::npos);
}

TEST_CASE("alerts_test.yml passes promtool test rules", "[unit][dashboards]") {
  auto promtool = rw::FindProgram("promtool");
  if (!promtool) {
    WARN("promtool not found (apt-get install prometheus): skipping the alert unit tests");
    return;
  }
  auto r = Run({*promtool, "test", "rules", SourcePath("dashboards/alerts_test.yml")});
  INFO(r.out << r.err);
  CHECK(r.ok());
  CHECK(r.out.find("SUCCESS") != std::string::npos);
}

TEST_CASE("every alert is labelled, annotated and unit-tested", "[unit][dashboards]") {
  const std::string rules = ReadFile(SourcePath("dashboards/alerts.yml"));
  const std::string tests = ReadFile(SourcePath("dashboards/alerts_test.yml"));
  const std::regex alert_re(R"(-\s+alert:\s*([A-Za-z0-9_]+))");
  const std::size_t alerts = Count(rules, alert_re);
  CHECK(alerts >= 20);
  CHECK(Count(rules, std::regex(R"(\n\s+severity:\s*(page|ticket)\s*\n)")) == alerts);
  CHECK(Count(rules, std::regex(R"(\n\s+severity:)")) == alerts);
  CHECK(Count(rules, std::regex(R"(\n\s+summary:)")) == alerts);
  CHECK(Count(rules, std::regex(R"(\n\s+description:)")) == alerts);
  const auto tested = Matches(tests, std::regex(R"(alertname:\s*([A-Za-z0-9_]+))"));
  for (const auto& name : Matches(rules, alert_re)) {
    INFO("alert " << name << " has no case in alerts_test.yml");
    CHECK(tested.count(name) == 1);
  }
}

TEST_CASE("restorewatch.json is a valid Grafana dashboard", "[unit][dashboards]") {
  const std::string path = SourcePath("dashboards/restorewatch.json");
  auto python = rw::FindProgram("python3");
  if (!python) {
    WARN("python3 not found: skipping the dashboard JSON validation");
  } else {
    auto r = Run({*python, "-m", "json.tool", path});
    INFO(r.err);
    REQUIRE(r.ok());
    // Shape: the datasource and target variables, every query through ${DS_PROMETHEUS}, filtered
    // by $target where the metric has a target label, unique panel ids, panels within 24 columns.
    static const char* kShape = R"PY(
import json, sys
d = json.load(open(sys.argv[1]))
assert 36 <= d["schemaVersion"] <= 40, d["schemaVersion"]
v = {x["name"]: x for x in d["templating"]["list"]}
assert v["DS_PROMETHEUS"]["type"] == "datasource" and v["DS_PROMETHEUS"]["query"] == "prometheus"
assert "label_values(restorewatch_source_up, target)" in json.dumps(v["target"]["query"])
ids, rows = set(), 0
for p in d["panels"]:
    assert p["id"] not in ids, p["id"]
    ids.add(p["id"])
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, p["title"]
    if p["type"] == "row":
        rows += 1
        continue
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    assert p["targets"], p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert t["expr"].strip(), p["title"]
assert rows == 5, rows
print(len(ids), "panels")
)PY";
    auto s = Run({*python, "-c", kShape, path});
    INFO(s.out << s.err);
    CHECK(s.ok());
  }
}

TEST_CASE("alerts and dashboard use only documented metric names", "[unit][dashboards]") {
  std::set<std::string> known = kContractMetrics;
  known.insert(kExtraMetrics.begin(), kExtraMetrics.end());
  std::set<std::string> used;
  for (const char* rel :
       {"dashboards/alerts.yml", "dashboards/alerts_test.yml", "dashboards/restorewatch.json"}) {
    const auto names = MetricNamesIn(ReadFile(SourcePath(rel)));
    CHECK(names.size() >= 10);
    for (const auto& n : names) {
      INFO(rel << " uses " << n << ", which is neither in METRICS.md nor in the documented extras");
      CHECK(known.count(n) == 1);
    }
    if (std::string(rel) != "dashboards/alerts_test.yml") used.insert(names.begin(), names.end());
  }
  // The core of the contract is watched by the rules or the dashboard.
  for (const char* n :
       {"restorewatch_drill_success", "restorewatch_drill_last_success_timestamp_seconds",
        "restorewatch_backup_last_completion_timestamp_seconds",
        "restorewatch_archiver_ready_segments", "restorewatch_replica_lag_bytes",
        "restorewatch_replication_slot_wal_status", "restorewatch_collector_success"}) {
    INFO(n);
    CHECK(used.count(n) == 1);
  }
}

TEST_CASE("the embedded contract list matches METRICS.md", "[unit][dashboards]") {
  // METRICS.md lives beside the repository (../shared/docs); where it is present, every name
  // embedded above must still be in it (a rename there must be followed here and in dashboards/).
  std::ifstream in(std::string(RW_SOURCE_DIR) + "/../shared/docs/METRICS.md");
  if (!in.good()) {
    WARN("../shared/docs/METRICS.md not found: skipping the cross-check of the embedded list");
    return;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  const auto documented = MetricNamesIn(ss.str());
  for (const auto& n : kContractMetrics) {
    INFO(n << " is no longer in METRICS.md");
    CHECK(documented.count(n) == 1);
  }
  // A name added to the contract only needs adding here once rules or the dashboard use it.
  for (const auto& n : documented)
    if (!kContractMetrics.count(n) && !kExtraMetrics.count(n))
      WARN(n << " is in METRICS.md but not in this test's list");
}
