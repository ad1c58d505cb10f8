// /metrics of the real agent scraped many times (bounded) while a drill runs: every answer is a
// whole page (never half-rendered), the gzip and the plain answer of one rendering are the same
// bytes, and the Content-Type is the metrics type either way.
#include <crypt.h>
#include <httplib.h>

#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/pg/pg_cluster.h"
#include "exporters/metrics_cache.h"
#include "exporters/metrics_exporter.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using test::Eventually;
using test::WriteFile;

namespace {

std::string Bcrypt(const std::string& password) {
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  REQUIRE(salt != nullptr);
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  REQUIRE(h != nullptr);
  return h;
}

std::unique_ptr<httplib::Client> Client(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(10, 0);
  c->set_basic_auth("ops", "scrape-pass");
  c->set_decompress(false);
  return c;
}

// Why `text` is not a whole exposition page, or "" when it is: every sample line well formed,
// every family with HELP then TYPE once, the agent's first and the process' last families there.
std::string Problem(const std::string& text) {
  if (text.empty() || text.back() != '\n') return "does not end with a newline";
  static const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [^ ]+$)");
  std::istringstream in(text);
  std::set<std::string> helped, typed;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      if (!helped.insert(name).second) return "HELP twice: " + name;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      if (!helped.count(name)) return "TYPE before HELP: " + name;
      if (!typed.insert(name).second) return "TYPE twice: " + name;
    } else if (!std::regex_match(line, sample)) {
      return "malformed line: " + line;
    }
  }
  for (const char* must : {"restorewatch_build_info", "restorewatch_collector_success",
                           "restorewatch_drill_running", "process_open_fds"})
    if (!typed.count(must)) return std::string("missing family ") + must;
  return "";
}

}  // namespace

TEST_CASE("/metrics answers whole, consistent pages while a drill runs",
          "[integration][metrics_scrape]") {
  test::TestDir dir;
  auto source = test::StartCluster(dir);
  source->Psql("create database app");
  // Enough tables that the drill (restore, then checks on both sides) takes a while.
  source->Psql(
      "do $$ begin for i in 1..150 loop execute format('create table t%s(id int primary key, v "
      "text)', i); execute format('insert into t%s select g, md5(g::text) from "
      "generate_series(1, 200) g', i); end loop; end $$",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", source->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: '" + Bcrypt("scrape-pass") + "'\n");
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
                     (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                     "\"\nlog_format = \"json\"\nweb_config_file = \"web.yml\"\n"
                     "enable_drill_api = true\n\n[[target]]\nname = \"t1\"\nsource = \"" +
                     source->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                     "stats_settle = \"1s\"\n");
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  auto cli = Client(port);
  REQUIRE(Eventually(
      [&] {
        auto r = cli->Get("/readyz");
        return r && r->status == 200;
      },
      30));
  auto drill = cli->Post("/api/v1/targets/t1/drill");
  REQUIRE(drill);
  REQUIRE(drill->status == 202);

  // Pairs of scrapes, gzip then plain, 10 ms apart, until the drill is over (at most 3000 pairs
  // or 120 s).
  int pairs = 0, same_render = 0, during_drill = 0;
  std::vector<std::string> problems;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool drill_over = false;
  while (pairs < 3000 && std::chrono::steady_clock::now() < deadline && !drill_over) {
    auto gz = cli->Get("/metrics", {{"Accept-Encoding", "gzip"}});
    auto plain = cli->Get("/metrics", {{"Accept-Encoding", "identity"}});
    ++pairs;
    if (!gz || !plain || gz->status != 200 || plain->status != 200) {
      problems.push_back("a scrape got no 200");
      continue;
    }
    if (gz->get_header_value("Content-Type") != kMetricsContentType ||
        plain->get_header_value("Content-Type") != kMetricsContentType)
      problems.push_back("wrong Content-Type");
    if (gz->get_header_value("Content-Encoding") != "gzip" ||
        !plain->get_header_value("Content-Encoding").empty())
      problems.push_back("wrong Content-Encoding");
    std::string unzipped;
    try {
      unzipped = GzipDecompress(gz->body);
    } catch (const std::exception& e) {
      problems.push_back(std::string("gzip answer: ") + e.what());
      continue;
    }
    for (const std::string* page : {&unzipped, &plain->body})
      if (std::string p = Problem(*page); !p.empty()) problems.push_back(p);
    if (gz->get_header_value("X-Restorewatch-Render") ==
        plain->get_header_value("X-Restorewatch-Render")) {
      ++same_render;
      if (unzipped != plain->body) problems.push_back("one rendering, two contents");
    }
    auto running = test::MetricValue(plain->body, "restorewatch_drill_running", {"t1"});
    if (running == 1.0) ++during_drill;
    // Over once the drill recorded its result (running back to 0 after it started).
    if (running == 0.0 &&
        test::MetricValue(plain->body, "restorewatch_drill_last_run_timestamp_seconds", {"t1"})
            .has_value())
      drill_over = true;
    if (problems.size() > 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO("pairs " << pairs << ", same render " << same_render << ", during drill " << during_drill);
  for (const auto& p : problems) UNSCOPED_INFO(p);
  CHECK(problems.empty());
  CHECK(during_drill >= 10);  // the scrapes did overlap the drill
  CHECK(same_render >= 10);   // and gzip and plain of one rendering were compared
  CHECK(drill_over);          // bounded: the drill ended within the window
}

// /readyz's first probe once every collector has run: it asked the page to cover the board as it
// was at that moment and answered at once, so a series changed since the last render (renders
// follow changes by 200 ms) made it 503 although the collectors had all run: a SIGHUP test failed
// so right after a drill. The first probe now waits (at most 1 s) for the render it kicks. This
// test probes right after a drill request changed series; it did not catch the race on the old
// code here (the render won), so it guards the behaviour, not that defect.
TEST_CASE("/readyz: the first probe after the collectors' first runs is ready",
          "[integration][metrics_scrape]") {
  test::TestDir dir;
  auto source = test::StartCluster(dir);
  source->Psql("create database app");
  source->Psql("create table t (id int primary key); insert into t select generate_series(1, 50)",
               "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  const std::string cfg = dir / "agent.toml";
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: '" + Bcrypt("scrape-pass") + "'\n");
  int not_ready = 0;
  for (int start = 1; start <= 3; ++start) {
    const int port = PickFreePort();
    WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
                       (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                       "\"\nweb_config_file = \"web.yml\"\nenable_drill_api = "
                       "true\n\n[[target]]\nname = \"t1\"\nsource = \"" +
                       source->ConnInfo("app") +
                       "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                       "\"\npattern = \"db-*.dump\"\n");
    test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
    INFO(agent.Log());
    auto cli = Client(port);
    // Every collector has run once: /metrics (which never asks for readiness) says so.
    REQUIRE(Eventually(
        [&] {
          auto r = cli->Get("/metrics");
          if (!r || r->status != 200) return false;
          // A collector's duration series appears with its first run: source, archiver,
          // replication, slots, table_activity, backup_catalogue.
          std::istringstream in(r->body);
          int ran = 0;
          for (std::string line; std::getline(in, line);)
            if (line.rfind("restorewatch_collector_duration_seconds{", 0) == 0) ++ran;
          return ran >= 6;
        },
        30));
    // A drill asked for through the API changes series at once (drill_running); the probe
    // follows before the 200 ms-debounced render of that change.
    auto drill = cli->Post("/api/v1/targets/t1/drill");
    REQUIRE(drill);
    REQUIRE(drill->status == 202);
    auto r = cli->Get("/readyz");
    REQUIRE(r);
    if (r->status != 200) ++not_ready;
  }
  CHECK(not_ready == 0);
}
