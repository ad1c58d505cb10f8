// Bad inputs to physical drills, end to end through `restorewatch verify` (the real binary): a
// primary archiving WAL under a pgbench workload, plain and tar base backups, then one bad input
// each: a WAL segment missing between a backup's start and end, a corrupted segment recovery
// needs, a file the manifest lists missing from a plain backup, a half-copied newest backup.
// Each ends with a one-line reason naming the segment, LSN or file (never a pass for a bad
// backup), within a small drill timeout, and leaves work_dir empty. (A base backup of another
// major version: test_physical_drill.cpp.) Every wait is bounded; TestDir removes everything.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <regex>

#include "agent/pg/process.h"
#include "agent/wal_archive.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/physical_fixture.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

// A primary with pgbench's tables in `app`, archiving WAL, and the agent's config for it.
struct Bench {
  test::TestDir dir{"rwbad-"};
  std::string archive = dir / "archive";
  std::string backups = dir / "backups";
  std::string cfg = dir / "agent.toml";
  std::unique_ptr<LocalCluster> primary;
  Bench() {
    primary = test::StartArchivingPrimary(dir, archive);
    primary->Psql("create database app");
    test::Pgbench(*primary, "app", {"-i", "-s", "1", "-q"});
    test::Pgbench(*primary, "app", {"-t", "200", "-c", "2"});
    MakeDirs(backups, 0755, test::ServerUser());
    Config("latest");
  }
  void Config(const std::string& target) {
    // The comparing checks are off (the drill's verdict on the backup is what is tested); a small
    // drill timeout bounds every case.
    test::WriteFile(
        cfg, test::PhysicalConfig(dir, primary->ConnInfo("app"), backups, archive, target, "2m",
                                  "row_count = false\nchecksum = false\n"));
  }
  ProcessResult Verify() { return test::RunAgent({"verify", "-c", cfg}, 4min); }
};

}  // namespace

TEST_CASE("physical bad input: a WAL segment missing between the backup's start and end",
          "[integration][physical_bad]") {
  Bench b;
  // A tar backup without its own WAL (-X none), slowed down so that the WAL moves on by two
  // segments while it streams the data files: its WAL range then spans three segments.
  ProcessSpec spec;
  spec.argv = {test::Tools().Path("pg_basebackup"),
               "-h",
               b.primary->socket_dir(),
               "-p",
               std::to_string(b.primary->port()),
               "-U",
               "postgres",
               "-D",
               b.backups + "/b1",
               "-Ft",
               "-X",
               "none",
               "-c",
               "fast",
               "--max-rate=4M"};
  spec.run_as = test::ServerUser();
  auto backup = std::make_unique<ChildProcess>(spec, b.dir / "basebackup.log");
  REQUIRE(test::Eventually(
      [&] {
        return test::Trim(b.primary->Psql("select count(*) from pg_stat_progress_basebackup"
                                          " where phase = 'streaming database files'")) == "1";
      },
      60));
  test::Pgbench(*b.primary, "app", {"-t", "50"});
  const std::string first = test::SwitchAndWait(*b.primary, b.archive);  // where it started
  test::Pgbench(*b.primary, "app", {"-t", "50"});
  const std::string middle = test::SwitchAndWait(*b.primary, b.archive);
  REQUIRE(test::Eventually([&] { return !backup->Running(); }, 120));
  const int st = backup->Stop(SIGTERM, 1s);
  INFO(test::ReadFile(b.dir / "basebackup.log"));
  REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  // The backup started in `first` and ended after `middle`: the manifest's WAL range says so.
  const std::string manifest = test::ReadFile(b.backups + "/b1/backup_manifest");
  std::smatch m;
  REQUIRE(std::regex_search(
      manifest, m, std::regex("\"Start-LSN\": \"([0-9A-F/]+)\", \"End-LSN\": \"([0-9A-F/]+)\"")));
  const auto start = wal::ParseLsn(m[1].str()), end = wal::ParseLsn(m[2].str());
  REQUIRE(start);
  REQUIRE(end);
  CHECK(wal::SegmentName(1, wal::SegmentNo(*start, wal::kDefaultSegmentSize),
                         wal::kDefaultSegmentSize) == first);
  REQUIRE(wal::SegmentNo(*end, wal::kDefaultSegmentSize) >
          wal::SegmentNo(*start, wal::kDefaultSegmentSize) + 1);
  REQUIRE(::unlink((b.archive + "/" + middle).c_str()) == 0);
  test::SwitchAndWait(*b.primary, b.archive);

  auto r = b.Verify();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("WAL segment " + middle + " is missing from the archive") != std::string::npos);
  CHECK(r.out.find("the backup needs it") != std::string::npos);
  CHECK(test::ListDir(b.dir / "work").empty());
}

TEST_CASE("physical bad input: a corrupted WAL segment that recovery needs",
          "[integration][physical_bad]") {
  Bench b;
  test::BaseBackup(*b.primary, b.backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*b.primary, b.archive);
  test::Pgbench(*b.primary, "app", {"-t", "300", "-c", "2"});
  // Where this segment's records end, to flip bytes inside them (not in the zeroes after).
  const std::string lsn = test::Trim(b.primary->Psql("select pg_current_wal_lsn()::text"));
  const auto at = wal::ParseLsn(lsn);
  REQUIRE(at);
  const std::uint64_t used = *at % wal::kDefaultSegmentSize;
  REQUIRE(used > 64 * 1024);
  const std::string bad = test::SwitchAndWait(*b.primary, b.archive);
  test::Pgbench(*b.primary, "app", {"-t", "100"});
  const std::string after = test::SwitchAndWait(*b.primary, b.archive);
  {
    const std::string path = b.archive + "/" + bad;
    std::string data = test::ReadFile(path);
    REQUIRE(data.size() == wal::kDefaultSegmentSize);
    std::size_t off = used / 2;
    off = off - off % 8192 + 4000;  // inside a page, away from its header
    for (std::size_t i = 0; i < 64; ++i) data[off + i] = static_cast<char>(data[off + i] ^ 0xa5);
    test::WriteFile(path, data);
  }
  auto r = b.Verify();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  // Recovery stops at the corrupt record, inside the bad segment, and says so with its LSN.
  CHECK(r.out.find("in segment " + bad + ", short of the end of the archive (" + after) !=
        std::string::npos);
  CHECK(r.out.find("could not be replayed") != std::string::npos);
  CHECK(test::ListDir(b.dir / "work").empty());
}

TEST_CASE("physical bad input: a file the manifest lists is missing from a plain backup",
          "[integration][physical_bad]") {
  Bench b;
  test::BaseBackup(*b.primary, b.backups + "/b1", {"-Fp"});
  test::SwitchAndWait(*b.primary, b.archive);
  const std::string rel =
      test::Trim(b.primary->Psql("select pg_relation_filepath('pgbench_branches')", "app"));
  REQUIRE(::unlink((b.backups + "/b1/" + rel).c_str()) == 0);
  auto r = b.Verify();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no complete base backup in " + b.backups) != std::string::npos);
  CHECK(r.out.find(rel) != std::string::npos);
  CHECK(test::ListDir(b.dir / "work").empty());
}

TEST_CASE("physical bad input: a half-copied newest backup is never drilled as the latest",
          "[integration][physical_bad]") {
  Bench b;
  test::BaseBackup(*b.primary, b.backups + "/b1", {"-Ft"});
  test::SwitchAndWait(*b.primary, b.archive);
  test::Pgbench(*b.primary, "app", {"-t", "100"});
  // Newer ones, each cut short: one still named as a copy in flight, one whose copy lost a file.
  test::BaseBackup(*b.primary, b.backups + "/b2.partial", {"-Fp"});
  test::BaseBackup(*b.primary, b.backups + "/b3", {"-Fp"});
  const std::string rel =
      test::Trim(b.primary->Psql("select pg_relation_filepath('pgbench_accounts')", "app"));
  REQUIRE(::truncate((b.backups + "/b3/" + rel).c_str(), 8192) == 0);
  REQUIRE(::unlink((b.backups + "/b2.partial/backup_manifest").c_str()) == 0);
  test::SwitchAndWait(*b.primary, b.archive);
  auto r = b.Verify();
  INFO(r.out << r.err);
  // The older complete backup is drilled (and passes); the cut-short ones are named.
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("base backup b1 (tar)") != std::string::npos);
  CHECK((r.out + r.err).find("newer base backup b3 skipped") != std::string::npos);
  CHECK(test::ListDir(b.dir / "work").empty());

  // With nothing complete left, the drill fails naming why the newest is not usable.
  REQUIRE(RemoveTree(b.backups + "/b1"));
  r = b.Verify();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no complete base backup in " + b.backups) != std::string::npos);
  CHECK(r.out.find(rel) != std::string::npos);
  CHECK(test::ListDir(b.dir / "work").empty());
}
