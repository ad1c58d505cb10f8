// What on-call sees, end to end on loopback: the real agent (`restorewatch run`, a pg_dump target
// on a real PostgreSQL 15), a real Prometheus (1 s scrape and evaluation) loaded with the shipped
// dashboards/alerts.yml, a real Alertmanager (group_wait 1s) routing to this test's own HTTP
// receiver, and the agent's own [[notifier]]s (webhook to the receiver, alertmanager to the
// Alertmanager). A truncated dump makes the shipped drill-failure rule fire and the receiver get
// it through Alertmanager and through the agent's own notifier, with the stage and kind; a good
// backup and drill resolve both. Every wait is bounded.
//
// The shipped RestorewatchDrillFailing has `for: 5m`; this test loads alerts.yml with that one
// `for` set to 0s (everything else as shipped), since the pending-to-firing step is Prometheus'
// own and is covered by the promtool unit tests in dashboards/alerts_test.yml.
#include <crypt.h>
#include <httplib.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <regex>

#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/webhook_receiver.h"

using namespace rw;
using test::Eventually;
using test::WriteFile;
using Clock = std::chrono::steady_clock;

namespace {

std::string SourcePath(const std::string& rel) { return std::string(RW_SOURCE_DIR) + "/" + rel; }

std::string Bcrypt(const std::string& password) {
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  REQUIRE(salt != nullptr);
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  REQUIRE(h != nullptr);
  return h;
}

// GET with optional query params (and the agent's basic auth); "" when nothing answered.
std::string Get(int port, const std::string& path, const httplib::Params& params = {},
                bool auth = false) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(3, 0);
  cli.set_read_timeout(5, 0);
  if (auth) cli.set_basic_auth("ops", "oncall-pass");
  auto res = cli.Get(path.c_str(), params, httplib::Headers{});
  return res && res->status == 200 ? res->body : "";
}

int PostDrill(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(3, 0);
  cli.set_read_timeout(10, 0);
  cli.set_basic_auth("ops", "oncall-pass");
  auto res = cli.Post("/api/v1/targets/t1/drill");
  return res ? res->status : 0;
}

bool Ready(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(1, 0);
  cli.set_basic_auth("ops", "oncall-pass");
  auto res = cli.Get(path.c_str());
  return res && res->status == 200;
}

// Bodies the receiver got on `path` that contain every needle.
std::size_t Received(const test::WebhookReceiver& rx, const std::string& path,
                     const std::vector<std::string>& needles) {
  std::size_t n = 0;
  for (const auto& r : rx.requests()) {
    if (r.path != path) continue;
    bool all = true;
    for (const auto& s : needles) all = all && r.body.find(s) != std::string::npos;
    n += all ? 1 : 0;
  }
  return n;
}

// Seconds from `since` to the first request on `path` holding every needle (-1: none).
double FirstArrival(const test::WebhookReceiver& rx, Clock::time_point since,
                    const std::string& path, const std::vector<std::string>& needles) {
  for (const auto& r : rx.requests()) {
    if (r.path != path || r.at < since) continue;
    bool all = true;
    for (const auto& s : needles) all = all && r.body.find(s) != std::string::npos;
    if (all) return std::chrono::duration<double>(r.at - since).count();
  }
  return -1;
}

}  // namespace

TEST_CASE(
    "on-call: a corrupt backup pages through Prometheus+Alertmanager and the agent itself, "
    "a good one resolves both",
    "[integration][oncall_e2e]") {
  auto prometheus = FindProgram("prometheus");
  auto alertmanager = FindProgram("prometheus-alertmanager");
  if (!prometheus || !alertmanager) {
    WARN("prometheus or prometheus-alertmanager not installed: skipping");
    return;
  }
  test::TestDir dir("rwoncall-");
  // The source and its backups: the newest dump is cut short (its data ends mid-table).
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql(
      "create table items(id int primary key, name text, price numeric);"
      "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 50000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-Z0", "-d", cluster->ConnInfo("app"), "-f", dir / "good.dump"})
              .ok());
  const std::string good = test::ReadFile(dir / "good.dump");
  REQUIRE(good.size() > 100000);
  WriteFile(backups + "/db-1.dump", good.substr(0, good.size() * 6 / 10));

  // The receiver: Alertmanager posts to /am, the agent's webhook notifier to /agent. The agent's
  // first attempt is refused with the credentials echoed back (they must not reach its log).
  std::atomic<bool> refused_once{false};
  test::WebhookReceiver rx([&](std::size_t, const test::WebhookReceiver::Request& r) {
    if (r.path == "/agent" && !refused_once.exchange(true)) return 401;
    return 200;
  });

  const int am_port = PickFreePort();
  WriteFile(dir / "am.yml",
            "route:\n  receiver: rx\n  group_by: [alertname, target]\n  group_wait: 1s\n"
            "  group_interval: 1s\n  repeat_interval: 1h\n"
            "receivers:\n  - name: rx\n    webhook_configs:\n      - url: " +
                rx.url("/am") + "\n        send_resolved: true\n");
  ProcessSpec am_spec;
  am_spec.argv = {
      *alertmanager, "--config.file=" + (dir / "am.yml"), "--storage.path=" + (dir / "am-data"),
      "--web.listen-address=127.0.0.1:" + std::to_string(am_port), "--cluster.listen-address="};
  ChildProcess am(am_spec, dir / "alertmanager.log");

  // The agent, with the drill API (basic auth) and its own notifiers.
  const int agent_port = PickFreePort();
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: '" + Bcrypt("oncall-pass") + "'\n");
  WriteFile(dir / "hook-token", "hook-TOKEN-5521\n");
  WriteFile(dir / "agent.toml",
            "[agent]\nlisten = \"127.0.0.1:" + std::to_string(agent_port) + "\"\nstate_dir = \"" +
                (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                "\"\nlog_format = \"json\"\nweb_config_file = \"web.yml\"\nenable_drill_api = "
                "true\n\n"
                "[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" +
                rx.url("/agent") +
                "\"\nbearer_token_file = \"hook-token\"\nretry_backoff = \"200ms\"\n"
                "timeout = \"5s\"\n\n"
                "[[notifier]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = "
                "\"http://127.0.0.1:" +
                std::to_string(am_port) + "\"\nrepeat_interval = \"5s\"\n\n" +
                "[[target]]\nname = \"t1\"\nsource = \"" + cluster->ConnInfo("app") +
                "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\ncatalogue_interval = \"2s\"\n"
                "\n[target.checks]\nstats_settle = \"1s\"\n");
  test::AgentProcess agent({"run", "-c", dir / "agent.toml"}, dir / "agent.log");

  // Prometheus with the shipped rules (DrillFailing's `for` set to 0s, see the top of the file).
  std::string rules = test::ReadFile(SourcePath("dashboards/alerts.yml"));
  const std::regex drill_failing_for("(alert: RestorewatchDrillFailing\\n[\\s\\S]*?for: )5m");
  REQUIRE(std::regex_search(rules, drill_failing_for));
  rules = std::regex_replace(rules, drill_failing_for, "$010s",
                             std::regex_constants::format_first_only);
  WriteFile(dir / "alerts.yml", rules);
  const int prom_port = PickFreePort();
  WriteFile(dir / "prometheus.yml",
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\n"
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: "
            "['127.0.0.1:" +
                std::to_string(am_port) + "']\n" + "rule_files:\n  - " + (dir / "alerts.yml") +
                "\n" +
                "scrape_configs:\n  - job_name: restorewatch\n    basic_auth:\n      username: "
                "ops\n      password: oncall-pass\n    static_configs:\n      - targets: "
                "['127.0.0.1:" +
                std::to_string(agent_port) + "']\n");
  ProcessSpec prom_spec;
  prom_spec.argv = {*prometheus, "--config.file=" + (dir / "prometheus.yml"),
                    "--storage.tsdb.path=" + (dir / "tsdb"),
                    "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)};
  ChildProcess prom(prom_spec, dir / "prometheus.log");

  // The three logs, printed when a REQUIRE ends the test (INFO would capture them too early).
  struct DumpLogs {
    std::function<void()> dump;
    ~DumpLogs() {
      if (std::uncaught_exceptions() > 0) dump();
    }
  } dump_logs{[&] {
    std::fprintf(stderr, "agent log:\n%s\nprometheus log:\n%s\nalertmanager log:\n%s\n",
                 agent.Log().c_str(), test::ReadFile(dir / "prometheus.log").c_str(),
                 test::ReadFile(dir / "alertmanager.log").c_str());
  }};
  REQUIRE(Eventually([&] { return Ready(am_port, "/-/ready"); }, 20));
  REQUIRE(Eventually([&] { return Ready(prom_port, "/-/ready"); }, 20));
  REQUIRE(Eventually([&] { return Ready(agent_port, "/healthz"); }, 20));
  // Prometheus scrapes the agent (its target is up).
  REQUIRE(Eventually(
      [&] {
        return Get(prom_port, "/api/v1/query", {{"query", "up{job=\"restorewatch\"} == 1"}})
                   .find("\"instance\"") != std::string::npos;
      },
      20));

  // 1. A drill of the cut-short dump fails.
  REQUIRE(PostDrill(agent_port) == 202);
  const auto drill1 = Clock::now();
  // Through Prometheus and Alertmanager: the shipped rule, with the stage and kind.
  REQUIRE(Eventually(
      [&] {
        return Received(rx, "/am",
                        {"\"alertname\":\"RestorewatchDrillFailing\"", "\"status\":\"firing\"",
                         "\"kind\":\"backup_unusable\"", "\"stage\":\"restore\""}) > 0;
      },
      60));
  // Through the agent's own webhook notifier (after one refused attempt): the full reason.
  REQUIRE(Eventually(
      [&] {
        return Received(rx, "/agent",
                        {"\"status\":\"firing\"", "\"kind\":\"backup_unusable\"",
                         "\"stage\":\"restore\"", "pg_restore"}) == 2;
      },
      30));
  // Through the agent's own alertmanager notifier, routed by Alertmanager to the receiver.
  REQUIRE(Eventually(
      [&] {
        return Received(rx, "/am",
                        {"\"alertname\":\"RestorewatchAgentDrillFailed\"", "\"status\":\"firing\"",
                         "pg_restore"}) > 0;
      },
      30));
  const std::string summary =
      Get(prom_port, "/api/v1/alerts");  // the rule's summary names stage and kind
  CHECK(summary.find("Restore drill failed for t1: backup_unusable in the restore stage") !=
        std::string::npos);

  // A second failed drill of the same backup: no second notification from the agent.
  REQUIRE(Eventually([&] { return PostDrill(agent_port) == 202; }, 30));
  REQUIRE(Eventually(
      [&] {
        return test::MetricValue(Get(agent_port, "/metrics", {}, true),
                                 "restorewatch_drill_runs_total", {"result=\"failure\""}) == 2.0;
      },
      60));

  // 2. A good backup, and a drill of it, resolve both.
  WriteFile(backups + "/db-2.dump", good);
  // Once the catalogue lists it (past backup.settle), a drill picks it.
  REQUIRE(Eventually(
      [&] {
        return test::MetricValue(Get(agent_port, "/metrics", {}, true),
                                 "restorewatch_backups_available") == 2.0;
      },
      30));
  REQUIRE(Eventually([&] { return PostDrill(agent_port) == 202; }, 30));
  const auto drill3 = Clock::now();
  REQUIRE(Eventually(
      [&] {
        return Received(rx, "/agent",
                        {"\"status\":\"resolved\"", "\"condition\":\"drill_failed\""}) == 1;
      },
      90));
  REQUIRE(Eventually(
      [&] {
        return Received(rx, "/am",
                        {"\"alertname\":\"RestorewatchDrillFailing\"", "\"status\":\"resolved\""}) >
               0;
      },
      60));
  CHECK(Eventually(
      [&] {
        return Received(rx, "/am",
                        {"\"alertname\":\"RestorewatchAgentDrillFailed\"",
                         "\"status\":\"resolved\""}) > 0;
      },
      30));
  // The alert is gone from Prometheus, and the agent's alert from Alertmanager.
  CHECK(Eventually(
      [&] {
        const std::string a = Get(prom_port, "/api/v1/alerts");
        return !a.empty() && a.find("RestorewatchDrillFailing") == std::string::npos;
      },
      30));
  CHECK(Eventually(
      [&] {
        const std::string a = Get(am_port, "/api/v2/alerts");
        return !a.empty() && a.find("RestorewatchAgentDrillFailed") == std::string::npos;
      },
      30));

  // One firing and one resolved notification from the agent's webhook for three drills (plus the
  // refused first attempt); the refused credentials never reached the agent's log.
  CHECK(Received(rx, "/agent", {"\"status\":\"firing\""}) == 2);  // the refused one and its retry
  CHECK(Received(rx, "/agent", {"\"status\":\"resolved\""}) == 1);
  const std::string metrics = Get(agent_port, "/metrics", {}, true);
  CHECK(test::MetricValue(metrics, "restorewatch_notifier_sent_total", {"notifier=\"hook\""}) ==
        2.0);
  CHECK(test::MetricValue(metrics, "restorewatch_notifier_failed_total", {"notifier=\"hook\""}) ==
        0.0);
  CHECK(test::MetricValue(metrics, "restorewatch_notifier_queue_length", {"notifier=\"hook\""}) ==
        0.0);
  CHECK_FALSE(test::MetricValue(metrics, "restorewatch_drill_last_failure_info"));
  const std::string log = agent.Log();
  CHECK(log.find("HTTP 401") != std::string::npos);
  CHECK(log.find("hook-TOKEN-5521") == std::string::npos);

  // Figures for the report (not asserted): from the drill request to the first notification.
  std::printf(
      "oncall_e2e: firing after the failed drill was requested: %.1f s via "
      "Prometheus+Alertmanager, "
      "%.1f s via the agent's webhook (first attempt), %.1f s via the agent's alertmanager "
      "notifier; resolved after the good drill was requested: %.1f s via Prometheus+Alertmanager, "
      "%.1f s via the agent's webhook, %.1f s via the agent's alertmanager notifier\n",
      FirstArrival(rx, drill1, "/am",
                   {"\"alertname\":\"RestorewatchDrillFailing\"", "\"status\":\"firing\""}),
      FirstArrival(rx, drill1, "/agent", {"\"status\":\"firing\""}),
      FirstArrival(rx, drill1, "/am",
                   {"\"alertname\":\"RestorewatchAgentDrillFailed\"", "\"status\":\"firing\""}),
      FirstArrival(rx, drill3, "/am",
                   {"\"alertname\":\"RestorewatchDrillFailing\"", "\"status\":\"resolved\""}),
      FirstArrival(rx, drill3, "/agent", {"\"status\":\"resolved\""}),
      FirstArrival(rx, drill3, "/am",
                   {"\"alertname\":\"RestorewatchAgentDrillFailed\"", "\"status\":\"resolved\""}));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
  prom.Stop(SIGTERM, std::chrono::seconds(10));
  am.Stop(SIGTERM, std::chrono::seconds(10));
}
