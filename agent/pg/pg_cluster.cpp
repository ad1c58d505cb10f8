#include "agent/pg/pg_cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/units.h"

namespace rw {
namespace {

// Settings for a cluster whose contents may be lost at any time: no durability, no WAL for data
// loaded in the same transaction as its table (wal_level=minimal), no background vacuum.
const std::vector<std::pair<std::string, std::string>> kThrowawaySettings = {
    {"fsync", "off"},
    {"synchronous_commit", "off"},
    {"full_page_writes", "off"},
    {"wal_level", "minimal"},
    {"max_wal_senders", "0"},
    {"archive_mode", "off"},
    {"autovacuum", "off"},
    {"maintenance_work_mem", "'512MB'"},
    {"max_wal_size", "'8GB'"},
    {"checkpoint_timeout", "'30min'"},
    {"shared_buffers", "'256MB'"},
    {"max_locks_per_transaction", "'256'"},
};

std::string ReadFileTail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = size > static_cast<std::streamoff>(max_bytes)
                             ? size - static_cast<std::streamoff>(max_bytes)
                             : 0;
  in.seekg(start);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

// The server log line that says why start-up failed: the last FATAL/PANIC (or ERROR) line, with
// the line before it when that one carries the detail (PostgreSQL logs "invalid value for
// parameter ..." as LOG, then a generic FATAL). Timestamps and pids are stripped.
std::string LastProblem(const std::string& log) {
  std::istringstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto bracket = line.find("] ");
    if (line.size() > 4 && std::isdigit(static_cast<unsigned char>(line[0])) &&
        bracket != std::string::npos)
      line = line.substr(bracket + 2);
    lines.push_back(line);
  }
  if (lines.empty()) return "no server log";
  for (size_t i = lines.size(); i-- > 0;) {
    const std::string& l = lines[i];
    // Our own readiness probes are refused while the server starts: not why it stopped.
    if (l.find("the database system is starting up") != std::string::npos ||
        l.find("the database system is not yet accepting connections") != std::string::npos ||
        l.find("the database system is in recovery mode") != std::string::npos ||
        l.find("the database system is shutting down") != std::string::npos)
      continue;
    if (l.rfind("FATAL", 0) == 0 || l.rfind("PANIC", 0) == 0 || l.rfind("ERROR", 0) == 0) {
      if (i > 0 && (lines[i - 1].rfind("LOG", 0) == 0 || lines[i - 1].rfind("ERROR", 0) == 0) &&
          l.find("contains errors") != std::string::npos)
        return lines[i - 1] + " | " + l;
      return l;
    }
  }
  return lines.back();
}

}  // namespace

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot create a socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    throw Error(ErrorKind::kIo, "cannot pick a free port");
  }
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

LocalCluster::LocalCluster(ClusterOptions opts) : opts_(std::move(opts)) {}

namespace {

ProcessSpec InitdbSpec(const ClusterOptions& opts, const std::string& data_dir) {
  ProcessSpec init;
  init.argv = {opts.tools.Path("initdb"),
               "-D",
               data_dir,
               "-U",
               "postgres",
               "--auth=trust",
               "--locale=C.UTF-8",
               "--encoding=UTF8",
               "-N"};
  init.run_as = opts.run_as;
  init.timeout = std::chrono::minutes(2);
  return init;
}

void RunInitdb(const ClusterOptions& opts, const std::string& data_dir, CancelToken* cancel) {
  ProcessResult r = RunProcess(InitdbSpec(opts, data_dir), cancel);
  if (!r.ok()) {
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled during initdb");
    throw Error(ErrorKind::kProcess, "initdb failed: " + r.Summary());
  }
}

constexpr const char* kTemplatePrefix = ".initdb-template-";
constexpr const char* kTemplateStamp = ".restorewatch-template";

// What a template depends on: initdb's arguments and the binaries that made it (and how it was
// trimmed: a template built before the optional forks were dropped is rebuilt once).
std::string TemplateKey(const ClusterOptions& opts) {
  std::string key = std::string("spare ") + kSpareDatabase + " no-fsm-vm ";
  for (const auto& a : InitdbSpec(opts, "").argv) key += a + " ";
  for (const char* bin : {"initdb", "postgres"}) {
    struct stat st {};
    const std::string path = opts.tools.Path(bin);
    if (stat(path.c_str(), &st) == 0)
      key += path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtime) + " ";
  }
  if (opts.run_as) key += "uid " + std::to_string(opts.run_as->uid);
  return key;
}

// Removes the free space map and visibility map forks ("<relfilenode>_fsm", "_vm") of every
// relation in a stopped cluster's data dir: a quarter of a fresh cluster's ~1,300 files, which
// every sandbox would copy. Both forks are optional: PostgreSQL reads a missing one as empty
// ("no free space known", "no page all-visible") and creates it when it first writes one, as for
// a relation never vacuumed. Creating files dominates the copy (0.3 to 0.8 ms of kernel time
// each on the ext4 of the bench's VM): 966 -> 734 files took the copy from 0.64 to 0.40 s there.
void DropOptionalForks(const std::string& data_dir) {
  std::vector<std::string> dirs = {data_dir + "/global"};
  if (DIR* d = opendir((data_dir + "/base").c_str())) {
    while (struct dirent* e = readdir(d))
      if (std::isdigit(static_cast<unsigned char>(e->d_name[0])))
        dirs.push_back(data_dir + "/base/" + e->d_name);
    closedir(d);
  }
  auto ends_with = [](const std::string& s, const char* tail) {
    const std::size_t n = std::strlen(tail);
    return s.size() > n && s.compare(s.size() - n, n, tail) == 0;
  };
  for (const auto& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    std::vector<std::string> forks;
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (std::isdigit(static_cast<unsigned char>(name[0])) &&
          (ends_with(name, "_fsm") || ends_with(name, "_vm")))
        forks.push_back(dir + "/" + name);
    }
    closedir(d);
    for (const auto& f : forks)
      if (unlink(f.c_str()) != 0 && errno != ENOENT)
        throw Error(ErrorKind::kIo,
                    "cannot trim the initdb template: " + f + ": " + std::strerror(errno));
  }
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? ss.str() : std::string();
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::mutex& TemplateMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

std::string ReadSystemIdentifier(const std::string& data_dir) {
  // ControlFileData starts with the 64-bit system identifier, in the server's byte order.
  std::ifstream in(data_dir + "/global/pg_control", std::ios::binary);
  std::uint64_t id = 0;
  if (!in.read(reinterpret_cast<char*>(&id), sizeof id)) return {};
  return std::to_string(id);
}

std::string EnsureInitdbTemplate(const ClusterOptions& opts, CancelToken* cancel) {
  std::lock_guard<std::mutex> lk(TemplateMutex());
  const std::string key = TemplateKey(opts);
  char name[32];
  std::snprintf(name, sizeof name, "%016zx", std::hash<std::string>{}(key));
  const std::string dir = opts.template_parent + "/" + kTemplatePrefix + name;
  const std::string data = dir + "/data";
  // The stamp is the last thing written: a template with the stamp is complete.
  const std::string stamp = ReadSmallFile(dir + "/" + kTemplateStamp);
  const std::string want = "key=" + key + "\n";
  if (stamp.rfind(want, 0) == 0 && ReadSystemIdentifier(data) != opts.avoid_system_id &&
      !ReadSystemIdentifier(data).empty())
    return data;
  // Missing, incomplete, made by other binaries, or sharing the source's identity: build anew in
  // a marked temp dir (swept as an orphan if the agent dies here), then swap it in.
  ClusterOptions t = opts;
  t.name_prefix = "initdb-template-tmp-";
  // The owner's full identity, so the work_dir sweep tells a dead builder from a reused pid.
  t.marker = "kind=initdb-template " + FormatIdentity(SelfIdentity());
  const std::string tmp = LocalCluster::NewClusterDir(t);
  try {
    RunInitdb(opts, tmp + "/data", cancel);
    {
      // The spare database a sandbox renames for the restore: CREATE DATABASE copies template0
      // and takes ~0.15 s a drill, a rename a few ms. Made in single-user mode: no server, no
      // socket, no port.
      std::ofstream sql(tmp + "/spare.sql");
      sql << "create database " << kSpareDatabase << " template template0\n";
      sql.close();
      if (!sql) throw Error(ErrorKind::kIo, "cannot write " + tmp + "/spare.sql");
      ProcessSpec single;
      single.argv = {opts.tools.Path("postgres"),
                     "--single",
                     "-D",
                     tmp + "/data",
                     "-c",
                     "fsync=off",
                     "postgres"};
      single.run_as = opts.run_as;
      single.stdin_path = tmp + "/spare.sql";
      single.timeout = std::chrono::minutes(2);
      ProcessResult r = RunProcess(single, cancel);
      if (!r.ok()) {
        if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled during initdb");
        throw Error(ErrorKind::kProcess,
                    "creating the sandbox template's spare database failed: " + r.Summary());
      }
      std::remove((tmp + "/spare.sql").c_str());
    }
    DropOptionalForks(tmp + "/data");
    std::ofstream out(tmp + "/" + kTemplateStamp);
    out << want << "system_identifier=" << ReadSystemIdentifier(tmp + "/data") << "\n";
    out.close();
    if (!out) throw Error(ErrorKind::kIo, "cannot write the initdb template's stamp in " + tmp);
    std::string err;
    // Ours to replace: a template dir of this name (stale or the source's twin). Other templates
    // (binaries since replaced) are removed too: only templates carry the stamp file.
    if (DIR* d = opendir(opts.template_parent.c_str())) {
      std::vector<std::string> old;
      while (struct dirent* e = readdir(d))
        if (std::strncmp(e->d_name, kTemplatePrefix, std::strlen(kTemplatePrefix)) == 0)
          old.push_back(opts.template_parent + "/" + e->d_name);
      closedir(d);
      for (const auto& o : old) {
        struct stat st {};
        if (stat((o + "/" + kTemplateStamp).c_str(), &st) == 0 || o == dir) RemoveTree(o, &err);
      }
    }
    if (std::remove((tmp + "/.restorewatch").c_str()) != 0 ||
        std::rename(tmp.c_str(), dir.c_str()) != 0)
      throw Error(ErrorKind::kIo, "cannot put the initdb template in place at " + dir + ": " +
                                      std::strerror(errno));
  } catch (...) {
    std::string err;
    RemoveTree(tmp, &err);
    throw;
  }
  return data;
}

std::unique_ptr<LocalCluster> LocalCluster::Create(const ClusterOptions& opts,
                                                   CancelToken* cancel) {
  std::unique_ptr<LocalCluster> c(new LocalCluster(opts));
  c->dir_ = NewClusterDir(opts);
  try {
    c->data_dir_ = c->dir_ + "/data";
    const auto t0 = std::chrono::steady_clock::now();
    if (opts.template_parent.empty()) {
      RunInitdb(opts, c->data_dir_, cancel);
    } else {
      const std::string tpl = EnsureInitdbTemplate(opts, cancel);
      LogDebug("initdb template ready", {{"dir", tpl}, {"seconds", SecondsSince(t0)}});
      ProcessSpec cp;  // -a keeps modes and run_as's ownership
      cp.argv = {"/bin/cp", "-a", tpl, c->data_dir_};
      cp.timeout = std::chrono::minutes(2);
      ProcessResult r = RunProcess(cp, cancel);
      if (!r.ok()) {
        if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while copying the template");
        throw Error(ErrorKind::kIo, "cannot copy the initdb template: " + r.Summary());
      }
    }
    LogDebug("cluster data dir ready", {{"dir", c->data_dir_}, {"seconds", SecondsSince(t0)}});
    c->WriteConf();
    c->Start(cancel);
    LogDebug("cluster started", {{"dir", c->data_dir_}, {"seconds", SecondsSince(t0)}});
  } catch (...) {
    c.reset();  // destructor stops and removes what exists
    throw;
  }
  return c;
}

std::string LocalCluster::NewClusterDir(const ClusterOptions& opts) {
  std::string dir = MakeTempDir(opts.parent_dir, opts.name_prefix, opts.run_as);
  std::ofstream m(dir + "/.restorewatch");
  m << "owner=restorewatch pid=" << getpid() << " created=" << FormatTimestamp(NowUnix()) << "\n"
    << opts.marker << "\n";
  m.close();
  if (!m) {
    std::string err;
    RemoveTree(dir, &err);
    throw Error(ErrorKind::kIo, "cannot write the marker file in " + dir);
  }
  return dir;
}

std::unique_ptr<LocalCluster> LocalCluster::Adopt(const ClusterOptions& opts,
                                                  const std::string& dir,
                                                  const std::string& data_dir,
                                                  CancelToken* cancel) {
  std::unique_ptr<LocalCluster> c(new LocalCluster(opts));
  c->dir_ = dir;
  c->data_dir_ = data_dir;
  try {
    c->WriteConf();
    c->Start(cancel);
  } catch (...) {
    c.reset();
    throw;
  }
  return c;
}

LocalCluster::~LocalCluster() {
  Stop();
  if (!dir_.empty()) {
    std::string err;
    RemoveTree(dir_, &err);
  }
}

void LocalCluster::WriteConf() {
  socket_dir_ = dir_ + "/sock";
  log_path_ = dir_ + "/server.log";
  MakeDirs(socket_dir_, 0700, opts_.run_as);
  if (port_ == 0) port_ = PickFreePort();
  std::vector<std::pair<std::string, std::string>> conf = {
      {"port", std::to_string(port_)},
      {"unix_socket_directories", "'" + socket_dir_ + "'"},
      {"listen_addresses", opts_.tcp ? "'127.0.0.1'" : "''"},
      {"logging_collector", "off"},
  };
  if (opts_.throwaway)
    conf.insert(conf.end(), kThrowawaySettings.begin(), kThrowawaySettings.end());
  conf.insert(conf.end(), opts_.settings.begin(), opts_.settings.end());
  // Appended last, so these win over anything earlier in the file (a restored backup's own).
  std::ofstream out(data_dir_ + "/postgresql.conf", std::ios::app);
  out << "\n# restorewatch\n";
  for (const auto& [k, v] : conf) out << k << " = " << v << "\n";
  if (!out) throw Error(ErrorKind::kIo, "cannot write " + data_dir_ + "/postgresql.conf");
}

void LocalCluster::Start(CancelToken* cancel) {
  if (server_) return;
  ProcessSpec spec;
  spec.argv = {opts_.tools.Path("postgres"), "-D", data_dir_};
  for (const auto& [k, v] : opts_.command_line) {
    spec.argv.push_back("-c");
    spec.argv.push_back(k + "=" + v);
  }
  spec.run_as = opts_.run_as;
  server_ = std::make_unique<ChildProcess>(spec, log_path_);
  try {
    WaitReady(cancel);
  } catch (...) {
    server_->Stop(SIGQUIT, std::chrono::seconds(5));
    server_.reset();
    throw;
  }
}

void LocalCluster::WaitReady(CancelToken* cancel) {
  auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  std::string ci = ConnInfo("postgres") + " connect_timeout=2";
  auto poll = std::chrono::milliseconds(5);  // a fresh cluster is ready within a few polls
  while (std::chrono::steady_clock::now() < deadline) {
    if (PQping(ci.c_str()) == PQPING_OK) return;
    if (!server_->Running())
      throw Error(ErrorKind::kProcess,
                  "postgres exited during start-up: " + LastProblem(LogTail(8000)));
    if (cancel && cancel->cancelled())
      throw Error(ErrorKind::kCancelled, "cancelled during server start");
    std::this_thread::sleep_for(poll);
    poll = std::min<std::chrono::milliseconds>(poll * 2, std::chrono::milliseconds(50));
  }
  throw Error(ErrorKind::kTimeout, "postgres did not accept connections within " +
                                       FormatDuration(opts_.start_timeout) + ": " +
                                       LastProblem(LogTail(8000)));
}

void LocalCluster::Stop() {
  if (!server_) return;
  server_->Stop(SIGINT, std::chrono::seconds(30));
  server_.reset();
}

void LocalCluster::Kill() {
  if (!server_) return;
  server_->Stop(SIGQUIT, std::chrono::seconds(10));
  server_.reset();
}

void LocalCluster::AppendConf(const std::vector<std::pair<std::string, std::string>>& settings) {
  std::ofstream out(data_dir_ + "/postgresql.conf", std::ios::app);
  for (const auto& [k, v] : settings) out << k << " = " << v << "\n";
  if (!out) throw Error(ErrorKind::kIo, "cannot write " + data_dir_ + "/postgresql.conf");
}

std::string LocalCluster::ConnInfo(const std::string& dbname) const {
  return "host=" + socket_dir_ + " port=" + std::to_string(port_) +
         " user=postgres dbname=" + dbname;
}

std::string LocalCluster::TcpConnInfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::string LocalCluster::Psql(const std::string& sql, const std::string& dbname) const {
  ProcessSpec spec;
  spec.argv = {opts_.tools.Path("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
               ConnInfo(dbname),         "-c", sql};
  spec.timeout = std::chrono::minutes(10);
  ProcessResult r = RunProcess(spec);
  if (!r.ok()) throw Error(ErrorKind::kQuery, "psql failed: " + r.Summary());
  return r.out;
}

std::string LocalCluster::Problem() {
  std::string out;
  bool exited_itself = false;  // with an exit code: the postmaster ended on its own, logging why
  if (server_ && !server_->Running()) {
    const int st = server_->Stop(SIGKILL, std::chrono::seconds(1));  // reaped: returns its status
    exited_itself = !WIFSIGNALED(st);
    out = WIFSIGNALED(st)
              ? "the sandbox server died (killed by signal " + std::to_string(WTERMSIG(st)) + ")"
              : "the sandbox server exited (code " + std::to_string(WEXITSTATUS(st)) + ")";
  }
  // Only lines that say the server itself is in trouble; a FATAL for one client session is not.
  std::istringstream in(LogTail(8000));
  std::string trouble;
  for (std::string line; std::getline(in, line);) {
    const auto bracket = line.find("] ");
    if (bracket != std::string::npos) line = line.substr(bracket + 2);
    if (line.rfind("PANIC", 0) == 0 || line.find("No space left on device") != std::string::npos)
      trouble += line + "\n";
  }
  std::string line = CauseLine(trouble);
  // A server that shut itself down (recovery ended before its target, a startup failure) said
  // why in its last FATAL line; our probes' refusals are skipped.
  if (line.empty() && exited_itself) line = LastProblem(LogTail(8000));
  if (!line.empty()) out += (out.empty() ? "" : ": ") + line;
  return out;
}

std::string LocalCluster::LogTail(std::size_t max_bytes) const {
  return ReadFileTail(log_path_, max_bytes);
}

}  // namespace rw
