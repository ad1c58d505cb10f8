#include "agent/storage/s3_options.h"

#include "agent/config_reader.h"
#include "agent/storage/s3_client.h"

namespace rw {
namespace {

// One of `key` (inline, ${ENV} expands) or `key`_file (a file holding it, like password_file).
void ReadSecret(config::Reader& r, const char* key, const std::string& file_key, std::string* out) {
  const bool inline_given = r.table().get(key) != nullptr;
  const bool file_given = r.table().get(file_key) != nullptr;
  if (inline_given && file_given) {
    r.Error(key, std::string("give ") + key + " or " + file_key + ", not both");
    r.Take(key);
    r.Take(file_key.c_str());
    return;
  }
  if (inline_given) {
    std::string v;
    if (r.Str(key, &v)) {
      if (v.empty())
        r.Error(key, "must not be empty");
      else {
        r.loader().AddSecret(v);
        *out = v;
      }
    }
  } else if (file_given) {
    std::string path;
    if (r.Name(file_key.c_str(), &path)) {
      const toml::node* n = r.table().get(file_key);
      r.loader().ReadPasswordFile(path, config::LineOf(*n), r.Key(file_key), out);
    }
  }
}

}  // namespace

bool IsS3Url(const std::string& location) { return location.compare(0, 5, "s3://") == 0; }

void ReadS3Options(config::Reader& r, S3Options* out) {
  out->given = true;
  if (r.Str("endpoint", &out->endpoint)) {
    const bool http =
        out->endpoint.compare(0, 7, "http://") == 0 || out->endpoint.compare(0, 8, "https://") == 0;
    const std::size_t host = out->endpoint.find("://");
    if (!http || host == std::string::npos || out->endpoint.size() <= host + 3 ||
        out->endpoint.find_first_of("?#@ ") != std::string::npos)
      r.Error("endpoint",
              "must be an http:// or https:// URL without credentials, query or "
              "fragment, e.g. \"https://s3.eu-west-1.amazonaws.com\", got \"" +
                  out->endpoint + "\"");
  }
  if (r.Name("region", &out->region) && out->region.find_first_of(" :/\"'") != std::string::npos)
    r.Error("region", "must be a region name like \"eu-west-1\", got \"" + out->region + "\"");
  r.Bool("path_style", &out->path_style);
  ReadSecret(r, "access_key_id", "access_key_id_file", &out->access_key_id);
  ReadSecret(r, "secret_access_key", "secret_access_key_file", &out->secret_access_key);
  if (out->access_key_id.empty() != out->secret_access_key.empty() && r.loader().ok())
    r.Error(out->access_key_id.empty() ? "access_key_id" : "secret_access_key",
            "access_key_id and secret_access_key go together: give both (or neither, for a "
            "public bucket)");
  if (r.Name("ca_file", &out->ca_file) && !out->ca_file.empty() && out->ca_file[0] != '/' &&
      !r.loader().dir().empty())
    out->ca_file = r.loader().dir() + "/" + out->ca_file;
  r.Bool("verify_tls", &out->verify_tls);
  r.Dur("connect_timeout", &out->connect_timeout, config::Reader::Zero::kRefused);
  r.Dur("request_timeout", &out->request_timeout, config::Reader::Zero::kRefused);
}

void ValidateS3(config::Reader& r, const TargetConfig& t) {
  auto error = [&](const std::string& key, const std::string& message) {
    const toml::node* n = r.table().at_path(key).node();
    r.loader().Error(n != nullptr ? config::LineOf(*n) : r.line(), r.Key(key), message);
  };
  bool any = false;
  auto check = [&](const std::string& key, const std::string& url) {
    if (!IsS3Url(url)) return;
    any = true;
    S3Location loc;
    std::string why;
    if (!ParseS3Url(url, &loc, &why)) error(key, why);
  };
  std::size_t s3_paths = 0;
  for (const auto& p : t.backup.paths) {
    check("backup.path", p);
    s3_paths += IsS3Url(p) ? 1 : 0;
  }
  if (s3_paths > 0) {
    if (t.backup.paths.size() > 1)
      error("backup.path", "an s3:// path must be the only backup.path (got " +
                               std::to_string(t.backup.paths.size()) + " paths)");
    if (t.backup.type != "pg_dump" && t.backup.type != "basebackup")
      error("backup.path",
            "s3:// paths are read by backup types \"pg_dump\" and \"basebackup\", "
            "not \"" +
                t.backup.type + "\" (give that tool its own repository)");
  }
  check("backup.wal_archive", t.backup.wal_archive);
  if (IsS3Url(t.backup.wal_archive) && t.backup.type == "basebackup" && s3_paths == 0)
    error("backup.wal_archive",
          "an s3:// wal_archive needs the base backups on S3 too (backup.path = \"s3://...\"): "
          "a drill downloads the WAL it needs beside the backup");
  for (std::size_t i = 0; i < t.backup.copies.size(); ++i)
    check("backup.copies[" + std::to_string(i) + "].path", t.backup.copies[i].path);
  if (any && !t.backup.s3.given)
    error("backup",
          "an s3:// location needs a [target.backup.s3] table (endpoint, region, "
          "access_key_id, secret_access_key)");
}

}  // namespace rw
