#include "tests/support/s3rver.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>

#include "agent/cancel.h"
#include "agent/pg/pg_cluster.h"
#include "agent/storage/s3_client.h"
#include "tests/support/pg_fixture.h"

namespace rw::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const char* const kS3rverPath = "/opt/restorewatch-test/node_modules/.bin/s3rver";

S3rver::S3rver(const TestDir& dir, const std::vector<std::string>& buckets, bool tls,
               const std::string& name)
    : tls_(tls) {
  INFO("s3rver is installed by .ci/setup into /opt/restorewatch-test");
  REQUIRE(::access(kS3rverPath, X_OK) == 0);
  MakeDirs(dir / name, 0700);
  port_ = PickFreePort();
  ProcessSpec s3;
  s3.argv = {kS3rverPath, "-d", dir / name, "-a", "127.0.0.1", "-p", std::to_string(port_), "-s"};
  if (tls) {
    ProcessSpec cert;
    cert.argv = {"openssl",  "req",
                 "-x509",    "-newkey",
                 "rsa:2048", "-nodes",
                 "-keyout",  dir / (name + ".key"),
                 "-out",     dir / (name + ".crt"),
                 "-days",    "1",
                 "-subj",    "/CN=127.0.0.1",
                 "-addext",  "subjectAltName=IP:127.0.0.1"};
    cert.timeout = 1min;
    REQUIRE(RunProcess(cert).ok());
    s3.argv.push_back("--key");
    s3.argv.push_back(dir / (name + ".key"));
    s3.argv.push_back("--cert");
    s3.argv.push_back(dir / (name + ".crt"));
  }
  for (const auto& b : buckets) {
    s3.argv.push_back("--configure-bucket");
    s3.argv.push_back(b);
  }
  // Node 18+ with OpenSSL 3: s3rver's dependencies need the legacy provider.
  s3.env["NODE_OPTIONS"] = "--openssl-legacy-provider";
  child_ = std::make_unique<ChildProcess>(s3, dir / (name + ".log"));
  REQUIRE(Eventually(
      [&] {
        ProcessSpec probe;
        probe.argv = {"curl", "-sk", "-o", "/dev/null", endpoint() + "/"};
        probe.timeout = 5s;
        return RunProcess(probe).exit_code == 0;
      },
      60));
}

std::string S3rver::endpoint() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

S3Options S3rver::Options() const {
  S3Options o;
  o.given = true;
  o.endpoint = endpoint();
  o.path_style = true;
  o.access_key_id = "S3RVER";
  o.secret_access_key = "S3RVER";
  o.verify_tls = false;
  o.connect_timeout = 5s;
  o.request_timeout = 30s;
  return o;
}

std::string S3rver::ConfigTable() const {
  return "[target.backup.s3]\nendpoint = \"" + endpoint() +
         "\"\npath_style = true\naccess_key_id = \"S3RVER\"\nsecret_access_key = \"S3RVER\"\n" +
         (tls_ ? "verify_tls = false\n" : "") + "connect_timeout = \"5s\"\n";
}

void S3rver::Put(const std::string& bucket, const std::string& key, const std::string& path) const {
  S3Client client(Options());
  CancelToken cancel;
  if (!fs::is_directory(path)) {
    client.PutFile(bucket, key, path, cancel);
    return;
  }
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file())
      client.PutFile(bucket, key + "/" + fs::relative(e.path(), path).string(), e.path().string(),
                     cancel);
}

}  // namespace rw::test
