#include "agent/copy_lister.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/errors.h"
#include "agent/storage/s3_client.h"

namespace rw {
namespace {

std::int64_t MtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

// Every regular file below `dir` (rel names relative to the lister root, starting at `rel`).
// Directories are entered through lstat only, so a symlink loop cannot recurse; a symlink to a
// file counts as that file (rsync -L, cp -L copies look like that).
void Walk(const std::string& dir, const std::string& rel, std::vector<StoredObject>* out,
          CancelToken& cancel) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) throw Error(ErrorKind::kIo, "cannot list " + dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    cancel.ThrowIfCancelled();
    const std::string full = Join(dir, name), r = Join(rel, name);
    struct stat st {};
    if (lstat(full.c_str(), &st) != 0) continue;  // vanished meanwhile
    if (S_ISDIR(st.st_mode)) {
      Walk(full, r, out, cancel);
      continue;
    }
    if (S_ISLNK(st.st_mode) && (stat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode))) continue;
    if (!S_ISREG(st.st_mode)) continue;
    out->push_back(StoredObject{r, static_cast<std::uint64_t>(st.st_size), MtimeNs(st), {}});
  }
}

// A location in an S3 bucket (s3://bucket/prefix).
class S3Lister : public CopyLister {
 public:
  S3Lister(std::string root, const S3Options& options) : root_(std::move(root)), client_(options) {
    std::string why;
    if (!ParseS3Url(root_, &loc_, &why)) throw Error(ErrorKind::kConfig, why);
  }
  std::string root() const override { return root_; }
  Listing List(const std::string& rel, CancelToken& cancel) override {
    const std::string key = loc_.Key(rel);
    Listing l;
    // Also proves the bucket is there: a missing bucket is an error, not an empty copy.
    for (auto& o : client_.List(loc_.bucket, key, cancel)) {
      if (o.key != key && o.key.compare(0, key.size() + 1, key + "/") != 0) continue;
      StoredObject s;
      s.rel = o.key.substr(loc_.ListPrefix().size());
      s.size = o.size;
      s.mtime_ns = static_cast<std::int64_t>(o.last_modified * 1e9);
      if (IsPlainMd5Etag(o.etag)) s.etag = o.etag;
      l.objects.push_back(std::move(s));
    }
    l.found = !l.objects.empty();
    return l;
  }
  void Read(const std::string& rel, const std::function<void(const char*, std::size_t)>& sink,
            CancelToken& cancel) override {
    client_.Get(loc_.bucket, loc_.Key(rel), sink, cancel);
  }
  std::string DefaultMedium() const override { return "s3:" + loc_.bucket; }
  bool EtagIsMd5() const override { return true; }

 private:
  std::string root_;
  S3Location loc_;
  S3Client client_;
};

}  // namespace

LocalLister::LocalLister(std::string root) : root_(std::move(root)) {}

Listing LocalLister::List(const std::string& rel, CancelToken& cancel) {
  struct stat st {};
  if (stat(root_.c_str(), &st) != 0)
    throw Error(ErrorKind::kIo, "cannot read " + root_ + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::kIo, root_ + " is not a directory");
  if (access(root_.c_str(), R_OK | X_OK) != 0)
    throw Error(ErrorKind::kIo, "cannot read " + root_ + ": " + std::strerror(errno));
  Listing l;
  const std::string full = Join(root_, rel);
  if (stat(full.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return l;
    throw Error(ErrorKind::kIo, "cannot read " + full + ": " + std::strerror(errno));
  }
  l.found = true;
  if (S_ISDIR(st.st_mode))
    Walk(full, rel, &l.objects, cancel);
  else
    l.objects.push_back(StoredObject{rel, static_cast<std::uint64_t>(st.st_size), MtimeNs(st), {}});
  return l;
}

void LocalLister::Read(const std::string& rel,
                       const std::function<void(const char*, std::size_t)>& sink,
                       CancelToken& cancel) {
  const std::string full = Join(root_, rel);
  const int fd = open(full.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot open " + full + ": " + std::strerror(errno));
  std::vector<char> buf(1 << 20);
  for (;;) {
    if (cancel.cancelled()) {
      close(fd);
      throw Error(ErrorKind::kCancelled, "cancelled");
    }
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw Error(ErrorKind::kIo, "cannot read " + full + ": " + std::strerror(err));
    }
    if (n == 0) break;
    sink(buf.data(), static_cast<std::size_t>(n));
  }
  close(fd);
}

std::string LocalLister::DefaultMedium() const {
  std::string p = root_;
  struct stat st {};
  while (stat(p.c_str(), &st) != 0) {
    const std::size_t slash = p.find_last_of('/');
    if (slash == std::string::npos || p == "/") return "dev:unknown";
    p = slash == 0 ? "/" : p.substr(0, slash);
  }
  return "dev:" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
}

std::unique_ptr<CopyLister> MakeCopyLister(const std::string& location, const S3Options* s3) {
  if (!location.empty() && location[0] == '/') return std::make_unique<LocalLister>(location);
  if (IsS3Url(location)) {
    if (s3 == nullptr)
      throw Error(ErrorKind::kConfig, "no [target.backup.s3] settings to read " + location);
    return std::make_unique<S3Lister>(location, *s3);
  }
  const std::size_t scheme = location.find("://");
  throw Error(ErrorKind::kUnsupported,
              "no lister for " +
                  (scheme == std::string::npos ? "\"" + location + "\""
                                               : location.substr(0, scheme) + ":// locations") +
                  " in this build");
}

namespace {
std::string DigestOf(CopyLister& lister, const std::string& rel, const EVP_MD* algorithm,
                     CancelToken& cancel) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, algorithm, nullptr) != 1) {
    EVP_MD_CTX_free(md);
    throw Error(ErrorKind::kIo, "cannot start a digest");
  }
  try {
    lister.Read(
        rel, [&](const char* data, std::size_t n) { EVP_DigestUpdate(md, data, n); }, cancel);
  } catch (...) {
    EVP_MD_CTX_free(md);
    throw;
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md, out, &len);
  EVP_MD_CTX_free(md);
  static const char* const kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[out[i] >> 4];
    hex += kHex[out[i] & 15];
  }
  return hex;
}
}  // namespace

std::string Sha256Of(CopyLister& lister, const std::string& rel, CancelToken& cancel) {
  return DigestOf(lister, rel, EVP_sha256(), cancel);
}

std::string Md5Of(CopyLister& lister, const std::string& rel, CancelToken& cancel) {
  return DigestOf(lister, rel, EVP_md5(), cancel);
}

}  // namespace rw
