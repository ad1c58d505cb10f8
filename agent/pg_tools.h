#pragma once
// Locating PostgreSQL binaries. "auto" picks the newest /usr/lib/postgresql/<N>/bin (then pg_config
// and PATH); a path is used as given. Immutable after Detect; thread-safe.
#include <string>

namespace rw {

struct PgTools {
  std::string bin_dir;  // e.g. /usr/lib/postgresql/15/bin
  int major = 0;        // from `postgres --version`, e.g. 15
  // Full path of a tool in bin_dir (does not check it exists).
  std::string Path(const std::string& tool) const { return bin_dir + "/" + tool; }
  // Throws Error(kConfig) naming what is missing.
  static PgTools Detect(const std::string& setting);
};

}  // namespace rw
