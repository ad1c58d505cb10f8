#include "agent/sources/barman_options.h"

#include "agent/config_reader.h"
#include "agent/sources/basebackup_options.h"

namespace rw {

void ReadBarmanBackupOptions(config::Reader& r, BarmanBackupOptions* out) {
  if (r.Require("server")) r.Name("server", &out->barman.server);
  if (r.Require("config") && r.Name("config", &out->barman.config) && out->barman.config[0] != '/')
    r.Error("config", "must be an absolute path (barman -c)");
  if (r.Name("run_as", &out->barman.run_as) && out->barman.run_as == "root")
    r.Error("run_as", "must not be root (barman and PostgreSQL run unprivileged)");
}

void ReadBarmanDrillOptions(config::Reader& r, BasebackupDrillOptions* out) {
  if (!r.Str("recovery_target", &out->recovery_target)) return;
  const std::string& t = out->recovery_target;
  if (t == "random" || (!t.empty() && t[0] == '-'))
    r.Error("recovery_target",
            "\"" + t +
                "\" is not supported with backup type \"barman\" (targets are chosen from real "
                "commit times, read from a plain WAL archive only): use \"latest\", "
                "\"immediate\" or a time such as \"2026-11-24 03:00:00+00\"");
  else if (t != "latest" && t != "immediate" && !ParseTimestamp(t))
    r.Error("recovery_target",
            "must be \"latest\", \"immediate\" or a time such as \"2026-11-24 03:00:00+00\"");
}

}  // namespace rw
