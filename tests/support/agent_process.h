#pragma once
// Runs the real `restorewatch` binary for end-to-end tests: as a subprocess with its output in a
// log file, stopped (SIGKILL as a last resort) by the destructor. HTTP through cpp-httplib.
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/pg/process.h"

namespace rw::test {

// Path of the built restorewatch binary.
std::string AgentBinary();

// Runs the binary to completion (bounded).
ProcessResult RunAgent(const std::vector<std::string>& args,
                       Duration timeout = std::chrono::minutes(3));

class AgentProcess {
 public:
  // env: variables for the agent beyond the minimal environment (ProcessSpec::env).
  AgentProcess(const std::vector<std::string>& args, const std::string& log_path,
               const std::map<std::string, std::string>& env = {});
  ~AgentProcess();
  pid_t pid() const;
  void Signal(int sig);
  // Waits up to `wait` for the process to exit; returns its exit code, or -1 if still running.
  int WaitExit(Duration wait);
  std::string Log() const;

 private:
  std::unique_ptr<ChildProcess> child_;
  std::string log_path_;
  int exit_code_ = -1;
};

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
  std::string content_type;
  double seconds = 0;
};
HttpReply HttpGet(int port, const std::string& path, int timeout_seconds = 5);

// Value of the first sample of `metric` whose line contains all of `needles` (label fragments),
// or nullopt.
std::optional<double> MetricValue(const std::string& metrics_text, const std::string& metric,
                                  const std::vector<std::string>& needles = {});

// "coverage N of M source rows verified" from a verify report, as {N, M}; {-1, -1} when absent.
std::pair<long, long> Coverage(const std::string& report);

// Pids of the live child processes of `pid` (from /proc).
std::vector<pid_t> ChildrenOf(pid_t pid);

}  // namespace rw::test
