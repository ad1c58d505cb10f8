#pragma once
// A small S3 client over libcurl: requests are signed with AWS Signature V4 by libcurl itself
// (CURLOPT_AWS_SIGV4), never by hand. ListObjectsV2 (paginated), HEAD, GET streamed to a file or
// a sink (no whole-object buffering), PUT of a file (tests, tools). Errors are Error(kIo) naming
// the request's URL (no credentials ever appear in a URL) and quoting the service's <Code> and
// <Message>. One client per thread; cheap to make (a curl easy handle per request).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/storage/s3_options.h"

namespace rw {

// s3://BUCKET/PREFIX: prefix without leading or trailing '/' ("" for the whole bucket).
struct S3Location {
  std::string bucket;
  std::string prefix;
  // "s3://bucket/prefix" (or "s3://bucket").
  std::string Url() const;
  // The key of `rel` below the prefix ("prefix/rel", or rel when the prefix is empty).
  std::string Key(const std::string& rel) const;
  // The key prefix that lists everything below the location ("prefix/", or "").
  std::string ListPrefix() const;
};
// Parses "s3://bucket[/prefix]". False with *error one line naming what is wrong.
bool ParseS3Url(const std::string& url, S3Location* out, std::string* error);

struct S3Object {
  std::string key;
  std::uint64_t size = 0;
  double last_modified = 0;  // Unix seconds
  std::string etag;          // without quotes; "" when absent
};

// One ListObjectsV2 response.
struct S3ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken
};
// Parses a ListObjectsV2 response body. False with *error when it is not one.
bool ParseListObjectsV2(const std::string& xml, S3ListPage* out, std::string* error);
// The <Code> and <Message> of an S3 error body, as "Code: Message" ("" when the body has none).
std::string ParseS3Error(const std::string& xml);
// Decodes the five XML entities and numeric character references.
std::string XmlUnescape(const std::string& text);
// True when `etag` is a plain MD5 (32 hex digits: a single-part, unencrypted upload).
bool IsPlainMd5Etag(const std::string& etag);

class S3Client {
 public:
  explicit S3Client(S3Options options);

  // The request URL of `key` in `bucket` (path or virtual-host style), for messages.
  std::string UrlOf(const std::string& bucket, const std::string& key) const;

  // Every object whose key starts with `prefix`, in key order, after `start_after` when given
  // (ListObjectsV2 start-after: an unchanged listing costs one small request). Follows
  // continuation tokens. `requests`, when given, is incremented per request.
  std::vector<S3Object> List(const std::string& bucket, const std::string& prefix,
                             CancelToken& cancel, const std::string& start_after = {},
                             int* requests = nullptr) const;
  // The object's size/ETag/Last-Modified, or nullopt when there is none (404).
  std::optional<S3Object> Head(const std::string& bucket, const std::string& key,
                               CancelToken& cancel) const;
  // Streams the object to `sink`; throws Error(kIo) on any failure.
  void Get(const std::string& bucket, const std::string& key,
           const std::function<void(const char* data, std::size_t n)>& sink,
           CancelToken& cancel) const;
  // Streams bytes [offset, offset + length) of the object to `sink` (an HTTP Range request).
  void GetRange(const std::string& bucket, const std::string& key, std::uint64_t offset,
                std::uint64_t length,
                const std::function<void(const char* data, std::size_t n)>& sink,
                CancelToken& cancel) const;
  // Streams the object into a new file `path` (mode 0600, fsync'd); returns its size. A partial
  // file is removed on failure.
  std::uint64_t GetToFile(const std::string& bucket, const std::string& key,
                          const std::string& path, CancelToken& cancel) const;
  // Uploads the file `path` as `key`.
  void PutFile(const std::string& bucket, const std::string& key, const std::string& path,
               CancelToken& cancel) const;

 private:
  struct Response;
  Response Perform(const std::string& method, const std::string& bucket, const std::string& key,
                   const std::string& query, CancelToken& cancel,
                   const std::function<void(const char*, std::size_t)>* sink,
                   const std::string* upload_path, const std::string& range = {}) const;
  S3Options opt_;
};

}  // namespace rw
