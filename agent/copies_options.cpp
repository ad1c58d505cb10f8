#include "agent/copies_options.h"

#include <set>

#include "agent/config_reader.h"

namespace rw {

std::string TrimSlashes(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

void ReadCopiesBackupOptions(config::Reader& r, CopiesBackupOptions* out) {
  std::set<std::string> names;
  r.TableArray("copies", [&](config::Reader& c, std::size_t) {
    CopyConfig copy;
    if (c.Require("path") && c.Name("path", &copy.path)) {
      copy.path = TrimSlashes(copy.path);
      const bool url = copy.path.find("://") != std::string::npos;
      if (copy.path[0] != '/' && !url)
        c.Error("path", "must be an absolute path or a URL like s3://bucket/prefix, got \"" +
                            copy.path + "\"");
    }
    c.Bool("offsite", &copy.offsite);
    c.Name("medium", &copy.medium);
    if (!c.Name("name", &copy.name)) copy.name = copy.path;
    if (copy.name == "primary")
      c.Error("name", "\"primary\" names backup.path itself; give the copy another name");
    else if (!copy.name.empty() && !names.insert(copy.name).second)
      c.Error(c.table().get("name") ? "name" : "path",
              "duplicate copy name \"" + copy.name + "\" (each copy needs its own name)");
    out->copies.push_back(copy);
  });
  r.Bool("verify_checksum", &out->verify_checksum);
}

void ReadCopiesDrillOptions(config::Reader& r, CopiesDrillOptions* out) {
  r.Choice("from", &out->from,
           {{"primary", DrillFrom::kPrimary}, {"offsite", DrillFrom::kOffsite}});
}

void ValidateCopies(config::Reader& r, const TargetConfig& t) {
  const auto& copies = t.backup.copies;
  auto error = [&](const std::string& key, const std::string& message) {
    // The line of the key itself when it is in the file (else the target's).
    const toml::node* n = r.table().at_path(key).node();
    r.loader().Error(n != nullptr ? config::LineOf(*n) : r.line(), r.Key(key), message);
  };
  if (!copies.empty() && t.backup.type != "pg_dump" && t.backup.type != "basebackup")
    error("backup.copies",
          "copies are checked for backup types \"pg_dump\" and \"basebackup\" "
          "(backups in directories), not \"" +
              t.backup.type + "\"");
  for (std::size_t i = 0; i < copies.size(); ++i)
    for (const auto& p : t.backup.paths)
      if (!copies[i].path.empty() && TrimSlashes(p) == copies[i].path)
        error("backup.copies[" + std::to_string(i) + "].path",
              "is backup.path itself: a copy must be another location");
  if (t.drill.from == DrillFrom::kOffsite) {
    bool any = false;
    for (const auto& c : copies) any = any || c.offsite;
    if (!any)
      error("drill.from",
            "is \"offsite\" but no backup.copies entry has offsite = true (the drill restores "
            "from the first offsite copy)");
  }
}

}  // namespace rw
