// The building blocks of the `basebackup` source on real artefacts: a PostgreSQL 15 primary with
// archive_mode=on and a `cp` archive_command, a pgbench load and pg_switch_wal() so several
// segments are archived, pg_basebackup -Fp, -Ft and -Ft --compress=gzip. Asserts what the
// catalogue, pg_verifybackup and the WAL continuity check report against what the server and
// pg_backup_stop (the .backup history file) say; damages copies and checks the file or segment
// is named. Every wait is bounded; TestDir removes everything.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/sources/basebackup_catalogue.h"
#include "agent/sources/basebackup_verify.h"
#include "agent/wal_archive.h"
#include "checks/live/collector_util.h"
#include "checks/live/wal_archive_collector.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;
namespace bb = rw::basebackup;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// pg_basebackup as the server user, so the backup belongs to it (as it would in production).
void BaseBackup(const LocalCluster& c, const std::string& dir,
                const std::vector<std::string>& extra) {
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
               "--manifest-checksums=SHA256"};
  spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
  spec.run_as = test::ServerUser();
  spec.timeout = 3min;
  ProcessResult r = RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.ok());
}

void Pgbench(const LocalCluster& c, const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"-h", c.socket_dir(), "-p", std::to_string(c.port()),
                                "-U", "postgres"};
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back("postgres");
  auto r = test::RunPgTool("pgbench", a);
  INFO(r.err);
  REQUIRE(r.ok());
}

// Switches to a new segment and waits (bounded) until the one just finished is archived.
std::string SwitchAndWait(const LocalCluster& c, const std::string& archive) {
  std::string seg = Trim(c.Psql("select pg_walfile_name(pg_switch_wal())"));
  REQUIRE(seg.size() == 24);
  REQUIRE(test::Eventually([&] { return ::access((archive + "/" + seg).c_str(), F_OK) == 0; }, 30));
  // The archive_command is `cp`: wait for it to have written the whole file.
  REQUIRE(test::Eventually(
      [&] {
        struct stat st {};
        return ::stat((archive + "/" + seg).c_str(), &st) == 0 &&
               st.st_size == static_cast<off_t>(wal::kDefaultSegmentSize);
      },
      30));
  return seg;
}

void Cp(const std::string& from, const std::string& to) {
  ProcessSpec spec;
  spec.argv = {"cp", "-a", from, to};
  REQUIRE(RunProcess(spec).ok());
}

std::string ReadText(const std::string& path) { return test::ReadFile(path); }

// "KEY: value" of a backup_label / .backup file.
std::string Field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
  return "";
}

const bb::BaseBackupEntry* Find(const bb::BaseBackupCatalogue& cat, const std::string& id) {
  for (const auto& b : cat.backups)
    if (b.id == id) return &b;
  return nullptr;
}

test::ClusterSpec ArchivingPrimary(const std::string& archive) {
  test::ClusterSpec ps;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"},
                 {"max_wal_senders", "10"}};
  return ps;
}

}  // namespace

TEST_CASE("base backups of a real primary: catalogue, pg_verifybackup and WAL continuity",
          "[integration][basebackup]") {
  test::TestDir dir("rwbb-");
  const std::string archive = dir / "archive";
  const std::string backups = dir / "backups";
  MakeDirs(archive, 0700, test::ServerUser());
  MakeDirs(backups, 0700, test::ServerUser());
  auto primary = test::StartCluster(dir, ArchivingPrimary(archive));
  Pgbench(*primary, {"-i", "-s", "2", "-q"});
  SwitchAndWait(*primary, archive);

  BaseBackup(*primary, backups + "/1-plain", {"-Fp", "-X", "stream"});
  Pgbench(*primary, {"-T", "2", "-c", "2"});
  SwitchAndWait(*primary, archive);
  BaseBackup(*primary, backups + "/2-tar", {"-Ft", "-X", "stream"});
  Pgbench(*primary, {"-t", "500", "-c", "2"});
  SwitchAndWait(*primary, archive);
  // Same second as 2-tar is possible: the LSN orders them then.
  BaseBackup(*primary, backups + "/3-targz", {"-Ft", "-X", "stream", "--compress=gzip"});
  Pgbench(*primary, {"-t", "500", "-c", "2"});
  SwitchAndWait(*primary, archive);
  Pgbench(*primary, {"-t", "500", "-c", "2"});
  const std::string newest_archived = SwitchAndWait(*primary, archive);

  bb::CatalogueOptions co;
  co.wal_archive = archive;

  INFO("step: the catalogue finds the three backups, the newest is latest");
  auto cat = bb::ReadCatalogue(backups, co);
  REQUIRE(cat.backups.size() == 3);
  for (const auto& b : cat.backups) {
    INFO(b.id << ": " << b.problem);
    CHECK(b.complete);
    CHECK(b.server_major == 15);
    CHECK(b.start_timeline == 1);
    CHECK(b.stop_timeline == 1);
    CHECK(b.wal_included);
    CHECK(b.checksum_algorithm == "SHA256");
    CHECK(b.file_count > 900);
    CHECK(b.data_bytes > 20u * 1024 * 1024);  // pgbench scale 2
    // The exact stop from the .backup file pg_backup_stop wrote into the archive.
    CHECK(b.stop_time_exact);
    REQUIRE(b.start_time);
    CHECK(b.stop_time >= *b.start_time);
    CHECK(b.stop_time <= NowUnix() + 1);
  }
  REQUIRE(cat.Latest());
  CHECK(cat.Latest()->id == "3-targz");
  CHECK(cat.OldestComplete()->id == "1-plain");
  const auto* plain = Find(cat, "1-plain");
  const auto* tar = Find(cat, "2-tar");
  const auto* targz = Find(cat, "3-targz");
  REQUIRE(plain);
  REQUIRE(tar);
  REQUIRE(targz);
  CHECK(plain->layout == bb::Layout::kPlain);
  CHECK(tar->layout == bb::Layout::kTar);
  CHECK(tar->compression == bb::Compression::kNone);
  CHECK(tar->wal_file == backups + "/2-tar/pg_wal.tar");
  CHECK(targz->compression == bb::Compression::kGzip);
  CHECK(targz->base_file == backups + "/3-targz/base.tar.gz");
  CHECK(targz->wal_file == backups + "/3-targz/pg_wal.tar.gz");
  CHECK(plain->start_lsn < tar->start_lsn);
  CHECK(tar->start_lsn < targz->start_lsn);

  INFO("step: LSNs, timeline and times equal what backup_label and pg_backup_stop say");
  {
    std::string label = ReadText(backups + "/1-plain/backup_label");
    std::string start = Field(label, "START WAL LOCATION");
    CHECK(wal::FormatLsn(plain->start_lsn) == start.substr(0, start.find(' ')));
    CHECK(plain->start_timeline == std::stoul(Field(label, "START TIMELINE")));
    CHECK(plain->label == Field(label, "LABEL"));
    CHECK(plain->start_time == ParseTimestamp(Field(label, "START TIME")));
    CHECK(plain->backup_from == "primary");
  }
  for (const auto* b : {plain, tar, targz}) {
    INFO(b->id);
    std::string hist_name =
        wal::SegmentName(b->start_timeline, wal::SegmentNo(b->start_lsn, wal::kDefaultSegmentSize),
                         wal::kDefaultSegmentSize);
    char off[32];
    std::snprintf(off, sizeof off, ".%08X.backup",
                  static_cast<unsigned>(b->start_lsn % wal::kDefaultSegmentSize));
    std::string hist = ReadText(archive + "/" + hist_name + off);
    std::string start = Field(hist, "START WAL LOCATION");
    std::string stop = Field(hist, "STOP WAL LOCATION");
    CHECK(wal::FormatLsn(b->start_lsn) == start.substr(0, start.find(' ')));
    CHECK(wal::FormatLsn(b->stop_lsn) == stop.substr(0, stop.find(' ')));
    CHECK(b->stop_time == ParseTimestamp(Field(hist, "STOP TIME")));
    CHECK(std::to_string(b->stop_timeline) == Field(hist, "STOP TIMELINE"));
  }

  INFO("step: pg_verifybackup passes on each good backup");
  bb::VerifyOptions vo;
  vo.tools = test::Tools();
  vo.run_as = test::ServerUser();
  vo.wal_archive = archive;
  vo.timeout = 3min;
  {
    auto r = bb::VerifyBaseBackup(*plain, vo);
    INFO(r.reason);
    CHECK(r.ok);
    CHECK(r.wal_parsed);
    CHECK(r.wal_source == "backup");
    CHECK(r.verified_dir == plain->path);
  }
  for (const auto* b : {tar, targz}) {
    INFO(b->id);
    vo.extract_dir = MakeTempDir(dir.path(), "x-", test::ServerUser());
    auto r = bb::VerifyBaseBackup(*b, vo);
    INFO(r.reason);
    CHECK(r.ok);
    CHECK(r.wal_parsed);
    CHECK(r.verified_dir == vo.extract_dir);
    CHECK(test::ReadFile(vo.extract_dir + "/PG_VERSION") == "15\n");
    CHECK(::access((vo.extract_dir + "/pg_wal/" +
                    wal::SegmentName(1, wal::SegmentNo(b->start_lsn, wal::kDefaultSegmentSize),
                                     wal::kDefaultSegmentSize))
                       .c_str(),
                   F_OK) == 0);
    RemoveTree(vo.extract_dir);
  }

  INFO("step: a changed data file and a deleted file are named");
  const std::string scratch = dir / "scratch";
  MakeDirs(scratch, 0755, test::ServerUser());
  {
    const std::string copy = scratch + "/plain-copy";
    Cp(plain->path, copy);
    auto entry = bb::ReadBaseBackup(copy, co);
    REQUIRE(entry.complete);
    // A relation file of pgbench_accounts, changed in place (same size).
    std::string rel = Trim(primary->Psql("select pg_relation_filepath('pgbench_accounts')"));
    {
      std::fstream f(copy + "/" + rel, std::ios::in | std::ios::out | std::ios::binary);
      REQUIRE(f.good());
      f.seekp(8192 * 3 + 100);
      f.write("restorewatch", 12);
    }
    auto r = bb::VerifyBaseBackup(entry, vo);
    CHECK_FALSE(r.ok);
    CHECK(r.reason == "checksum mismatch for file \"" + rel + "\"");

    // Deleted: the catalogue already refuses it (listed but missing), and pg_verifybackup names
    // it when asked anyway.
    std::string rel2 = Trim(primary->Psql("select pg_relation_filepath('pgbench_branches')"));
    REQUIRE(::unlink((copy + "/" + rel2).c_str()) == 0);
    auto e2 = bb::ReadBaseBackup(copy, co);
    CHECK_FALSE(e2.complete);
    CHECK(e2.problem == rel2 + " is listed in backup_manifest but missing");
    e2.complete = true;  // as if the file vanished after cataloguing
    auto r2 = bb::VerifyBaseBackup(e2, vo);
    CHECK_FALSE(r2.ok);
    CHECK(r2.reason.find("\"" + rel2 + "\" is present in the manifest but not on disk") !=
          std::string::npos);
    REQUIRE(r2.problems.size() >= 2);
  }
  {
    INFO("a truncated base.tar.gz fails extraction, naming the archive");
    const std::string copy = scratch + "/targz-copy";
    Cp(targz->path, copy);
    REQUIRE(::truncate((copy + "/base.tar.gz").c_str(), 200000) == 0);
    auto entry = bb::ReadBaseBackup(copy, co);
    REQUIRE(entry.complete);  // compressed: only extraction can tell
    vo.extract_dir = MakeTempDir(dir.path(), "x-", test::ServerUser());
    auto r = bb::VerifyBaseBackup(entry, vo);
    CHECK_FALSE(r.ok);
    CHECK(r.reason.find("base.tar.gz: cannot extract: ") == 0);
    RemoveTree(vo.extract_dir);
  }
  {
    INFO("a -X none tar backup has its WAL parsed from the archive");
    BaseBackup(*primary, scratch + "/nowal", {"-Ft", "-X", "none"});
    SwitchAndWait(*primary, archive);
    auto entry = bb::ReadBaseBackup(scratch + "/nowal", co);
    REQUIRE(entry.complete);
    CHECK_FALSE(entry.wal_included);
    vo.extract_dir = MakeTempDir(dir.path(), "x-", test::ServerUser());
    auto r = bb::VerifyBaseBackup(entry, vo);
    INFO(r.reason);
    CHECK(r.ok);
    CHECK(r.wal_source == archive);
    RemoveTree(vo.extract_dir);
    auto vo2 = vo;
    vo2.wal_archive = "";
    vo2.extract_dir = MakeTempDir(dir.path(), "x-", test::ServerUser());
    auto r2 = bb::VerifyBaseBackup(entry, vo2);
    CHECK(r2.ok);
    CHECK_FALSE(r2.wal_parsed);
    CHECK(r2.wal_note.find("WAL not parsed") == 0);
    RemoveTree(vo2.extract_dir);
  }

  {
    INFO("lz4 and zstd tar backups, and -X fetch (WAL inside base.tar)");
    BaseBackup(*primary, scratch + "/lz4", {"-Ft", "-X", "stream", "--compress=lz4"});
    BaseBackup(*primary, scratch + "/zstd", {"-Ft", "-X", "fetch", "--compress=zstd"});
    auto lz4 = bb::ReadBaseBackup(scratch + "/lz4", co);
    auto zst = bb::ReadBaseBackup(scratch + "/zstd", co);
    CHECK(lz4.compression == bb::Compression::kLz4);
    // PostgreSQL 15 compresses pg_wal.tar with gzip only; with lz4 it is written plain.
    CHECK(lz4.wal_file == scratch + "/lz4/pg_wal.tar");
    CHECK(lz4.wal_compression == bb::Compression::kNone);
    CHECK(zst.compression == bb::Compression::kZstd);
    CHECK(zst.wal_file.empty());
    for (const auto* e : {&lz4, &zst}) {
      INFO(e->id << ": " << e->problem);
      CHECK(e->complete);
      CHECK(e->server_major == 15);
      vo.extract_dir = MakeTempDir(dir.path(), "x-", test::ServerUser());
      auto r = bb::VerifyBaseBackup(*e, vo);
      INFO(r.reason);
      CHECK(r.ok);
      CHECK(r.wal_source == "backup");
      RemoveTree(vo.extract_dir);
    }
  }

  INFO("step: half-copied newer backups are never latest");
  {
    BaseBackup(*primary, backups + "/4-nomanifest", {"-Fp", "-X", "stream"});
    REQUIRE(::unlink((backups + "/4-nomanifest/backup_manifest").c_str()) == 0);
    BaseBackup(*primary, backups + "/5-truncated", {"-Ft", "-X", "stream"});
    std::string m = ReadText(backups + "/5-truncated/backup_manifest");
    test::WriteFile(backups + "/5-truncated/backup_manifest", m.substr(0, m.size() / 2));
    BaseBackup(*primary, backups + "/6-copying.partial", {"-Fp", "-X", "stream"});
    auto c2 = bb::ReadCatalogue(backups, co);
    CHECK(c2.backups.size() == 6);
    CHECK(c2.CompleteCount() == 3);
    REQUIRE(c2.Latest());
    CHECK(c2.Latest()->id == "3-targz");
    CHECK(Find(c2, "4-nomanifest")->problem ==
          "no backup_manifest (half-copied, or taken with --no-manifest)");
    CHECK(Find(c2, "5-truncated")
              ->problem.find("backup_manifest is not a complete manifest: truncated") == 0);
    CHECK(Find(c2, "6-copying.partial")->problem ==
          "its name '6-copying.partial' marks a copy in progress");
  }

  INFO("step: the archive is continuous from the oldest backup; a re-check reads nothing");
  const std::string state = dir / "state";
  MakeDirs(state, 0700);
  wal::ContinuityOptions wo;
  wo.archive_dir = archive;
  wo.state_dir = state;
  wo.start = wal::StartPoint{plain->start_timeline, plain->start_lsn, plain->stop_lsn};
  // The newest segment archived: the one the last switch closed (pg_stat_archiver may name a
  // .backup file instead).
  Pgbench(*primary, {"-t", "200", "-c", "2"});
  const std::string newest_now = SwitchAndWait(*primary, archive);
  auto r1 = wal::CheckContinuity(wo);
  INFO(r1.Summary());
  CHECK(r1.ok());
  CHECK(r1.segment_size == wal::kDefaultSegmentSize);
  CHECK(r1.first_segment ==
        wal::SegmentName(1, wal::SegmentNo(plain->start_lsn, r1.segment_size), r1.segment_size));
  CHECK(r1.newest_segment == newest_now);
  CHECK(r1.newest_segment > newest_archived);
  CHECK(r1.expected >= 5);
  CHECK(r1.present == r1.expected);
  CHECK(r1.verified_now == r1.expected);
  CHECK(r1.backup_histories.size() >= 4);
  {
    struct stat st {};
    REQUIRE(::stat((archive + "/" + r1.newest_segment).c_str(), &st) == 0);
    REQUIRE(r1.newest_segment_mtime);
    CHECK(*r1.newest_segment_mtime ==
          Approx(static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9));
  }
  auto r2 = wal::CheckContinuity(wo);
  CHECK(r2.ok());
  CHECK(r2.verified_now == 0);
  CHECK(r2.verified_before == r1.expected);

  INFO("step: the collector reports the same, from the oldest backup in the backups dir");
  {
    WalArchiveOptions opt;
    opt.archive_dir = archive;
    opt.state_dir = state;
    opt.backups_path = backups;
    WalArchiveCollector c(opt);
    auto fam = c.Check();
    CHECK(fam.first_segment == r1.first_segment);
    TargetConfig t;
    t.name = "bb";
    CancelToken cancel;
    CollectContext ctx{t, cancel, nullptr, nullptr, {}};
    auto families = c.Collect(ctx);
    CHECK(FindValue(families, "restorewatch_wal_archive_gaps") == 0);
    CHECK(FindValue(families, "restorewatch_wal_archive_last_segment_timestamp_seconds") ==
          Approx(*r1.newest_segment_mtime));
  }

  INFO("step: damage in a copy of the archive is named");
  const std::string arch2 = dir / "archive-copy";
  Cp(archive, arch2);
  wal::ContinuityOptions wo2 = wo;
  wo2.archive_dir = arch2;
  wo2.state_dir = "";
  REQUIRE(wal::CheckContinuity(wo2).ok());
  const std::uint64_t first = wal::SegmentNo(plain->start_lsn, wal::kDefaultSegmentSize);
  const std::string missing = wal::SegmentName(1, first + 2, wal::kDefaultSegmentSize);
  const std::string truncated = wal::SegmentName(1, first + 3, wal::kDefaultSegmentSize);
  const std::string corrupted = wal::SegmentName(1, first + 4, wal::kDefaultSegmentSize);
  REQUIRE(::unlink((arch2 + "/" + missing).c_str()) == 0);
  REQUIRE(::truncate((arch2 + "/" + truncated).c_str(), 5000000) == 0);
  {
    std::fstream f(arch2 + "/" + corrupted, std::ios::in | std::ios::out | std::ios::binary);
    f.write(std::string(64, '\x5a').data(), 64);
  }
  auto bad = wal::CheckContinuity(wo2);
  CHECK_FALSE(bad.ok());
  CHECK(bad.missing == 1);
  REQUIRE(bad.gaps.size() == 1);
  CHECK(bad.gaps[0].first_missing == missing);
  CHECK(bad.Summary() == "missing " + missing + " (1 segment missing in 1 gap)");
  REQUIRE(bad.bad.size() == 2);
  CHECK(bad.bad[0].problem == truncated + ": truncated: 5000000 bytes, a segment has 16777216");
  CHECK(bad.bad[1].problem == corrupted + ": not a WAL segment: page magic 0x5A5A");
  CHECK(bad.unusable() == 3);
  {
    WalArchiveOptions opt;
    opt.archive_dir = arch2;
    opt.start = wo.start;
    auto families = WalArchiveCollector(opt).Check();
    CHECK(WalArchiveFamilies(families).front().samples.at(0).value == 3);
  }
}

TEST_CASE("a promoted standby's timeline switch is followed through the .history file",
          "[integration][basebackup]") {
  test::TestDir dir("rwbbtl-");
  const std::string archive = dir / "archive";
  MakeDirs(archive, 0700, test::ServerUser());
  auto primary = test::StartCluster(dir, ArchivingPrimary(archive));
  Pgbench(*primary, {"-i", "-s", "1", "-q"});
  SwitchAndWait(*primary, archive);

  // The backup the check starts from, and a standby (which inherits archive_mode and the
  // archive_command, so once promoted it archives into the same directory).
  const std::string backups = dir / "backups";
  MakeDirs(backups, 0700, test::ServerUser());
  BaseBackup(*primary, backups + "/b1", {"-Fp", "-X", "stream"});
  std::string sdir = MakeTempDir(dir.path(), "standby-", test::ServerUser());
  BaseBackup(*primary, sdir + "/data", {"-Fp", "-X", "stream", "-R"});
  ClusterOptions so;
  so.tools = test::Tools();
  so.parent_dir = dir.path();
  so.run_as = test::ServerUser();
  so.throwaway = false;
  so.settings = {{"hot_standby", "on"}};
  auto standby = LocalCluster::Adopt(so, sdir, sdir + "/data");
  Pgbench(*primary, {"-t", "300", "-c", "2"});
  SwitchAndWait(*primary, archive);
  REQUIRE(test::Eventually(
      [&] {
        return Trim(standby->Psql("select pg_last_wal_replay_lsn() >= '" +
                                  Trim(primary->Psql("select pg_current_wal_lsn()")) +
                                  "'::pg_lsn")) == "t";
      },
      30));
  primary->Stop();  // a clean shutdown; the standby has everything
  standby->Psql("select pg_promote(true, 60)");
  REQUIRE(Trim(standby->Psql("select pg_is_in_recovery()")) == "f");
  REQUIRE(test::Eventually(
      [&] { return ::access((archive + "/00000002.history").c_str(), F_OK) == 0; }, 30));
  // Two segments on the new timeline, so that its first one is not the newest.
  Pgbench(*standby, {"-t", "300", "-c", "2"});
  SwitchAndWait(*standby, archive);
  Pgbench(*standby, {"-t", "300", "-c", "2"});
  std::string newest = SwitchAndWait(*standby, archive);
  REQUIRE(newest.substr(0, 8) == "00000002");

  bb::CatalogueOptions co;
  co.wal_archive = archive;
  auto cat = bb::ReadCatalogue(backups, co);
  REQUIRE(cat.Latest());
  const auto& b = *cat.Latest();
  wal::ContinuityOptions wo;
  wo.archive_dir = archive;
  wo.start = wal::StartPoint{b.start_timeline, b.start_lsn, b.stop_lsn};
  auto r = wal::CheckContinuity(wo);
  INFO(r.Summary());
  CHECK(r.ok());
  CHECK(r.timelines == std::vector<std::uint32_t>{1, 2});
  CHECK(r.newest_segment == newest);
  // The switch point from the history file, and the first segment of timeline 2 is its segment.
  auto hist = wal::ParseHistory(test::ReadFile(archive + "/00000002.history"));
  REQUIRE(hist);
  REQUIRE(hist->size() == 1);
  const std::uint64_t switch_seg =
      wal::SegmentNo(hist->at(0).switchpoint, wal::kDefaultSegmentSize);
  CHECK(
      ::access((archive + "/" + wal::SegmentName(2, switch_seg, wal::kDefaultSegmentSize)).c_str(),
               F_OK) == 0);

  {
    INFO("the new timeline's first segment missing is a gap on timeline 2");
    const std::string name = wal::SegmentName(2, switch_seg, wal::kDefaultSegmentSize);
    REQUIRE(::rename((archive + "/" + name).c_str(), (dir / name).c_str()) == 0);
    auto g = wal::CheckContinuity(wo);
    REQUIRE(g.gaps.size() == 1);
    CHECK(g.gaps[0].first_missing == name);
    CHECK(g.gaps[0].timeline == 2);
    REQUIRE(::rename((dir / name).c_str(), (archive + "/" + name).c_str()) == 0);
    CHECK(wal::CheckContinuity(wo).ok());
  }
  {
    INFO("without the .history file the switch cannot be followed");
    REQUIRE(::unlink((archive + "/00000002.history").c_str()) == 0);
    auto p = wal::CheckContinuity(wo);
    CHECK_FALSE(p.ok());
    CHECK(p.problem.find("00000002.history is missing") != std::string::npos);
  }
}
