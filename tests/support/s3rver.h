#pragma once
// s3rver (npm, installed by .ci/setup into /opt/restorewatch-test) on loopback for S3 tests: plain
// HTTP on a free port, or HTTPS with a self-signed certificate, buckets configured at start,
// data in the caller's directory; stopped by the destructor. It accepts the key id S3RVER (secret
// S3RVER) and does not verify signatures: an unknown key id is refused, a wrong secret is not.
#include <memory>
#include <string>
#include <vector>

#include "agent/pg/process.h"
#include "agent/storage/s3_options.h"

namespace rw::test {

class TestDir;

extern const char* const kS3rverPath;

class S3rver {
 public:
  // Starts s3rver with `buckets` under dir/`name`; REQUIRE-fails unless it answers within 60 s.
  S3rver(const TestDir& dir, const std::vector<std::string>& buckets, bool tls = false,
         const std::string& name = "s3");
  int port() const { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT" (https with tls)
  // Client options for it (path style, key S3RVER; TLS unverified).
  S3Options Options() const;
  // [target.backup.s3] for an agent config.
  std::string ConfigTable() const;
  // Uploads a local file, or every file below a local directory (keys prefix/relative path).
  void Put(const std::string& bucket, const std::string& key, const std::string& path) const;

 private:
  int port_ = 0;
  bool tls_ = false;
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace rw::test
