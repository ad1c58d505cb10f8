// The metric contract (docs/METRICS.md) against a live agent: the real binary monitors a real
// PostgreSQL 15 primary (archiving WAL, one streaming standby on a slot) with a pg_dump backup,
// runs a passing drill and a failing one through the drill API, and its /metrics must match the
// document: every scraped family documented with its type and labels, every documented family
// scraped unless the document says when it is not, every name the alert rules and the dashboard
// use either scraped or listed with its condition, and the drill's coverage metrics present.
#include <crypt.h>
#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "agent/json.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/units.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/webhook_receiver.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

using test::Eventually;
using test::WriteFile;

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

// A bcrypt hash of `password` for the web config's basic_auth_users: htpasswd when installed,
// else libcrypt (the agent checks it with libcrypt too, but the hash is made independently of it).
std::string BcryptHash(const std::string& password) {
  if (FindProgram("htpasswd")) {
    ProcessSpec spec;
    spec.argv = {"htpasswd", "-nbBC", "10", "u", password};
    auto r = RunProcess(spec);
    if (r.ok() && r.out.rfind("u:", 0) == 0) {
      std::string h = r.out.substr(2);
      while (!h.empty() && (h.back() == '\n' || h.back() == '\r')) h.pop_back();
      return h;
    }
  }
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  REQUIRE(salt != nullptr);
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  REQUIRE(h != nullptr);
  return h;
}

// One HTTP request with basic auth; status 0 when nothing answered.
test::HttpReply Request(int port, const std::string& method, const std::string& path) {
  test::HttpReply r;
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(10, 0);
  cli.set_basic_auth("ops", "contract-pass");
  auto res = method == "POST" ? cli.Post(path.c_str()) : cli.Get(path.c_str());
  if (res) {
    r.status = res->status;
    r.body = res->body;
  }
  return r;
}

// What a scrape holds per family: its TYPE and the label names its samples carry.
struct ScrapedFamily {
  std::string type;
  std::set<std::string> labels;
  std::size_t samples = 0;
};

std::map<std::string, ScrapedFamily> ParseScrape(const std::string& text) {
  std::map<std::string, ScrapedFamily> out;
  static const std::regex kType(R"(^# TYPE (\S+) (\S+)$)");
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*")re");
  std::istringstream in(text);
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_match(line, m, kType)) {
      out[m[1].str()].type = m[2].str();
    } else if (!line.empty() && line[0] != '#' && std::regex_match(line, m, kSample)) {
      auto& f = out[m[1].str()];
      ++f.samples;
      const std::string labels = m[3].str();
      for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it)
        f.labels.insert((*it)[1].str());
    }
  }
  return out;
}

// A row of docs/METRICS.md's tables: "| `name` | type | label, label | meaning |".
struct DocumentedFamily {
  std::string type;
  std::set<std::string> labels;
};

std::map<std::string, DocumentedFamily> ParseContract(const std::string& md) {
  std::map<std::string, DocumentedFamily> out;
  static const std::regex kRow(
      R"(^\|\s*`((?:restorewatch|process)_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|)");
  std::istringstream in(md);
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (!std::regex_search(line, m, kRow)) continue;
    DocumentedFamily f;
    f.type = m[2].str();
    std::stringstream labels(m[3].str());
    for (std::string l; std::getline(labels, l, ',');) {
      l.erase(0, l.find_first_not_of(' '));
      l.erase(l.find_last_not_of(' ') + 1);
      if (!l.empty()) f.labels.insert(l);
    }
    out[m[1].str()] = f;
  }
  return out;
}

// The names listed in the "Not emitted yet, or emitted only when ..." section.
std::set<std::string> ConditionalNames(const std::string& md) {
  std::set<std::string> out;
  const auto at = md.find("\n## Not emitted yet, or emitted only when");
  if (at == std::string::npos) return out;
  const auto stop = md.find("\n## ", at + 1);
  const std::string part = md.substr(at, stop == std::string::npos ? stop : stop - at);
  static const std::regex kName(R"(`(restorewatch_[a-z0-9_]+)`)");
  for (std::sregex_iterator it(part.begin(), part.end(), kName), end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

std::set<std::string> NamesUsedIn(const std::string& text) {
  static const std::regex kName("restorewatch_[a-z0-9_]+");
  std::set<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), kName), end; it != end; ++it)
    out.insert(it->str());
  return out;
}

std::string Join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// A GET against Prometheus' HTTP API (query parameters form-encoded by httplib); the parsed
// body, or null with `error` set.
std::optional<json::Value> PromGet(int port, const std::string& path, const httplib::Params& params,
                                   std::string* error) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(30, 0);
  auto res = cli.Get(path.c_str(), params, httplib::Headers{});
  if (!res) {
    *error = "no answer from Prometheus";
    return std::nullopt;
  }
  json::Value v;
  if (!json::Parse(res->body, &v, error)) return std::nullopt;
  if (v.Str("status") != "success") {
    *error = v.Str("errorType") + ": " + v.Str("error");
    return std::nullopt;
  }
  return v;
}

// Every panel query (and annotation query) of a Grafana dashboard, with Grafana's variables
// replaced as Grafana would for "All" targets: "<panel title> [<refId>]" -> expr.
std::vector<std::pair<std::string, std::string>> DashboardQueries(const std::string& path) {
  json::Value d;
  std::string err;
  REQUIRE(json::Parse(test::ReadFile(path), &d, &err));
  std::vector<std::pair<std::string, std::string>> out;
  auto fix = [](std::string e) {
    for (auto [from, to] :
         {std::pair<std::string, std::string>{"$__rate_interval", "1m"}, {"$target", ".*"}})
      for (std::size_t at; (at = e.find(from)) != std::string::npos;)
        e.replace(at, from.size(), to);
    return e;
  };
  if (const auto* panels = d.Get("panels"))
    for (const auto& p : panels->a)
      if (const auto* targets = p.Get("targets"))
        for (const auto& t : targets->a)
          if (!t.Str("expr").empty())
            out.emplace_back(p.Str("title") + " [" + t.Str("refId") + "]", fix(t.Str("expr")));
  if (const auto* ann = d.Get("annotations"))
    if (const auto* list = ann->Get("list"))
      for (const auto& a : list->a)
        if (!a.Str("expr").empty())
          out.emplace_back("annotation " + a.Str("name"), fix(a.Str("expr")));
  return out;
}
}  // namespace

TEST_CASE(
    "metrics contract: a live agent's /metrics matches docs/METRICS.md, the rules and the "
    "dashboard",
    "[integration][metrics_contract]") {
  test::TestDir dir("rwcontract-");
  const std::string archive = dir / "archive";
  MakeDirs(archive, 0700, test::ServerUser());
  test::ClusterSpec ps;
  ps.tcp = true;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"},
                 {"max_wal_senders", "10"},
                 {"max_replication_slots", "10"},
                 {"max_slot_wal_keep_size", "'1GB'"}};
  auto primary = test::StartCluster(dir, ps);
  primary->Psql("select pg_create_physical_replication_slot('s1')");
  primary->Psql("create database app");
  primary->Psql(
      "create table items(id int primary key, name text, created_at timestamptz not null"
      " default now());"
      "insert into items(id, name) select g, 'item ' || g from generate_series(1, 5000) g;"
      "create table tags(id int primary key, label text);"
      "insert into tags select g, 'tag ' || g from generate_series(1, 300) g;",
      "app");

  // A streaming standby on slot s1, over TCP so the primary sees its application_name.
  const std::string sdir = MakeTempDir(dir.path(), "standby-", test::ServerUser());
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
  auto bbr = RunProcess(bb);
  INFO(bbr.out << bbr.err);
  REQUIRE(bbr.ok());
  ClusterOptions so;
  so.tools = test::Tools();
  so.parent_dir = dir.path();
  so.run_as = test::ServerUser();
  so.throwaway = false;
  so.settings = {{"wal_receiver_status_interval", "'1s'"}, {"hot_standby", "on"}};
  auto standby = LocalCluster::Adopt(so, sdir, sdir + "/data");
  primary->Psql("select pg_switch_wal()");  // something archived, so its timestamp exists

  // t1: a good pg_dump; t2: a file that is no dump, so its drill fails.
  const std::string backups = dir / "backups";
  const std::string broken = dir / "broken";
  MakeDirs(backups);
  MakeDirs(broken);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", primary->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  WriteFile(broken + "/db-1.dump", "this is not a pg_dump archive\n");
  // t1's dump also in an offsite copy (backup.copies), so the copies families are scraped.
  const std::string offsite = dir / "offsite";
  MakeDirs(offsite);
  {
    ProcessSpec cp;
    cp.argv = {"cp", "-a", "--", backups + "/db-1.dump", offsite + "/"};
    REQUIRE(RunProcess(cp).ok());
  }

  test::WebhookReceiver receiver;
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: '" + BcryptHash("contract-pass") + "'\n");
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  auto target = [&](const std::string& name, const std::string& path, const std::string& extra,
                    const std::string& backup_extra = "") {
    return "\n[[target]]\nname = \"" + name + "\"\nsource = \"" + primary->ConnInfo("app") +
           "\"\nmonitor_interval = \"1s\"\n" + extra + "\n[target.backup]\npath = \"" + path +
           "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\nmax_age = \"26h\"\n" + backup_extra +
           "\n"
           "[target.drill]\nrto = \"10m\"\n\n[target.checks]\nstats_settle = \"1s\"\n"
           "checksum = true\namcheck = true\nfreshness = { \"public.items\" = \"created_at\" }\n";
  };
  WriteFile(cfg,
            "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
                (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                "\"\nlog_format = \"json\"\nweb_config_file = \"web.yml\"\n"
                "enable_drill_api = true\n" +
                // A notifier, so its families are in the scrape (t2's failing drill notifies).
                "\n[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" +
                receiver.url("/hook") + "\"\n" +
                target("t1", backups,
                       "standbys = [\"" + standby->ConnInfo("app") + " application_name=s1\"]\n",
                       "wal_archive = \"" + archive +
                           "\"\nmin_retention = \"30d\"\npitr_window = \"7d\"\n"
                           "copies = [{ name = \"dr\", path = \"" +
                           offsite + "\", offsite = true }]\n") +
                target("t2", broken, ""));
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return Request(port, "GET", "/readyz").status == 200; }, 30));
  auto metric = [&](const std::string& name, const std::vector<std::string>& labels) {
    return test::MetricValue(Request(port, "GET", "/metrics").body, name, labels);
  };
  // Monitoring has caught up: the standby streams and replays, a segment was archived.
  REQUIRE(Eventually(
      [&] {
        const std::string body = Request(port, "GET", "/metrics").body;
        return test::MetricValue(body, "restorewatch_replication_streaming_replicas",
                                 {"target=\"t1\""}) == 1.0 &&
               test::MetricValue(body, "restorewatch_standby_replay_paused", {"server=\"s1\""}) ==
                   0.0 &&
               test::MetricValue(body, "restorewatch_archiver_last_archived_timestamp_seconds",
                                 {"target=\"t1\""})
                   .has_value();
      },
      30));
  // The skip counters are there before any drill, both reasons at 0 (documented: from the start).
  CHECK(metric("restorewatch_drill_skipped_total", {"target=\"t1\"", "reason=\"still_running\""}) ==
        0.0);
  CHECK(metric("restorewatch_drill_skipped_total",
               {"target=\"t1\"", "reason=\"concurrency_limit\""}) == 0.0);
  CHECK_FALSE(metric("restorewatch_drill_rows_verified", {"target=\"t1\""}));

  // A passing drill of t1, then a failing one of t2, through the drill API.
  auto started = Request(port, "POST", "/api/v1/targets/t1/drill");
  INFO(started.body);
  REQUIRE(started.status == 202);
  REQUIRE(Eventually(
      [&] {
        return metric("restorewatch_drill_runs_total", {"target=\"t1\"", "result=\"success\""}) ==
               1.0;
      },
      120));
  REQUIRE(Request(port, "POST", "/api/v1/targets/t2/drill").status == 202);
  REQUIRE(Eventually(
      [&] {
        return metric("restorewatch_drill_last_failure_timestamp_seconds", {"target=\"t2\""})
            .has_value();
      },
      60));

  const std::string scrape = Request(port, "GET", "/metrics").body;
  INFO(scrape);
  CHECK(test::MetricValue(scrape, "restorewatch_backup_copy_present",
                          {"target=\"t1\"", "location=\"dr\"", "offsite=\"true\""}) == 1.0);
  CHECK(test::MetricValue(scrape, "restorewatch_backup_321_ok", {"target=\"t1\""}) == 0.0);
  const auto scraped = ParseScrape(scrape);
  const std::string md = test::ReadFile(SourcePath("docs/METRICS.md"));
  const auto documented = ParseContract(md);
  const auto conditional = ConditionalNames(md);
  REQUIRE(documented.size() >= 50);
  REQUIRE(conditional.size() >= 10);

  {
    INFO("part: every scraped family is documented with its type and labels");
    std::size_t ours = 0;
    for (const auto& [name, f] : scraped) {
      if (name.rfind("restorewatch_", 0) != 0 && name.rfind("process_", 0) != 0) continue;
      ++ours;
      INFO("scraped family " << name << " (" << f.type << "; labels " << Join(f.labels) << ")");
      auto it = documented.find(name);
      CHECK(it != documented.end());
      if (it == documented.end()) continue;
      CHECK(it->second.type == f.type);
      CHECK(it->second.labels == f.labels);
      CHECK(f.samples > 0);
    }
    CHECK(ours >= 45);
    // Nothing else is exported: the agent's own families and the standard process_* ones.
    for (const auto& [name, f] : scraped) {
      INFO("scraped family " << name << " is neither a restorewatch_ nor a process_ family");
      CHECK((name.rfind("restorewatch_", 0) == 0 || name.rfind("process_", 0) == 0));
    }
    for (const char* p : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                          "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                          "process_start_time_seconds"}) {
      INFO(p);
      CHECK(scraped.count(p) == 1);
    }
    const auto rss = test::MetricValue(scrape, "process_resident_memory_bytes");
    REQUIRE(rss);
    CHECK(*rss > 1e6);  // a running agent holds more than a megabyte
    const auto fds = test::MetricValue(scrape, "process_open_fds");
    REQUIRE(fds);
    CHECK(*fds >= 3);
    const auto start = test::MetricValue(scrape, "process_start_time_seconds");
    REQUIRE(start);
    CHECK(std::abs(*start - NowUnix()) < 3600);  // started by this test, within the hour
  }

  {
    INFO("part: every documented family is scraped, or its condition is documented");
    std::set<std::string> missing;
    for (const auto& [name, f] : documented)
      if (!scraped.count(name)) missing.insert(name);
    INFO("documented, not scraped: " << Join(missing));
    for (const auto& n : missing) {
      INFO(n << " is documented but was not scraped, and the document does not say when it is");
      CHECK(conditional.count(n) == 1);
    }
    // This setup exercises nearly everything: only what needs another backup source (the PITR
    // window's start and end need base backups: [retention] scrapes them), an archive failure or
    // a drill state other than the last one may be missing.
    CHECK(missing.size() <= 6);
  }

  {
    INFO(
        "part: every name the rules and the dashboard use is scraped or listed with its condition");
    std::set<std::string> used;
    for (const char* rel :
         {"dashboards/alerts.yml", "dashboards/restorewatch.json", "dashboards/overview.json"})
      for (const auto& n : NamesUsedIn(test::ReadFile(SourcePath(rel)))) used.insert(n);
    REQUIRE(used.size() >= 40);
    std::set<std::string> not_scraped;
    for (const auto& n : used) {
      if (scraped.count(n)) continue;
      not_scraped.insert(n);
      INFO(n << " is used by the rules or the dashboard, was not scraped, and docs/METRICS.md "
                "does not list it under \"Not emitted yet, or emitted only when ...\"");
      CHECK(conditional.count(n) == 1);
    }
    // t1 watches the real archive its primary writes into: no gap, a recent newest segment.
    INFO("used but not scraped: " << Join(not_scraped));
    CHECK(not_scraped.count("restorewatch_wal_archive_gaps") == 0);
    CHECK(test::MetricValue(scrape, "restorewatch_wal_archive_gaps", {"target=\"t1\""}) == 0.0);
    const auto newest = test::MetricValue(
        scrape, "restorewatch_wal_archive_last_segment_timestamp_seconds", {"target=\"t1\""});
    REQUIRE(newest);
    CHECK(std::abs(*newest - NowUnix()) < 3600);
    CHECK_FALSE(test::MetricValue(scrape, "restorewatch_wal_archive_gaps", {"target=\"t2\""}));
  }

  {
    INFO("part: the drill's coverage and skip metrics are there, with the drill's numbers");
    CHECK(test::MetricValue(scrape, "restorewatch_drill_success", {"target=\"t1\""}) == 1.0);
    CHECK(test::MetricValue(scrape, "restorewatch_drill_success", {"target=\"t2\""}) == 0.0);
    // Nothing changed since the dump: every row of both tables is proven.
    CHECK(test::MetricValue(scrape, "restorewatch_drill_rows_verified", {"target=\"t1\""}) ==
          5300.0);
    CHECK(test::MetricValue(scrape, "restorewatch_drill_rows_unverified", {"target=\"t1\""}) ==
          0.0);
    CHECK(test::MetricValue(scrape, "restorewatch_drill_tables_unverified", {"target=\"t1\""}) ==
          0.0);
    CHECK(test::MetricValue(scrape, "restorewatch_drill_tables_compared",
                            {"target=\"t1\"", "check=\"checksum\""}) == 2.0);
    CHECK(test::MetricValue(scrape, "restorewatch_drill_skipped_total",
                            {"target=\"t1\"", "reason=\"still_running\""}) == 0.0);
    // The failing drill never reached the checks: no coverage series for t2.
    CHECK_FALSE(test::MetricValue(scrape, "restorewatch_drill_rows_verified", {"target=\"t2\""}));
  }

  {
    INFO("part: the scrape passes promtool check metrics");
    auto promtool = FindProgram("promtool");
    if (!promtool) WARN("promtool not found (apt-get install prometheus): lint skipped");
    if (promtool) {
      WriteFile(dir / "scrape.txt", scrape);
      ProcessSpec lint;
      lint.argv = {*promtool, "check", "metrics"};
      lint.stdin_path = dir / "scrape.txt";
      lint.timeout = 30s;
      auto r = RunProcess(lint);
      INFO(r.out << r.err);
      CHECK(r.ok());
    }
  }

  {
    INFO(
        "part: pausing replay on the standby sets restorewatch_standby_replay_paused (the input "
        "of RestorewatchStandbyReplayPaused) to 1 in /metrics, resuming sets it back to 0");
    standby->Psql("select pg_wal_replay_pause()");
    CHECK(Eventually(
        [&] { return metric("restorewatch_standby_replay_paused", {"server=\"s1\""}) == 1.0; },
        15));
    standby->Psql("select pg_wal_replay_resume()");
    CHECK(Eventually(
        [&] { return metric("restorewatch_standby_replay_paused", {"server=\"s1\""}) == 0.0; },
        15));
  }

  {
    INFO(
        "part: a real Prometheus scraping this agent evaluates every rule of alerts.yml and every "
        "panel query of both dashboards without error, and each returns data");
    auto prometheus = FindProgram("prometheus");
    REQUIRE(prometheus);  // .ci/setup installs it
    const int prom_port = PickFreePort();
    // The shipped rules, with only StandbyReplayPaused's `for: 5m` cut to 0s, so that the paused
    // standby below fires it within the test (the 5m pending step is promtool-tested).
    std::string rules_text = test::ReadFile(SourcePath("dashboards/alerts.yml"));
    {
      const auto at = rules_text.find("- alert: RestorewatchStandbyReplayPaused");
      REQUIRE(at != std::string::npos);
      const auto f = rules_text.find("for: 5m", at);
      REQUIRE(f != std::string::npos);
      REQUIRE(f < rules_text.find("- alert:", at + 10));
      rules_text.replace(f, 7, "for: 0s");
    }
    WriteFile(dir / "alerts.yml", rules_text);
    WriteFile(dir / "prometheus.yml",
              "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
              "rule_files:\n  - " +
                  (dir / "alerts.yml") +
                  "\nscrape_configs:\n  - job_name: restorewatch\n    basic_auth:\n"
                  "      username: ops\n      password: contract-pass\n    static_configs:\n"
                  "      - targets: [\"127.0.0.1:" +
                  std::to_string(port) + "\"]\n");
    ProcessSpec ps_prom;
    ps_prom.argv = {*prometheus, "--config.file=" + (dir / "prometheus.yml"),
                    "--storage.tsdb.path=" + (dir / "tsdb"),
                    "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)};
    ChildProcess prom(ps_prom, dir / "prometheus.log");
    INFO("prometheus log:\n" << test::ReadFile(dir / "prometheus.log"));
    std::string err;
    // Enough scrapes for rate() and increase() over the dashboards' windows, and rule
    // evaluations over the same data.
    REQUIRE(Eventually(
        [&] {
          auto v = PromGet(prom_port, "/api/v1/query",
                           {{"query", "count_over_time(up{job=\"restorewatch\"}[1m]) >= 5"}}, &err);
          const json::Value* data = v ? v->Get("data") : nullptr;
          const json::Value* result = data ? data->Get("result") : nullptr;
          return result && !result->a.empty();
        },
        60));
    // Rules: loaded, evaluated by Prometheus with health ok (no parse or vector-matching error at
    // evaluation), and every restorewatch_ series they read present in Prometheus.
    std::size_t rules = 0;
    REQUIRE(Eventually(
        [&] {
          auto v = PromGet(prom_port, "/api/v1/rules", {}, &err);
          if (!v) return false;
          rules = 0;
          bool all_evaluated = true;
          for (const auto& g : v->Get("data")->Get("groups")->a)
            for (const auto& r : g.Get("rules")->a) {
              ++rules;
              if (r.Str("health") == "unknown") all_evaluated = false;
            }
          return rules > 0 && all_evaluated;
        },
        30));
    auto v = PromGet(prom_port, "/api/v1/rules", {}, &err);
    REQUIRE(v);
    std::set<std::string> rule_names;
    for (const auto& g : v->Get("data")->Get("groups")->a)
      for (const auto& r : g.Get("rules")->a) {
        INFO("rule " << r.Str("name") << ": " << r.Str("query") << " -> " << r.Str("lastError"));
        CHECK(r.Str("health") == "ok");
        for (const auto& n : NamesUsedIn(r.Str("query"))) rule_names.insert(n);
      }
    CHECK(rules >= 29);
    for (const auto& n : rule_names) {
      if (conditional.count(n)) continue;  // documented as emitted only in other states
      auto q = PromGet(prom_port, "/api/v1/query", {{"query", "group(" + n + ")"}}, &err);
      INFO("a rule reads " << n << ", which Prometheus has no series of: " << err);
      REQUIRE(q);
      CHECK_FALSE(q->Get("data")->Get("result")->a.empty());
    }
    // Dashboards: every query evaluates and returns data.
    std::size_t queries = 0;
    for (const char* rel : {"dashboards/restorewatch.json", "dashboards/overview.json"}) {
      for (const auto& [where, expr] : DashboardQueries(SourcePath(rel))) {
        ++queries;
        INFO(rel << ": " << where << ": " << expr);
        auto q = PromGet(prom_port, "/api/v1/query", {{"query", expr}}, &err);
        INFO(err);
        REQUIRE(q);
        const json::Value* result = q->Get("data")->Get("result");
        bool has_data = result && (result->t != json::Value::T::kArr || !result->a.empty());
        // A query whose every series is documented as emitted only in other states (an archive
        // failure, ...) may be empty here; it still had to evaluate.
        if (!has_data) {
          bool only_conditional = true;
          for (const auto& n : NamesUsedIn(expr))
            if (!conditional.count(n)) only_conditional = false;
          if (only_conditional) continue;
        }
        CHECK(has_data);
      }
    }
    CHECK(queries >= 70);
    // A paused standby fires RestorewatchStandbyReplayPaused in the real Prometheus.
    auto firing = [&](const char* alert) {
      auto q = PromGet(prom_port, "/api/v1/query",
                       {{"query", std::string("ALERTS{alertname=\"") + alert +
                                      "\", alertstate=\"firing\", server=\"s1\"}"}},
                       &err);
      return q && !q->Get("data")->Get("result")->a.empty();
    };
    CHECK_FALSE(firing("RestorewatchStandbyReplayPaused"));
    standby->Psql("select pg_wal_replay_pause()");
    CHECK(Eventually([&] { return firing("RestorewatchStandbyReplayPaused"); }, 30));
    standby->Psql("select pg_wal_replay_resume()");
    CHECK(Eventually([&] { return !firing("RestorewatchStandbyReplayPaused"); }, 30));
    prom.Stop(SIGTERM, 10s);
  }
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(20s) == 0);
  CHECK(test::ListDir(dir / "work").empty());
}
