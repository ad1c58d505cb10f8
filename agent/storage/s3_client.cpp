#include "agent/storage/s3_client.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>

#include "agent/errors.h"
#include "agent/secrets.h"
#include "agent/units.h"

namespace rw {
namespace {

// Bytes of an error body kept (S3 error documents are a few hundred bytes).
constexpr std::size_t kErrorBodyCap = 64 * 1024;
// Bytes of a listing body accepted (a page of 1000 keys is ~300 KB).
constexpr std::size_t kListBodyCap = 16u << 20;

// libcurl, loaded on the first S3 request instead of at start: an agent without an S3
// repository never maps it and the ten libraries it brings (nghttp2, ssh2, rtmp, psl, idn2,
// brotli, ...), ~0.6 MiB of its resident memory (issue 13). The header gives the types and
// constants; the functions come from dlsym. libcurl's ABI has been libcurl.so.4 since 2006.
struct CurlApi {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL*);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  time_t (*getdate)(const char*, const time_t*);
};

// The loaded API, or throws (kUnsupported) with why it could not be loaded; loaded once.
const CurlApi& Curl() {
  static CurlApi api{};
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      failure = e ? e : "libcurl.so.4 not found";
      return;
    }
    auto sym = [&](const char* name, auto& fn) {
      void* p = dlsym(h, name);
      if (p == nullptr && failure.empty()) failure = std::string("libcurl.so.4 has no ") + name;
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
    sym("curl_global_init", api.global_init);
    sym("curl_easy_init", api.easy_init);
    sym("curl_easy_setopt", api.easy_setopt);
    sym("curl_easy_getinfo", api.easy_getinfo);
    sym("curl_easy_perform", api.easy_perform);
    sym("curl_easy_cleanup", api.easy_cleanup);
    sym("curl_easy_strerror", api.easy_strerror);
    sym("curl_slist_append", api.slist_append);
    sym("curl_slist_free_all", api.slist_free_all);
    sym("curl_getdate", api.getdate);
    if (failure.empty() && api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      failure = "curl_global_init failed";
  });
  if (!failure.empty())
    throw Error(ErrorKind::kUnsupported,
                "S3 requests need libcurl, which could not be loaded: " + failure,
                "install libcurl4 (Debian: apt-get install libcurl4)");
  return api;
}

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash).
std::string Encode(const std::string& s, bool keep_slash) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The text between <tag> and </tag> starting the search at *pos; advances *pos past the end tag.
std::optional<std::string> NextTag(const std::string& xml, const std::string& tag, std::size_t* pos,
                                   std::size_t end = std::string::npos) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  std::size_t b = xml.find(open, *pos);
  if (b == std::string::npos || b >= end) return std::nullopt;
  b += open.size();
  const std::size_t e = xml.find(close, b);
  if (e == std::string::npos || e > end) return std::nullopt;
  *pos = e + close.size();
  return xml.substr(b, e - b);
}

std::optional<std::string> Tag(const std::string& xml, const std::string& tag) {
  std::size_t pos = 0;
  return NextTag(xml, tag, &pos);
}

std::string StripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string Trim(const std::string& s) {
  const std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Per-request state shared with the curl callbacks.
struct Transfer {
  CURL* curl = nullptr;
  const std::function<void(const char*, std::size_t)>* sink = nullptr;
  std::string body;  // listing or error body
  std::size_t body_cap = kErrorBodyCap;
  bool body_overflow = false;
  std::exception_ptr sink_error;
  CancelToken* cancel = nullptr;
  std::string etag, last_modified;
  std::optional<std::uint64_t> content_length;
  std::uint64_t bytes = 0;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  long status = 0;
  Curl().easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300 && t->sink != nullptr) {
    try {
      (*t->sink)(data, len);
    } catch (...) {
      t->sink_error = std::current_exception();
      return 0;  // aborts the transfer
    }
    t->bytes += len;
    return len;
  }
  if (t->body.size() + len > t->body_cap) {
    t->body_overflow = true;
    return 0;
  }
  t->body.append(data, len);
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  const std::size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string value = Trim(line.substr(colon + 1));
    if (name == "etag") t->etag = StripQuotes(value);
    if (name == "last-modified") t->last_modified = value;
    if (name == "content-length") t->content_length = std::strtoull(value.c_str(), nullptr, 10);
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancel != nullptr && t->cancel->cancelled() ? 1 : 0;
}

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  return std::fread(buf, size, n, static_cast<std::FILE*>(user));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Locations and XML.

std::string S3Location::Url() const {
  return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix);
}
std::string S3Location::Key(const std::string& rel) const {
  if (prefix.empty()) return rel;
  if (rel.empty()) return prefix;
  return prefix + "/" + rel;
}
std::string S3Location::ListPrefix() const { return prefix.empty() ? "" : prefix + "/"; }

bool ParseS3Url(const std::string& url, S3Location* out, std::string* error) {
  if (url.compare(0, 5, "s3://") != 0) {
    *error = "\"" + url + "\" is not an s3:// URL (s3://bucket/prefix)";
    return false;
  }
  std::string rest = url.substr(5);
  const std::size_t slash = rest.find('/');
  S3Location loc;
  loc.bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  loc.prefix = prefix;
  if (loc.bucket.empty()) {
    *error = "\"" + url + "\" names no bucket (s3://bucket/prefix)";
    return false;
  }
  // S3 bucket names: 3..63 of lowercase letters, digits, '.', '-', starting and ending alnum.
  bool ok = loc.bucket.size() >= 3 && loc.bucket.size() <= 63 &&
            std::isalnum(static_cast<unsigned char>(loc.bucket.front())) &&
            std::isalnum(static_cast<unsigned char>(loc.bucket.back()));
  for (char c : loc.bucket)
    ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-');
  if (!ok) {
    *error = "bucket \"" + loc.bucket + "\" in \"" + url +
             "\" is not a valid bucket name (3 to 63 lowercase letters, digits, '.' and '-')";
    return false;
  }
  if (loc.prefix.find("//") != std::string::npos || loc.prefix.find('?') != std::string::npos ||
      loc.prefix.find('#') != std::string::npos) {
    *error = "prefix \"" + loc.prefix + "\" in \"" + url + "\" has '//', '?' or '#'";
    return false;
  }
  *out = loc;
  return true;
}

std::string XmlUnescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    const std::size_t semi = text.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += text[i];
      continue;
    }
    const std::string ent = text.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out += '&';
    else if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      const unsigned long cp = ent[1] == 'x' || ent[1] == 'X'
                                   ? std::strtoul(ent.c_str() + 2, nullptr, 16)
                                   : std::strtoul(ent.c_str() + 1, nullptr, 10);
      // UTF-8 encode.
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out += text.substr(i, semi - i + 1);  // unknown entity: kept as written
    }
    i = semi;
  }
  return out;
}

bool IsPlainMd5Etag(const std::string& etag) {
  if (etag.size() != 32) return false;
  for (char c : etag)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

bool ParseListObjectsV2(const std::string& xml, S3ListPage* out, std::string* error) {
  if (xml.find("<ListBucketResult") == std::string::npos) {
    const std::string err = ParseS3Error(xml);
    *error = err.empty() ? "not a ListObjectsV2 response (no <ListBucketResult>)" : err;
    return false;
  }
  S3ListPage page;
  std::size_t pos = 0;
  while (auto c = NextTag(xml, "Contents", &pos)) {
    S3Object o;
    auto key = Tag(*c, "Key");
    auto size = Tag(*c, "Size");
    if (!key || !size) {
      *error = "a <Contents> entry without <Key> or <Size>";
      return false;
    }
    o.key = XmlUnescape(*key);
    char* end = nullptr;
    errno = 0;
    o.size = std::strtoull(size->c_str(), &end, 10);
    if (size->empty() || *end != '\0' || errno != 0) {
      *error = "key " + o.key + ": <Size> \"" + *size + "\" is not a number";
      return false;
    }
    if (auto lm = Tag(*c, "LastModified")) {
      auto t = ParseTimestamp(*lm);
      if (!t) {
        *error = "key " + o.key + ": <LastModified> \"" + *lm + "\" is not a time";
        return false;
      }
      o.last_modified = *t;
    }
    if (auto etag = Tag(*c, "ETag")) o.etag = StripQuotes(XmlUnescape(*etag));
    page.objects.push_back(std::move(o));
  }
  page.truncated = Tag(xml, "IsTruncated").value_or("false") == "true";
  page.next_token = XmlUnescape(Tag(xml, "NextContinuationToken").value_or(""));
  if (page.truncated && page.next_token.empty()) {
    *error = "a truncated listing without <NextContinuationToken>";
    return false;
  }
  *out = std::move(page);
  return true;
}

std::string ParseS3Error(const std::string& xml) {
  auto code = Tag(xml, "Code");
  auto message = Tag(xml, "Message");
  if (!code && !message) return "";
  std::string out = XmlUnescape(code.value_or("?"));
  if (message) out += ": " + XmlUnescape(*message);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The client.

struct S3Client::Response {
  long status = 0;
  std::string body;
  std::string etag, last_modified;
  std::optional<std::uint64_t> content_length;
};

S3Client::S3Client(S3Options options) : opt_(std::move(options)) {
  RegisterSecret(opt_.access_key_id);
  RegisterSecret(opt_.secret_access_key);
}

std::string S3Client::UrlOf(const std::string& bucket, const std::string& key) const {
  std::string base =
      opt_.endpoint.empty() ? "https://s3." + opt_.region + ".amazonaws.com" : opt_.endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string path = key.empty() ? "" : Encode(key, true);
  if (opt_.path_style) return base + "/" + bucket + (key.empty() ? "" : "/" + path);
  const std::size_t scheme = base.find("://");
  const std::size_t host = scheme == std::string::npos ? 0 : scheme + 3;
  return base.substr(0, host) + bucket + "." + base.substr(host) + "/" + path;
}

S3Client::Response S3Client::Perform(const std::string& method, const std::string& bucket,
                                     const std::string& key, const std::string& query,
                                     CancelToken& cancel,
                                     const std::function<void(const char*, std::size_t)>* sink,
                                     const std::string* upload_path,
                                     const std::string& range) const {
  const std::string url = UrlOf(bucket, key);
  const std::string full = query.empty() ? url : url + "?" + query;
  const std::string what = "S3 " + method + " " + full;
  const CurlApi& api = Curl();
  CURL* curl = api.easy_init();
  if (curl == nullptr) throw Error(ErrorKind::kIo, what + ": cannot start a libcurl request");
  Transfer t;
  t.curl = curl;
  t.sink = sink;
  t.cancel = &cancel;
  if (sink == nullptr && method == "GET") t.body_cap = kListBodyCap;
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::FILE* upload = nullptr;
  struct curl_slist* headers = nullptr;
  headers = api.slist_append(headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (!range.empty()) headers = api.slist_append(headers, ("Range: bytes=" + range).c_str());
  const std::string sigv4 = "aws:amz:" + opt_.region + ":s3";
  api.easy_setopt(curl, CURLOPT_URL, full.c_str());
  api.easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!opt_.access_key_id.empty()) {
    api.easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
    api.easy_setopt(curl, CURLOPT_USERNAME, opt_.access_key_id.c_str());
    api.easy_setopt(curl, CURLOPT_PASSWORD, opt_.secret_access_key.c_str());
  }
  api.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  api.easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnWrite);
  api.easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  api.easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  api.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  api.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  api.easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  api.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(ToSeconds(opt_.connect_timeout) * 1000));
  const long idle = std::max(1L, static_cast<long>(ToSeconds(opt_.request_timeout)));
  api.easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  api.easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, idle);
  if (sink == nullptr && upload_path == nullptr)  // listings and HEAD: bounded as a whole
    api.easy_setopt(curl, CURLOPT_TIMEOUT, idle);
  if (!opt_.ca_file.empty()) api.easy_setopt(curl, CURLOPT_CAINFO, opt_.ca_file.c_str());
  if (!opt_.verify_tls) {
    api.easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    api.easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (method == "HEAD") api.easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (upload_path != nullptr) {
    upload = std::fopen(upload_path->c_str(), "rb");
    struct stat st {};
    if (upload == nullptr || fstat(fileno(upload), &st) != 0) {
      const int err = errno;
      if (upload) std::fclose(upload);
      api.slist_free_all(headers);
      api.easy_cleanup(curl);
      throw Error(ErrorKind::kIo,
                  what + ": cannot read " + *upload_path + ": " + std::strerror(err));
    }
    api.easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    api.easy_setopt(curl, CURLOPT_READFUNCTION, &OnRead);
    api.easy_setopt(curl, CURLOPT_READDATA, upload);
    api.easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(st.st_size));
  }
  const CURLcode rc = api.easy_perform(curl);
  Response r;
  api.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  api.slist_free_all(headers);
  api.easy_cleanup(curl);
  if (upload) std::fclose(upload);
  if (t.sink_error) std::rethrow_exception(t.sink_error);
  if (rc == CURLE_ABORTED_BY_CALLBACK || cancel.cancelled())
    throw Error(ErrorKind::kCancelled, what + ": cancelled");
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.body_overflow)) {
    std::string why = errbuf[0] ? errbuf : api.easy_strerror(rc);
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    throw Error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kIo,
                Redact(what + ": " + why));
  }
  if (t.body_overflow && r.status >= 200 && r.status < 300)
    throw Error(ErrorKind::kIo,
                what + ": the response is larger than " + std::to_string(t.body_cap) + " bytes");
  r.body = std::move(t.body);
  r.etag = t.etag;
  r.last_modified = t.last_modified;
  r.content_length = t.content_length;
  if (r.status >= 300 && !(method == "HEAD" && r.status == 404)) {
    std::string err = ParseS3Error(r.body);
    throw Error(ErrorKind::kIo, Redact(what + ": HTTP " + std::to_string(r.status) +
                                       (err.empty() ? "" : " " + err)));
  }
  return r;
}

std::vector<S3Object> S3Client::List(const std::string& bucket, const std::string& prefix,
                                     CancelToken& cancel, const std::string& start_after,
                                     int* requests) const {
  std::vector<S3Object> out;
  std::string token;
  for (;;) {
    // Query parameters in SigV4's canonical (sorted) order.
    std::string q;
    if (!token.empty()) q += "continuation-token=" + Encode(token, false) + "&";
    q += "list-type=2";
    if (!prefix.empty()) q += "&prefix=" + Encode(prefix, false);
    if (!start_after.empty() && token.empty()) q += "&start-after=" + Encode(start_after, false);
    Response r = Perform("GET", bucket, "", q, cancel, nullptr, nullptr);
    if (requests) ++*requests;
    S3ListPage page;
    std::string why;
    if (!ParseListObjectsV2(r.body, &page, &why))
      throw Error(ErrorKind::kIo, "S3 GET " + UrlOf(bucket, "") + "?" + q + ": " + why);
    for (auto& o : page.objects) out.push_back(std::move(o));
    if (!page.truncated) break;
    if (page.next_token == token)
      throw Error(ErrorKind::kIo, "S3 GET " + UrlOf(bucket, "") + ": the listing repeats itself");
    token = page.next_token;
  }
  return out;
}

std::optional<S3Object> S3Client::Head(const std::string& bucket, const std::string& key,
                                       CancelToken& cancel) const {
  Response r = Perform("HEAD", bucket, key, "", cancel, nullptr, nullptr);
  if (r.status == 404) return std::nullopt;
  S3Object o;
  o.key = key;
  o.size = r.content_length.value_or(0);
  o.etag = r.etag;
  if (!r.last_modified.empty()) {
    const time_t t = Curl().getdate(r.last_modified.c_str(), nullptr);
    if (t > 0) o.last_modified = static_cast<double>(t);
  }
  return o;
}

void S3Client::Get(const std::string& bucket, const std::string& key,
                   const std::function<void(const char*, std::size_t)>& sink,
                   CancelToken& cancel) const {
  Perform("GET", bucket, key, "", cancel, &sink, nullptr);
}

void S3Client::GetRange(const std::string& bucket, const std::string& key, std::uint64_t offset,
                        std::uint64_t length,
                        const std::function<void(const char*, std::size_t)>& sink,
                        CancelToken& cancel) const {
  if (length == 0) return;
  Perform("GET", bucket, key, "", cancel, &sink, nullptr,
          std::to_string(offset) + "-" + std::to_string(offset + length - 1));
}

std::uint64_t S3Client::GetToFile(const std::string& bucket, const std::string& key,
                                  const std::string& path, CancelToken& cancel) const {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot create " + path + ": " + std::strerror(errno));
  std::uint64_t total = 0;
  try {
    Get(
        bucket, key,
        [&](const char* data, std::size_t n) {
          while (n > 0) {
            const ssize_t w = write(fd, data, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0)
              throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
            data += w;
            n -= static_cast<std::size_t>(w);
            total += static_cast<std::uint64_t>(w);
          }
        },
        cancel);
    if (fsync(fd) != 0)
      throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
  } catch (...) {
    close(fd);
    unlink(path.c_str());
    throw;
  }
  if (close(fd) != 0) {
    unlink(path.c_str());
    throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
  }
  return total;
}

void S3Client::PutFile(const std::string& bucket, const std::string& key, const std::string& path,
                       CancelToken& cancel) const {
  Perform("PUT", bucket, key, "", cancel, nullptr, &path);
}

}  // namespace rw
