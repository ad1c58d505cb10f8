#include "agent/sources/command_options.h"

#include "agent/config_reader.h"

namespace rw {

void ReadCommandBackupOptions(config::Reader& r, CommandBackupOptions* out) {
  auto argv = [&](const char* key, std::vector<std::string>* v) {
    if (!r.Require(key) || !r.StrList(key, v)) return;
    if (v->empty() || (*v)[0].empty())
      r.Error(key, "must name a program (an array such as [\"/usr/local/bin/list-backups\"])");
  };
  argv("list", &out->command.list);
  argv("fetch", &out->command.fetch);
  for (const char* placeholder : {"{id}", "{dir}"}) {
    bool found = false;
    for (const auto& a : out->command.fetch)
      found = found || a.find(placeholder) != std::string::npos;
    if (!out->command.fetch.empty() && !found)
      r.Error("fetch", std::string("must contain ") + placeholder +
                           " (replaced by the backup's id and the directory to fetch into)");
  }
  r.Choice("format", &out->command.format,
           {{"pg_dump", CommandFormat::kPgDump}, {"basebackup", CommandFormat::kBasebackup}});
  r.Bool("shell", &out->command.shell);
  r.Dur("timeout", &out->command.timeout, config::Reader::Zero::kRefused);
}

}  // namespace rw
