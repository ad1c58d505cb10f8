#pragma once
// FetchDir: a directory a drill fetches a backup into before restoring it from there (the command
// source's fetch command, the S3 download of an s3:// backup). It is `backup/` inside a
// work_dir directory carrying the agent's marker (.restorewatch, as sandboxes do), so that one
// left by a crash or a kill -9 is swept at the next start (agent/orphans.h). Removed, with
// everything in it, when the FetchDir goes out of scope.
#include <optional>
#include <string>

#include "agent/pg/process.h"

namespace rw {

class FetchDir {
 public:
  // `kind` goes into the marker ("command-fetch", "s3-fetch"). Throws Error(kIo).
  FetchDir(const std::string& work_dir, const std::string& target,
           const std::optional<RunAs>& owner, const std::string& kind = "command-fetch");
  ~FetchDir();
  FetchDir(const FetchDir&) = delete;
  FetchDir& operator=(const FetchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string outer_;
  std::string path_;
};

}  // namespace rw
