#include "agent/sources/pgbackrest_options.h"

#include "agent/config_reader.h"
#include "agent/sources/basebackup_options.h"
#include "agent/units.h"

namespace rw {

void ReadPgbackrestBackupOptions(config::Reader& r, PgbackrestBackupOptions* out_options) {
  PgbackrestOptions* out = &out_options->pgbackrest;
  if (r.Require("stanza") && r.Name("stanza", &out->stanza)) {
    // It goes on pgbackrest's command line and into the sandbox's restore_command.
    if (out->stanza.find_first_of(" \t\n'\"\\$`/") != std::string::npos)
      r.Error("stanza", "must not contain blanks, quotes, '/', '$', '`' or backslashes");
  }
  if (r.Require("config") && r.Name("config", &out->config)) {
    if (out->config[0] != '/')
      r.Error("config", "must be an absolute path (the pgbackrest.conf pgbackrest reads)");
    else if (out->config.find_first_of("'\"\\$`\n") != std::string::npos)
      r.Error("config",
              "must not contain quotes, backslashes, '$' or '`' (pgBackRest writes it into the "
              "sandbox's restore_command)");
  }
  r.Int("repo", &out->repo, 1, 256);
  if (r.Name("run_as", &out->run_as) && out->run_as == "root")
    r.Error("run_as",
            "must not be root: pgbackrest runs as the unprivileged user that owns the "
            "repository (usually postgres)");
}

void ReadPgbackrestDrillOptions(config::Reader& r, BasebackupDrillOptions* out) {
  std::string t;
  if (!r.Str("recovery_target", &t)) return;
  if (t == "random" || (!t.empty() && t[0] == '-'))
    r.Error("recovery_target",
            "\"" + t +
                "\" is not supported with backup type \"pgbackrest\": choosing a commit needs "
                "the WAL's commit times, which pgBackRest keeps compressed in its repository; use "
                "\"latest\", \"immediate\" or a time such as \"2026-11-24 03:00:00+00\"");
  else if (t != "latest" && t != "immediate" && !ParseTimestamp(t))
    r.Error("recovery_target",
            "must be \"latest\", \"immediate\" or a time such as \"2026-11-24 03:00:00+00\"");
  else
    out->recovery_target = t;
}

}  // namespace rw
