// The HTTP endpoint under an operator's faults and its security, through the real binary:
// idle connections held open while /metrics is scraped, a second daemon on the same address or
// the same state dir, `verify` while the daemon drills the same target, TLS and basic auth
// from a web config, the non-loopback warning, and POST /api/v1/targets/NAME/drill.
#include <arpa/inet.h>
#include <crypt.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/state_lock.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

using test::Eventually;
using test::WriteFile;

// An agent config without targets (it then only serves HTTP).
std::string HttpOnlyConfig(const test::TestDir& dir, const std::string& listen,
                           const std::string& state, const std::string& extra_agent = "") {
  return "[agent]\nlisten = \"" + listen + "\"\nstate_dir = \"" + (dir / state) +
         "\"\nwork_dir = \"" + (dir / "work") + "\"\nlog_format = \"json\"\n" + extra_agent;
}

// A TCP connection that sends nothing.
int IdleConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the server closed the connection (readable with EOF or an error).
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

struct Creds {
  std::string user, password;
};

struct IdleRun {
  int scrapes = 0;
  int failed = 0;  // scrapes without a 200 and a metrics body
  int reopened = 0;
  double worst = 0;  // slowest scrape, seconds
};

// Holds n idle connections to `port` for `seconds` (re-opening those the server closes, so n are
// held the whole time) while `scrape` (returning status and seconds) runs every 200 ms.
template <typename Scrape>
IdleRun HoldIdleWhileScraping(int port, int n, int seconds, Scrape scrape) {
  IdleRun run;
  std::vector<int> idle;
  for (int i = 0; i < n; ++i) idle.push_back(IdleConnect(port));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int& fd : idle) {
      if (fd >= 0 && !ClosedByServer(fd)) continue;
      if (fd >= 0) close(fd);
      fd = IdleConnect(port);
      ++run.reopened;
    }
    test::HttpReply m = scrape();
    ++run.scrapes;
    if (m.status != 200 || m.body.find("restorewatch_build_info") == std::string::npos)
      ++run.failed;
    run.worst = std::max(run.worst, m.seconds);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (int fd : idle)
    if (fd >= 0) close(fd);
  return run;
}

test::HttpReply Request(int port, const std::string& method, const std::string& path,
                        const std::optional<Creds>& creds, const std::string& ca = "",
                        int timeout = 10) {
  test::HttpReply r;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<httplib::ClientImpl> cli;
  if (!ca.empty()) {
    auto ssl = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    ssl->set_ca_cert_path(ca.c_str());
    ssl->enable_server_certificate_verification(true);
    cli = std::move(ssl);
  } else {
    cli = std::make_unique<httplib::ClientImpl>("127.0.0.1", port);
  }
  cli->set_connection_timeout(timeout, 0);
  cli->set_read_timeout(timeout, 0);
  if (creds) cli->set_basic_auth(creds->user.c_str(), creds->password.c_str());
  auto res = method == "POST" ? cli->Post(path.c_str()) : cli->Get(path.c_str());
  if (res) {
    r.status = res->status;
    r.body = res->body;
    r.content_type = res->get_header_value("WWW-Authenticate");  // what these tests look at
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// A bcrypt hash of `password`, made by a tool other than the agent: htpasswd when apache2-utils
// is installed, else Python's crypt module (libxcrypt underneath).
std::string BcryptHash(const std::string& password, std::string* how) {
  if (FindProgram("htpasswd")) {
    ProcessSpec spec;
    spec.argv = {"htpasswd", "-nbBC", "10", "u", password};
    auto r = RunProcess(spec);
    if (r.ok() && r.out.rfind("u:", 0) == 0) {
      *how = "htpasswd";
      std::string h = r.out.substr(2);
      while (!h.empty() && (h.back() == '\n' || h.back() == '\r')) h.pop_back();
      return h;
    }
  }
  ProcessSpec spec;
  spec.argv = {"python3",
               "-W",
               "ignore",
               "-c",
               "import crypt,sys\nprint(crypt.crypt(sys.argv[1], "
               "crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))",
               password};
  auto r = RunProcess(spec);
  if (r.ok() && r.out.rfind("$2", 0) == 0) {
    *how = "python3 crypt";
    std::string h = r.out;
    while (!h.empty() && h.back() == '\n') h.pop_back();
    return h;
  }
  // Neither tool (Python 3.13 dropped crypt): libcrypt directly.
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  REQUIRE(salt != nullptr);
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  REQUIRE(h != nullptr);
  *how = "libcrypt crypt_gensalt_ra + crypt_r";
  return h;
}

// A self-signed certificate for 127.0.0.1 (openssl req).
void MakeCert(const test::TestDir& dir) {
  ProcessSpec spec;
  spec.argv = {"openssl",  "req",           "-x509",   "-newkey",
               "rsa:2048", "-nodes",        "-keyout", dir / "tls.key",
               "-out",     dir / "tls.crt", "-days",   "2",
               "-subj",    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"};
  auto r = RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.ok());
}

}  // namespace

TEST_CASE("idle connections held open while scrapes continue: every scrape answers within 1 s",
          "[integration][http][fault]") {
  test::TestDir dir;
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(port), "state"));
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));

  for (int n : {64, 128}) {
    std::vector<int> idle;
    for (int i = 0; i < n; ++i) {
      int fd = IdleConnect(port);
      REQUIRE(fd >= 0);
      idle.push_back(fd);
    }
    // Longer than the server's keep-alive bound, re-opening what it closes, so that n idle
    // connections are held the whole time.
    double worst = 0;
    int scrapes = 0, reopened = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(6);
    while (std::chrono::steady_clock::now() < end) {
      for (int& fd : idle) {
        if (!ClosedByServer(fd)) continue;
        close(fd);
        fd = IdleConnect(port);
        REQUIRE(fd >= 0);
        ++reopened;
      }
      auto m = test::HttpGet(port, "/metrics", 3);
      ++scrapes;
      INFO(n << " idle connections, scrape " << scrapes);
      REQUIRE(m.status == 200);
      CHECK(m.body.find("restorewatch_build_info") != std::string::npos);
      worst = std::max(worst, m.seconds);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    INFO(n << " idle: " << scrapes << " scrapes, slowest " << worst << " s, " << reopened
           << " idle connections re-opened");
    CHECK(scrapes >= 10);
    CHECK(worst < 1.0);
    if (n == 128) {
      // Idle connections do not hold up a stop either.
      const auto t0 = std::chrono::steady_clock::now();
      agent.Signal(SIGTERM);
      CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
      const double stop_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      INFO("stopped in " << stop_seconds << " s with " << n << " idle connections open");
      CHECK(stop_seconds < 6);
    }
    for (int fd : idle) close(fd);
  }
}

TEST_CASE("a second daemon on the same address fails at start with exit 2",
          "[integration][http][fault]") {
  test::TestDir dir;
  const int port = PickFreePort();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  WriteFile(dir / "a.toml", HttpOnlyConfig(dir, listen, "state-a"));
  WriteFile(dir / "b.toml", HttpOnlyConfig(dir, listen, "state-b"));
  test::AgentProcess a({"run", "-c", dir / "a.toml"}, dir / "a.log");
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  test::AgentProcess b({"run", "-c", dir / "b.toml"}, dir / "b.log");
  const int code = b.WaitExit(std::chrono::seconds(15));
  INFO(b.Log());
  CHECK(code == 2);
  CHECK(b.Log().find("cannot listen on " + listen) != std::string::npos);
  CHECK(b.Log().find("Address already in use") != std::string::npos);
  // The first one still answers every scrape.
  for (int i = 0; i < 5; ++i) CHECK(test::HttpGet(port, "/metrics").status == 200);
  a.Signal(SIGTERM);
  CHECK(a.WaitExit(std::chrono::seconds(15)) == 0);
}

TEST_CASE("a second daemon on the same state dir fails at start, naming the holder's pid",
          "[integration][http][fault]") {
  test::TestDir dir;
  const int pa = PickFreePort();
  int pb = PickFreePort();
  while (pb == pa) pb = PickFreePort();
  WriteFile(dir / "a.toml", HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(pa), "state"));
  WriteFile(dir / "b.toml", HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(pb), "state"));
  test::AgentProcess a({"run", "-c", dir / "a.toml"}, dir / "a.log");
  REQUIRE(Eventually([&] { return test::HttpGet(pa, "/healthz").status == 200; }, 10));
  test::AgentProcess b({"run", "-c", dir / "b.toml"}, dir / "b.log");
  const int code = b.WaitExit(std::chrono::seconds(15));
  INFO(b.Log());
  CHECK(code == 2);
  CHECK(b.Log().find("is in use by another restorewatch daemon (pid " + std::to_string(a.pid()) +
                     ")") != std::string::npos);
  CHECK(test::HttpGet(pb, "/healthz").status == 0);
  a.Signal(SIGTERM);
  CHECK(a.WaitExit(std::chrono::seconds(15)) == 0);
  // Released with its holder: the state dir can be used again.
  test::AgentProcess c({"run", "-c", dir / "b.toml"}, dir / "c.log");
  CHECK(Eventually([&] { return test::HttpGet(pb, "/healthz").status == 200; }, 10));
}

TEST_CASE("TLS and basic auth from a web config guard every path",
          "[integration][http][security]") {
  test::TestDir dir;
  MakeCert(dir);
  std::string how;
  const std::string password = "s3cret pass'word";
  const std::string hash = BcryptHash(password, &how);
  INFO("bcrypt hash made with " << how << ": " << hash);
  REQUIRE(hash.rfind("$2", 0) == 0);
  WriteFile(dir / "web.yml",
            "# exporter-toolkit format\ntls_server_config:\n  cert_file: tls.crt\n"
            "  key_file: tls.key\nbasic_auth_users:\n  prometheus: " +
                hash + "\n");
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  // All interfaces, but with TLS and auth: no warning.
  WriteFile(cfg, HttpOnlyConfig(dir, "0.0.0.0:" + std::to_string(port), "state",
                                "web_config_file = \"web.yml\"\n"));
  auto check = test::RunAgent({"check-config", "-c", cfg});
  CHECK(check.exit_code == 0);
  CHECK(check.out.find("tls on, basic auth on (1 user(s))") != std::string::npos);

  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  const std::string ca = dir / "tls.crt";
  const Creds good{"prometheus", password};
  REQUIRE(Eventually([&] { return Request(port, "GET", "/healthz", good, ca).status == 200; }, 10));

  auto m = Request(port, "GET", "/metrics", good, ca);
  CHECK(m.status == 200);
  CHECK(m.body.find("restorewatch_build_info") != std::string::npos);
  CHECK(Request(port, "GET", "/api/v1/status", good, ca).status == 200);
  CHECK(Request(port, "GET", "/readyz", good, ca).status == 200);
  for (const char* path :
       {"/metrics", "/healthz", "/readyz", "/api/v1/status", "/", "/api/v1/targets/t1/history"}) {
    INFO(path);
    auto none = Request(port, "GET", path, std::nullopt, ca);
    CHECK(none.status == 401);
    CHECK(none.content_type.find("Basic realm=\"restorewatch\"") == 0);
    CHECK(Request(port, "GET", path, Creds{"prometheus", "wrong"}, ca).status == 401);
    CHECK(Request(port, "GET", path, Creds{"nobody", password}, ca).status == 401);
  }
  CHECK(Request(port, "POST", "/api/v1/targets/t1/drill", std::nullopt, ca).status == 401);
  // Plain HTTP on the TLS port gets no HTTP answer.
  CHECK(Request(port, "GET", "/metrics", good, "", 3).status == 0);
  CHECK(test::HttpGet(port, "/healthz", 3).status == 0);
  CHECK(agent.Log().find("non-loopback") == std::string::npos);
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
}

TEST_CASE("a non-loopback listen address without TLS and auth logs a warning",
          "[integration][http][security]") {
  test::TestDir dir;
  const int port = PickFreePort();
  WriteFile(dir / "open.toml", HttpOnlyConfig(dir, "0.0.0.0:" + std::to_string(port), "s1"));
  {
    test::AgentProcess agent({"run", "-c", dir / "open.toml"}, dir / "open.log");
    REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
    INFO(agent.Log());
    CHECK(Eventually(
        [&] {
          return agent.Log().find(
                     "listening on a non-loopback address without TLS and basic "
                     "auth") != std::string::npos;
        },
        5));
    // The drill API is off by default.
    CHECK(Request(port, "POST", "/api/v1/targets/t1/drill", std::nullopt).status == 403);
    agent.Signal(SIGTERM);
    CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
  }
  WriteFile(dir / "local.toml", HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(port), "s2"));
  test::AgentProcess local({"run", "-c", dir / "local.toml"}, dir / "local.log");
  REQUIRE(Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  CHECK(local.Log().find("non-loopback") == std::string::npos);

  // enable_drill_api without basic auth is refused at start and by check-config.
  WriteFile(dir / "api.toml",
            HttpOnlyConfig(dir, "127.0.0.1:0", "s3", "enable_drill_api = true\n"));
  auto cc = test::RunAgent({"check-config", "-c", dir / "api.toml"});
  CHECK(cc.exit_code == 2);
  CHECK(cc.err.find("enable_drill_api") != std::string::npos);
  auto run = test::RunAgent({"run", "-c", dir / "api.toml"}, std::chrono::seconds(20));
  CHECK(run.exit_code == 2);
  CHECK((run.err + run.out).find("the drill API needs basic auth") != std::string::npos);
}

TEST_CASE("drill API and verify never drill the same target at once",
          "[integration][http][fault]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql(
      "create table items(id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  std::string how;
  const std::string hash = BcryptHash("drill-pass", &how);
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: '" + hash + "'\n");
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  // The SQL check sleeps, so each drill lasts a few seconds.
  WriteFile(cfg, HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(port), "state",
                                "web_config_file = \"web.yml\"\nenable_drill_api = true\n") +
                     "\n[[target]]\nname = \"t1\"\nsource = \"" + cluster->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                     "stats_settle = \"1s\"\n\n[[target.checks.sql]]\nname = \"slow\"\n"
                     "query = \"select count(*) from (select pg_sleep(4)) s\"\nexpect = \"= 1\"\n");
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  const Creds ops{"ops", "drill-pass"};
  REQUIRE(Eventually([&] { return Request(port, "GET", "/healthz", ops).status == 200; }, 10));
  auto metric = [&](const std::string& name, const std::vector<std::string>& labels = {}) {
    return test::MetricValue(Request(port, "GET", "/metrics", ops).body, name, labels);
  };

  CHECK(Request(port, "POST", "/api/v1/targets/t1/drill", std::nullopt).status == 401);
  auto unknown = Request(port, "POST", "/api/v1/targets/nope/drill", ops);
  CHECK(unknown.status == 404);
  auto started = Request(port, "POST", "/api/v1/targets/t1/drill", ops);
  INFO(started.body);
  REQUIRE(started.status == 202);
  CHECK(started.body.find("\"status\" : \"started\"") != std::string::npos);
  CHECK(Request(port, "POST", "/api/v1/targets/t1/drill", ops).status == 409);
  REQUIRE(Eventually([&] { return metric("restorewatch_drill_running") == 1.0; }, 20));

  // verify while the daemon drills t1: refused, naming the daemon.
  auto v = test::RunAgent({"verify", "-c", cfg});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 2);
  CHECK(v.out.find("a drill of t1 is already running (pid " + std::to_string(agent.pid()) + ")") !=
        std::string::npos);
  REQUIRE(Eventually([&] { return metric("restorewatch_drill_running") == 0.0; }, 60));
  // Only the daemon's drill ran and was recorded.
  CHECK(metric("restorewatch_drill_runs_total", {"result=\"success\""}) == 1.0);
  CHECK(metric("restorewatch_drill_runs_total", {"result=\"error\""}).value_or(0) == 0.0);

  // And the other way round: while verify drills t1, the API answers 409. The daemon records its
  // drill (and publishes drill_running 0) before it lets go of the target's lock: wait for that.
  REQUIRE(Eventually([&] { return !DrillLockHeld(dir / "state", "t1", nullptr); }, 20));
  test::AgentProcess verify({"verify", "-c", cfg}, dir / "verify.log");
  REQUIRE(Eventually([&] { return DrillLockHeld(dir / "state", "t1", nullptr); }, 20));
  auto busy = Request(port, "POST", "/api/v1/targets/t1/drill", ops);
  CHECK(busy.status == 409);
  CHECK(busy.body.find("already running (pid " + std::to_string(verify.pid()) + ")") !=
        std::string::npos);
  CHECK(verify.WaitExit(std::chrono::seconds(60)) == 0);
  INFO(verify.Log());

  // A requested drill still running at SIGTERM is cancelled and joined: exit 0, no sandbox left.
  REQUIRE(Request(port, "POST", "/api/v1/targets/t1/drill", ops).status == 202);
  REQUIRE(Eventually([&] { return metric("restorewatch_drill_running") == 1.0; }, 20));
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(20)) == 0);
  CHECK(test::ListDir(dir / "work").empty());
}

TEST_CASE("a scheduled drill is skipped while another process holds the target's drill lock",
          "[integration][http][fault]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql("create table items(id int primary key); insert into items values (1);", "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(port), "state") +
                     "\n[[target]]\nname = \"t1\"\nsource = \"" + cluster->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.drill]\n"
                     "schedule = \"* * * * *\"\n");
  // This test process plays `verify`: it holds t1's drill lock across the next minute's slot.
  std::string why;
  auto held = TryLockDrill(dir / "state", "t1", &why);
  REQUIRE(held);
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  const std::string reason =
      "a drill of t1 is already running (pid " + std::to_string(getpid()) + ")";
  CHECK(Eventually([&] { return agent.Log().find(reason) != std::string::npos; }, 75));
  auto m = test::HttpGet(port, "/metrics");
  REQUIRE(m.status == 200);
  CHECK(test::MetricValue(m.body, "restorewatch_drill_running") == 0.0);
  CHECK(test::MetricValue(m.body, "restorewatch_drill_runs_total", {"result=\"success\""})
            .value_or(0) == 0.0);
  CHECK(test::MetricValue(m.body, "restorewatch_drill_runs_total", {"result=\"error\""})
            .value_or(0) == 0.0);
  CHECK(test::ListDir(dir / "work").empty());
  held.reset();
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
}

TEST_CASE(
    "fault: idle connections held open during a drill; it passes and /metrics keeps answering",
    "[integration][http][fault]") {
  test::TestDir dir;
  auto cluster = test::StartCluster(dir);
  cluster->Psql("create database app");
  cluster->Psql(
      "create table items(id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", cluster->ConnInfo("app"), "-f", backups + "/db-1.dump"})
              .ok());
  std::string how;
  WriteFile(dir / "web.yml", "basic_auth_users:\n  ops: " + BcryptHash("idle-pass", &how) + "\n");
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, HttpOnlyConfig(dir, "127.0.0.1:" + std::to_string(port), "state",
                                "web_config_file = \"web.yml\"\nenable_drill_api = true\n") +
                     "\n[[target]]\nname = \"t1\"\nsource = \"" + cluster->ConnInfo("app") +
                     "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + backups +
                     "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\n"
                     "stats_settle = \"1s\"\n\n[[target.checks.sql]]\nname = \"slow\"\n"
                     "query = \"select count(*) from (select pg_sleep(3)) s\"\nexpect = \"= 1\"\n");
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  const Creds ops{"ops", "idle-pass"};
  REQUIRE(Eventually([&] { return Request(port, "GET", "/healthz", ops).status == 200; }, 10));
  REQUIRE(Request(port, "POST", "/api/v1/targets/t1/drill", ops).status == 202);
  auto scrape = [&] { return Request(port, "GET", "/metrics", ops, "", 3); };
  IdleRun run = HoldIdleWhileScraping(port, 128, 8, scrape);
  INFO("128 idle during a drill: " << run.scrapes << " scrapes, slowest " << run.worst << " s, "
                                   << run.failed << " failed, " << run.reopened << " re-opened");
  CHECK(run.scrapes >= 15);
  CHECK(run.failed == 0);
  CHECK(run.worst < 1.0);

  auto metric = [&](const std::string& name, const std::vector<std::string>& labels = {}) {
    return test::MetricValue(Request(port, "GET", "/metrics", ops).body, name, labels);
  };
  REQUIRE(Eventually(
      [&] { return metric("restorewatch_drill_runs_total", {"result=\"success\""}) == 1.0; }, 60));
  CHECK(metric("restorewatch_drill_success") == 1.0);
  CHECK(metric("restorewatch_drill_running") == 0.0);
  auto h = Request(port, "GET", "/api/v1/targets/t1/history", ops);
  REQUIRE(h.status == 200);
  CHECK(h.body.find("\"result\" : \"success\"") != std::string::npos);
  CHECK(h.body.find("\"reason\" : \"\"") != std::string::npos);
  // Nothing left behind: no sandbox dir, no child process.
  CHECK(test::ListDir(dir / "work").empty());
  CHECK(test::ChildrenOf(agent.pid()).empty());
  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(std::chrono::seconds(15)) == 0);
}
