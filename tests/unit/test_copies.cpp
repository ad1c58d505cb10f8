// 3-2-1 copies (agent/copies.h, agent/copies_options.h, checks/live/copies_collector.h): config
// parsing and validation, comparing listings, the 3-2-1 computation, the local lister on real
// files, and the drill's choice of the offsite copy.
#include <sys/stat.h>
#include <utime.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "agent/config.h"
#include "agent/copies.h"
#include "agent/errors.h"
#include "checks/live/collector_util.h"
#include "checks/live/copies_collector.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
namespace fs = std::filesystem;

namespace {

const char* kHead = R"(
[[target]]
name = "blog"
source = "host=/tmp dbname=blog"
)";

ConfigLoad Load(const std::string& backup, const std::string& drill = "") {
  return LoadConfigText(std::string(kHead) + "[target.backup]\n" + backup +
                            (drill.empty() ? "" : "[target.drill]\n" + drill),
                        "/etc/restorewatch/t.toml");
}

std::string Errors(const ConfigLoad& l) {
  std::string s;
  for (const auto& e : l.errors) s += e.ToString() + "\n";
  return s;
}

void SetMtime(const std::string& path, time_t t) {
  struct utimbuf u {
    t, t
  };
  REQUIRE(utime(path.c_str(), &u) == 0);
}

CopyState State(const std::string& loc, bool present, bool offsite, const std::string& medium) {
  CopyState s;
  s.location = loc;
  s.present = present;
  s.offsite = offsite;
  s.medium = medium;
  return s;
}

}  // namespace

TEST_CASE("copies: parsed with defaults", "[unit][copies]") {
  auto l = Load(R"(path = "/var/backups/pg"
copies = [{ name = "nas", path = "/mnt/nas/pgdumps/", offsite = false, medium = "nas" },
          { path = "/mnt/dr/pgdumps", offsite = true }]
verify_checksum = true
)",
                R"(from = "offsite")");
  INFO(Errors(l));
  REQUIRE(l.config);
  const TargetConfig& t = l.config->targets[0];
  REQUIRE(t.backup.copies.size() == 2);
  CHECK(t.backup.copies[0].name == "nas");
  CHECK(t.backup.copies[0].path == "/mnt/nas/pgdumps");  // trailing slash dropped
  CHECK(t.backup.copies[0].medium == "nas");
  CHECK_FALSE(t.backup.copies[0].offsite);
  CHECK(t.backup.copies[1].name == "/mnt/dr/pgdumps");  // the path names it by default
  CHECK(t.backup.copies[1].offsite);
  CHECK(t.backup.copies[1].medium.empty());
  CHECK(t.backup.verify_checksum);
  CHECK(t.drill.from == DrillFrom::kOffsite);
  REQUIRE(FirstOffsiteCopy(t) == &t.backup.copies[1]);

  auto plain = Load("path = \"/var/backups/pg\"\n");
  REQUIRE(plain.config);
  CHECK(plain.config->targets[0].backup.copies.empty());
  CHECK(plain.config->targets[0].drill.from == DrillFrom::kPrimary);
  CHECK_FALSE(plain.config->targets[0].backup.verify_checksum);
}

TEST_CASE("copies: config mistakes are named", "[unit][copies]") {
  auto has = [](const ConfigLoad& l, const std::string& key, const std::string& text) {
    for (const auto& e : l.errors)
      if (e.key == key && e.message.find(text) != std::string::npos) return true;
    return false;
  };
  auto dup = Load(R"(path = "/b"
copies = [{ name = "x", path = "/c1" }, { name = "x", path = "/c2" }]
)");
  CHECK(has(dup, "target.blog.backup.copies[1].name", "duplicate copy name \"x\""));

  auto dup_default = Load(R"(path = "/b"
copies = [{ path = "/c1" }, { path = "/c1/" }]
)");
  CHECK(has(dup_default, "target.blog.backup.copies[1].path", "duplicate copy name \"/c1\""));

  auto primary = Load(R"(path = "/b/"
copies = [{ path = "/b" }]
)");
  CHECK(has(primary, "target.blog.backup.copies[0].path", "is backup.path itself"));

  auto reserved = Load(R"(path = "/b"
copies = [{ name = "primary", path = "/c" }]
)");
  CHECK(has(reserved, "target.blog.backup.copies[0].name", "\"primary\" names backup.path"));

  auto relative = Load(R"(path = "/b"
copies = [{ path = "mnt/c" }]
)");
  CHECK(has(relative, "target.blog.backup.copies[0].path", "must be an absolute path"));

  auto no_offsite = Load(R"(path = "/b"
copies = [{ path = "/c" }]
)",
                         R"(from = "offsite")");
  CHECK(has(no_offsite, "target.blog.drill.from", "no backup.copies entry has offsite = true"));
  for (const auto& e : no_offsite.errors)
    if (e.key == "target.blog.drill.from") CHECK(e.line == 9);  // the line of `from`

  auto no_copies = Load("path = \"/b\"\n", "from = \"offsite\"\n");
  CHECK(has(no_copies, "target.blog.drill.from", "no backup.copies entry"));

  auto bad_from = Load("path = \"/b\"\n", "from = \"nas\"\n");
  CHECK(has(bad_from, "target.blog.drill.from", "must be one of primary, offsite"));

  auto typo = Load(R"(path = "/b"
copies = [{ path = "/c", ofsite = true }]
)");
  CHECK(has(typo, "target.blog.backup.copies[0].ofsite", "did you mean \"offsite\""));

  auto wrong_type = Load(R"(type = "pgbackrest"
stanza = "main"
copies = [{ path = "/c" }]
)");
  CHECK(has(wrong_type, "target.blog.backup.copies", "not \"pgbackrest\""));

  auto s3 = Load(R"(path = "/b"
copies = [{ name = "dr", path = "s3://bucket/pg", offsite = true }]
[target.backup.s3]
endpoint = "http://127.0.0.1:9000"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "example-secret"
)");
  INFO(Errors(s3));
  CHECK(s3.config);  // read by the S3 lister (agent/copy_lister.h)
}

TEST_CASE("copies: 3-2-1 over the present locations", "[unit][copies]") {
  std::vector<CopyState> s = {State("primary", true, false, "dev:8:1"),
                              State("nas", true, false, "nas"), State("dr", true, true, "s3")};
  Policy321 p = Evaluate321(s);
  CHECK(p.copies == 3);
  CHECK(p.media == 3);
  CHECK(p.offsite == 1);
  CHECK(p.ok());

  s[2].present = false;  // the offsite copy lacks the newest backup
  p = Evaluate321(s);
  CHECK(p.copies == 2);
  CHECK(p.offsite == 0);
  CHECK_FALSE(p.ok());
  CHECK(p.ToString() == "2 copies, 2 media, 0 offsite (want 3, 2, 1)");

  // Three copies, one offsite, but all on one medium.
  std::vector<CopyState> one_medium = {State("primary", true, false, "dev:8:1"),
                                       State("a", true, false, "dev:8:1"),
                                       State("b", true, true, "dev:8:1")};
  CHECK(Evaluate321(one_medium).media == 1);
  CHECK_FALSE(Evaluate321(one_medium).ok());

  // Two media, one offsite, but only two copies.
  std::vector<CopyState> two = {State("primary", true, false, "dev:8:1"),
                                State("dr", true, true, "tape")};
  CHECK_FALSE(Evaluate321(two).ok());

  // Families: present per location with offsite, 321_ok, and the timestamp only when known.
  s[2].present = true;
  s[0].newest_completed_at = 1000;
  s[2].newest_completed_at = 900;
  auto fams = CopiesFamilies(s);
  CHECK(FindValue(fams, "restorewatch_backup_321_ok") == 1.0);
  CHECK(FindValue(fams, "restorewatch_backup_copy_present",
                  {{"location", "dr"}, {"offsite", "true"}}) == 1.0);
  CHECK(FindValue(fams, "restorewatch_backup_copy_present",
                  {{"location", "nas"}, {"offsite", "false"}}) == 1.0);
  CHECK(FindValue(fams, "restorewatch_backup_copy_last_completion_timestamp_seconds",
                  {{"location", "dr"}}) == 900.0);
  CHECK_FALSE(FindValue(fams, "restorewatch_backup_copy_last_completion_timestamp_seconds",
                        {{"location", "nas"}}));
  s[1].present = false;
  CHECK(FindValue(CopiesFamilies(s), "restorewatch_backup_321_ok") == 0.0);
}

TEST_CASE("copies: listings compared by path, size, mtime and etag", "[unit][copies]") {
  auto obj = [](const std::string& rel, std::uint64_t size, std::int64_t mtime_s,
                std::optional<std::string> etag = std::nullopt) {
    return StoredObject{rel, size, mtime_s * 1000000000, std::move(etag)};
  };
  Listing primary{true, {obj("d/toc.dat", 100, 1000), obj("d/3001.dat.gz", 5000, 1000)}};
  Listing same{true, {obj("d/toc.dat", 100, 1000), obj("d/3001.dat.gz", 5000, 1000)}};
  CHECK(CompareListings("d", primary, same).empty());
  Listing newer{
      true, {obj("d/toc.dat", 100, 2000), obj("d/3001.dat.gz", 5000, 2000), obj("d/extra", 1, 1)}};
  CHECK(CompareListings("d", primary, newer).empty());  // cp without -p; extra files ignored
  CHECK(CompareListings("d", primary, Listing{}) == "lacks d");
  Listing partial{true, {obj("d/toc.dat", 100, 1000)}};
  CHECK(CompareListings("d", primary, partial) == "lacks d/3001.dat.gz");
  Listing truncated{true, {obj("d/toc.dat", 100, 1000), obj("d/3001.dat.gz", 4096, 1000)}};
  CHECK(CompareListings("d", primary, truncated) ==
        "d/3001.dat.gz has 4096 bytes, the primary 5000");
  Listing older{true, {obj("d/toc.dat", 100, 10), obj("d/3001.dat.gz", 5000, 1000)}};
  CHECK(CompareListings("d", primary, older).find("older than the primary") != std::string::npos);
  Listing one_sec{true, {obj("d/toc.dat", 100, 999), obj("d/3001.dat.gz", 5000, 999)}};
  CHECK(CompareListings("d", primary, one_sec).empty());  // coarse store clocks
  Listing tagged{true, {obj("f", 10, 5, "abc")}};
  CHECK(CompareListings("f", tagged, Listing{true, {obj("f", 10, 5, "abc")}}).empty());
  CHECK(CompareListings("f", tagged, Listing{true, {obj("f", 10, 5, "abd")}}) ==
        "f has etag abd, the primary abc");
  CHECK(CompareListings("f", tagged, Listing{true, {obj("f", 10, 5)}}).empty());
}

TEST_CASE("copies: checker and drill choice on real directories", "[unit][copies]") {
  test::TestDir dir("rw-copies-");
  for (const char* d : {"primary", "nas", "dr"}) fs::create_directories(dir / d);
  auto put = [&](const std::string& rel, const std::string& text, time_t mtime) {
    for (const char* d : {"primary", "nas", "dr"}) {
      const std::string p = dir / (std::string(d) + "/" + rel);
      fs::create_directories(fs::path(p).parent_path());
      test::WriteFile(p, text);
      SetMtime(p, mtime);
    }
  };
  put("blog-1.dump", "PGDMP old", 1000);
  put("blog-2.dir/toc.dat", "PGDMP toc", 2000);
  put("blog-2.dir/3001.dat.gz", "data data data", 2000);

  TargetConfig t;
  t.name = "blog";
  t.backup.paths = {dir / "primary"};
  t.backup.copies = {CopyConfig{"nas", dir / "nas", false, "nas"},
                     CopyConfig{"dr", dir / "dr", true, ""}};
  BackupInfo newest;
  newest.id = "blog-2.dir";
  newest.path = dir / "primary/blog-2.dir";
  newest.completed_at = 2000;

  CancelToken cancel;
  CopiesChecker checker;
  auto states = checker.Check(t, newest, cancel);
  REQUIRE(states.size() == 3);
  CHECK(states[0].location == "primary");
  CHECK(states[0].present);
  for (const auto& s : states) INFO(s.location << ": " << s.reason);
  CHECK(states[1].present);
  CHECK(states[2].present);
  CHECK(states[2].offsite);
  CHECK(states[2].medium == states[0].medium);  // same file system: the device id
  CHECK(states[2].medium.rfind("dev:", 0) == 0);
  CHECK(Evaluate321(states).ok());  // primary dev + "nas": 2 media

  // With verify_checksum, a same-size same-mtime corruption is found.
  t.backup.verify_checksum = true;
  const std::string bad = dir / "nas/blog-2.dir/3001.dat.gz";
  test::WriteFile(bad, "data data dat4");
  SetMtime(bad, 2000);
  states = checker.Check(t, newest, cancel);
  CHECK_FALSE(states[1].present);
  CHECK(states[1].reason.find("3001.dat.gz differs from the primary's (SHA-256") !=
        std::string::npos);
  CHECK(states[2].present);
  t.backup.verify_checksum = false;
  CHECK(checker.Check(t, newest, cancel)[1].present);  // size + mtime cannot see it

  // The drill reads the offsite copy's files, named by location.
  t.drill.from = DrillFrom::kOffsite;
  BackupInfo b = BackupForDrill(t, newest, cancel);
  CHECK(b.path == dir / "dr/blog-2.dir");
  CHECK(b.location == "dr");
  t.drill.from = DrillFrom::kPrimary;
  CHECK(BackupForDrill(t, newest, cancel).path == newest.path);

  // The offsite copy loses a file: not present, and a drill from it is an error naming it.
  fs::remove(dir / "dr/blog-2.dir/3001.dat.gz");
  states = checker.Check(t, newest, cancel);
  CHECK_FALSE(states[2].present);
  CHECK(states[2].reason ==
        "does not hold the newest backup blog-2.dir: lacks blog-2.dir/3001.dat.gz");
  CHECK_FALSE(Evaluate321(states).ok());
  t.drill.from = DrillFrom::kOffsite;
  try {
    BackupForDrill(t, newest, cancel);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kIo);
    CHECK(std::string(e.what()).find("offsite copy \"dr\" (" + (dir / "dr") +
                                     ") does not hold backup blog-2.dir") != std::string::npos);
  }

  // A copy that cannot be read is not present, with the reason.
  t.backup.copies[1].path = dir / "gone";
  states = checker.Check(t, newest, cancel);
  CHECK_FALSE(states[2].present);
  CHECK(states[2].reason.find("cannot be read: cannot read " + (dir / "gone")) !=
        std::string::npos);

  // An S3 copy whose endpoint does not answer (nothing listens on port 1): not present, naming
  // the URL.
  t.backup.copies[1].path = "s3://bucket/pg";
  t.backup.s3.endpoint = "http://127.0.0.1:1";
  t.backup.s3.path_style = true;
  states = checker.Check(t, newest, cancel);
  CHECK_FALSE(states[2].present);
  INFO(states[2].reason);
  CHECK(states[2].reason.find("cannot be read: S3 GET http://127.0.0.1:1/bucket?") !=
        std::string::npos);
  CHECK(states[2].medium == "s3:bucket");
}

TEST_CASE("copies: local lister", "[unit][copies]") {
  test::TestDir dir("rw-lister-");
  test::WriteFile(dir / "a.dump", "12345");
  fs::create_directories(dir / "d/sub");
  test::WriteFile(dir / "d/sub/x", "xy");
  test::WriteFile(dir / "d/toc.dat", "t");
  CancelToken cancel;
  LocalLister l(dir.path());
  Listing f = l.List("a.dump", cancel);
  REQUIRE(f.found);
  REQUIRE(f.objects.size() == 1);
  CHECK(f.objects[0].size == 5);
  CHECK(f.objects[0].mtime_ns > 0);
  Listing d = l.List("d", cancel);
  REQUIRE(d.objects.size() == 2);
  CHECK(d.objects[0].rel == "d/sub/x");
  CHECK(d.objects[1].rel == "d/toc.dat");
  CHECK_FALSE(l.List("nope", cancel).found);
  CHECK(Sha256Of(l, "a.dump", cancel) ==
        "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5");
  CHECK_THROWS_AS(LocalLister(dir / "missing").List("a", cancel), Error);
}
