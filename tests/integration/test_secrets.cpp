// Passwords never leave the agent: a real source with SCRAM authentication over TCP, roles whose
// passwords hold a space, quotes and a backslash, given through password_file, ${ENV} and inline,
// in key=value and postgresql:// URI form (percent-encoded), a standby connection, a target with a
// wrong password and a malformed URI. The real binary runs collectors, a scheduled drill and
// `verify` (JSON and text); every log line, /metrics, every API response, every report, every
// file under the state and work dirs and /proc/PID/environ (and cmdline) of every process the
// agent starts is searched for every password. And the URI targets must really have connected,
// so that the test cannot pass by everything failing.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
namespace fs = std::filesystem;

namespace {

using test::Eventually;
using test::ReadFile;
using test::WriteFile;

// A TOML basic string holding s.
std::string Toml(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A single-quoted libpq conninfo value (written out here, not with the code under test).
std::string Quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// A SQL string literal.
std::string SqlLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// Every secret of the test: a password with a space, quotes and a backslash, and a token that
// survives any escaping (a leak of part of a password still shows the token).
struct Secret {
  std::string name;      // what it is, for messages
  std::string password;  // the whole value
  std::string token;     // a distinctive part of it
};

Secret MakeSecret(const std::string& name, const std::string& token) {
  return {name, "p w'" + token + "\" \\x", token};
}

// Where a secret turned up.
struct Leak {
  std::string where;
  std::string secret;
};

void Search(const std::string& where, const std::string& text, const std::vector<Secret>& secrets,
            std::vector<Leak>* leaks) {
  for (const auto& s : secrets) {
    if (text.find(s.token) != std::string::npos || text.find(s.password) != std::string::npos)
      leaks->push_back({where, s.name});
  }
}

std::string ProcFile(pid_t pid, const char* name) {
  return ReadFile("/proc/" + std::to_string(pid) + "/" + name);
}

std::string ExeOf(pid_t pid) {
  std::error_code ec;
  return fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

// Watches a process tree while it runs: the environment and command line of every descendant
// (after its exec: a forked child that has not exec'd yet is still the agent's image) and the
// small files under the given directories.
class TreeWatcher {
 public:
  TreeWatcher(pid_t root, std::vector<std::string> dirs)
      : root_(root), dirs_(std::move(dirs)), agent_exe_(fs::canonical(test::AgentBinary())) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~TreeWatcher() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  struct Seen {
    std::string comm, environ, cmdline;
  };
  std::map<pid_t, Seen> processes() {
    std::lock_guard<std::mutex> lock(mu_);
    return processes_;
  }
  std::map<std::string, std::string> files() {
    std::lock_guard<std::mutex> lock(mu_);
    return files_;
  }

 private:
  void Loop() {
    int round = 0;
    while (!stop_) {
      PollProcesses();
      if (++round % 20 == 0) PollFiles();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    PollFiles();
  }

  void PollProcesses() {
    std::vector<pid_t> todo = test::ChildrenOf(root_), all;
    while (!todo.empty()) {
      pid_t p = todo.back();
      todo.pop_back();
      all.push_back(p);
      for (pid_t c : test::ChildrenOf(p)) todo.push_back(c);
    }
    for (pid_t p : all) {
      if (ExeOf(p) == agent_exe_) continue;  // forked, not exec'd yet
      Seen s{ProcFile(p, "comm"), ProcFile(p, "environ"), ProcFile(p, "cmdline")};
      if (ExeOf(p) == agent_exe_ || s.comm.empty()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      Seen& kept = processes_[p];
      kept.comm = s.comm;
      if (!s.environ.empty()) kept.environ = s.environ;
      kept.cmdline += s.cmdline + "\n";
      if (kept.cmdline.size() > 64 * 1024) kept.cmdline.erase(0, kept.cmdline.size() - 64 * 1024);
    }
  }

  void PollFiles() {
    for (const auto& d : dirs_) {
      std::error_code ec;
      for (fs::recursive_directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code fec;
        if (!it->is_regular_file(fec) || it->file_size(fec) > 1024 * 1024 || fec) continue;
        std::string content = ReadFile(it->path().string());
        std::lock_guard<std::mutex> lock(mu_);
        files_[it->path().string()] = std::move(content);
      }
    }
  }

  pid_t root_;
  std::vector<std::string> dirs_;
  std::string agent_exe_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<pid_t, Seen> processes_;
  std::map<std::string, std::string> files_;
  std::thread thread_;
};

// The agent binary with `env` added to its (minimal) environment, output in log_path.
std::unique_ptr<ChildProcess> StartAgent(const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env,
                                         const std::string& log_path) {
  ProcessSpec spec;
  spec.argv = {test::AgentBinary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = env;
  return std::make_unique<ChildProcess>(spec, log_path);
}

// Runs the agent to completion (bounded), watching its process tree. Returns the exit code.
int RunWatched(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const std::string& log_path, const std::vector<std::string>& dirs,
               std::map<pid_t, TreeWatcher::Seen>* seen,
               std::map<std::string, std::string>* files) {
  auto child = StartAgent(args, env, log_path);
  TreeWatcher watcher(child->pid(), dirs);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  while (child->Running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int st = child->Stop(SIGTERM, std::chrono::seconds(10));
  watcher.Stop();
  for (auto& [pid, s] : watcher.processes()) (*seen)[pid] = s;
  for (auto& [path, content] : watcher.files())
    (*files)[path + " (during " + args[0] + ")"] = content;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void ReadTree(const std::string& dir, std::map<std::string, std::string>* files) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) (*files)[it->path().string()] = ReadFile(it->path().string());
    (*files)[it->path().string() + " (name)"] = it->path().string();
  }
}

std::string TargetToml(const std::string& name, const std::string& source,
                       const std::string& backups, const std::string& extra = "") {
  return "[[target]]\nname = \"" + name + "\"\nsource = " + Toml(source) +
         "\nmonitor_interval = \"1s\"\nconnect_timeout = \"3s\"\n" + extra +
         "\n[target.backup]\npath = " + Toml(backups) +
         "\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n\n[target.checks]\nstats_settle = "
         "\"1s\"\n\n";
}

}  // namespace

TEST_CASE("no password reaches logs, metrics, API, reports, state or children",
          "[integration][secrets]") {
  test::TestDir dir("rwsecrets-");
  test::ClusterSpec cs;
  cs.tcp = true;
  cs.settings = {{"password_encryption", "'scram-sha-256'"}};
  auto pg = test::StartCluster(dir, cs);
  // SCRAM over TCP for everyone; the harness keeps trust on its unix socket.
  WriteFile(pg->data_dir() + "/pg_hba.conf",
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
  pg->Psql("select pg_reload_conf()");

  const Secret file_pw = MakeSecret("password_file (key=value)", "FileTok1q");
  const Secret env_pw = MakeSecret("${ENV} (key=value)", "EnvTok2q");
  const Secret inline_pw = MakeSecret("inline (key=value)", "InlineTok3q");
  const Secret uri_pw = MakeSecret("inline (URI, percent-encoded)", "UriTok4q");
  const Secret urienv_pw = MakeSecret("${ENV} (URI)", "UriEnvTok5q");
  const Secret urifile_pw = MakeSecret("password_file (URI)", "UriFileTok6q");
  const Secret standby_pw = MakeSecret("standby (URI)", "StandbyTok7q");
  const Secret wrong_pw = MakeSecret("wrong password", "WrongTok8q");
  const Secret real_of_wrong = MakeSecret("the wrong target's real password", "RealTok9q");
  const Secret malformed_pw = MakeSecret("malformed URI", "MalformedTok10q");
  // Of the agent's own environment: nothing may reach a child.
  const Secret agent_env = {"agent environment variable", "AgentEnvTok11q", "AgentEnvTok11q"};
  const Secret agent_pgpassword = {"agent PGPASSWORD", "AgentPgTok12q", "AgentPgTok12q"};
  const std::vector<Secret> secrets = {file_pw,       env_pw,       inline_pw,  uri_pw,
                                       urienv_pw,     urifile_pw,   standby_pw, wrong_pw,
                                       real_of_wrong, malformed_pw, agent_env,  agent_pgpassword};

  pg->Psql("create database app");
  const std::vector<std::pair<std::string, const Secret*>> roles = {
      {"rw_file", &file_pw},       {"rw_env", &env_pw},         {"rw_inline", &inline_pw},
      {"rw_uri", &uri_pw},         {"rw_urienv", &urienv_pw},   {"rw_urifile", &urifile_pw},
      {"rw_standby", &standby_pw}, {"rw_wrong", &real_of_wrong}};
  for (const auto& [role, secret] : roles)
    pg->Psql("create role " + role + " login password " + SqlLiteral(secret->password) +
             "; grant pg_monitor, pg_read_all_data to " + role);
  // Enough rows that pg_restore runs long enough to be seen in /proc.
  pg->Psql(
      "create table items(id int primary key, name text, price numeric);"
      "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 200000) g;",
      "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  REQUIRE(
      test::RunPgTool("pg_dump", {"-Fc", "-d", pg->ConnInfo("app"), "-f", backups + "/db-1.dump"})
          .ok());
  // The sandbox user must be able to read the dump.
  chmod((backups + "/db-1.dump").c_str(), 0644);

  MakeDirs(dir / "secrets");
  WriteFile(dir / "secrets/file.pw", file_pw.password + "\n");
  WriteFile(dir / "secrets/urifile.pw", urifile_pw.password + "\n");

  const std::string port = std::to_string(pg->port());
  const std::string kv = "host=127.0.0.1 port=" + port + " dbname=app user=";
  const std::string uri = "postgresql://";
  const std::string at = "@127.0.0.1:" + port + "/app";
  const std::map<std::string, std::string> agent_env_vars = {
      {"RW_SECRET_ENV", env_pw.password},
      {"RW_SECRET_URIENV", urienv_pw.password},
      {"RW_UNRELATED", agent_env.password},
      {"PGPASSWORD", agent_pgpassword.password},
  };
  const int http_port = PickFreePort();

  // Every form of password, each on its own role; "uri" also has a standby connection and, in the
  // daemon, a drill schedule. `verify` runs the subset in `only`.
  auto targets = [&](bool with_schedule, const std::set<std::string>& only) {
    const std::vector<std::pair<std::string, std::string>> all = {
        {"kvfile",
         TargetToml("kvfile", kv + "rw_file", backups, "password_file = \"secrets/file.pw\"\n")},
        {"kvenv", TargetToml("kvenv", kv + "rw_env password=${RW_SECRET_ENV}", backups)},
        {"kvinline",
         TargetToml("kvinline", kv + "rw_inline password=" + Quoted(inline_pw.password), backups)},
        {"uri",
         TargetToml(
             "uri", uri + "rw_uri:" + PercentEncode(uri_pw.password) + at + "?sslmode=disable",
             backups,
             "standbys = [" +
                 Toml(uri + "rw_standby:" + PercentEncode(standby_pw.password) + at +
                      "?application_name=sby1") +
                 "]\n" + (with_schedule ? "[target.drill]\nschedule = \"* * * * *\"\n" : ""))},
        {"urienv", TargetToml("urienv", uri + "rw_urienv:${RW_SECRET_URIENV}" + at, backups)},
        {"urifile", TargetToml("urifile", uri + "rw_urifile" + at, backups,
                               "password_file = \"secrets/urifile.pw\"\n")},
        {"wrong",
         TargetToml("wrong", kv + "rw_wrong password=" + Quoted(wrong_pw.password), backups)},
    };
    std::string out;
    for (const auto& [name, toml] : all)
      if (only.empty() || only.count(name) != 0) out += toml;
    return out;
  };
  const std::string run_cfg = dir / "run.toml";
  WriteFile(run_cfg, "[agent]\nlisten = \"127.0.0.1:" + std::to_string(http_port) +
                         "\"\nstate_dir = " + Toml(dir / "state") + "\nwork_dir = " +
                         Toml(dir / "work") + "\nlog_format = \"json\"\n\n" + targets(true, {}));
  const std::string verify_cfg = dir / "verify.toml";
  WriteFile(verify_cfg, "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = " + Toml(dir / "vstate") +
                            "\nwork_dir = " + Toml(dir / "vwork") + "\nlog_format = \"text\"\n\n" +
                            targets(false, {"uri", "kvenv", "urienv", "wrong"}));

  std::vector<Leak> leaks;
  std::map<pid_t, TreeWatcher::Seen> seen;
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> outputs;  // what else was read, by origin

  // The malformed URI: a config error, exit 2, naming the key but not the password.
  {
    const std::string bad_cfg = dir / "malformed.toml";
    WriteFile(bad_cfg, "[agent]\nstate_dir = " + Toml(dir / "bstate") +
                           "\nwork_dir = " + Toml(dir / "bwork") + "\n\n" +
                           TargetToml("bad",
                                      uri + "rw_uri:" + PercentEncode(malformed_pw.password) +
                                          "@[127.0.0.1:" + port + "/app",
                                      backups));
    ProcessSpec check;
    check.argv = {test::AgentBinary(), "check-config", "-c", bad_cfg};
    check.env = agent_env_vars;
    const ProcessResult r = RunProcess(check);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("target.bad.source") != std::string::npos);
    CHECK(r.err.find("malformed conninfo") != std::string::npos);
    outputs["check-config (malformed)"] = r.out + r.err;
    // `run` refuses it the same way; bounded in case it starts anyway.
    auto run = StartAgent({"run", "-c", bad_cfg}, agent_env_vars, dir / "malformed-run.log");
    const bool exited = Eventually([&] { return !run->Running(); }, 8);
    int st = run->Stop(SIGTERM, std::chrono::seconds(5));
    CHECK(exited);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 2));
    outputs["run (malformed)"] = ReadFile(dir / "malformed-run.log");
  }

  {
    ProcessSpec check;
    check.argv = {test::AgentBinary(), "check-config", "-c", run_cfg};
    check.env = agent_env_vars;
    const ProcessResult r = RunProcess(check);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    outputs["check-config"] = r.out + r.err;
  }

  // The daemon: collectors on every target, a drill of "uri" at the next minute.
  auto daemon = StartAgent({"run", "-c", run_cfg}, agent_env_vars, dir / "run.log");
  auto daemon_watch =
      std::make_unique<TreeWatcher>(daemon->pid(), std::vector<std::string>{dir / "work"});
  REQUIRE(Eventually([&] { return test::HttpGet(http_port, "/readyz").status == 200; }, 30));

  // verify while the daemon waits for its slot: JSON for every target of its config (three pass,
  // "wrong" cannot connect: exit 2), text for the failing one.
  const int verify_json = RunWatched({"verify", "-c", verify_cfg, "--json"}, agent_env_vars,
                                     dir / "verify-json.log", {dir / "vwork"}, &seen, &files);
  const std::string verify_json_out = ReadFile(dir / "verify-json.log");
  {
    INFO(verify_json_out);
    CHECK(verify_json == 2);
    for (const char* t : {"\"uri\"", "\"kvenv\"", "\"urienv\"", "\"wrong\"", "\"success\""})
      CHECK(verify_json_out.find(t) != std::string::npos);
    CHECK(verify_json_out.find("password authentication failed") != std::string::npos);
  }
  const int verify_text =
      RunWatched({"verify", "-c", verify_cfg, "--target", "wrong"}, agent_env_vars,
                 dir / "verify-text.log", {dir / "vwork"}, &seen, &files);
  const std::string verify_text_out = ReadFile(dir / "verify-text.log");
  {
    INFO(verify_text_out);
    CHECK(verify_text == 2);
    CHECK(verify_text_out.find("ERROR") != std::string::npos);
    CHECK(verify_text_out.find("password authentication failed") != std::string::npos);
  }
  outputs["verify --json"] = verify_json_out;
  outputs["verify (text)"] = verify_text_out;

  // The scheduled drill of "uri" (the next minute boundary plus the drill).
  const bool drilled = Eventually(
      [&] {
        // drill_success appears once a drill was recorded (the run counters exist from start).
        return test::MetricValue(test::HttpGet(http_port, "/metrics").body,
                                 "restorewatch_drill_success", {"target=\"uri\""})
            .has_value();
      },
      100);
  if (!drilled) FAIL_CHECK("no scheduled drill of uri; daemon log:\n" << ReadFile(dir / "run.log"));
  // Let every collector run a few more times.
  std::this_thread::sleep_for(std::chrono::seconds(2));

  const std::string metrics = test::HttpGet(http_port, "/metrics").body;
  {
    INFO(metrics);
    // The URI targets (and all the others with a right password) connected...
    for (const char* t : {"kvfile", "kvenv", "kvinline", "uri", "urienv", "urifile"}) {
      INFO("target " << t);
      CHECK(test::MetricValue(metrics, "restorewatch_source_up",
                              {"target=\"" + std::string(t) + "\""}) == 1);
    }
    CHECK(test::MetricValue(metrics, "restorewatch_standby_up",
                            {"target=\"uri\"", "server=\"sby1\""}) == 1);
    // ... the wrong password did not, and the drill through a URI source passed.
    CHECK(test::MetricValue(metrics, "restorewatch_source_up", {"target=\"wrong\""}) == 0);
    CHECK(test::MetricValue(metrics, "restorewatch_drill_success", {"target=\"uri\""}) == 1);
  }
  outputs["/metrics"] = metrics;
  for (const std::string path : {"/api/v1/status", "/healthz", "/readyz", "/",
                                 "/api/v1/targets/uri/history", "/api/v1/targets/wrong/history"}) {
    const auto reply = test::HttpGet(http_port, path);
    outputs["GET " + path] = reply.body;
    if (path == "/api/v1/status") {
      CHECK(reply.status == 200);
      // The wrong password's failure is there, quoted from libpq: the path was exercised.
      CHECK(reply.body.find("password authentication failed") != std::string::npos);
      CHECK(reply.body.find("last_drill") != std::string::npos);
    }
  }

  daemon->Stop(SIGTERM, std::chrono::seconds(10));
  daemon_watch->Stop();
  for (auto& [pid, s] : daemon_watch->processes()) seen[pid] = s;
  for (auto& [path, content] : daemon_watch->files()) files[path + " (during run)"] = content;
  outputs["run log"] = ReadFile(dir / "run.log");
  for (const char* d : {"state", "work", "vstate", "vwork", "bstate", "bwork"})
    ReadTree(dir / d, &files);

  // The drills' processes were seen while they ran: the sandbox postmaster and pg_restore.
  std::set<std::string> comms;
  for (const auto& [pid, s] : seen) comms.insert(s.comm.substr(0, s.comm.find('\n')));
  std::string names;
  for (const auto& c : comms) names += c + " ";
  INFO("processes seen: " << names);
  CHECK(comms.count("postgres") == 1);
  CHECK(comms.count("pg_restore") == 1);
  CHECK(files.size() > 5);

  for (const auto& [pid, s] : seen) {
    Search("environ of " + s.comm + " pid " + std::to_string(pid), s.environ, secrets, &leaks);
    Search("cmdline of " + s.comm + " pid " + std::to_string(pid), s.cmdline, secrets, &leaks);
  }
  for (const auto& [path, content] : files) Search("file " + path, content, secrets, &leaks);
  for (const auto& [what, text] : outputs) {
    if (what.rfind("GET ", 0) != 0) CHECK_FALSE(text.empty());
    Search(what, text, secrets, &leaks);
  }
  std::string report;
  for (const auto& l : leaks) report += l.secret + " in " + l.where + "\n";
  INFO(report);
  CHECK(leaks.empty());
}
