#pragma once
// A local mirror of a WAL archive in S3 (wal_archive = "s3://bucket/prefix") that the continuity
// check (agent/wal_archive.h) reads as if it were the archive directory, without downloading
// every segment: an uncompressed segment is mirrored as a sparse file of the object's size
// holding only its first page (a Range request of 8 KiB: what the check reads), with the
// object's LastModified as mtime; .history, .backup, .partial and compressed segments are
// downloaded whole (small, or needed whole to be decompressed). Listings are incremental: after
// the first, a run lists only keys after the last one seen (ListObjectsV2 start-after), so an
// unchanged archive costs one small request; a full listing (which also forgets mirrored files
// gone from the bucket) runs when asked (the last check found a gap a late upload may fill) and
// every `full_every` runs. One instance per archive; one thread at a time.
#include <cstdint>
#include <string>

#include "agent/cancel.h"
#include "agent/storage/s3_client.h"

namespace rw {

class S3WalMirror {
 public:
  // `url`: s3://bucket/prefix; `dir`: the local mirror (created 0700). Throws Error(kConfig) for
  // a bad URL.
  S3WalMirror(const std::string& url, const S3Options& options, std::string dir,
              int full_every = 12);

  struct Stats {
    int requests = 0;           // list requests
    std::uint64_t fetched = 0;  // objects fetched (whole or first page)
    std::uint64_t removed = 0;  // mirrored files gone from the bucket (full listings)
    bool full = false;          // this run listed everything
  };
  // Brings the mirror up to date. Throws Error(kIo) naming the URL when S3 cannot be read.
  Stats Sync(bool full, CancelToken& cancel);
  const std::string& dir() const { return dir_; }

 private:
  void Fetch(const S3Object& o, const std::string& name, CancelToken& cancel);
  S3Location loc_;
  S3Client client_;
  std::string dir_;
  int full_every_;
  int runs_ = 0;
  std::string last_key_;  // the greatest key seen ("" before the first listing)
};

}  // namespace rw
