#pragma once
// Test harness: real PostgreSQL 15 clusters for integration tests. Each TestDir and LocalCluster
// is removed by its destructor, so a failing REQUIRE still cleans up. When tests run as root, the
// servers run as the `postgres` user. All waits are bounded (LocalCluster's start_timeout).
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/pg/pg_cluster.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"

namespace rw::test {

// The PostgreSQL tools of this machine (auto-detected once).
const PgTools& Tools();
// The identity servers run as: "postgres" when the tests run as root, else nullopt.
const std::optional<RunAs>& ServerUser();

// A temp dir (mode 0755, so the server user can traverse it), removed with everything in it.
class TestDir {
 public:
  explicit TestDir(const std::string& prefix = "rwtest-");
  ~TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ClusterSpec {
  bool tcp = false;        // listen on 127.0.0.1 too (replication, pg_basebackup)
  bool throwaway = false;  // sources default to durable settings (wal_level=replica)
  std::vector<std::pair<std::string, std::string>> settings;
};

// Starts a cluster under dir (initdb + start); REQUIRE-fails the test with the reason otherwise.
std::unique_ptr<LocalCluster> StartCluster(const TestDir& dir, const ClusterSpec& spec = {});

// Runs a tool from the PostgreSQL bin dir (pg_dump, pgbench, ...) as the current user; returns
// the result (the caller asserts).
ProcessResult RunPgTool(const std::string& tool, const std::vector<std::string>& args,
                        Duration timeout = std::chrono::minutes(5));

// Writes (truncating) / reads a whole file; the tests assert on what they read.
void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

// Polls `pred` every 50 ms until it holds or `seconds` pass (then one last try): every wait in a
// test is bounded.
template <typename Pred>
bool Eventually(Pred pred, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// Files and dirs directly inside `dir` (names), for leftover checks: all but the ephemeral
// sandbox's cached initdb template (.initdb-template-*), which stays in work_dir by design.
std::vector<std::string> ListDir(const std::string& dir);

}  // namespace rw::test
