// The S3 client's pure parts (agent/storage/s3_client.h): s3:// URL parsing, request URLs,
// ListObjectsV2 and error XML parsing (pagination fields included), and the [target.backup.s3]
// config validation (agent/storage/s3_options.h).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "agent/config.h"
#include "agent/sources/s3_source.h"
#include "agent/storage/s3_client.h"

using namespace rw;

namespace {

const char* kHead = R"(
[[target]]
name = "blog"
source = "host=/tmp dbname=blog"
)";

ConfigLoad Load(const std::string& backup) {
  return LoadConfigText(std::string(kHead) + "[target.backup]\n" + backup, "/tmp/t.toml");
}

std::string Errors(const ConfigLoad& l) {
  std::string s;
  for (const auto& e : l.errors) s += e.ToString() + "\n";
  return s;
}

const char* kS3 = R"(
[target.backup.s3]
endpoint = "http://127.0.0.1:9000"
region = "eu-west-1"
path_style = true
access_key_id = "AKIAEXAMPLE"
secret_access_key = "s3cr3t-very-secret"
)";

}  // namespace

TEST_CASE("s3: URLs parse into bucket and prefix", "[unit][s3]") {
  S3Location l;
  std::string why;
  REQUIRE(ParseS3Url("s3://backups/pg/blog/", &l, &why));
  CHECK(l.bucket == "backups");
  CHECK(l.prefix == "pg/blog");
  CHECK(l.Url() == "s3://backups/pg/blog");
  CHECK(l.Key("a.dump") == "pg/blog/a.dump");
  CHECK(l.ListPrefix() == "pg/blog/");
  REQUIRE(ParseS3Url("s3://backups", &l, &why));
  CHECK(l.prefix.empty());
  CHECK(l.Key("a.dump") == "a.dump");
  CHECK(l.ListPrefix().empty());

  CHECK_FALSE(ParseS3Url("s3:///pg", &l, &why));
  CHECK(why == "\"s3:///pg\" names no bucket (s3://bucket/prefix)");
  CHECK_FALSE(ParseS3Url("s3://Bad_Bucket/x", &l, &why));
  CHECK(why.find("is not a valid bucket name") != std::string::npos);
  CHECK_FALSE(ParseS3Url("/var/backups", &l, &why));
  CHECK(why.find("is not an s3:// URL") != std::string::npos);
  CHECK_FALSE(ParseS3Url("s3://bkt/a//b", &l, &why));
}

TEST_CASE("s3: request URLs in path and virtual-host style", "[unit][s3]") {
  S3Options o;
  o.endpoint = "http://127.0.0.1:9000/";
  o.path_style = true;
  CHECK(S3Client(o).UrlOf("bkt", "pg/a b+c.dump") == "http://127.0.0.1:9000/bkt/pg/a%20b%2Bc.dump");
  CHECK(S3Client(o).UrlOf("bkt", "") == "http://127.0.0.1:9000/bkt");
  o.path_style = false;
  o.endpoint.clear();
  o.region = "eu-west-1";
  CHECK(S3Client(o).UrlOf("bkt", "k") == "https://bkt.s3.eu-west-1.amazonaws.com/k");
}

TEST_CASE("s3: ListObjectsV2 responses parse, pagination fields included", "[unit][s3]") {
  const std::string page1 = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bkt</Name><Prefix>pg/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>tok&amp;1</NextContinuationToken>
  <Contents><Key>pg/a&amp;b.dump</Key><LastModified>2026-11-25T03:15:04.000Z</LastModified>
    <ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag><Size>1234</Size>
    <StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>pg/big.dump</Key><LastModified>2026-11-26T03:15:04Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e-3"</ETag><Size>99999999999</Size></Contents>
</ListBucketResult>)";
  S3ListPage p;
  std::string why;
  REQUIRE(ParseListObjectsV2(page1, &p, &why));
  REQUIRE(p.objects.size() == 2);
  CHECK(p.objects[0].key == "pg/a&b.dump");
  CHECK(p.objects[0].size == 1234);
  CHECK(p.objects[0].etag == "9e107d9d372bb6826bd81d3542a419d6");
  CHECK(p.objects[0].last_modified == Approx(1795576504.0));
  CHECK(p.objects[1].size == 99999999999ull);
  CHECK(p.objects[1].etag == "d41d8cd98f00b204e9800998ecf8427e-3");
  CHECK(p.truncated);
  CHECK(p.next_token == "tok&1");
  CHECK(IsPlainMd5Etag(p.objects[0].etag));
  CHECK_FALSE(IsPlainMd5Etag(p.objects[1].etag));

  const std::string last =
      R"(<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>)";
  REQUIRE(ParseListObjectsV2(last, &p, &why));
  CHECK(p.objects.empty());
  CHECK_FALSE(p.truncated);

  // Errors: a truncated page without a token, a bad size, an error document, not XML at all.
  CHECK_FALSE(
      ParseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated>"
                         "</ListBucketResult>",
                         &p, &why));
  CHECK(why == "a truncated listing without <NextContinuationToken>");
  CHECK_FALSE(
      ParseListObjectsV2("<ListBucketResult><Contents><Key>k</Key><Size>x</Size>"
                         "</Contents></ListBucketResult>",
                         &p, &why));
  CHECK(why == "key k: <Size> \"x\" is not a number");
  const std::string err = R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>
<BucketName>nope</BucketName></Error>)";
  CHECK_FALSE(ParseListObjectsV2(err, &p, &why));
  CHECK(why == "NoSuchBucket: The specified bucket does not exist");
  CHECK(ParseS3Error(err) == "NoSuchBucket: The specified bucket does not exist");
  CHECK_FALSE(ParseListObjectsV2("<html>proxy error</html>", &p, &why));
  CHECK(why == "not a ListObjectsV2 response (no <ListBucketResult>)");
  CHECK(XmlUnescape("a&lt;b&gt;&#65;&#x42;&apos;") == "a<b>AB'");
}

TEST_CASE("s3: [target.backup.s3] config is read and checked", "[unit][s3]") {
  auto l = Load(std::string("path = \"s3://backups/pg/blog\"\n") + kS3);
  REQUIRE(Errors(l) == "");
  const auto& b = l.config->targets[0].backup;
  CHECK(b.paths[0] == "s3://backups/pg/blog");
  CHECK(b.s3.given);
  CHECK(b.s3.endpoint == "http://127.0.0.1:9000");
  CHECK(b.s3.region == "eu-west-1");
  CHECK(b.s3.path_style);
  CHECK(b.s3.access_key_id == "AKIAEXAMPLE");
  CHECK(b.s3.secret_access_key == "s3cr3t-very-secret");
  CHECK(b.s3.verify_tls);

  // From files.
  const std::string dir = "/tmp/rw-s3-unit-" + std::to_string(getpid());
  REQUIRE(system(("mkdir -p " + dir).c_str()) == 0);
  std::ofstream(dir + "/id") << "AKIAFILE\n";
  std::ofstream(dir + "/secret") << "from-a-file-secret\n";
  l = Load(
      "type = \"basebackup\"\npath = \"s3://backups/base\"\nwal_archive = \"s3://backups/wal\"\n"
      "[target.backup.s3]\nendpoint = \"https://minio:9000\"\naccess_key_id_file = \"" +
      dir + "/id\"\nsecret_access_key_file = \"" + dir + "/secret\"\n");
  REQUIRE(Errors(l) == "");
  CHECK(l.config->targets[0].backup.s3.access_key_id == "AKIAFILE");
  CHECK(l.config->targets[0].backup.s3.secret_access_key == "from-a-file-secret");
  CHECK(l.config->targets[0].backup.wal_archive == "s3://backups/wal");
  REQUIRE(system(("rm -rf " + dir).c_str()) == 0);
}

TEST_CASE("s3: bad S3 config is one clear line each", "[unit][s3]") {
  auto l = Load("path = \"s3://backups/pg\"\n");
  CHECK(Errors(l) ==
        "/tmp/t.toml:5: target.blog.backup: an s3:// location needs a [target.backup.s3] table "
        "(endpoint, region, access_key_id, secret_access_key)\n");

  l = Load(std::string("path = \"s3://\"\n") + kS3);
  CHECK(Errors(l) ==
        "/tmp/t.toml:6: target.blog.backup.path: \"s3://\" names no bucket "
        "(s3://bucket/prefix)\n");

  l = Load(std::string("path = [\"s3://backups/pg\", \"/var/backups\"]\n") + kS3);
  CHECK(Errors(l).find("an s3:// path must be the only backup.path (got 2 paths)") !=
        std::string::npos);

  l = Load(
      "path = \"s3://backups/pg\"\n[target.backup.s3]\nendpoint = \"ftp://x\"\n"
      "access_key_id = \"AKIAEXAMPLEID\"\nsecret_access_key = \"bbbbbbbb\"\nsecret_access_key_file "
      "= "
      "\"/x\"\nrequest_timeout = \"0s\"\nverify_tsl = false\n");
  const std::string e = Errors(l);
  CHECK(e.find("target.blog.backup.s3.endpoint: must be an http:// or https:// URL") !=
        std::string::npos);
  CHECK(e.find("target.blog.backup.s3.secret_access_key: give secret_access_key or "
               "secret_access_key_file, not both") != std::string::npos);
  CHECK(e.find("target.blog.backup.s3.request_timeout: must be greater than zero") !=
        std::string::npos);
  CHECK(e.find("target.blog.backup.s3.verify_tsl: unknown key (did you mean \"verify_tls\"?)") !=
        std::string::npos);

  l = Load("path = \"s3://backups/pg\"\n[target.backup.s3]\naccess_key_id = \"AKIAONLY\"\n");
  CHECK(Errors(l).find("target.blog.backup.s3.secret_access_key: access_key_id and "
                       "secret_access_key go together") != std::string::npos);

  // A secret never appears in an error.
  l = Load(
      "path = \"s3://backups/pg\"\n[target.backup.s3]\naccess_key_id = \"AKIAX\"\n"
      "secret_access_key = \"hunter2-secret\"\nregion = \"hunter2-secret:x\"\n");
  CHECK(Errors(l).find("hunter2-secret") == std::string::npos);
  CHECK(Errors(l).find("region: must be a region name") != std::string::npos);

  // Other sources do not read s3:// paths.
  l = Load(std::string("type = \"barman\"\npath = \"s3://backups/pg\"\n") + kS3);
  CHECK(Errors(l).find("s3:// paths are read by backup types \"pg_dump\" and \"basebackup\"") !=
        std::string::npos);
}

TEST_CASE("s3: a listing becomes pg_dump backups; WAL keys a recovery needs", "[unit][s3]") {
  S3Location loc{"bkt", "pg"};
  auto obj = [](const std::string& key, std::uint64_t size, double t) {
    S3Object o;
    o.key = key;
    o.size = size;
    o.last_modified = t;
    return o;
  };
  const std::vector<S3Object> objects = {obj("pg/a.dump", 100, 1000),
                                         obj("pg/b.dump", 200, 2000),
                                         obj("pg/.c.dump", 50, 1e10),
                                         obj("pg/d.dump/toc.dat", 10, 3000),
                                         obj("pg/d.dump/3001.dat.gz", 90, 2999),
                                         obj("pg/e.dump/3001.dat.gz", 5, 10),
                                         obj("pg/globals.sql", 7, 500),
                                         obj("pg/notes.txt", 1, 1),
                                         obj("pg/deep/x/y.dump", 1, 1)};
  std::vector<std::string> notes;
  std::size_t running = 0;
  std::string globals;
  auto b = S3DumpBackups(objects, loc, "*.dump", "globals*", &notes, &running, &globals);
  REQUIRE(b.size() == 3);
  CHECK(b[0].id == "a.dump");
  CHECK(b[0].path == "s3://bkt/pg/a.dump");
  CHECK(b[0].completed_at == 1000);
  CHECK(b[1].id == "b.dump");
  CHECK(b[2].id == "d.dump");
  CHECK(b[2].format == "directory");
  CHECK(b[2].size_bytes == 100);
  CHECK(b[2].completed_at == 3000);
  CHECK(b[0].globals_path == "s3://bkt/pg/globals.sql");
  CHECK(globals == "pg/globals.sql");
  CHECK(running == 1);  // .c.dump, recent
  REQUIRE(notes.size() == 2);
  CHECK(notes[0] == ".c.dump: skipped, a temporary name (being written)");
  CHECK(notes[1] == "e.dump: skipped, a directory without toc.dat");

  const std::vector<S3Object> wal = {obj("wal/000000010000000000000002", 16, 1),
                                     obj("wal/000000010000000000000003", 16, 1),
                                     obj("wal/000000010000000000000003.00000028.backup", 1, 1),
                                     obj("wal/00000002.history", 1, 1),
                                     obj("wal/000000020000000000000004", 16, 1),
                                     obj("wal/000000010000000000000004.partial", 16, 1),
                                     obj("wal/README", 1, 1)};
  CHECK(WalKeysNeeded(wal, "wal/", "000000010000000000000003") ==
        std::vector<std::string>{"wal/000000010000000000000003",
                                 "wal/000000010000000000000003.00000028.backup",
                                 "wal/00000002.history", "wal/000000020000000000000004",
                                 "wal/000000010000000000000004.partial"});
  CHECK(WalKeysNeeded(wal, "wal/", "").size() == 6);
}
