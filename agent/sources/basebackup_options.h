#pragma once
// The basebackup source's own [target.drill] keys and their reader (a base of DrillConfig, like
// pg_dump_options.h): recovery_target = "latest" (default: the end of the archive), "immediate"
// (consistency), or a time ("2026-11-24 03:00:00+00"). With another backup type they are unknown
// keys.
#include <string>

#include "agent/units.h"

namespace rw {
namespace config {
class Reader;
}

struct BasebackupDrillOptions {
  // "latest", "immediate", "random", an offset ("-1h"), a time, or "snapshot": the point of a
  // snapshot the drill takes of the live source, compared exactly (every table, every row).
  std::string recovery_target = "latest";
  // recovery_target = "snapshot": how long to wait for the archive to hold the WAL up to the
  // snapshot's position (an idle source archives its last segment only at archive_timeout).
  Duration snapshot_archive_wait = std::chrono::minutes(5);
};
void ReadBasebackupDrillOptions(config::Reader& drill, BasebackupDrillOptions* out);

}  // namespace rw
