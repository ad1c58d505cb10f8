#include "tests/support/agent_process.h"

#include <dirent.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace rw::test {

std::string AgentBinary() { return RW_BINARY; }

ProcessResult RunAgent(const std::vector<std::string>& args, Duration timeout) {
  ProcessSpec spec;
  spec.argv = {AgentBinary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = timeout;
  return RunProcess(spec);
}

AgentProcess::AgentProcess(const std::vector<std::string>& args, const std::string& log_path,
                           const std::map<std::string, std::string>& env)
    : log_path_(log_path) {
  ProcessSpec spec;
  spec.env = env;
  spec.argv = {AgentBinary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  child_ = std::make_unique<ChildProcess>(spec, log_path);
}

AgentProcess::~AgentProcess() {
  if (child_) child_->Stop(SIGTERM, std::chrono::seconds(10));
}

pid_t AgentProcess::pid() const { return child_->pid(); }

void AgentProcess::Signal(int sig) { kill(child_->pid(), sig); }

int AgentProcess::WaitExit(Duration wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!child_->Running()) {
      int st = child_->Stop(SIGKILL, std::chrono::milliseconds(0));
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

std::string AgentProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HttpReply HttpGet(int port, const std::string& path, int timeout_seconds) {
  HttpReply r;
  auto t0 = std::chrono::steady_clock::now();
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(timeout_seconds, 0);
  cli.set_read_timeout(timeout_seconds, 0);
  if (auto res = cli.Get(path.c_str())) {
    r.status = res->status;
    r.body = res->body;
    r.content_type = res->get_header_value("Content-Type");
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::optional<double> MetricValue(const std::string& text, const std::string& metric,
                                  const std::vector<std::string>& needles) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, metric.size(), metric) != 0) continue;
    if (line.size() > metric.size() && line[metric.size()] != '{' && line[metric.size()] != ' ')
      continue;
    bool all = true;
    for (const auto& n : needles) all &= line.find(n) != std::string::npos;
    if (!all) continue;
    auto sp = line.rfind(' ');
    try {
      return std::stod(line.substr(sp + 1));
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::pair<long, long> Coverage(const std::string& report) {
  std::smatch m;
  static const std::regex re("coverage ([0-9]+) of ([0-9]+) source rows verified");
  if (!std::regex_search(report, m, re)) return {-1, -1};
  return {std::stol(m[1]), std::stol(m[2])};
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + n + "/stat");
    std::string content;
    std::getline(stat, content);
    auto close = content.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(content.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid && state != "Z") out.push_back(std::stoi(n));
  }
  closedir(d);
  return out;
}

}  // namespace rw::test
