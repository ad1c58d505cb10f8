#include "tests/support/pg_fixture.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/errors.h"

namespace rw::test {

const PgTools& Tools() {
  static const PgTools tools = PgTools::Detect("auto");
  return tools;
}

const std::optional<RunAs>& ServerUser() {
  static const std::optional<RunAs> user = ResolveRunAs("postgres");
  return user;
}

TestDir::TestDir(const std::string& prefix) {
  const char* tmp = getenv("TMPDIR");
  path_ = MakeTempDir(tmp && *tmp ? tmp : "/tmp", prefix);
  chmod(path_.c_str(), 0755);
}

TestDir::~TestDir() { RemoveTree(path_); }

std::unique_ptr<LocalCluster> StartCluster(const TestDir& dir, const ClusterSpec& spec) {
  ClusterOptions o;
  o.tools = Tools();
  o.parent_dir = dir.path();
  o.name_prefix = "src-";
  o.run_as = ServerUser();
  o.tcp = spec.tcp;
  o.throwaway = spec.throwaway;
  o.settings = spec.settings;
  o.marker = "test cluster";
  try {
    return LocalCluster::Create(o);
  } catch (const Error& e) {
    FAIL("cannot start a test cluster: " << e.what());
  }
  return nullptr;
}

ProcessResult RunPgTool(const std::string& tool, const std::vector<std::string>& args,
                        Duration timeout) {
  ProcessSpec spec;
  spec.argv = {Tools().Path(tool)};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = timeout;
  return RunProcess(spec);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
          strncmp(e->d_name, ".initdb-template-", 17) != 0)  // the sandbox template stays
        out.emplace_back(e->d_name);
    closedir(d);
  }
  return out;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace rw::test
