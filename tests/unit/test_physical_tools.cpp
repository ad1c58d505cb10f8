// Per-major binaries for physical drills (PgTools::ForMajor) over a fake /usr/lib/postgresql
// tree of stub executables, pg_checksums' verdict from its real output lines, recovery short of
// the archive, and amcheck's numbers as metrics.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "agent/errors.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"
#include "agent/runtime/drill_metrics.h"
#include "agent/sandboxes/scratch.h"
#include "agent/sources/physical_recovery.h"
#include "agent/state.h"
#include "checks/drill/data_checksums_check.h"
#include "checks/registry.h"

using namespace rw;

namespace {

// <root>/<major>/bin with executable stubs; `postgres --version` prints `says` as its version.
void FakeBinDir(const std::string& root, int major, int says) {
  const std::string bin = root + "/" + std::to_string(major) + "/bin";
  MakeDirs(bin, 0755);
  for (const char* tool : {"postgres", "pg_ctl", "initdb", "pg_restore", "psql", "pg_checksums"}) {
    const std::string path = bin + "/" + tool;
    std::ofstream out(path);
    out << "#!/bin/sh\necho \"" << tool << " (PostgreSQL) " << says << ".4\"\n";
    out.close();
    REQUIRE(chmod(path.c_str(), 0755) == 0);
  }
}

struct TempTree {
  std::string path = MakeTempDir("/tmp", "rwpgbin-");
  ~TempTree() { RemoveTree(path); }
};

}  // namespace

TEST_CASE("a physical drill picks the binaries of the backup's major version",
          "[unit][physical_bad]") {
  TempTree t;
  FakeBinDir(t.path, 14, 14);
  FakeBinDir(t.path, 15, 15);
  FakeBinDir(t.path, 13, 12);  // a dir whose postgres is of another major
  PgTools agent;               // what "auto" found: the newest
  agent.bin_dir = t.path + "/15/bin";
  agent.major = 15;
  agent.detected = true;

  SECTION("the same major: the agent's own") {
    auto p = agent.ForMajor(15, t.path);
    REQUIRE(p);
    CHECK(p->bin_dir == agent.bin_dir);
    CHECK(p->major == 15);
  }
  SECTION("an older major installed beside it") {
    auto p = agent.ForMajor(14, t.path);
    REQUIRE(p);
    CHECK(p->bin_dir == t.path + "/14/bin");
    CHECK(p->major == 14);
    CHECK(p->Path("pg_checksums") == t.path + "/14/bin/pg_checksums");
  }
  SECTION("a major not installed, or a dir whose postgres says otherwise") {
    CHECK_FALSE(agent.ForMajor(16, t.path));
    CHECK_FALSE(agent.ForMajor(13, t.path));
    CHECK_FALSE(agent.ForMajor(0, t.path));
  }
  SECTION("a postgres that is not executable is not used") {
    REQUIRE(chmod((t.path + "/14/bin/postgres").c_str(), 0644) == 0);
    CHECK_FALSE(agent.ForMajor(14, t.path));
  }
  SECTION("a pg_bin_dir set by hand is never swapped") {
    PgTools fixed = agent;
    fixed.detected = false;
    CHECK_FALSE(fixed.ForMajor(14, t.path));
    REQUIRE(fixed.ForMajor(15, t.path));
  }
  SECTION("Detect(path) is not \"auto\"") {
    PgTools d = PgTools::Detect(t.path + "/14/bin");
    CHECK(d.major == 14);
    CHECK_FALSE(d.detected);
  }
}

TEST_CASE("pg_checksums' output becomes the data_checksums verdict", "[unit][physical_bad]") {
  const std::string dir = "/work/sandbox-x/data";
  SECTION("clean") {
    CheckResult r = DataChecksumsVerdict(0,
                                         "Checksum operation completed\nFiles scanned:   943\n"
                                         "Blocks scanned:  2730\nBad checksums:  0\n"
                                         "Data checksum version: 1\n",
                                         "", dir);
    CHECK(r.outcome == Outcome::kPass);
    CHECK(r.message == "pg_checksums --check: no bad block (943 files, 2730 blocks scanned)");
  }
  SECTION("a bad block names the file and block") {
    CheckResult r = DataChecksumsVerdict(
        1,
        "Checksum operation completed\nFiles scanned:   943\nBlocks scanned:  2730\n"
        "Bad checksums:  1\nData checksum version: 1\n",
        "pg_checksums: error: checksum verification failed in file \"" + dir +
            "/base/5/16384\", block 3: calculated checksum 9E84 but block contains 1D7C\n",
        dir);
    CHECK(r.outcome == Outcome::kFail);
    CHECK(r.message ==
          "pg_checksums: 1 bad block(s), first: checksum verification failed in file "
          "\"base/5/16384\", block 3: calculated checksum 9E84 but block contains 1D7C (943 "
          "files, 2730 blocks scanned)");
    REQUIRE(r.details.size() == 1);
    CHECK(r.details[0].table == "base/5/16384");
  }
  SECTION("a copy not shut down cleanly cannot be judged") {
    CheckResult r =
        DataChecksumsVerdict(1, "", "pg_checksums: error: cluster must be shut down\n", dir);
    CHECK(r.outcome == Outcome::kError);
    CHECK(r.message.find("cluster must be shut down") != std::string::npos);
  }
  SECTION("no summary is never a pass") {
    CheckResult r = DataChecksumsVerdict(0, "", "", dir);
    CHECK(r.outcome == Outcome::kError);
  }
}

TEST_CASE("recovery to the end of the archive must reach its newest whole segment",
          "[unit][physical_bad]") {
  const std::uint32_t seg = 16u * 1024u * 1024u;
  ArchiveSnapshot before;
  before.segments = {{"000000010000000000000003", seg},
                     {"000000010000000000000004", seg},
                     {"000000010000000000000005.gz", 4096},  // compressed: whole
                     {"000000010000000000000006", 8192}};    // still being copied
  // Reached the compressed segment 5, or the start of 6 after its switch record: complete.
  CHECK(ReplayShortOfArchive(before, "0/5000148", seg).empty());
  CHECK(ReplayShortOfArchive(before, "0/6000000", seg).empty());
  // Stopped inside segment 4 (a corrupt record): names the LSN and the segment it missed.
  const std::string why = ReplayShortOfArchive(before, "0/4A3F2C8", seg);
  CHECK(why ==
        "recovery stopped at 0/4A3F2C8 in segment 000000010000000000000004, short of the end "
        "of the archive "
        "(000000010000000000000005.gz was archived): the WAL after 0/4A3F2C8 could not be "
        "replayed (a corrupt or unreadable record)");
  // At the very end of segment 4 (its switch record): 5 was still there to read.
  CHECK_FALSE(ReplayShortOfArchive(before, "0/5000000", seg).empty());
  // Nothing archived, or an unknown LSN: nothing to say.
  CHECK(ReplayShortOfArchive(ArchiveSnapshot{}, "0/4A3F2C8", seg).empty());
  CHECK(ReplayShortOfArchive(before, "", seg).empty());
}

TEST_CASE("amcheck's counts reach the metrics as data and survive the history", "[unit][amcheck]") {
  CHECK(MetricsOfCheck("amcheck").tables);
  CHECK(MetricsOfCheck("amcheck").indexes);
  CHECK_FALSE(MetricsOfCheck("checksum").indexes);
  CHECK_FALSE(MetricsOfCheck("data_checksums").tables);
  ChecksConfig on;
  on.amcheck = true;
  bool listed = false;
  for (const auto& c : MakeDrillChecks(on)) listed = listed || c->name() == "amcheck";
  CHECK(listed);
  for (const auto& c : MakeDrillChecks(ChecksConfig{})) CHECK(c->name() != "amcheck");

  DrillReport r;
  r.target = "t";
  r.run_id = "run-1";
  r.result = DrillResult::kFailure;
  CheckResult a;
  a.name = "amcheck";
  a.outcome = Outcome::kFail;
  a.message = "index public.x: ...";
  a.tables_compared = 70;
  a.indexes_checked = 150;
  a.tables_mismatched = 1;
  r.checks.push_back(a);
  auto back = ReportFromToml(ReportToToml(r));
  REQUIRE(back);
  REQUIRE(back->checks.size() == 1);
  CHECK(back->checks[0].indexes_checked == 150);

  TargetConfig t;
  t.name = "t";
  DrillHistorySummary h;
  h.last_run = 1;
  h.last_report = *back;
  auto value = [&](const std::string& family) -> std::optional<double> {
    for (const auto& f : DrillFamilies(t, h, false))
      if (f.name == family)
        for (const auto& s : f.samples)
          for (const auto& [k, v] : s.labels)
            if (k == "check" && v == "amcheck") return s.value;
    return std::nullopt;
  };
  CHECK(value("restorewatch_drill_indexes_checked") == 150);
  CHECK(value("restorewatch_drill_tables_compared") == 70);
  CHECK(value("restorewatch_drill_tables_mismatched") == 1);
}

TEST_CASE("only a sandbox that started a data directory can stop it for offline checks",
          "[unit][physical_bad]") {
  TargetConfig t;
  t.name = "t";
  t.drill.sandbox = SandboxKind::kScratch;
  Environment env;
  auto scratch = MakeScratchSandbox(env, t, "run", "1");
  try {
    scratch->StopDataDirectory();
    FAIL("a scratch sandbox stopped a data directory");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(std::string(e.what()) ==
          "the scratch sandbox cannot stop a data directory for offline checks");
  }
}
