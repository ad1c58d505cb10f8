#include "agent/pg/pg_tools.h"

#include <dirent.h>
#include <unistd.h>

#include <regex>

#include "agent/errors.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

int VersionOf(const std::string& bin_dir) {
  ProcessSpec spec;
  spec.argv = {bin_dir + "/postgres", "--version"};
  spec.timeout = std::chrono::seconds(10);
  ProcessResult r = RunProcess(spec);
  std::smatch m;
  static const std::regex re(R"(\(PostgreSQL\) (\d+))");
  if (r.ok() && std::regex_search(r.out, m, re)) return std::stoi(m[1]);
  return 0;
}

}  // namespace

PgTools PgTools::Detect(const std::string& setting) {
  PgTools t;
  if (setting != "auto" && !setting.empty()) {
    t.bin_dir = setting;
  } else {
    t.detected = true;
    int best = -1;
    if (DIR* d = opendir("/usr/lib/postgresql")) {
      while (struct dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string bin = "/usr/lib/postgresql/" + n + "/bin";
        if (std::stoi(n) > best && access((bin + "/postgres").c_str(), X_OK) == 0) {
          best = std::stoi(n);
          t.bin_dir = bin;
        }
      }
      closedir(d);
    }
    if (t.bin_dir.empty()) {
      if (auto p = FindProgram("postgres")) t.bin_dir = p->substr(0, p->rfind('/'));
    }
    if (t.bin_dir.empty())
      throw Error(ErrorKind::kConfig, "no PostgreSQL binaries found",
                  "install postgresql-15 or set agent.pg_bin_dir");
  }
  for (const char* tool : {"postgres", "initdb", "pg_restore", "psql"}) {
    if (access(t.Path(tool).c_str(), X_OK) != 0)
      throw Error(ErrorKind::kConfig, "PostgreSQL tool missing: " + t.Path(tool),
                  "install the server package or set agent.pg_bin_dir");
  }
  t.major = VersionOf(t.bin_dir);
  if (t.major == 0)
    throw Error(ErrorKind::kConfig, "cannot read the version of " + t.Path("postgres"));
  return t;
}

std::optional<PgTools> PgTools::ForMajor(int wanted, const std::string& root) const {
  if (wanted == major) return *this;
  if (!detected || wanted <= 0) return std::nullopt;
  PgTools t;
  t.bin_dir = root + "/" + std::to_string(wanted) + "/bin";
  t.detected = true;
  if (access(t.Path("postgres").c_str(), X_OK) != 0) return std::nullopt;
  t.major = VersionOf(t.bin_dir);
  if (t.major != wanted) return std::nullopt;
  return t;
}

}  // namespace rw
