// Backups in an S3 bucket, end to end against a real s3rver on loopback (tests/support/s3rver.h)
// and the real binary: the pg_dump source with backup.path = "s3://..." drills a dump downloaded
// from the bucket (same checks and report as a local dump, the download directory removed after);
// a missing bucket, an unreachable endpoint and an unknown key id fail naming the URL and quoting
// S3's error; the daemon keeps running with a broken S3 location, and a copies entry on S3 that
// lacks the newest backup exports restorewatch_backup_copy_present 0; a base backup and its WAL
// archive in a bucket drill to latest, and the wal_archive collector reads an s3:// archive
// through its incremental mirror (gap found, closed by a late upload). The key never appears.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/copies.h"
#include "agent/errors.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/storage/s3_client.h"
#include "agent/storage/s3_wal_mirror.h"
#include "checks/live/wal_archive_collector.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/physical_fixture.h"
#include "tests/support/s3rver.h"

using namespace rw;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string S3TestConfig(const test::TestDir& dir, const std::string& source,
                         const std::string& path, const std::string& s3_table, int port = 0,
                         const std::string& extra = "") {
  return "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\nstate_dir = \"" +
         (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
         "\"\n\n[[target]]\nname = \"s3t\"\nsource = \"" + source +
         "\"\nmonitor_interval = \"1s\"\n\n[target.backup]\npath = \"" + path +
         "\"\npattern = \"*.dump\"\ncatalogue_interval = \"1s\"\n" + extra +
         "\n[target.drill]\ntimeout = \"5m\"\n\n[target.checks]\nstats_settle = \"1s\"\n\n" +
         s3_table;
}

std::unique_ptr<LocalCluster> SourceWithData(const test::TestDir& dir) {
  auto c = test::StartCluster(dir);
  c->Psql("create database app");
  c->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 5000) g;",
      "app");
  return c;
}

void Dump(const LocalCluster& c, const std::string& format, const std::string& out) {
  auto r = test::RunPgTool("pg_dump", {"-F" + format, "-f", out, "-d", c.ConnInfo("app")});
  INFO(r.err);
  REQUIRE(r.ok());
}

}  // namespace

TEST_CASE("s3: the client lists with pagination and start-after, HEADs and streams objects",
          "[integration][s3]") {
  test::TestDir dir("rws3c-");
  test::S3rver s3(dir, {"bkt"});
  S3Client client(s3.Options());
  CancelToken cancel;
  test::WriteFile(dir / "small", "hello s3");
  // s3rver pages at 1000 keys: 1005 keys need two requests.
  for (int i = 0; i < 1005; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "wal/%06d", i);
    client.PutFile("bkt", key, dir / "small", cancel);
  }
  int requests = 0;
  auto all = client.List("bkt", "wal/", cancel, "", &requests);
  CHECK(all.size() == 1005);
  CHECK(requests == 2);
  CHECK(all.front().key == "wal/000000");
  CHECK(all.back().key == "wal/001004");
  CHECK(all.front().size == 8);
  CHECK(IsPlainMd5Etag(all.front().etag));
  requests = 0;
  CHECK(client.List("bkt", "wal/", cancel, all.back().key, &requests).empty());
  CHECK(requests == 1);  // an unchanged archive costs one small request
  auto head = client.Head("bkt", "wal/000001", cancel);
  REQUIRE(head);
  CHECK(head->size == 8);
  CHECK_FALSE(client.Head("bkt", "wal/nope", cancel));
  REQUIRE(client.GetToFile("bkt", "wal/000002", dir / "got", cancel) == 8);
  CHECK(test::ReadFile(dir / "got") == "hello s3");
  try {
    client.GetToFile("bkt", "wal/nope", dir / "got2", cancel);
    FAIL("no error for a missing key");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "S3 GET " + s3.endpoint() +
                                       "/bkt/wal/nope: HTTP 404 NoSuchKey: The specified key "
                                       "does not exist.");
  }
  CHECK_FALSE(fs::exists(dir / "got2"));  // no partial file left
}

TEST_CASE("s3: the pg_dump source drills a dump downloaded from the bucket", "[integration][s3]") {
  test::TestDir dir("rws3d-");
  test::S3rver s3(dir, {"backups"});
  auto primary = SourceWithData(dir);
  Dump(*primary, "c", dir / "nightly-1.dump");
  s3.Put("backups", "pg/blog/nightly-1.dump", dir / "nightly-1.dump");
  const std::string source = primary->ConnInfo("app");
  const std::string cfg = dir / "agent.toml";

  SECTION("a custom-format dump: the drill passes with the usual checks") {
    test::WriteFile(cfg, S3TestConfig(dir, source, "s3://backups/pg/blog", s3.ConfigTable()));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("s3 download") != std::string::npos);
    CHECK(r.out.find("downloaded s3://backups/pg/blog/nightly-1.dump") != std::string::npos);
    CHECK(r.out.find("row_count") != std::string::npos);
    CHECK(r.out.find("S3RVER") == std::string::npos);
    CHECK(r.err.find("S3RVER") == std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());  // the download is removed after the drill
  }
  SECTION("a directory-format dump: every key below it is downloaded") {
    Dump(*primary, "d", dir / "nightly-2.dump");
    s3.Put("backups", "pg/blog/nightly-2.dump", dir / "nightly-2.dump");
    test::WriteFile(cfg, S3TestConfig(dir, source, "s3://backups/pg/blog", s3.ConfigTable()));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("downloaded s3://backups/pg/blog/nightly-2.dump") != std::string::npos);
    CHECK(test::ListDir(dir / "work").empty());
  }
  SECTION("a missing bucket: a clear error naming the URL") {
    test::WriteFile(cfg, S3TestConfig(dir, source, "s3://nobucket/pg", s3.ConfigTable()));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK((r.out + r.err).find(s3.endpoint() + "/nobucket") != std::string::npos);
    CHECK((r.out + r.err).find("NoSuchBucket") != std::string::npos);
  }
  SECTION("an unreachable endpoint: a clear error naming the URL") {
    const int closed = PickFreePort();
    std::string table = s3.ConfigTable();
    table.replace(table.find(std::to_string(s3.port())), std::to_string(s3.port()).size(),
                  std::to_string(closed));
    test::WriteFile(cfg, S3TestConfig(dir, source, "s3://backups/pg/blog", table));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK((r.out + r.err).find("http://127.0.0.1:" + std::to_string(closed) + "/backups") !=
          std::string::npos);
  }
  SECTION("an unknown key id is refused, quoting S3's error") {
    std::string table = s3.ConfigTable();
    table.replace(table.find("access_key_id = \"S3RVER\""), 24, "access_key_id = \"AKIANOPE\"");
    test::WriteFile(cfg, S3TestConfig(dir, source, "s3://backups/pg/blog", table));
    auto r = test::RunAgent({"verify", "-c", cfg}, 3min);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK((r.out + r.err).find("InvalidAccessKeyId") != std::string::npos);
  }
}

TEST_CASE(
    "s3: the daemon keeps running with a broken S3 location; a copy on S3 lacking the newest "
    "dump is not present",
    "[integration][s3]") {
  test::TestDir dir("rws3k-");
  test::S3rver s3(dir, {"offsite"});
  auto primary = SourceWithData(dir);
  const std::string local = dir / "primary";
  fs::create_directories(local);
  Dump(*primary, "c", local + "/db-1.dump");
  s3.Put("offsite", "pg/db-1.dump", local + "/db-1.dump");  // the copy job ran once
  const int port = PickFreePort();
  const std::string cfg = dir / "agent.toml";
  test::WriteFile(
      cfg,
      S3TestConfig(dir, primary->ConnInfo("app"), local, s3.ConfigTable(), port,
                   "settle = \"100ms\"\ncopies = [{ name = \"s3dr\", path = \"s3://offsite/pg\", "
                   "offsite = true },\n { name = \"gone\", path = \"s3://nobucket/pg\" }]\n"));
  test::AgentProcess agent({"run", "-c", cfg}, dir / "agent.log");
  INFO(agent.Log());
  REQUIRE(test::Eventually([&] { return test::HttpGet(port, "/healthz").status == 200; }, 10));
  auto present = [&](const char* location) {
    return test::MetricValue(test::HttpGet(port, "/metrics").body,
                             "restorewatch_backup_copy_present",
                             {std::string("location=\"") + location + "\""});
  };
  REQUIRE(test::Eventually([&] { return present("s3dr") == 1.0; }, 30));
  CHECK(present("gone") == 0.0);  // a missing bucket: not present, and the agent goes on

  // A newer dump the copy job has not copied yet: the S3 copy lacks it.
  std::this_thread::sleep_for(1100ms);
  Dump(*primary, "c", local + "/db-2.dump");
  CHECK(test::Eventually([&] { return present("s3dr") == 0.0; }, 30));
  CHECK(test::Eventually([&] { return agent.Log().find("nobucket") != std::string::npos; }, 10));
  CHECK(test::HttpGet(port, "/healthz").status == 200);
  // The copy job catches up: present again.
  s3.Put("offsite", "pg/db-2.dump", local + "/db-2.dump");
  CHECK(test::Eventually([&] { return present("s3dr") == 1.0; }, 30));
  CHECK(agent.Log().find("S3RVER") == std::string::npos);
}

TEST_CASE(
    "s3: a base backup and its WAL archive in a bucket drill to latest; the wal_archive "
    "collector reads the archive through its incremental mirror",
    "[integration][s3]") {
  test::TestDir dir("rws3b-");
  test::S3rver s3(dir, {"pgbase"});
  const std::string archive = dir / "archive";
  auto primary = test::StartArchivingPrimary(dir, archive);
  primary->Psql("create database app");
  primary->Psql(
      "create table items (id int primary key, name text);"
      "insert into items select g, 'item ' || g from generate_series(1, 20000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups, 0755, test::ServerUser());
  test::BaseBackup(*primary, backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*primary, archive);
  // Writes after the backup, archived: recovery to latest must bring them.
  primary->Psql("insert into items select g, 'late ' || g from generate_series(20001, 25000) g;",
                "app");
  test::SwitchAndWait(*primary, archive);
  test::SwitchAndWait(*primary, archive);
  s3.Put("pgbase", "base/b1", backups + "/b1");
  std::vector<std::string> segments;
  for (const auto& e : fs::directory_iterator(archive)) {
    const std::string name = e.path().filename().string();
    s3.Put("pgbase", "wal/" + name, e.path().string());
    if (name.size() == 24) segments.push_back(name);
  }
  std::sort(segments.begin(), segments.end());
  REQUIRE(segments.size() >= 3);

  const std::string cfg = dir / "agent.toml";
  test::WriteFile(cfg, test::PhysicalConfig(dir, primary->ConnInfo("app"), "s3://pgbase/base",
                                            "s3://pgbase/wal", "latest") +
                           "\n" + s3.ConfigTable());
  auto r = test::RunAgent({"verify", "-c", cfg}, 5min);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("s3 download") != std::string::npos);
  CHECK(r.out.find("WAL files from s3://pgbase/wal") != std::string::npos);
  CHECK(r.out.find("bytes of WAL replayed") != std::string::npos);
  CHECK(r.out.find("S3RVER") == std::string::npos);
  CHECK(test::ListDir(dir / "work").empty());

  // The collector: continuous; an unchanged archive costs one listing request and no fetch.
  WalArchiveOptions o;
  o.archive_dir = "s3://pgbase/wal";
  o.state_dir = dir / "wstate";
  o.s3 = s3.Options();
  WalArchiveCollector collector(o);
  auto rep = collector.Check();
  INFO(rep.Summary());
  CHECK(rep.ok());
  CHECK(rep.present >= segments.size() - 1);
  S3WalMirror mirror("s3://pgbase/wal", s3.Options(), dir / "mirror");
  CancelToken cancel;
  auto st = mirror.Sync(false, cancel);
  CHECK(st.full);
  CHECK(st.fetched >= segments.size());
  st = mirror.Sync(false, cancel);
  CHECK_FALSE(st.full);
  CHECK(st.requests == 1);
  CHECK(st.fetched == 0);
  // A mirrored segment holds its first page only (sparse), at the object's size.
  struct stat sb {};
  REQUIRE(::stat((dir / "mirror/" + segments.back()).c_str(), &sb) == 0);
  CHECK(sb.st_size == 16 * 1024 * 1024);
  CHECK(sb.st_blocks * 512 < 1024 * 1024);

  // An archive missing a middle segment has a gap naming it; uploading it late closes it.
  for (const auto& name : segments)
    if (name != segments[1]) s3.Put("pgbase", "wal2/" + name, archive + "/" + name);
  o.archive_dir = "s3://pgbase/wal2";
  o.state_dir = dir / "wstate2";
  WalArchiveCollector gappy(o);
  rep = gappy.Check();
  CHECK(rep.missing == 1);
  REQUIRE(rep.gaps.size() == 1);
  CHECK(rep.gaps[0].first_missing == segments[1]);
  s3.Put("pgbase", "wal2/" + segments[1], archive + "/" + segments[1]);
  rep = gappy.Check();
  INFO(rep.Summary());
  CHECK(rep.ok());
}

TEST_CASE("s3: verify_checksum compares an S3 copy's ETag with the primary's MD5",
          "[integration][s3]") {
  test::TestDir dir("rws3m-");
  test::S3rver s3(dir, {"offsite"});
  const std::string local = dir / "primary";
  fs::create_directories(local);
  test::WriteFile(local + "/db-1.dump", std::string(100000, 'a'));
  s3.Put("offsite", "pg/db-1.dump", local + "/db-1.dump");
  TargetConfig t;
  t.name = "t";
  t.backup.paths = {local};
  CopyConfig c;
  c.name = "s3dr";
  c.path = "s3://offsite/pg";
  c.offsite = true;
  t.backup.copies = {c};
  t.backup.verify_checksum = true;
  t.backup.s3 = s3.Options();
  BackupInfo newest;
  newest.id = "db-1.dump";
  newest.path = local + "/db-1.dump";
  CancelToken cancel;
  CopiesChecker checker;
  auto states = checker.Check(t, newest, cancel);
  REQUIRE(states.size() == 2);
  INFO(states[1].reason);
  CHECK(states[1].present);
  CHECK(states[1].medium == "s3:offsite");
  CHECK(states[1].note.empty());  // the ETag was a plain MD5 and matched

  // Same key, same size, other bytes: only the checksum tells.
  test::WriteFile(dir / "other", std::string(100000, 'b'));
  s3.Put("offsite", "pg/db-1.dump", dir / "other");
  states = checker.Check(t, newest, cancel);
  CHECK_FALSE(states[1].present);
  CHECK(states[1].reason.find("does not hold the newest backup db-1.dump: db-1.dump differs from "
                              "the primary's (ETag ") != std::string::npos);
  // Without verify_checksum the same copy passes on key and size.
  t.backup.verify_checksum = false;
  CHECK(checker.Check(t, newest, cancel)[1].present);
}
