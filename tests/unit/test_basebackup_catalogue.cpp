// agent/sources/basebackup_catalogue.h on synthetic pg_basebackup outputs: manifests (checksum,
// truncation, edits), backup_label, plain and tar layouts, half-copied and in-flight backups, and
// which backup is the latest. The real thing is in tests/integration/test_basebackup_blocks.cpp.
#include <openssl/evp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/sources/basebackup_catalogue.h"
#include "agent/sources/basebackup_verify.h"

using namespace rw;
using namespace rw::basebackup;

namespace {

// Runs a command to completion (argv[0] from PATH).
ProcessResult Run(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  return RunProcess(spec);
}

class TempDir {
 public:
  TempDir() { path_ = MakeTempDir("/tmp", "rw-bbunit-"); }
  ~TempDir() { RemoveTree(path_); }
  std::string operator/(const std::string& n) const { return path_ + "/" + n; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Sha256(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

// A manifest the way pg_basebackup 15 lays it out, checksum included.
std::string MakeManifest(const std::vector<std::pair<std::string, std::size_t>>& files,
                         const std::string& start = "0/3000028",
                         const std::string& end = "0/3000100", int timeline = 1) {
  std::string m = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n";
  for (std::size_t i = 0; i < files.size(); ++i) {
    m += "{ \"Path\": \"" + files[i].first + "\", \"Size\": " + std::to_string(files[i].second) +
         ", \"Last-Modified\": \"2026-12-02 19:09:43 GMT\", \"Checksum-Algorithm\": \"CRC32C\", "
         "\"Checksum\": \"544e143c\" }";
    m += i + 1 < files.size() ? ",\n" : "\n";
  }
  m += "],\n\"WAL-Ranges\": [\n{ \"Timeline\": " + std::to_string(timeline) +
       ", \"Start-LSN\": \"" + start + "\", \"End-LSN\": \"" + end + "\" }\n],\n";
  return m + "\"Manifest-Checksum\": \"" + Sha256(m) + "\"}\n";
}

std::string Label(const std::string& start, const std::string& time, int timeline = 1,
                  const std::string& label = "pg_basebackup base backup") {
  return "START WAL LOCATION: " + start + " (file 000000010000000000000003)\n" +
         "CHECKPOINT LOCATION: 0/3000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n" +
         "START TIME: " + time + "\nLABEL: " + label +
         "\nSTART TIMELINE: " + std::to_string(timeline) + "\n";
}

// A plain backup: PG_VERSION, backup_label, two data files, the manifest.
void MakePlain(const std::string& dir, const std::string& start, const std::string& end,
               const std::string& time) {
  MakeDirs(dir + "/base/1");
  MakeDirs(dir + "/global");
  MakeDirs(dir + "/pg_wal");
  std::string label = Label(start, time);
  Write(dir + "/backup_label", label);
  Write(dir + "/PG_VERSION", "15\n");
  Write(dir + "/base/1/1259", std::string(8192, 'x'));
  Write(dir + "/global/pg_control", std::string(8192, 'c'));
  Write(dir + "/backup_manifest", MakeManifest({{"backup_label", label.size()},
                                                {"PG_VERSION", 3},
                                                {"base/1/1259", 8192},
                                                {"global/pg_control", 8192}},
                                               start, end));
}

}  // namespace

TEST_CASE("manifest: parsed, checksum verified, truncation and edits refused",
          "[unit][basebackup]") {
  std::string m = MakeManifest({{"backup_label", 225}, {"base/1/1259", 8192}});
  std::string err;
  auto p = ParseManifest(m, &err);
  REQUIRE(p);
  CHECK(p->version == 1);
  REQUIRE(p->files.size() == 2);
  CHECK(p->files[1].path == "base/1/1259");
  CHECK(p->files[1].size == 8192);
  CHECK(p->files[1].checksum_algorithm == "CRC32C");
  REQUIRE(p->wal_ranges.size() == 1);
  CHECK(p->wal_ranges[0].timeline == 1);
  CHECK(p->wal_ranges[0].start == 0x3000028ULL);
  CHECK(p->wal_ranges[0].end == 0x3000100ULL);

  for (std::size_t cut : {m.size() - 1, m.size() - 3, m.size() / 2, std::size_t{10}}) {
    INFO("cut at " << cut);
    CHECK_FALSE(ParseManifest(m.substr(0, cut), &err));
    CHECK(err.find("truncated") != std::string::npos);
  }
  std::string edited = m;
  edited.replace(edited.find("8192"), 4, "8193");
  CHECK_FALSE(ParseManifest(edited, &err));
  CHECK(err == "Manifest-Checksum does not match its content");
  CHECK_FALSE(ParseManifest("", &err));
  CHECK_FALSE(ParseManifest("[1, 2]\n", &err));
  CHECK_FALSE(ParseManifest("{ \"x\": 1 }\n", &err));
  CHECK(err == "no PostgreSQL-Backup-Manifest-Version");

  // Encoded-Path (hex) for names that are not valid UTF-8.
  std::string enc = MakeManifest({{"PLACEHOLDER", 1}});
  std::string body = enc.substr(0, enc.find("\"Manifest-Checksum\""));
  auto at = body.find("\"Path\": \"PLACEHOLDER\"");
  body.replace(at, std::string("\"Path\": \"PLACEHOLDER\"").size(),
               "\"Encoded-Path\": \"626173652f31\"");
  auto q = ParseManifest(body + "\"Manifest-Checksum\": \"" + Sha256(body) + "\"}\n", &err);
  REQUIRE(q);
  CHECK(q->files[0].path == "base/1");
}

TEST_CASE("backup_label parses", "[unit][basebackup]") {
  auto l = ParseBackupLabel(Label("0/5000028", "2026-12-02 19:09:43 UTC", 2, "nightly"));
  REQUIRE(l);
  CHECK(l->start_lsn == 0x5000028ULL);
  CHECK(l->checkpoint_lsn == 0x3000060ULL);
  CHECK(l->start_timeline == 2);
  CHECK(l->label == "nightly");
  CHECK(l->method == "streamed");
  CHECK(l->from == "primary");
  CHECK(l->start_segment == "000000010000000000000003");
  REQUIRE(l->start_time);
  CHECK(*l->start_time == *ParseTimestamp("2026-12-02T19:09:43Z"));
  CHECK_FALSE(ParseBackupLabel("hello\n"));
}

TEST_CASE("catalogue: plain backups, the newest complete one is latest", "[unit][basebackup]") {
  TempDir root;
  MakePlain(root / "b1", "0/3000028", "0/3000100", "2026-12-01 03:00:00 UTC");
  MakePlain(root / "b2", "0/5000028", "0/5000100", "2026-12-02 03:00:00 UTC");
  Write(root / "README.txt", "not a backup");
  auto cat = ReadCatalogue(root.path());
  REQUIRE(cat.backups.size() == 2);
  CHECK(cat.CompleteCount() == 2);
  REQUIRE(cat.Latest());
  const auto& b = *cat.Latest();
  CHECK(b.id == "b2");
  CHECK(b.complete);
  CHECK(b.problem.empty());
  CHECK(b.layout == Layout::kPlain);
  CHECK(FormatName(b.layout, b.compression) == "plain");
  CHECK(b.start_lsn == 0x5000028ULL);
  CHECK(b.stop_lsn == 0x5000100ULL);
  CHECK(b.start_timeline == 1);
  CHECK(b.stop_timeline == 1);
  CHECK(b.server_major == 15);
  CHECK(b.label == "pg_basebackup base backup");
  CHECK(b.start_time == ParseTimestamp("2026-12-02 03:00:00 UTC"));
  CHECK_FALSE(b.stop_time_exact);
  CHECK(b.stop_time > 0);
  CHECK(b.file_count == 4);
  CHECK(b.data_bytes == Read(root / "b2/backup_label").size() + 3 + 8192 + 8192);
  CHECK(b.size_bytes >= b.data_bytes);
  CHECK(b.checksum_algorithm == "CRC32C");
  CHECK(cat.OldestComplete()->id == "b1");
  CHECK(cat.notes == std::vector<std::string>{"README.txt: not a directory, skipped"});

  SECTION("the .backup file in the archive gives the exact stop time") {
    TempDir arch;
    Write(arch / "000000010000000000000005.00000028.backup",
          "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n"
          "STOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)\n"
          "START TIME: 2026-12-02 03:00:00 UTC\nSTART TIMELINE: 1\n"
          "STOP TIME: 2026-12-02 03:07:00 UTC\nSTOP TIMELINE: 1\n");
    CatalogueOptions co;
    co.wal_archive = arch.path();
    auto c2 = ReadCatalogue(root.path(), co);
    CHECK(c2.Latest()->stop_time_exact);
    CHECK(c2.Latest()->stop_time == *ParseTimestamp("2026-12-02 03:07:00 UTC"));
    CHECK_FALSE(c2.OldestComplete()->stop_time_exact);
  }
  SECTION("a newer backup without a manifest is never latest") {
    MakePlain(root / "b3", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    REQUIRE(::unlink((root / "b3/backup_manifest").c_str()) == 0);
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups.back().id == "b3");
    CHECK_FALSE(c.backups.back().complete);
    CHECK(c.backups.back().problem ==
          "no backup_manifest (half-copied, or taken with --no-manifest)");
  }
  SECTION("a truncated manifest") {
    MakePlain(root / "b3", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    std::string m = Read(root / "b3/backup_manifest");
    Write(root / "b3/backup_manifest", m.substr(0, m.size() - 40));
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups.back().problem.find("backup_manifest is not a complete manifest: truncated") ==
          0);
  }
  SECTION("an edited manifest (checksum over itself does not match)") {
    MakePlain(root / "b3", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    std::string m = Read(root / "b3/backup_manifest");
    m.replace(m.find("0/7000100"), 9, "0/7000200");
    Write(root / "b3/backup_manifest", m);
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups.back().problem ==
          "backup_manifest is not a complete manifest: Manifest-Checksum does not match its "
          "content");
  }
  SECTION("a file the manifest lists is missing or short (half-copied)") {
    MakePlain(root / "b3", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    REQUIRE(::unlink((root / "b3/base/1/1259").c_str()) == 0);
    MakePlain(root / "b4", "0/9000028", "0/9000100", "2026-12-04 03:00:00 UTC");
    REQUIRE(::truncate((root / "b4/global/pg_control").c_str(), 100) == 0);
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups[2].problem == "base/1/1259 is listed in backup_manifest but missing");
    CHECK(c.backups[3].problem == "global/pg_control has 100 bytes, backup_manifest says 8192");
  }
  SECTION("a .partial-looking directory is never latest, even when complete") {
    MakePlain(root / "b3.partial", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    MakePlain(root / ".b4", "0/9000028", "0/9000100", "2026-12-04 03:00:00 UTC");
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.CompleteCount() == 2);
    CHECK(c.backups[2].problem == "its name 'b3.partial' marks a copy in progress");
    CHECK(c.backups[3].problem == "its name '.b4' marks a copy in progress");
  }
  SECTION("backup_label disagreeing with the manifest") {
    MakePlain(root / "b3", "0/7000028", "0/7000100", "2026-12-03 03:00:00 UTC");
    Write(root / "b3/backup_label", Label("0/6000028", "2026-12-03 03:00:00 UTC"));
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups.back().problem.find("backup_label (start 0/6000028 timeline 1) does not "
                                        "match backup_manifest (start 0/7000028") == 0);
  }
  SECTION("a directory that is not a backup") {
    MakeDirs(root / "lost+found");
    auto c = ReadCatalogue(root.path());
    CHECK(c.Latest()->id == "b2");
    CHECK(c.backups.back().id == "lost+found");  // sorted by its mtime: now
    CHECK(c.backups.back().problem == "not a pg_basebackup output: no base.tar and no PG_VERSION");
  }
  CHECK_THROWS_AS(ReadCatalogue(root / "nope"), Error);
}

TEST_CASE("catalogue: tar backups, plain and compressed", "[unit][basebackup]") {
  TempDir root, src;
  std::string label = Label("0/3000028", "2026-12-02 03:00:00 UTC");
  Write(src / "backup_label", label);
  Write(src / "PG_VERSION", "15\n");
  MakeDirs(src / "base/1");
  Write(src / "base/1/1259", std::string(8192, 'x'));
  std::string manifest =
      MakeManifest({{"backup_label", label.size()}, {"PG_VERSION", 3}, {"base/1/1259", 8192}});
  auto tar = [&](const std::string& dir, const std::vector<std::string>& extra) {
    MakeDirs(dir);
    ProcessSpec spec;
    spec.argv = {"tar", "-cf", dir + "/base.tar", "-C", src.path()};
    spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
    spec.argv.insert(spec.argv.end(), {"backup_label", "PG_VERSION", "base"});
    REQUIRE(RunProcess(spec).ok());
    Write(dir + "/backup_manifest", manifest);
  };
  tar(root / "t1", {});
  tar(root / "t2", {});
  REQUIRE(Run({"gzip", root / "t2/base.tar"}).ok());

  auto cat = ReadCatalogue(root.path());
  REQUIRE(cat.backups.size() == 2);
  for (const auto& b : cat.backups) {
    INFO(b.id << ": " << b.problem);
    CHECK(b.complete);
    CHECK(b.layout == Layout::kTar);
    CHECK(b.server_major == 15);
    CHECK(b.start_lsn == 0x3000028ULL);
    CHECK(b.start_time == ParseTimestamp("2026-12-02 03:00:00 UTC"));
    CHECK(b.wal_file.empty());
    CHECK_FALSE(b.wal_included);
  }
  const auto& t2 = cat.backups[0].id == "t2" ? cat.backups[0] : cat.backups[1];
  CHECK(t2.compression == Compression::kGzip);
  CHECK(FormatName(t2.layout, t2.compression) == "tar.gz");
  CHECK(t2.base_file == root / "t2/base.tar.gz");

  SECTION("an uncompressed tar cut short is incomplete") {
    std::string t = Read(root / "t1/base.tar");
    Write(root / "t1/base.tar", t.substr(0, t.size() / 2));
    auto c = ReadCatalogue(root.path());
    const auto& t1 = c.backups[0].id == "t1" ? c.backups[0] : c.backups[1];
    CHECK_FALSE(t1.complete);
    CHECK(t1.problem == "base.tar is truncated inside member 5");
  }
  SECTION("a tablespace archive beside base.tar is refused, not half-restored") {
    Write(root / "t1/16385.tar", std::string(1024, '\0'));
    auto c = ReadCatalogue(root.path());
    const auto& t1 = c.backups[0].id == "t1" ? c.backups[0] : c.backups[1];
    CHECK(t1.problem == "tablespace archive 16385.tar is not supported");
  }
}

TEST_CASE("in-flight names", "[unit][basebackup]") {
  for (const char* n : {"b.partial", "b.part", "b.tmp", "b.inprogress", ".b", "b.incomplete"})
    CHECK(IsInFlightName(n));
  for (const char* n : {"b", "base-2026-12-02", "partial"}) CHECK_FALSE(IsInFlightName(n));
}

TEST_CASE("pg_verifybackup output becomes a one-line reason naming the file",
          "[unit][basebackup]") {
  std::vector<std::string> problems;
  std::string out =
      "pg_verifybackup: error: \"base/5/1259\" is present in the manifest but not on disk\n"
      "pg_verifybackup: error: checksum mismatch for file \"base/5/2660\"\n";
  CHECK(VerifyReason(out, &problems) ==
        "\"base/5/1259\" is present in the manifest but not on disk (and 1 more problem)");
  CHECK(problems.size() == 2);
  CHECK(VerifyReason("pg_waldump: error: could not find any WAL file\n"
                     "pg_verifybackup: error: WAL parsing failed for timeline 1\n") ==
        "could not find any WAL file (and 1 more problem)");
}
