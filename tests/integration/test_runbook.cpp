// What on-call needs, end to end with the real binary and PostgreSQL 15:
//  - `verify --json` prints one object {"schema_version": 1, "drills": [...]} on stdout (pure
//    JSON, also for several targets) and the stage progress on stderr;
//  - `restorewatch runbook` describes the last passing drill: the real pg_restore command line
//    (with -j and the database), the durations, the checks with their coverage, never a
//    password; exit 1 before any drill passed, 2 for an unknown target;
//  - the daemon shows a running drill's stage in /api/v1/status, logs "drill progress" lines,
//    and serves the same runbook at /api/v1/targets/NAME/runbook behind basic auth;
//  - a physical drill's runbook holds its restore_command and recovery target settings.
// Every wait is bounded; TestDir removes everything.
#include <crypt.h>
#include <httplib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>

#include "agent/json.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/wal_archive.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;
using test::Eventually;
using test::WriteFile;

namespace {

// The password of the source's role: a space and a quote, and a token a leak would show.
const std::string kPassword = "Runbook Tok'42q";
const std::string kToken = "Tok'42q";

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::string Toml(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A pg_dump source reached over TCP with SCRAM as role rw_app (password kPassword inline in the
// conninfo), with a custom-format dump.
struct DumpSource {
  test::TestDir dir{"rwrunbook-"};
  std::unique_ptr<LocalCluster> pg;
  std::string backups;
  std::string conninfo;
  DumpSource() {
    test::ClusterSpec cs;
    cs.tcp = true;
    cs.settings = {{"password_encryption", "'scram-sha-256'"}};
    pg = test::StartCluster(dir, cs);
    WriteFile(pg->data_dir() + "/pg_hba.conf",
              "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    pg->Psql("select pg_reload_conf()");
    pg->Psql("create database app");
    pg->Psql(
        "create role rw_app login password 'Runbook Tok''42q';"
        "grant pg_monitor, pg_read_all_data to rw_app");
    pg->Psql(
        "create table items(id int primary key, name text, at timestamptz default now());"
        "insert into items (id, name) select g, 'item ' || g from generate_series(1, 60000) g;"
        "create table notes(id int primary key, body text);"
        "insert into notes select g, repeat('n', 50) from generate_series(1, 2000) g;",
        "app");
    backups = dir / "backups";
    MakeDirs(backups);
    REQUIRE(
        test::RunPgTool("pg_dump", {"-Fc", "-d", pg->ConnInfo("app"), "-f", backups + "/db-1.dump"})
            .ok());
    chmod((backups + "/db-1.dump").c_str(), 0644);
    conninfo = "host=127.0.0.1 port=" + std::to_string(pg->port()) +
               " dbname=app user=rw_app password='Runbook Tok\\'42q'";
  }
  std::string Target(const std::string& name, const std::string& path) const {
    return "[[target]]\nname = \"" + name + "\"\nsource = " + Toml(conninfo) +
           "\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = " + Toml(path) +
           "\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.drill]\njobs = 2\n"
           "timeout = \"5m\"\n\n[target.checks]\nstats_settle = \"1s\"\nchecksum = true\n"
           "freshness = { \"public.items\" = \"at\" }\n\n";
  }
  std::string Agent(const std::string& listen, const std::string& extra) const {
    return "[agent]\nlisten = \"" + listen + "\"\nstate_dir = " + Toml(dir / "state") +
           "\nwork_dir = " + Toml(dir / "work") + "\n" + extra + "\n";
  }
};

// A bcrypt hash for the web config (libcrypt; the agent checks it with libcrypt too).
std::string BcryptHash(const std::string& password) {
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  REQUIRE(salt != nullptr);
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  REQUIRE(h != nullptr);
  return h;
}

test::HttpReply Get(int port, const std::string& path, bool auth) {
  test::HttpReply r;
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(10, 0);
  if (auth) cli.set_basic_auth("ops", "runbook-pass");
  auto res = cli.Get(path.c_str());
  if (res) {
    r.status = res->status;
    r.body = res->body;
    r.content_type = res->get_header_value("Content-Type");
  }
  return r;
}

test::HttpReply Post(int port, const std::string& path) {
  test::HttpReply r;
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(10, 0);
  cli.set_basic_auth("ops", "runbook-pass");
  if (auto res = cli.Post(path.c_str())) {
    r.status = res->status;
    r.body = res->body;
  }
  return r;
}

}  // namespace

TEST_CASE("verify --json has one shape; the runbook shows the real pg_restore drill, no secret",
          "[integration][runbook_cmd][verify_json][progress]") {
  DumpSource src;
  const std::string cfg = src.dir / "agent.toml";
  // t1 drills the dump; t2's backup directory holds none (a failure found at discover).
  WriteFile(cfg, src.Agent("127.0.0.1:0", "") + src.Target("t1", src.backups) +
                     src.Target("t2", src.dir / "nothing"));

  // Nothing passed yet: no runbook, exit 1; an unknown target or a missing --target: exit 2.
  auto none = test::RunAgent({"runbook", "-c", cfg, "--target", "t1"});
  CHECK(none.exit_code == 1);
  CHECK(none.out.empty());
  CHECK(Has(none.err, "no passing drill of t1"));
  CHECK(test::RunAgent({"runbook", "-c", cfg, "--target", "nope"}).exit_code == 2);
  CHECK(test::RunAgent({"runbook", "-c", cfg}).exit_code == 2);

  // Both targets: exit 2 (t2's discover found nothing to restore: a failure... or an error),
  // stdout one JSON object with both drills, stderr the stage lines.
  auto v = test::RunAgent({"verify", "-c", cfg, "--json"}, 5min);
  INFO(v.out << "\n--- stderr\n" << v.err);
  CHECK(v.exit_code != 0);
  json::Value doc;
  std::string why;
  REQUIRE(json::Parse(v.out, &doc, &why));
  REQUIRE(doc.t == json::Value::T::kObj);
  CHECK(doc.Num("schema_version") == 1);
  const json::Value* drills = doc.Get("drills");
  REQUIRE(drills);
  REQUIRE(drills->t == json::Value::T::kArr);
  REQUIRE(drills->a.size() == 2);
  CHECK(drills->a[0].Str("target") == "t1");
  CHECK(drills->a[0].Str("result") == "success");
  CHECK(drills->a[1].Str("target") == "t2");
  CHECK(drills->a[1].Str("result") != "success");
  const json::Value* steps = drills->a[0].Get("steps");
  REQUIRE(steps);
  REQUIRE(steps->t == json::Value::T::kArr);
  CHECK(steps->a.size() == 2);  // sandbox start, pg_restore
  CHECK(Has(v.err, "restorewatch verify: t1: discover started"));
  CHECK(Has(v.err, "restorewatch verify: t1: restore started"));
  CHECK(Has(v.err, "restorewatch verify: t1: checks started"));
  CHECK(Has(v.err, "restorewatch verify: t1: cleanup started"));
  CHECK_FALSE(Has(v.out, "started (drill"));
  CHECK_FALSE(Has(v.out + v.err, kToken));

  // One target: the same shape (not a bare object).
  auto one = test::RunAgent({"verify", "-c", cfg, "--json", "--target", "t2"}, 2min);
  REQUIRE(json::Parse(one.out, &doc, &why));
  REQUIRE(doc.Get("drills"));
  CHECK(doc.Get("drills")->a.size() == 1);
  CHECK(doc.Num("schema_version") == 1);

  // The runbook of t1: the real command line, the durations, the checks; no password.
  auto rb = test::RunAgent({"runbook", "-c", cfg, "--target", "t1"});
  INFO(rb.out << rb.err);
  REQUIRE(rb.exit_code == 0);
  const std::string& md = rb.out;
  CHECK(Has(md, "# Restore runbook: t1"));
  CHECK(Has(md, "/pg_restore -d "));
  CHECK(Has(md, "dbname=app"));
  CHECK(Has(md, " -j 2 "));
  CHECK(Has(md, "--no-owner --no-privileges"));
  CHECK(Has(md, src.backups + "/db-1.dump"));
  CHECK(Has(md, "restore: pg_restore ("));  // the step with its duration
  CHECK(Has(md, "| restore | pass |"));     // the stage timings
  CHECK(Has(md, "| checksum | pass |"));
  CHECK(Has(md, "62,000 rows verified"));
  CHECK(Has(md, "RPO measured"));
  CHECK(Has(md, "the dump's snapshot"));
  CHECK(Has(md, "PostgreSQL 15"));
  CHECK(Has(md, "**Roles**: none needed"));
  CHECK(Has(md, "1 of the last 1 drills passed"));
  CHECK_FALSE(Has(md, kToken));
  CHECK_FALSE(Has(md, "password="));

  // --output writes the same text; t2 never passed: exit 1.
  const std::string path = src.dir / "t1-runbook.md";
  CHECK(test::RunAgent({"runbook", "-c", cfg, "--target", "t1", "--output", path}).exit_code == 0);
  const std::string written = test::ReadFile(path);
  // The same text but for the generation time and "ago" on the first lines.
  CHECK(written.substr(written.find("## Last proven")) == md.substr(md.find("## Last proven")));
  CHECK(test::RunAgent({"runbook", "-c", cfg, "--target", "t2"}).exit_code == 1);
  // Nothing of the password in the state dir either (the report keeps the commands).
  for (const auto& f : test::ListDir(src.dir / "state/t1"))
    CHECK_FALSE(Has(test::ReadFile(src.dir / "state/t1" + ("/" + f)), kToken));
}

TEST_CASE("the daemon shows a running drill's stage and serves the runbook behind basic auth",
          "[integration][progress][runbook_cmd]") {
  DumpSource src;
  // More data, so the drill runs long enough to be seen running.
  src.pg->Psql(
      "insert into items (id, name) select g, repeat('x', 200) from generate_series(60001, "
      "400000) g;",
      "app");
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fc", "-d", src.pg->ConnInfo("app"), "-f", src.backups + "/db-2.dump"})
              .ok());
  chmod((src.backups + "/db-2.dump").c_str(), 0644);
  WriteFile(src.dir / "web.yml",
            "basic_auth_users:\n  ops: '" + BcryptHash("runbook-pass") + "'\n");
  const int port = PickFreePort();
  const std::string cfg = src.dir / "agent.toml";
  WriteFile(cfg, src.Agent("127.0.0.1:" + std::to_string(port),
                           "web_config_file = \"web.yml\"\nenable_drill_api = true\n") +
                     src.Target("t1", src.backups));
  test::AgentProcess agent({"run", "-c", cfg}, src.dir / "agent.log",
                           {{"RESTOREWATCH_PROGRESS_INTERVAL", "300ms"}});
  INFO(agent.Log());
  REQUIRE(Eventually([&] { return Get(port, "/readyz", true).status == 200; }, 30));
  // Before any drill: no runbook (404, saying why); behind auth like every path.
  auto before = Get(port, "/api/v1/targets/t1/runbook", true);
  CHECK(before.status == 404);
  CHECK(Has(before.body, "no passing drill of t1"));
  CHECK(Get(port, "/api/v1/targets/t1/runbook", false).status == 401);

  REQUIRE(Post(port, "/api/v1/targets/t1/drill").status == 202);
  // While it runs, the status names the stage and how long it has run.
  std::string seen_stage, status_body;
  Eventually(
      [&] {
        status_body = Get(port, "/api/v1/status", true).body;
        json::Value st;
        if (!json::Parse(status_body, &st)) return false;
        const json::Value* targets = st.Get("targets");
        if (!targets || targets->a.empty()) return false;
        const json::Value* p = targets->a[0].Get("drill_progress");
        if (!p || p->Str("stage").empty()) return false;
        if (p->Num("drill_elapsed_seconds") <= 0) return false;
        seen_stage = p->Str("stage");
        return true;
      },
      60);
  INFO(status_body);
  CHECK_FALSE(seen_stage.empty());
  CHECK(Has(status_body, "\"stage_elapsed_seconds\""));
  CHECK(Has(status_body, "\"line\""));
  // The drill passes; then there is no progress object any more, and the runbook is served.
  REQUIRE(Eventually(
      [&] {
        return test::MetricValue(Get(port, "/metrics", true).body, "restorewatch_drill_runs_total",
                                 {"target=\"t1\"", "result=\"success\""}) == 1.0;
      },
      180));
  CHECK_FALSE(Has(Get(port, "/api/v1/status", true).body, "\"drill_progress\""));
  // The ticker's log lines: the stage, its elapsed time, what is done.
  const std::string log = agent.Log();
  CHECK(Has(log, "drill progress"));
  CHECK(Has(log, "stage_elapsed_seconds="));
  CHECK((Has(log, "restored") || Has(log, "tables hashed")));

  auto api = Get(port, "/api/v1/targets/t1/runbook", true);
  INFO(api.body);
  REQUIRE(api.status == 200);
  CHECK(Has(api.content_type, "text/markdown"));
  auto cli = test::RunAgent({"runbook", "-c", cfg, "--target", "t1"});
  REQUIRE(cli.exit_code == 0);
  CHECK(api.body.substr(api.body.find("## Last proven")) ==
        cli.out.substr(cli.out.find("## Last proven")));
  CHECK(Has(api.body, "db-2.dump"));
  CHECK_FALSE(Has(api.body, kToken));
  CHECK(Get(port, "/api/v1/targets/t1/runbook", false).status == 401);
  CHECK(Get(port, "/api/v1/targets/nope/runbook", true).status == 404);
}

namespace {

void BaseBackup(const LocalCluster& c, const std::string& dir) {
  ProcessSpec spec;
  spec.argv = {test::Tools().Path("pg_basebackup"),
               "-h",
               c.socket_dir(),
               "-p",
               std::to_string(c.port()),
               "-U",
               "postgres",
               "-D",
               dir,
               "-c",
               "fast",
               "-Fp"};
  spec.run_as = test::ServerUser();
  spec.timeout = 3min;
  ProcessResult r = RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.ok());
}

void SwitchAndWait(const LocalCluster& c, const std::string& archive) {
  std::string seg = c.Psql("select pg_walfile_name(pg_switch_wal())");
  while (!seg.empty() && (seg.back() == '\n' || seg.back() == ' ')) seg.pop_back();
  REQUIRE(seg.size() == 24);
  REQUIRE(Eventually(
      [&] {
        struct stat st {};
        return ::stat((archive + "/" + seg).c_str(), &st) == 0 &&
               st.st_size == static_cast<off_t>(wal::kDefaultSegmentSize);
      },
      30));
}

}  // namespace

TEST_CASE("the runbook of a physical drill holds its restore_command and recovery target",
          "[integration][runbook_cmd][physical]") {
  test::TestDir dir("rwrunbookp-");
  const std::string archive = dir / "archive";
  MakeDirs(archive, 0700, test::ServerUser());
  test::ClusterSpec ps;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"},
                 {"max_wal_senders", "10"}};
  auto primary = test::StartCluster(dir, ps);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups, 0755, test::ServerUser());
  BaseBackup(*primary, backups + "/b1");
  SwitchAndWait(*primary, archive);
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = " + Toml(dir / "state") +
                     "\nwork_dir = " + Toml(dir / "work") + "\n\n[[target]]\nname = \"phys\"\n" +
                     "source = " + Toml(primary->ConnInfo("app")) +
                     "\n\n[target.backup]\ntype = \"basebackup\"\npath = " + Toml(backups) +
                     "\nwal_archive = " + Toml(archive) +
                     "\n\n[target.drill]\nrecovery_target = \"immediate\"\ntimeout = \"5m\"\n\n"
                     "[target.checks]\nstats_settle = \"1s\"\n");
  // Text mode, stderr not a terminal: the stage lines, and the periodic "drill progress" log
  // line (every 200 ms here).
  ProcessSpec spec;
  spec.argv = {test::AgentBinary(), "verify", "-c", cfg};
  spec.env = {{"RESTOREWATCH_PROGRESS_INTERVAL", "200ms"}};
  spec.timeout = 5min;
  ProcessResult v = RunProcess(spec);
  INFO(v.out << v.err);
  REQUIRE(v.exit_code == 0);
  CHECK(Has(v.err, "restorewatch verify: phys: fetch started"));
  CHECK(Has(v.err, "restorewatch verify: phys: recovery started"));
  CHECK(Has(v.err, "drill progress"));
  CHECK(Has(v.err, "stage_elapsed_seconds="));
  CHECK_FALSE(Has(v.out, "drill progress"));
  auto rb = test::RunAgent({"runbook", "-c", cfg, "--target", "phys"});
  INFO(rb.out << rb.err);
  REQUIRE(rb.exit_code == 0);
  const std::string& md = rb.out;
  CHECK(Has(md, "/pg_verifybackup -m " + backups + "/b1/backup_manifest"));
  CHECK(Has(md, "cp -a -- " + backups + "/b1/."));
  CHECK(Has(md, "restore_command = 'f=''" + archive + "''/%f;"));
  CHECK(Has(md, "recovery_target = 'immediate'"));
  CHECK(Has(md, "recovery_target_action = 'promote'"));
  CHECK(Has(md, "`recovery.signal`"));
  CHECK(Has(md, "recovery: wal replay ("));
  CHECK(Has(md, "LSN "));
  CHECK(Has(md, "a physical copy needs this same major version"));
  CHECK(Has(md, "archive_mode = off"));
}
