// dashboards/: the Prometheus alert rules pass `promtool check rules`, their unit tests pass
// `promtool test rules`, the Grafana dashboard is valid JSON of the expected shape, and both use
// only metric names the project documents. Without promtool or python3 the tool-based parts WARN
// and skip (`.ci/setup` installs prometheus, which brings promtool).
#include <dirent.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "agent/pg/process.h"

namespace {

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The families documented in docs/METRICS.md: the first column of its tables
// ("| `restorewatch_x` | type | labels | meaning |").
std::set<std::string> DocumentedFamilies(const std::string& metrics_md) {
  static const std::regex kRow(R"(\n\|\s*`(restorewatch_[a-z0-9_]+)`\s*\|)");
  std::set<std::string> out;
  for (std::sregex_iterator it(metrics_md.begin(), metrics_md.end(), kRow), end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

// The names listed in docs/METRICS.md under "### Not emitted yet" (up to the next heading).
std::set<std::string> NotEmittedYet(const std::string& metrics_md) {
  std::set<std::string> out;
  const auto at = metrics_md.find("\n### Not emitted yet\n");
  if (at == std::string::npos) return out;
  const auto stop = metrics_md.find("\n#", at + 1);
  const std::string part = metrics_md.substr(at, stop == std::string::npos ? stop : stop - at);
  static const std::regex kItem(R"(\n- `(restorewatch_[a-z0-9_]+)`)");
  for (std::sregex_iterator it(part.begin(), part.end(), kItem), end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

// Family names the code defines: the name argument of Family(...) / Gauge(...) and the first
// member of a MetricFamilyData brace initialiser, in agent/, checks/ and exporters/.
std::set<std::string> FamiliesInSource() {
  static const std::regex kDef(
      R"re((?:\bFamily|\bGauge)\(\s*"(restorewatch_[a-z0-9_]+)"|MetricFamilyData\s+\w+\s*\{\s*"(restorewatch_[a-z0-9_]+)")re");
  std::set<std::string> out;
  for (const char* dir : {"agent", "agent/pg", "agent/runtime", "agent/sources", "agent/sandboxes",
                          "checks", "checks/drill", "checks/live", "exporters"}) {
    DIR* d = opendir(SourcePath(dir).c_str());
    REQUIRE(d != nullptr);
    std::vector<std::string> files;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".cpp") == 0)
        files.push_back(std::string(dir) + "/" + n);
    }
    closedir(d);
    for (const auto& f : files) {
      const std::string text = ReadFile(SourcePath(f));
      for (std::sregex_iterator it(text.begin(), text.end(), kDef), end; it != end; ++it)
        out.insert((*it)[1].matched ? (*it)[1].str() : (*it)[2].str());
    }
  }
  return out;
}

std::set<std::string> MetricNamesIn(const std::string& text) {
  static const std::regex kName("restorewatch_[a-z0-9_]+");
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

TEST_CASE("the dashboards are valid Grafana dashboards", "[unit][dashboards]") {
  // The drill-down (one target, five rows) and the overview (one row per target, two rows).
  const auto [file, rows] = GENERATE(table<const char*, int>(
      {{"dashboards/restorewatch.json", 5}, {"dashboards/overview.json", 2}}));
  INFO(file);
  const std::string path = SourcePath(file);
  auto python = rw::FindProgram("python3");
  if (!python) {
    WARN("python3 not found: skipping the dashboard JSON validation");
  } else {
    auto r = Run({*python, "-m", "json.tool", path});
    INFO(r.err);
    REQUIRE(r.ok());
    // Shape: the datasource and target variables, every query through ${DS_PROMETHEUS}, filtered
    // by $target where the metric has a target label, unique panel ids, panels within 24 columns,
    // only current panel types, a stable uid.
    static const char* kShape = R"PY(
import json, sys
d = json.load(open(sys.argv[1]))
assert 39 <= d["schemaVersion"] <= 41, d["schemaVersion"]
assert d["uid"] in ("restorewatch", "restorewatch-overview"), d["uid"]
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
    assert p["type"] in ("timeseries", "stat", "table", "state-timeline", "bargauge"), p["type"]
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    assert p["targets"], p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert t["expr"].strip(), p["title"]
assert rows == int(sys.argv[2]), rows
print(len(ids), "panels")
)PY";
    auto s = Run({*python, "-c", kShape, path, std::to_string(rows)});
    INFO(s.out << s.err);
    CHECK(s.ok());
  }
}

TEST_CASE("every dashboard query is valid PromQL", "[unit][dashboards]") {
  auto promtool = rw::FindProgram("promtool");
  auto python = rw::FindProgram("python3");
  if (!promtool || !python) {
    WARN("promtool or python3 not found: skipping the dashboard query check");
    return;
  }
  // Each panel query (and annotation query) becomes a recording rule, with Grafana's variables
  // replaced as Grafana would, so `promtool check rules` parses every one of them.
  static const char* kToRules = R"PY(
import json, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
exprs += [a["expr"] for a in d["annotations"]["list"] if "expr" in a]
out = ["groups:", "  - name: dashboard", "    rules:"]
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "1m").replace("$target", ".*")
    out.append("      - record: dashboard:query_%d" % i)
    out.append("        expr: " + json.dumps(e))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print(len(exprs))
)PY";
  char tmpl[] = "/tmp/rw-dashboard-rules-XXXXXX";
  const int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  const std::string rules = tmpl;
  const auto [file, min_queries] = GENERATE(table<const char*, int>(
      {{"dashboards/restorewatch.json", 60}, {"dashboards/overview.json", 12}}));
  INFO(file);
  auto conv = Run({*python, "-c", kToRules, SourcePath(file), rules});
  INFO(conv.out << conv.err);
  REQUIRE(conv.ok());
  CHECK(std::stoi(conv.out) >= min_queries);
  auto r = Run({*promtool, "check", "rules", rules});
  unlink(rules.c_str());
  INFO(r.out << r.err);
  CHECK(r.ok());
  CHECK(r.out.find("SUCCESS: " + std::to_string(std::stoi(conv.out)) + " rules found") !=
        std::string::npos);
}

TEST_CASE("alerts and dashboard use only documented metric names", "[unit][dashboards]") {
  const auto known = DocumentedFamilies(ReadFile(SourcePath("docs/METRICS.md")));
  REQUIRE(known.size() >= 50);
  std::set<std::string> used;
  for (const char* rel : {"dashboards/alerts.yml", "dashboards/alerts_test.yml",
                          "dashboards/restorewatch.json", "dashboards/overview.json"}) {
    const auto names = MetricNamesIn(ReadFile(SourcePath(rel)));
    CHECK(names.size() >= 10);
    for (const auto& n : names) {
      INFO(rel << " uses " << n << ", which docs/METRICS.md does not document");
      CHECK(known.count(n) == 1);
    }
    if (std::string(rel) != "dashboards/alerts_test.yml") used.insert(names.begin(), names.end());
  }
  // The core of the contract is watched by the rules or the dashboard.
  for (const char* n :
       {"restorewatch_drill_success", "restorewatch_drill_last_success_timestamp_seconds",
        "restorewatch_backup_last_completion_timestamp_seconds",
        "restorewatch_archiver_ready_segments", "restorewatch_replica_lag_bytes",
        "restorewatch_replication_slot_wal_status", "restorewatch_collector_success",
        "restorewatch_standby_replay_paused", "restorewatch_drill_rows_verified",
        "restorewatch_drill_rows_unverified", "restorewatch_drill_tables_unverified"}) {
    INFO(n);
    CHECK(used.count(n) == 1);
  }
}

TEST_CASE("docs/METRICS.md documents exactly the families the code defines", "[unit][dashboards]") {
  const std::string md = ReadFile(SourcePath("docs/METRICS.md"));
  const auto documented = DocumentedFamilies(md);
  const auto not_yet = NotEmittedYet(md);
  const auto defined = FamiliesInSource();
  REQUIRE(defined.size() >= 50);
  REQUIRE(md.find("\n### Not emitted yet\n") != std::string::npos);
  for (const auto& n : defined) {
    INFO(n << " is defined in the code but not documented in docs/METRICS.md");
    CHECK(documented.count(n) == 1);
    INFO(n << " is defined in the code but listed as not emitted yet");
    CHECK(not_yet.count(n) == 0);
  }
  for (const auto& n : documented) {
    INFO(n << " is documented, but the code defines no such family and it is not listed under "
              "\"Not emitted yet\"");
    CHECK((defined.count(n) == 1 || not_yet.count(n) == 1));
  }
}
