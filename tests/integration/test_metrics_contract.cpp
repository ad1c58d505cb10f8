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

#include "agent/pg_cluster.h"
#include "agent/process.h"
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
      R"(^\|\s*`((?:restorewatch|process)_[a-z_]+)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|)");
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
  static const std::regex kName(R"(`(restorewatch_[a-z_]+)`)");
  for (std::sregex_iterator it(part.begin(), part.end(), kName), end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

std::set<std::string> NamesUsedIn(const std::string& text) {
  static const std::regex kName("restorewatch_[a-z_]+");
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
           "checksum = true\nfreshness = { \"public.items\" = \"created_at\" }\n";
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
                       "wal_archive = \"" + archive + "\"\n") +
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
    // This setup exercises nearly everything: only what needs another backup source, an archive
    // failure or a drill state other than the last one may be missing.
    CHECK(missing.size() <= 4);
  }

  {
    INFO(
        "part: every name the rules and the dashboard use is scraped or listed with its condition");
    std::set<std::string> used;
    for (const char* rel : {"dashboards/alerts.yml", "dashboards/restorewatch.json"})
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

  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(20s) == 0);
  CHECK(test::ListDir(dir / "work").empty());
}
