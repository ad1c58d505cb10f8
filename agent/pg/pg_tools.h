#pragma once
// Locating PostgreSQL binaries. "auto" picks the newest /usr/lib/postgresql/<N>/bin (then pg_config
// and PATH), and a physical drill then runs on /usr/lib/postgresql/<backup's major>/bin
// (ForMajor); a path is used as given. Immutable after Detect; thread-safe.
#include <optional>
#include <string>

namespace rw {

struct PgTools {
  std::string bin_dir;  // e.g. /usr/lib/postgresql/15/bin
  int major = 0;        // from `postgres --version`, e.g. 15
  // Found by "auto": the binaries of other majors installed beside these may be used (ForMajor).
  bool detected = false;
  // Full path of a tool in bin_dir (does not check it exists).
  std::string Path(const std::string& tool) const { return bin_dir + "/" + tool; }
  // Throws Error(kConfig) naming what is missing.
  static PgTools Detect(const std::string& setting);
  // The binaries of PostgreSQL `major` (a physical copy must run on its own major): these when
  // they are of it; else, when they were found by "auto", <root>/<major>/bin when the `postgres`
  // there says it is of that major. nullopt otherwise (a pg_bin_dir set by hand is never swapped).
  std::optional<PgTools> ForMajor(int major, const std::string& root = "/usr/lib/postgresql") const;
};

}  // namespace rw
