// The agent's own notifications (exporters/notifier.h): why a drill failed (stage and kind), the
// payload of each receiver type, [[notifier]] config, and the hub against a real HTTP receiver on
// loopback: one notification per ongoing failure, a resolve when it clears (also after a restart),
// retries with backoff, a receiver that hangs blocks nothing and the queue bound holds, and no
// secret reaches the log.
#include <httplib.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <future>
#include <sstream>

#include "agent/config.h"
#include "agent/drill_failure.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/pg/process.h"
#include "agent/secrets.h"
#include "agent/units.h"
#include "exporters/notifier.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/webhook_receiver.h"

using namespace rw;
using test::Eventually;

namespace {

DrillReport Report(const std::string& target, DrillResult result, const std::string& reason,
                   std::vector<StageResult> stages = {}) {
  DrillReport r;
  r.target = target;
  r.run_id = "run-" + std::to_string(static_cast<long>(NowUnix() * 1000) % 100000);
  r.started_at = NowUnix() - 5;
  r.finished_at = NowUnix();
  r.result = result;
  r.reason = reason;
  r.stages = std::move(stages);
  r.stages.push_back(
      {"total", result == DrillResult::kSuccess ? Outcome::kPass : Outcome::kFail, "", 5});
  return r;
}

DrillReport Corrupt(const std::string& target) {
  DrillReport r = Report(target, DrillResult::kFailure,
                         "restore: pg_restore: error: could not read from input file: end of file",
                         {{"discover", Outcome::kPass, "db-1.dump", 0.1},
                          {"restore", Outcome::kFail, "could not read", 1}});
  r.backup = BackupInfo{};
  r.backup->id = "db-1.dump";
  return r;
}

DrillReport Pass(const std::string& target) {
  return Report(target, DrillResult::kSuccess, "",
                {{"discover", Outcome::kPass, "", 0.1}, {"restore", Outcome::kPass, "", 1}});
}

NotifierConfig Webhook(const std::string& name, const std::string& url) {
  NotifierConfig c;
  c.name = name;
  c.type = NotifierType::kWebhook;
  c.url = url;
  c.timeout = std::chrono::seconds(2);
  c.retry_backoff = std::chrono::milliseconds(100);
  return c;
}

struct Board {
  std::mutex mu;
  std::vector<MetricFamilyData> last;
  NotificationHub::Publish publish() {
    return [this](std::vector<MetricFamilyData> f) {
      std::lock_guard<std::mutex> lk(mu);
      last = std::move(f);
    };
  }
  double Value(const std::string& family, const std::string& notifier) {
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& f : last)
      if (f.name == family)
        for (const auto& s : f.samples)
          if (!s.labels.empty() && s.labels[0].second == notifier) return s.value;
    return -1;
  }
};

json::Value ParseJson(const std::string& text) {
  json::Value v;
  std::string error;
  INFO(text);
  REQUIRE(json::Parse(text, &v, &error));
  return v;
}

}  // namespace

TEST_CASE("a failed drill is classified by the stage that ended it and a closed kind",
          "[unit][notifier]") {
  CHECK_FALSE(ClassifyDrillFailure(Pass("t")).has_value());
  auto corrupt = ClassifyDrillFailure(Corrupt("t"));
  REQUIRE(corrupt);
  CHECK(corrupt->stage == "restore");
  CHECK(corrupt->kind == "backup_unusable");

  auto none = Report("t", DrillResult::kFailure, "discover: no backup matches '*' in /b",
                     {{"discover", Outcome::kFail, "no backup matches", 0}});
  CHECK(ClassifyDrillFailure(none)->kind == "no_backup");
  CHECK(ClassifyDrillFailure(none)->stage == "discover");

  auto tool = Report("t", DrillResult::kError, "restore: pg_restore could not start",
                     {{"discover", Outcome::kPass, "", 0}, {"restore", Outcome::kError, "", 0}});
  tool.backup = BackupInfo{};
  CHECK(ClassifyDrillFailure(tool)->kind == "restore_failed");

  auto rec = Report("t", DrillResult::kFailure, "recovery: requested WAL segment missing",
                    {{"recovery", Outcome::kFail, "", 0}});
  CHECK(ClassifyDrillFailure(rec)->kind == "recovery_failed");

  auto check = Report("t", DrillResult::kFailure, "check row_count failed: public.items",
                      {{"checks", Outcome::kFail, "", 0}});
  check.checks.push_back(CheckResult{});
  check.checks.back().name = "row_count";
  check.checks.back().outcome = Outcome::kFail;
  CHECK(ClassifyDrillFailure(check)->kind == "check_failed");
  check.checks.back().outcome = Outcome::kError;
  check.stages[0].outcome = Outcome::kError;
  CHECK(ClassifyDrillFailure(check)->kind == "unverified");

  auto slow =
      Report("t", DrillResult::kError, "drill timed out after 2h (drill.timeout) during restore");
  CHECK(ClassifyDrillFailure(slow)->kind == "timeout");
  CHECK(ClassifyDrillFailure(slow)->stage == "restore");

  auto crash =
      Report("t", DrillResult::kError, "interrupted: the agent stopped during the drill (pid 42)");
  CHECK(ClassifyDrillFailure(crash)->kind == "cancelled");
  CHECK(ClassifyDrillFailure(crash)->stage == "unknown");

  // Every kind produced is in the documented closed set.
  for (const auto* r : {&none, &tool, &rec, &check, &slow, &crash}) {
    const std::string k = ClassifyDrillFailure(*r)->kind;
    CHECK(std::find(std::begin(kDrillFailureKinds), std::end(kDrillFailureKinds), k) !=
          std::end(kDrillFailureKinds));
  }
}

TEST_CASE("each notifier type gets the payload its receiver expects", "[unit][notifier]") {
  Notification fire{"blog",    kConditionDrill,   true, "restore: pg_restore: error: bad input",
                    "restore", "backup_unusable", "r1", 1700000000,
                    1700000000};
  Notification resolve = fire;
  resolve.firing = false;
  resolve.reason = "drill r2 passed";
  resolve.at = 1700003600;

  NotifierConfig pd;
  pd.type = NotifierType::kPagerDuty;
  pd.routing_key = "R0UTINGKEY";
  auto t = ParseJson(BuildNotifierRequest(pd, fire).body);
  CHECK(t.Str("routing_key") == "R0UTINGKEY");
  CHECK(t.Str("event_action") == "trigger");
  CHECK(t.Str("dedup_key") == "restorewatch/blog/drill_failed");
  REQUIRE(t.Get("payload") != nullptr);
  CHECK(t.Get("payload")->Str("summary").find("bad input") != std::string::npos);
  CHECK(t.Get("payload")->Str("source") == "restorewatch/blog");
  CHECK(t.Get("payload")->Str("severity") == "error");
  CHECK(t.Get("payload")->Get("custom_details")->Str("kind") == "backup_unusable");
  auto r = ParseJson(BuildNotifierRequest(pd, resolve).body);
  CHECK(r.Str("event_action") == "resolve");
  CHECK(r.Str("dedup_key") == t.Str("dedup_key"));  // the resolve closes what the trigger opened

  NotifierConfig slack;
  slack.type = NotifierType::kSlack;
  auto s = ParseJson(BuildNotifierRequest(slack, fire).body);
  CHECK(s.o.size() == 1);
  CHECK(s.Str("text") ==
        "[FIRING] blog: restore drill failed (backup_unusable in the restore stage): restore: "
        "pg_restore: error: bad input");
  CHECK(ParseJson(BuildNotifierRequest(slack, resolve).body)
            .Str("text")
            .rfind("[RESOLVED] blog", 0) == 0);

  NotifierConfig am;
  am.type = NotifierType::kAlertmanager;
  auto areq = BuildNotifierRequest(am, fire);
  CHECK(areq.path == "/api/v2/alerts");
  auto a = ParseJson(areq.body);
  REQUIRE(a.t == json::Value::T::kArr);
  REQUIRE(a.a.size() == 1);
  CHECK(a.a[0].Get("labels")->Str("alertname") == "RestorewatchAgentDrillFailed");
  CHECK(a.a[0].Get("labels")->Str("target") == "blog");
  CHECK(a.a[0].Get("annotations")->Str("reason") == fire.reason);
  CHECK(a.a[0].Get("annotations")->Str("kind") == "backup_unusable");
  CHECK(a.a[0].Str("startsAt") == "2023-11-14T22:13:20Z");
  CHECK(a.a[0].Get("endsAt") == nullptr);
  auto ar = ParseJson(BuildNotifierRequest(am, resolve).body);
  CHECK(ar.a[0].Str("endsAt") == "2023-11-14T23:13:20Z");
  CHECK(ar.a[0].Get("labels")->Str("alertname") == "RestorewatchAgentDrillFailed");

  NotifierConfig wh;
  wh.type = NotifierType::kWebhook;
  auto w = ParseJson(BuildNotifierRequest(wh, fire).body);
  CHECK(w.Str("status") == "firing");
  CHECK(w.Str("condition") == "drill_failed");
  CHECK(w.Str("reason") == fire.reason);
  CHECK(w.Str("stage") == "restore");
  CHECK(w.Str("kind") == "backup_unusable");
  CHECK(ParseJson(BuildNotifierRequest(wh, resolve).body).Str("status") == "resolved");
}

TEST_CASE("[[notifier]] tables load, and mistakes name the key", "[unit][notifier]") {
  test::TestDir dir;
  test::WriteFile(dir / "token", "tok-SECRET-4711\n");
  test::WriteFile(dir / "pw", "pw-SECRET-0815\n");
  const std::string base = "[agent]\nstate_dir = \"" + (dir / "s") + "\"\nwork_dir = \"" +
                           (dir / "w") +
                           "\"\n[[target]]\nname = \"blog\"\nsource = \"host=/tmp dbname=blog\"\n"
                           "[target.backup]\npath = \"/tmp\"\n";
  auto ok = LoadConfigText(base +
                               "[[notifier]]\nname = \"ops\"\ntype = \"alertmanager\"\n"
                               "url = \"http://127.0.0.1:9093\"\nbearer_token_file = \"token\"\n"
                               "repeat_interval = \"30s\"\ntargets = [\"blog\"]\n"
                               "[[notifier]]\nname = \"pd\"\ntype = \"pagerduty\"\n"
                               "routing_key = \"abcdef0123\"\n"
                               "[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\n"
                               "url = \"https://hooks.example.com/x\"\nusername = \"u\"\n"
                               "password_file = \"pw\"\ntimeout = \"3s\"\nmax_attempts = 2\n",
                           dir / "agent.toml");
  INFO((ok.errors.empty() ? "" : ok.errors[0].ToString()));
  REQUIRE(ok.config);
  REQUIRE(ok.config->notifiers.size() == 3);
  CHECK(ok.config->notifiers[0].bearer_token == "tok-SECRET-4711");
  CHECK(ok.config->notifiers[0].repeat_interval == std::chrono::seconds(30));
  CHECK(ok.config->notifiers[1].url == "https://events.pagerduty.com/v2/enqueue");
  CHECK(ok.config->notifiers[2].password == "pw-SECRET-0815");
  // Secrets read by the loader are masked wherever the log goes.
  CHECK(Redact("x tok-SECRET-4711 y pw-SECRET-0815 abcdef0123") == "x *** y *** ***");

  auto bad = LoadConfigText(base +
                                "[[notifier]]\nname = \"a\"\ntype = \"teams\"\nurl = \"ftp://x\"\n"
                                "[[notifier]]\nname = \"a\"\ntype = \"pagerduty\"\n"
                                "targets = [\"nope\"]\n"
                                "[[notifier]]\nname = \"c\"\ntype = \"webhook\"\n",
                            dir / "agent.toml");
  std::string all;
  for (const auto& e : bad.errors) all += e.ToString() + "\n";
  INFO(all);
  CHECK_FALSE(bad.config);
  CHECK(all.find("notifier[0].type: must be one of") != std::string::npos);
  CHECK(all.find("notifier[0].url: must start with http") != std::string::npos);
  CHECK(all.find("duplicate notifier name") != std::string::npos);
  CHECK(all.find("notifier[1].routing_key: is required") != std::string::npos);
  CHECK(all.find("no [[target]] named \"nope\"") != std::string::npos);
  CHECK(all.find("notifier[2].url: is required") != std::string::npos);
}

TEST_CASE("one ongoing failure notifies once, its end resolves, also across a restart",
          "[unit][notifier]") {
  test::TestDir dir;
  MakeDirs(dir / "blog");
  test::WebhookReceiver rx;
  Board board;
  {
    NotificationHub hub(dir.path(), board.publish());
    hub.Configure({Webhook("hook", rx.url("/hook"))}, {"blog"});
    hub.OnDrill(Corrupt("blog"));
    hub.OnDrill(Corrupt("blog"));  // the same failure again: no second notification
    REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_sent_total", "hook") == 1; },
                       10));
    CHECK(rx.count() == 1);
    auto first = ParseJson(rx.requests()[0].body);
    CHECK(first.Str("status") == "firing");
    CHECK(first.Str("kind") == "backup_unusable");
    CHECK(first.Str("reason").find("could not read from input file") != std::string::npos);
    hub.Stop(std::chrono::seconds(5));
  }
  {
    // A restart: the state file remembers the failure, so a third failed drill stays quiet,
    // and the next pass resolves it.
    NotificationHub hub(dir.path(), board.publish());
    hub.Configure({Webhook("hook", rx.url("/hook"))}, {"blog"});
    hub.OnDrill(Corrupt("blog"));
    hub.OnDrill(Pass("blog"));
    hub.OnDrill(Pass("blog"));  // nothing to resolve any more
    REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_sent_total", "hook") == 1; },
                       10));
    hub.Stop(std::chrono::seconds(5));
  }
  REQUIRE(rx.count() == 2);
  auto second = ParseJson(rx.requests()[1].body);
  CHECK(second.Str("status") == "resolved");
  CHECK(second.Str("dedup_key") == "restorewatch/blog/drill_failed");

  // Freshness: missed twice = one notification, met = resolved; other targets filtered out.
  test::WebhookReceiver rx2;
  NotificationHub hub(dir.path(), board.publish());
  auto only_blog = Webhook("fresh", rx2.url());
  only_blog.targets = {"blog"};
  hub.Configure({only_blog}, {"blog", "shop"});
  const auto fams =
      std::vector<MetricFamilyData>{{"restorewatch_backup_last_completion_timestamp_seconds",
                                     "",
                                     MetricType::kGauge,
                                     {{{{"kind", "logical"}}, NowUnix() - 3 * 3600}}}};
  auto stale = FreshnessFromCatalogue(fams, std::chrono::hours(1), NowUnix());
  REQUIRE(stale);
  CHECK(stale->missed);
  CHECK(stale->reason.find("more than backup.max_age 1h") != std::string::npos);
  CHECK(FreshnessFromCatalogue({}, std::chrono::hours(1), NowUnix())->missed);
  CHECK_FALSE(FreshnessFromCatalogue(fams, Duration::zero(), NowUnix()));
  // A backup being taken holds it back (as the ticket-level rule), up to twice max_age.
  {
    auto busy = fams;
    busy.push_back({"restorewatch_backup_running",
                    "1 while a backup of this kind is being taken.",
                    MetricType::kGauge,
                    {{{{"kind", "logical"}}, 1}}});
    auto held = FreshnessFromCatalogue(busy, std::chrono::hours(2), NowUnix());
    CHECK_FALSE(held->missed);
    CHECK(held->reason.find("held back: a backup is being taken") != std::string::npos);
    CHECK(FreshnessFromCatalogue(busy, std::chrono::hours(1), NowUnix())->missed);  // 3h > 2 x 1h
    busy.back().samples[0].value = 0;
    CHECK(FreshnessFromCatalogue(busy, std::chrono::hours(2), NowUnix())->missed);
  }
  hub.OnFreshness("blog", *stale, NowUnix());
  hub.OnFreshness("blog", *stale, NowUnix());
  hub.OnFreshness("shop", *stale, NowUnix());  // not this notifier's target
  auto fresh = FreshnessFromCatalogue(fams, std::chrono::hours(4), NowUnix());
  CHECK_FALSE(fresh->missed);
  hub.OnFreshness("blog", *fresh, NowUnix());
  REQUIRE(Eventually([&] { return rx2.count() >= 2; }, 10));
  hub.Stop(std::chrono::seconds(5));
  REQUIRE(rx2.count() == 2);
  CHECK(ParseJson(rx2.requests()[0].body).Str("condition") == "backup_stale");
  CHECK(ParseJson(rx2.requests()[0].body).Str("status") == "firing");
  CHECK(ParseJson(rx2.requests()[1].body).Str("status") == "resolved");
}

TEST_CASE("a receiver that fails then recovers gets the notification after retries",
          "[unit][notifier]") {
  test::TestDir dir;
  MakeDirs(dir / "blog");
  test::WebhookReceiver rx(
      [](std::size_t n, const test::WebhookReceiver::Request&) { return n < 2 ? 503 : 200; });
  Board board;
  NotificationHub hub(dir.path(), board.publish());
  auto cfg = Webhook("flaky", rx.url());
  cfg.max_attempts = 4;
  hub.Configure({cfg}, {"blog"});
  hub.OnDrill(Corrupt("blog"));
  REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_sent_total", "flaky") == 1; },
                     20));
  CHECK(rx.count() == 3);  // two refusals, then delivered
  CHECK(board.Value("restorewatch_notifier_failed_total", "flaky") == 0);

  // A receiver that never recovers: given up after max_attempts, counted as failed.
  test::WebhookReceiver down(
      [](std::size_t, const test::WebhookReceiver::Request&) { return 500; });
  auto cfg2 = Webhook("down", down.url());
  cfg2.max_attempts = 2;
  hub.Configure({cfg, cfg2}, {"blog"});
  hub.OnDrill(Pass("blog"));
  REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_failed_total", "down") == 1; },
                     20));
  CHECK(down.count() == 2);
  hub.Stop(std::chrono::seconds(5));
}

TEST_CASE("a hanging receiver blocks no drill and its queue stays bounded", "[unit][notifier]") {
  test::TestDir dir;
  test::WebhookReceiver rx([](std::size_t, const test::WebhookReceiver::Request&) { return 0; });
  Board board;
  NotificationHub hub(dir.path(), board.publish());
  auto cfg = Webhook("stuck", rx.url());
  cfg.timeout = std::chrono::seconds(30);
  cfg.queue_size = 2;
  cfg.max_attempts = 1;
  hub.Configure({cfg}, {"t0", "t1", "t2", "t3", "t4", "t5"});
  for (int i = 0; i < 6; ++i) MakeDirs(dir / ("t" + std::to_string(i)));
  // Six targets fail while the receiver holds the first request: every OnDrill returns at once
  // (bounded here by 10 s, far below the 30 s the hanging request would take).
  auto done = std::async(std::launch::async, [&] {
    hub.OnDrill(Corrupt("t0"));
    REQUIRE(Eventually([&] { return rx.hanging(); }, 10));
    for (int i = 1; i < 6; ++i) hub.OnDrill(Corrupt("t" + std::to_string(i)));
  });
  REQUIRE(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  done.get();
  CHECK(rx.hanging());
  CHECK(board.Value("restorewatch_notifier_queue_length", "stuck") == 2);
  CHECK(board.Value("restorewatch_notifier_dropped_total", "stuck") == 3);
  rx.Release();
  REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_sent_total", "stuck") == 3; },
                     20));
  hub.Stop(std::chrono::seconds(5));
}

TEST_CASE("notifier credentials never reach the log", "[unit][notifier]") {
  test::TestDir dir;
  MakeDirs(dir / "blog");
  test::WriteFile(dir / "token", "tok-NEVER-LOGGED-9931\n");
  auto load = LoadConfigText(
      "[[notifier]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n"
      "bearer_token_file = \"token\"\n",
      dir / "agent.toml");
  REQUIRE(load.config);
  // The receiver refuses and echoes the Authorization header in its answer, which the agent logs.
  test::WebhookReceiver rx([](std::size_t, const test::WebhookReceiver::Request&) { return 401; });
  auto cfg = load.config->notifiers[0];
  cfg.url = rx.url();
  cfg.max_attempts = 2;
  cfg.retry_backoff = std::chrono::milliseconds(50);
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto logger = spdlog::get("restorewatch");
  LogInfo("capture start");  // creates the logger if no test did yet
  logger = spdlog::get("restorewatch");
  REQUIRE(logger);
  logger->sinks().push_back(sink);
  {
    Board board;
    NotificationHub hub(dir.path(), board.publish());
    hub.Configure({cfg}, {"blog"});
    hub.OnDrill(Corrupt("blog"));
    REQUIRE(Eventually([&] { return board.Value("restorewatch_notifier_failed_total", "x") == 1; },
                       10));
    hub.Stop(std::chrono::seconds(1));
  }
  logger->sinks().pop_back();
  const std::string log = captured.str();
  INFO(log);
  REQUIRE(rx.count() == 2);
  CHECK(rx.requests()[0].authorization == "Bearer tok-NEVER-LOGGED-9931");  // it was sent
  CHECK(log.find("HTTP 401") != std::string::npos);
  CHECK(log.find("tok-NEVER-LOGGED-9931") == std::string::npos);
  CHECK(log.find("***") != std::string::npos);
}

TEST_CASE("a reload keeps a notifier's queue and applies its new settings", "[unit][notifier]") {
  test::TestDir dir;
  test::WebhookReceiver old_rx(
      [](std::size_t, const test::WebhookReceiver::Request&) { return 0; });
  test::WebhookReceiver new_rx;
  Board board;
  NotificationHub hub(dir.path(), board.publish());
  auto cfg = Webhook("hook", old_rx.url());
  cfg.max_attempts = 1;
  hub.Configure({cfg}, {"t0", "t1"});
  hub.OnDrill(Corrupt("t0"));  // in flight, held by the old receiver
  REQUIRE(Eventually([&] { return old_rx.hanging(); }, 10));
  hub.OnDrill(Corrupt("t1"));  // queued behind it
  CHECK(board.Value("restorewatch_notifier_queue_length", "hook") == 1);
  // SIGHUP: the same notifier now points elsewhere; what waits goes there.
  cfg.url = new_rx.url("/moved");
  hub.Configure({cfg}, {"t0", "t1"});
  old_rx.Release();
  REQUIRE(Eventually([&] { return new_rx.count() == 1; }, 10));
  CHECK(new_rx.requests()[0].path == "/moved");
  CHECK(ParseJson(new_rx.requests()[0].body).Str("target") == "t1");
  REQUIRE(
      Eventually([&] { return board.Value("restorewatch_notifier_sent_total", "hook") == 2; }, 10));
  // A notifier removed by a reload goes, with its series.
  hub.Configure({}, {"t0", "t1"});
  CHECK(board.Value("restorewatch_notifier_sent_total", "hook") == -1);
  hub.Stop(std::chrono::seconds(1));
}

TEST_CASE("https receivers: the certificate is verified, against ca_file when given",
          "[unit][notifier]") {
  test::TestDir dir;
  ProcessSpec spec;
  spec.argv = {"openssl",  "req",           "-x509",   "-newkey",
               "rsa:2048", "-nodes",        "-keyout", dir / "tls.key",
               "-out",     dir / "tls.crt", "-days",   "2",
               "-subj",    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"};
  auto made = RunProcess(spec);
  INFO(made.err);
  REQUIRE(made.ok());
  httplib::SSLServer server((dir / "tls.crt").c_str(), (dir / "tls.key").c_str());
  REQUIRE(server.is_valid());
  std::atomic<int> got{0};
  server.Post("/hook", [&](const httplib::Request&, httplib::Response& res) {
    ++got;
    res.status = 200;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread listener([&] { server.listen_after_bind(); });
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/hook";

  test::WriteFile(dir / "agent.toml", "");
  auto load = LoadConfigText("[[notifier]]\nname = \"tls\"\ntype = \"webhook\"\nurl = \"" + url +
                                 "\"\nca_file = \"tls.crt\"\nmax_attempts = 1\n"
                                 "[[notifier]]\nname = \"untrusted\"\ntype = \"webhook\"\n"
                                 "url = \"" +
                                 url + "\"\nmax_attempts = 1\n",
                             dir / "agent.toml");
  INFO((load.errors.empty() ? "" : load.errors[0].ToString()));
  REQUIRE(load.config);
  CHECK(load.config->notifiers[0].ca_file == dir / "tls.crt");
  Board board;
  NotificationHub hub(dir.path(), board.publish());
  hub.Configure(load.config->notifiers, {"blog"});
  hub.OnDrill(Corrupt("blog"));
  REQUIRE(Eventually(
      [&] {
        return board.Value("restorewatch_notifier_sent_total", "tls") == 1 &&
               board.Value("restorewatch_notifier_failed_total", "untrusted") == 1;
      },
      20));
  CHECK(got == 1);  // the self-signed certificate is not in the system's store
  hub.Stop(std::chrono::seconds(1));
  server.stop();
  listener.join();

  auto bad = LoadConfigText(
      "[[notifier]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n"
      "ca_file = \"missing.pem\"\n",
      dir / "agent.toml");
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].ToString().find("notifier[0].ca_file: cannot read") != std::string::npos);
}
