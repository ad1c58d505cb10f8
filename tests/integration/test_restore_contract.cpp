// The sandbox host's physical primitives against real PostgreSQL 15: the ephemeral sandbox hands
// out an empty data directory owned by the server user, a real pg_basebackup of a test cluster
// fills it, and StartDataDirectory() starts it in archive recovery on a unix socket only, with
// archive_mode off even when the backup's own postgresql.auto.conf turns it on; everything is
// removed afterwards. No source uses these primitives yet; this test is their contract.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "agent/sandboxes/ephemeral.h"
#include "checks/registry.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

Environment TestEnv(const test::TestDir& work) {
  Environment env;
  env.pg = test::Tools();
  env.run_as = test::ServerUser();
  env.work_dir = work.path();
  return env;
}

std::string One(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  auto row = tx.exec1(sql);
  return row[0].is_null() ? "" : row[0].c_str();
}

}  // namespace

TEST_CASE("an ephemeral sandbox starts a pg_basebackup copy in recovery, isolated from the source",
          "[integration][contract][sandbox]") {
  test::TestDir src_dir("rwsrc-"), work("rwwork-"), archive("rwarchive-");
  auto source = test::StartCluster(src_dir);
  source->Psql("create table t(i int); insert into t select generate_series(1, 500);");
  // What a restored copy must never obey: archiving into the real archive.
  source->Psql("alter system set archive_mode = on");
  source->Psql("alter system set archive_command = 'false'");

  Environment env = TestEnv(work);
  TargetConfig target;
  target.name = "phys";
  CancelToken cancel;
  auto sb = MakeEphemeralSandbox(env, target, "20261202T000000Z-aaaa", "");
  REQUIRE(sb->capabilities().can_start_from_files);
  REQUIRE(sb->capabilities().can_create_cluster);

  std::string data = sb->NewDataDirectory(cancel);
  CHECK_THAT(data, Catch::StartsWith(work.path() + "/sandbox-phys-"));
  CHECK(test::ListDir(data).empty());
  struct stat st {};
  REQUIRE(stat(data.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  if (test::ServerUser()) CHECK(st.st_uid == test::ServerUser()->uid);
  // The sandbox dir carries the owner's marker, so a crash sweep can find it.
  auto top = test::ListDir(work.path());
  REQUIRE(top.size() == 1);
  CHECK(test::ReadFile(work / top[0] + "/.restorewatch").find("target=phys") != std::string::npos);

  // A real base backup, taken as the server user so the files are its own.
  ProcessSpec bb;
  bb.argv = {env.pg.Path("pg_basebackup"),
             "-h",
             source->socket_dir(),
             "-p",
             std::to_string(source->port()),
             "-U",
             "postgres",
             "-D",
             data,
             "-X",
             "stream",
             "-c",
             "fast"};
  bb.run_as = test::ServerUser();
  bb.timeout = std::chrono::minutes(2);
  ProcessResult r = RunProcess(bb);
  INFO(r.Summary());
  REQUIRE(r.ok());

  DataDirStart how;
  how.signal_files = {"recovery.signal"};
  how.timeout = std::chrono::minutes(2);

  SECTION("settings that are the sandbox's own are refused, and nothing starts") {
    how.settings = {{"archive_mode", "on"}};
    try {
      sb->StartDataDirectory(data, how, cancel);
      FAIL("StartDataDirectory accepted archive_mode");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kConfig);
      CHECK(std::string(e.what()).find("archive_mode is the sandbox's own") != std::string::npos);
    }
    CHECK(sb->ConnInfo("postgres").empty());
    try {
      sb->StartDataDirectory(work / "elsewhere", DataDirStart{}, cancel);
      FAIL("StartDataDirectory accepted a dir it did not hand out");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kConfig);
    }
  }

  SECTION("a server that exits during recovery is reported with its own reason") {
    // Hot standby refuses a max_wal_senders below the primary's: the startup process stops
    // after the readiness probes were already refused as "starting up".
    how.settings = {{"restore_command", "'cp " + archive.path() + "/%f %p'"},
                    {"max_wal_senders", "0"}};
    try {
      sb->StartDataDirectory(data, how, cancel);
      FAIL("recovery started with max_wal_senders below the primary's");
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.kind() == ErrorKind::kProcess);
      CHECK(std::string(e.what()).find("insufficient parameter settings") != std::string::npos);
      CHECK(std::string(e.what()).find("starting up") == std::string::npos);
    }
  }

  SECTION("it recovers to consistency, promotes and serves the data") {
    how.settings = {{"restore_command", "'cp " + archive.path() + "/%f %p'"},
                    {"recovery_target", "'immediate'"},
                    {"recovery_target_action", "'promote'"}};
    sb->StartDataDirectory(data, how, cancel);
    auto c = ConnectSandbox(sb->LibpqConnInfo("postgres"));
    CHECK(test::Eventually([&] { return One(*c, "select pg_is_in_recovery()::text") == "false"; },
                           60));
    CHECK(One(*c, "select count(*) from t") == "500");
    CHECK(One(*c, "select current_setting('archive_mode')") == "off");
    CHECK(One(*c, "select current_setting('listen_addresses')") == "");
    CHECK(One(*c, "select current_setting('primary_conninfo')") == "");
    CHECK(One(*c, "select current_setting('data_directory')") == data);
    // A different cluster from the source's server, though the same system identifier.
    CHECK(sb->ConnInfo("postgres").find(source->socket_dir()) == std::string::npos);
    c.reset();
    // Nothing reached the source's archive dir (archive_mode stayed off).
    CHECK(test::ListDir(archive.path()).empty());
    // A second data directory, or initdb on top, is refused.
    CHECK_THROWS_AS(sb->NewDataDirectory(cancel), Error);
    CHECK_THROWS_AS(sb->Start(15, cancel), Error);
  }

  CHECK(sb->Cleanup().empty());
  CHECK(test::ListDir(work.path()).empty());
  // The source is untouched and still serves.
  CHECK(source->Psql("select count(*) from t").find("500") != std::string::npos);
}

TEST_CASE("a data directory that fails to start is reported with the server's reason and removed",
          "[integration][contract][sandbox]") {
  test::TestDir work("rwwork-");
  Environment env = TestEnv(work);
  TargetConfig target;
  target.name = "phys";
  CancelToken cancel;
  auto sb = MakeEphemeralSandbox(env, target, "run-bad", "");
  std::string data = sb->NewDataDirectory(cancel);
  // Not a data directory at all.
  try {
    sb->StartDataDirectory(data, DataDirStart{}, cancel);
    FAIL("an empty dir started");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kIo);
    CHECK(std::string(e.what()).find("no PG_VERSION") != std::string::npos);
  }
  // A real data directory asked to do archive recovery without a restore_command: the server
  // exits, and the error carries its FATAL line.
  ProcessSpec init;
  init.argv = {env.pg.Path("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-N"};
  init.run_as = test::ServerUser();
  init.timeout = std::chrono::minutes(2);
  ProcessResult r = RunProcess(init);
  INFO(r.Summary());
  REQUIRE(r.ok());
  DataDirStart how;
  how.signal_files = {"recovery.signal"};
  how.timeout = std::chrono::seconds(60);
  try {
    sb->StartDataDirectory(data, how, cancel);
    FAIL("archive recovery started without a restore_command");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kProcess);
    CHECK(std::string(e.what()).find("restore_command") != std::string::npos);
  }
  CHECK(sb->Cleanup().empty());
  CHECK(test::ListDir(work.path()).empty());
}

TEST_CASE("freshness measures from the copy's point, not from the backup's start",
          "[integration][contract][checks]") {
  test::TestDir dir("rwsrc-");
  auto cluster = test::StartCluster(dir);
  // One row at a known time; the same cluster stands for the source and the copy.
  cluster->Psql(
      "create table posts(id int, created_at timestamptz);"
      "insert into posts values (1, to_timestamp(1000000));");
  TargetConfig target;
  target.name = "t";
  target.source = ConnSpec{cluster->ConnInfo("postgres"), ""};
  target.checks.freshness = {{"public.posts", "created_at"}};
  BackupInfo backup;
  backup.id = "b";
  backup.started_at = 1000000 + 7200;  // the backup started 2h after the row
  CancelToken cancel;
  CheckContext ctx{target, backup, cluster->ConnInfo("postgres"), nullptr, cancel, {}, {}};
  ctx.consistent_at = 1000000 + 60;  // but the copy represents 1 minute after it
  auto checks = MakeDrillChecks(target.checks);
  CheckResult res;
  for (auto& c : checks)
    if (c->name() == "freshness") res = c->Run(ctx);
  INFO(res.message);
  CHECK(res.outcome == Outcome::kPass);
  CHECK(res.message.find("1m before the backup") != std::string::npos);
  CHECK(res.message.find("2h") == std::string::npos);
}
