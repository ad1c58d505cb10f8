#include "agent/storage/s3_wal_mirror.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

#include "agent/errors.h"
#include "agent/pg/process.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {

// What the continuity check reads of an uncompressed segment: its first page (XLOG_BLCKSZ).
constexpr std::uint64_t kHeadBytes = 8192;

bool SameAs(const std::string& path, const S3Object& o) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) == o.size &&
         st.st_mtim.tv_sec == static_cast<time_t>(std::floor(o.last_modified));
}

}  // namespace

S3WalMirror::S3WalMirror(const std::string& url, const S3Options& options, std::string dir,
                         int full_every)
    : client_(options), dir_(std::move(dir)), full_every_(full_every) {
  std::string why;
  if (!ParseS3Url(url, &loc_, &why)) throw Error(ErrorKind::kConfig, why);
}

void S3WalMirror::Fetch(const S3Object& o, const std::string& name, CancelToken& cancel) {
  const std::string path = dir_ + "/" + name, tmp = dir_ + "/.tmp-" + name;
  ::unlink(tmp.c_str());
  const wal::ArchiveName a = wal::ParseArchiveName(name);
  if (a.kind == wal::ArchiveFileKind::kSegment && a.compression.empty()) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorKind::kIo, "cannot create " + tmp + ": " + std::strerror(errno));
    try {
      client_.GetRange(
          loc_.bucket, o.key, 0, std::min(kHeadBytes, o.size),
          [&](const char* data, std::size_t n) {
            if (::write(fd, data, n) != static_cast<ssize_t>(n))
              throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
          },
          cancel);
      if (::ftruncate(fd, static_cast<off_t>(o.size)) != 0)
        throw Error(ErrorKind::kIo, "cannot size " + tmp + ": " + std::strerror(errno));
    } catch (...) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw;
    }
    ::close(fd);
  } else {
    client_.GetToFile(loc_.bucket, o.key, tmp, cancel);
  }
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(std::floor(o.last_modified));
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ::utimensat(AT_FDCWD, tmp.c_str(), times, 0);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot rename " + tmp + ": " + std::strerror(err));
  }
}

S3WalMirror::Stats S3WalMirror::Sync(bool full, CancelToken& cancel) {
  Stats st;
  MakeDirs(dir_, 0700);
  st.full = full || last_key_.empty() || (full_every_ > 0 && runs_ % full_every_ == 0);
  ++runs_;
  const std::string prefix = loc_.ListPrefix();
  const auto objects =
      client_.List(loc_.bucket, prefix, cancel, st.full ? "" : last_key_, &st.requests);
  std::set<std::string> listed;
  for (const auto& o : objects) {
    cancel.ThrowIfCancelled();
    if (o.key > last_key_) last_key_ = o.key;
    const std::string name = o.key.substr(prefix.size());
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') continue;
    if (wal::ParseArchiveName(name).kind == wal::ArchiveFileKind::kOther) continue;
    listed.insert(name);
    if (SameAs(dir_ + "/" + name, o)) continue;
    Fetch(o, name, cancel);
    ++st.fetched;
  }
  if (st.full) {
    if (DIR* d = ::opendir(dir_.c_str())) {
      std::vector<std::string> gone;
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != ".." && !listed.count(n)) gone.push_back(n);
      }
      ::closedir(d);
      for (const auto& n : gone)
        if (::unlink((dir_ + "/" + n).c_str()) == 0) ++st.removed;
    }
  }
  return st;
}

}  // namespace rw
