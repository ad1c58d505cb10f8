#pragma once
// [target.backup.s3]: how the agent reaches an S3-compatible object store for s3:// locations
// (backup.path, backup.wal_archive, backup.copies[].path). A base-free struct held by BackupConfig;
// read by ReadS3Options (agent/storage/s3_options.cpp). The secret key (and the key id) are
// registered as secrets when read: never logged, never given to a child process.
#include <string>

#include "agent/units.h"

namespace rw {
struct TargetConfig;
namespace config {
class Reader;
}

struct S3Options {
  bool given = false;  // a [target.backup.s3] table was present
  // Base URL of the service, e.g. "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com";
  // empty: https://s3.REGION.amazonaws.com.
  std::string endpoint;
  std::string region = "us-east-1";  // SigV4 signing region
  // true: http://endpoint/BUCKET/KEY (MinIO, Ceph, s3rver); false: http://BUCKET.endpoint/KEY.
  bool path_style = false;
  std::string access_key_id;      // from access_key_id or access_key_id_file (${ENV} expands)
  std::string secret_access_key;  // from secret_access_key or secret_access_key_file; never logged
  std::string ca_file;            // PEM bundle to verify the endpoint with; empty: system store
  bool verify_tls = true;         // false: accept any certificate (test endpoints only)
  Duration connect_timeout = std::chrono::seconds(10);
  // A request that moves no byte for this long is aborted (listings and HEAD: the whole request).
  Duration request_timeout = std::chrono::seconds(60);
};

// True when `location` is an s3:// URL.
bool IsS3Url(const std::string& location);

// Reads the [target.backup.s3] table.
void ReadS3Options(config::Reader& s3, S3Options* out);
// Checks across [target.backup] once read: an s3:// path, wal_archive or copy needs
// [target.backup.s3] with both keys; every s3:// URL must name a bucket; backup.path cannot mix
// s3:// and local paths; only pg_dump and basebackup read s3:// paths. `target` is the target's
// Reader.
void ValidateS3(config::Reader& target, const TargetConfig& t);

}  // namespace rw
