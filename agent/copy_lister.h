#pragma once
// CopyLister: what the 3-2-1 check (agent/copies.h) needs from a place that holds backups: list
// what is at a relative path (a file, or every file below a directory) with size, mtime and, when
// the store has one, an etag/checksum; read an object's bytes (for verify_checksum). One
// implementation per kind of store: LocalLister (a local or mounted directory) here; an S3 lister
// (s3:// paths) plugs into MakeCopyLister. Listers are cheap to make and are used by one thread at
// a time.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"

namespace rw {

struct StoredObject {
  std::string rel;            // path relative to the lister's root, '/'-separated
  std::uint64_t size = 0;     // bytes
  std::int64_t mtime_ns = 0;  // last modification, Unix nanoseconds (0 when unknown)
  // A content checksum the store keeps for free (an S3 ETag of a single-part upload, ...); equal
  // etags prove equal content only when both come from the same kind of store. Local files: none.
  std::optional<std::string> etag;
};

struct Listing {
  bool found = false;                 // something exists at the path
  std::vector<StoredObject> objects;  // the file itself, or the files below the directory
};

class CopyLister {
 public:
  virtual ~CopyLister() = default;
  // The root as configured (a path or URL), for messages.
  virtual std::string root() const = 0;
  // What is at `rel` below the root: one object for a file, every regular file below a directory
  // (recursively; rel paths below the root), found = false when nothing is there. Throws
  // Error(kIo) when the root itself cannot be read (missing mount, permissions), so a copy that
  // cannot be read is told apart from one that lacks a backup.
  virtual Listing List(const std::string& rel, CancelToken& cancel) = 0;
  // Streams the bytes of the object at `rel` to `sink` in chunks. Throws Error(kIo).
  virtual void Read(const std::string& rel,
                    const std::function<void(const char* data, std::size_t n)>& sink,
                    CancelToken& cancel) = 0;
  // The medium a copy on this store counts as when none is configured (see CopyConfig::medium).
  virtual std::string DefaultMedium() const = 0;
  // True when an object's etag, when set, is the MD5 of its content (S3 single-part uploads):
  // verify_checksum then compares it with the primary's MD5 instead of reading the object.
  virtual bool EtagIsMd5() const { return false; }
};

// A directory on a local or mounted file system.
class LocalLister : public CopyLister {
 public:
  explicit LocalLister(std::string root);
  std::string root() const override { return root_; }
  Listing List(const std::string& rel, CancelToken& cancel) override;
  void Read(const std::string& rel, const std::function<void(const char*, std::size_t)>& sink,
            CancelToken& cancel) override;
  // "dev:MAJOR:MINOR" of the root's file system (of its nearest existing ancestor).
  std::string DefaultMedium() const override;

 private:
  std::string root_;
};

struct S3Options;
// The lister for a configured location: LocalLister for an absolute path; for s3://bucket/prefix
// an S3 lister through agent/storage/s3_client.h with `s3` ([target.backup.s3]; without it,
// Error(kConfig)). It lists the objects at "prefix/rel" (a key) or below "prefix/rel/" (a
// directory); an object's etag is kept only when it is a plain MD5; its default medium is
// "s3:BUCKET". Another scheme throws Error(kUnsupported) naming it.
std::unique_ptr<CopyLister> MakeCopyLister(const std::string& location,
                                           const S3Options* s3 = nullptr);

// The hex SHA-256 of the object at `rel`, streamed. Throws Error(kIo).
std::string Sha256Of(CopyLister& lister, const std::string& rel, CancelToken& cancel);
// The hex MD5 of the object at `rel`, streamed (to compare with an S3 ETag). Throws Error(kIo).
std::string Md5Of(CopyLister& lister, const std::string& rel, CancelToken& cancel);

}  // namespace rw
