#pragma once
// The basebackup source's own [target.drill] keys and their reader (a base of DrillConfig, like
// pg_dump_options.h): recovery_target = "latest" (default: the end of the archive), "immediate"
// (consistency), or a time ("2026-11-24 03:00:00+00"). With another backup type they are unknown
// keys.
#include <string>

namespace rw {
namespace config {
class Reader;
}

struct BasebackupDrillOptions {
  std::string recovery_target = "latest";
};
void ReadBasebackupDrillOptions(config::Reader& drill, BasebackupDrillOptions* out);

}  // namespace rw
