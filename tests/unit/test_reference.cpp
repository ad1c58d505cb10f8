// The reference file of `restorewatch dump` (checks/drill/reference.h): round trip, validation with
// clear errors, SHA-256 of file and directory dumps, and the discovery's handling of it.
#include <catch2/catch.hpp>
#include <fstream>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/sources/pg_dump_discovery.h"
#include "checks/drill/reference.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

Reference Sample() {
  Reference r;
  r.target = "blog";
  r.system_identifier = "7301234567890123456";
  r.database = "blog";
  r.snapshot = "00000003-0000001B-1";
  r.snapshot_time = 1764700000.5;
  r.schema_fingerprint = std::string(64, 'a');
  r.dump_format = "custom";
  r.dump_files.push_back({"blog.dump", 1234, std::string(64, 'b')});
  ReferenceTable t;
  t.name = "public.\"odd\"\"name\"";
  t.root = t.name;
  t.rows = 9007199254740993LL;  // beyond a double's exact integers
  t.hash = "-123456789012345678901234567890";
  t.method = HashMethod::kText;
  r.tables.push_back(t);
  return r;
}

std::string ErrorOf(const std::string& text) {
  try {
    ParseReference(text);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kBadInput);
    return e.what();
  }
  return "(no error)";
}

std::string Without(std::string json, const std::string& fragment) {
  auto at = json.find(fragment);
  REQUIRE(at != std::string::npos);
  json.erase(at, fragment.size());
  return json;
}

}  // namespace

TEST_CASE("reference file: round trip keeps every value exactly", "[unit][dump]") {
  Reference a = Sample();
  Reference b = ParseReference(ReferenceToJson(a));
  CHECK(b.version == 4);
  CHECK(b.hash_format() == HashFormat::kV4);
  CHECK(b.target == a.target);
  CHECK(b.system_identifier == a.system_identifier);
  CHECK(b.snapshot == a.snapshot);
  CHECK(b.snapshot_time == Approx(a.snapshot_time));
  CHECK(b.dump_format == "custom");
  REQUIRE(b.dump_files.size() == 1);
  CHECK(b.dump_files[0].sha256 == a.dump_files[0].sha256);
  CHECK(b.dump_files[0].size == 1234);
  REQUIRE(b.tables.size() == 1);
  CHECK(b.tables[0].name == a.tables[0].name);
  CHECK(b.tables[0].rows == 9007199254740993LL);
  CHECK(b.tables[0].hash == a.tables[0].hash);
  CHECK(b.tables[0].method == HashMethod::kText);
  CHECK_FALSE(b.large_objects);
}

TEST_CASE("reference file: bad JSON, wrong version and missing fields are clear errors",
          "[unit][dump]") {
  const std::string good = ReferenceToJson(Sample());
  CHECK(ErrorOf("{\"format\": ").find("not JSON") == 0);
  CHECK(ErrorOf(good.substr(0, good.size() / 2)).find("not JSON") == 0);
  CHECK(ErrorOf("[1, 2]") == "not a JSON object");
  CHECK(ErrorOf("{\"version\": 1}").find("not a restorewatch reference") == 0);
  std::string v7 = good;
  v7.replace(v7.find("\"version\": 4"), 12, "\"version\": 7");
  CHECK(ErrorOf(v7) == "unsupported version 7 (this restorewatch reads versions 2 to 4)");
  // Version 3 hashed timestamptz and the like through a one-column record: read, the copy alike.
  std::string v3 = good;
  v3.replace(v3.find("\"version\": 4"), 12, "\"version\": 3");
  CHECK(ParseReference(v3).hash_format() == HashFormat::kV3);
  // Version 2 mixed row hashes through their text form: read, and the copy hashed alike.
  std::string v2 = good;
  v2.replace(v2.find("\"version\": 4"), 12, "\"version\": 2");
  CHECK(ParseReference(v2).hash_format() == HashFormat::kV2);
  // Version 1 hashed rows linearly: refused with what to do, never compared.
  std::string v1 = good;
  v1.replace(v1.find("\"version\": 4"), 12, "\"version\": 1");
  CHECK(ErrorOf(v1) ==
        "version 1 holds row hashes this restorewatch no longer computes (a swap of values between "
        "rows kept them): re-take it with `restorewatch dump` of this version");
  CHECK(ErrorOf(Without(good, "\"target\": \"blog\",")) == "missing \"target\"");
  CHECK(ErrorOf(Without(good, ", \"hash\": \"-123456789012345678901234567890\"")) ==
        "tables[0]: missing \"hash\"");
  std::string bad_rows = good;
  bad_rows.replace(bad_rows.find("9007199254740993"), 16, "\"many\"");
  CHECK(ErrorOf(bad_rows) == "tables[0]: \"rows\" must be a number");
  std::string bad_method = good;
  bad_method.replace(bad_method.find("\"text\""), 6, "\"md5\"");
  CHECK(ErrorOf(bad_method) == "tables[0]: unknown \"method\" md5 (record or text)");
  std::string bad_sha = good;
  bad_sha.replace(bad_sha.find(std::string(64, 'b')), 64, "xyz");
  CHECK(ErrorOf(bad_sha) == "dump_files[0]: \"sha256\" is not 64 lowercase hex digits");
  std::string no_files = good;
  auto a = no_files.find("\"dump_files\": [");
  auto b = no_files.find("]", a);
  no_files.replace(a, b - a + 1, "\"dump_files\": []");
  CHECK(ErrorOf(no_files) == "\"dump_files\" is empty: nothing to check the dump against");

  test::TestDir dir;
  WriteFile(dir / "x.restorewatch.json", v7);
  try {
    LoadReference(dir / "x.restorewatch.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "the reference " + (dir / "x.restorewatch.json") +
                                       " is invalid: unsupported version 7 (this restorewatch "
                                       "reads versions 2 to 4)");
  }
  try {
    LoadReference(dir / "missing.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kIo);
  }
}

TEST_CASE("reference file: dump hashes of files and directories, and their comparison",
          "[unit][dump]") {
  test::TestDir dir;
  WriteFile(dir / "a.dump", "abc");
  auto f = HashDumpFiles(dir / "a.dump");
  REQUIRE(f.size() == 1);
  CHECK(f[0].name == "a.dump");
  CHECK(f[0].size == 3);
  CHECK(f[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(CompareDumpFiles(f, f).empty());

  MakeDirs(dir / "d");
  WriteFile(dir / "d/toc.dat", "toc");
  WriteFile(dir / "d/3001.dat.gz", "data");
  auto d = HashDumpFiles(dir / "d");
  REQUIRE(d.size() == 2);
  CHECK(d[0].name == "3001.dat.gz");
  CHECK(d[1].name == "toc.dat");
  CHECK(CompareDumpFiles(d, d).empty());
  WriteFile(dir / "d/3001.dat.gz", "dato");
  std::string diff = CompareDumpFiles(d, HashDumpFiles(dir / "d"));
  CHECK(diff.find("the dump changed after its reference was written: sha256 of 3001.dat.gz ") == 0);
  WriteFile(dir / "d/3001.dat.gz", "data");
  WriteFile(dir / "d/3002.dat.gz", "more");
  CHECK(CompareDumpFiles(d, HashDumpFiles(dir / "d")).find("3002.dat.gz was added") !=
        std::string::npos);

  // Discovery: the reference is never a backup of its own, and is found beside its dump.
  CHECK(pgdump::IsReferenceName("a.dump.restorewatch.json"));
  CHECK_FALSE(pgdump::IsReferenceName("a.dump"));
  CHECK(pgdump::ReferenceBeside(dir / "a.dump").empty());
  WriteFile(dir / "a.dump.restorewatch.json", "{}");
  CHECK(pgdump::ReferenceBeside(dir / "a.dump") == dir / "a.dump.restorewatch.json");
  CHECK(ReferencePathFor(dir / "d/") == dir / "d.restorewatch.json");
}
