#include "agent/sandboxes/ephemeral.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/pg_conn.h"

namespace rw {
namespace {

// Keeps [A-Za-z0-9_-] of a target name for a dir name; anything else becomes '_'.
std::string DirSafe(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    out += ok ? c : '_';
  }
  return out.substr(0, 40);
}

// PostgreSQL truncates identifiers to 63 bytes; do it here so the returned name is the real one.
// Cuts at a UTF-8 character boundary.
std::string TruncateIdent(const std::string& s) {
  if (s.size() <= 63) return s;
  std::size_t n = 63;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// The agent's own cluster, alone on its unix socket: every database in it is ours, so databases
// need no mark and Cleanup() removes the whole dir.
class EphemeralSandbox : public Sandbox {
 public:
  EphemeralSandbox(const Environment& env, const TargetConfig& target, std::string run_id,
                   std::string source_system_id)
      : env_(env),
        target_(target.name),
        run_id_(std::move(run_id)),
        source_system_id_(std::move(source_system_id)) {}
  ~EphemeralSandbox() override { Cleanup(); }

  std::string kind() const override { return "ephemeral"; }

  SandboxCapabilities capabilities() const override {
    SandboxCapabilities c;
    c.can_create_cluster = true;
    c.can_start_from_files = true;
    c.exclusive_server = true;
    c.uses_work_dir = true;
    return c;
  }

  void Start(int min_major, CancelToken& cancel) override {
    if (cluster_ && !from_files_) return;
    if (!files_dir_.empty() || from_files_)
      throw Error(ErrorKind::kConfig,
                  "the ephemeral sandbox holds a data directory already: it cannot also initdb");
    if (env_.pg.major < min_major)
      throw Error(
          ErrorKind::kUnsupported,
          "the dump is of PostgreSQL " + std::to_string(min_major) +
              " but the sandbox binaries are PostgreSQL " + std::to_string(env_.pg.major) + " (" +
              env_.pg.bin_dir + ")",
          "install PostgreSQL " + std::to_string(min_major) + " or newer and set agent.pg_bin_dir");
    ClusterOptions o = Options();
    // A copy of the cached initdb result (agent/pg/pg_cluster.h): never one that shares the
    // source's system identifier.
    o.template_parent = env_.work_dir;
    o.avoid_system_id = source_system_id_;
    cluster_ = LocalCluster::Create(o, &cancel);
    dir_ = cluster_->dir();
    LogDebug("ephemeral sandbox started",
             {{"target", target_}, {"run_id", run_id_}, {"dir", dir_}, {"port", cluster_->port()}});
  }

  std::string NewDataDirectory(CancelToken& cancel) override {
    cancel.ThrowIfCancelled();
    if (cluster_ || !files_dir_.empty())
      throw Error(ErrorKind::kConfig,
                  "the ephemeral sandbox has a cluster or data directory already");
    dir_ = LocalCluster::NewClusterDir(Options());
    files_dir_ = dir_ + "/data";
    MakeDirs(files_dir_, 0700, env_.run_as);
    LogDebug("ephemeral sandbox data directory created",
             {{"target", target_}, {"run_id", run_id_}, {"dir", files_dir_}});
    return files_dir_;
  }

  void StartDataDirectory(const std::string& data_dir, const DataDirStart& how,
                          CancelToken& cancel) override {
    cancel.ThrowIfCancelled();
    if (files_dir_.empty() || data_dir != files_dir_)
      throw Error(ErrorKind::kConfig,
                  "StartDataDirectory: " + data_dir +
                      " is not the data directory this sandbox handed out (NewDataDirectory)");
    if (cluster_) throw Error(ErrorKind::kConfig, "the ephemeral sandbox is started already");
    // The sandbox's own: where clients find it, and what keeps it from touching anything real.
    static const std::set<std::string> kOwn = {"port",
                                               "unix_socket_directories",
                                               "listen_addresses",
                                               "archive_mode",
                                               "archive_command",
                                               "archive_library",
                                               "primary_conninfo",
                                               "primary_slot_name",
                                               "hba_file"};
    for (const auto& [k, v] : how.settings)
      if (kOwn.count(k))
        throw Error(ErrorKind::kConfig, "StartDataDirectory: setting " + k +
                                            " is the sandbox's own and cannot be given");
    if (!IsFile(data_dir + "/PG_VERSION"))
      throw Error(ErrorKind::kIo, data_dir + " holds no PostgreSQL data directory (no PG_VERSION)");
    // Over the unix socket in a 0700 dir only the agent and run_as can connect: trust is safe, and
    // the backup's own pg_hba.conf (passwords, other hosts) is the source's business.
    WriteOwned(data_dir + "/pg_hba.conf", "# restorewatch sandbox\nlocal all all trust\n");
    for (const auto& f : how.signal_files) {
      if (f.find('/') != std::string::npos || f.empty())
        throw Error(ErrorKind::kConfig, "StartDataDirectory: bad signal file name '" + f + "'");
      WriteOwned(data_dir + "/" + f, "");
    }
    ClusterOptions o = Options();
    if (!how.tools.bin_dir.empty()) o.tools = how.tools;  // the backup's major version
    o.throwaway = false;  // wal_level etc. must stay what the backup was made with
    o.start_timeout = how.timeout;
    // A copy may be lost at any time: no need to make its writes durable. (max_wal_senders and
    // the like stay: hot standby refuses values below the primary's.)
    o.settings = {{"fsync", "off"}, {"synchronous_commit", "off"}};
    o.settings.insert(o.settings.end(), how.settings.begin(), how.settings.end());
    // On the command line, so they also beat the backup's postgresql.auto.conf: never archive
    // into the real archive, never stream from the real primary, never listen on TCP.
    o.command_line = {{"archive_mode", "off"},
                      {"listen_addresses", ""},
                      {"primary_conninfo", ""},
                      {"primary_slot_name", ""},
                      {"hba_file", data_dir + "/pg_hba.conf"}};
    const std::string dir = dir_;
    files_dir_.clear();  // Adopt owns the dir from here on, also when it fails (it removes it)
    cluster_ = LocalCluster::Adopt(o, dir, data_dir, &cancel);
    from_files_ = true;
    LogDebug("ephemeral sandbox started from files",
             {{"target", target_}, {"run_id", run_id_}, {"dir", dir}, {"port", cluster_->port()}});
  }

  StoppedDataDir StopDataDirectory() override {
    if (!cluster_ || !from_files_)
      throw Error(ErrorKind::kConfig, "the ephemeral sandbox started no data directory");
    cluster_->Stop();  // fast shutdown; the dir stays until Cleanup()
    return {cluster_->data_dir(), cluster_->options().tools};
  }

  std::string CreateDatabase(const std::string& wanted_name) override {
    RequireStarted();
    std::string name = TruncateIdent(wanted_name.empty() ? "restored" : wanted_name);
    WithPgErrors("cannot create database " + name + " in the sandbox", [&] {
      auto c = ConnectSandbox(ConnInfo("postgres"));
      pqxx::nontransaction tx(*c);
      // The template's spare database (empty, from template0) renamed is ~0.15 s faster than a
      // CREATE DATABASE. Else template0: a restore needs an empty database whatever template1
      // holds.
      auto exists = [&](const std::string& db) {
        return !tx.exec_params("select 1 from pg_database where datname = $1", db).empty();
      };
      if (name != kSpareDatabase && exists(kSpareDatabase) && !exists(name))
        tx.exec0(std::string("alter database ") + kSpareDatabase + " rename to " +
                 QuoteIdent(name));
      else
        tx.exec0("create database " + QuoteIdent(name) + " template template0");
    });
    return name;
  }

  std::string ConnInfo(const std::string& dbname) const override {
    if (!cluster_) return {};
    return "host=" + ConnInfoValue(cluster_->socket_dir()) +
           " port=" + std::to_string(cluster_->port()) +
           " user=postgres dbname=" + ConnInfoValue(dbname);
  }

  std::vector<std::string> CreateRoles(const std::vector<std::string>& roles) override {
    RequireStarted();
    std::vector<std::string> created;
    if (roles.empty()) return created;
    WithPgErrors("cannot create roles in the sandbox", [&] {
      auto c = ConnectSandbox(ConnInfo("postgres"));
      pqxx::nontransaction tx(*c);
      for (const auto& r : roles) {
        if (!tx.exec_params("select 1 from pg_roles where rolname = $1", r).empty()) continue;
        tx.exec0("create role " + QuoteIdent(r) + " nologin");
        created.push_back(r);
      }
    });
    return created;
  }

  int ServerMajor() const override { return cluster_ ? cluster_->options().tools.major : 0; }

  std::string ServerProblem() override { return cluster_ ? cluster_->Problem() : std::string(); }

  std::string Cleanup() override {
    files_dir_.clear();
    try {
      // The copy is thrown away: an immediate shutdown (SIGQUIT) skips the shutdown checkpoint
      // that a fast one would write for nothing (seconds after a large restore).
      if (cluster_) cluster_->Kill();
      cluster_.reset();  // removes its dir
    } catch (...) {
      // A destructor that threw already tried; the check below reports what is left.
    }
    if (dir_.empty()) return {};
    struct stat st {};
    std::string problem;
    if (lstat(dir_.c_str(), &st) == 0) {
      std::string err;
      if (!RemoveTree(dir_, &err)) problem = "cannot remove sandbox dir " + dir_ + ": " + err;
    }
    if (problem.empty()) dir_.clear();
    return problem;
  }

 private:
  ClusterOptions Options() const {
    ClusterOptions o;
    o.tools = env_.pg;
    o.parent_dir = env_.work_dir;
    o.name_prefix = "sandbox-" + DirSafe(target_) + "-";
    o.run_as = env_.run_as;
    o.tcp = false;
    o.throwaway = true;
    // The owner's full identity (host, boot, pid, start time) first, so the work_dir sweep can
    // tell a dead owner from a reused pid (agent/orphans.h).
    o.marker = "kind=ephemeral-sandbox " + FormatIdentity(SelfIdentity()) + " target=" + target_ +
               " run=" + run_id_;
    return o;
  }

  static bool IsFile(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }

  // Writes `text` to `path` (replacing it), owned by run_as so the server may read and remove it.
  void WriteOwned(const std::string& path, const std::string& text) const {
    {
      std::ofstream out(path, std::ios::trunc);
      out << text;
      out.close();
      if (!out) throw Error(ErrorKind::kIo, "cannot write " + path);
    }
    chmod(path.c_str(), 0600);
    if (env_.run_as && chown(path.c_str(), env_.run_as->uid, env_.run_as->gid) != 0)
      throw Error(ErrorKind::kIo, "cannot hand " + path + " to " + env_.run_as->user);
  }

  void RequireStarted() const {
    if (!cluster_) throw Error(ErrorKind::kConfig, "the ephemeral sandbox is not started");
  }

  Environment env_;
  std::string target_;
  std::string run_id_;
  std::string source_system_id_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string dir_;          // kept after cluster_ is gone, to verify removal
  bool from_files_ = false;  // cluster_ was started by StartDataDirectory()
  std::string files_dir_;    // NewDataDirectory()'s data dir, until StartDataDirectory() adopts it
};

}  // namespace

std::unique_ptr<Sandbox> MakeEphemeralSandbox(const Environment& env, const TargetConfig& target,
                                              const std::string& run_id,
                                              const std::string& source_system_id) {
  // A cluster initdb'd by the agent (a copy of its cached initdb result) has a system identifier
  // of its own: it can never be the source (a template sharing the source's is rebuilt).
  return std::make_unique<EphemeralSandbox>(env, target, run_id, source_system_id);
}

}  // namespace rw
