#include "agent/sandboxes/ephemeral.h"

#include <sys/stat.h>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/pg_cluster.h"
#include "agent/pg_conn.h"

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
  EphemeralSandbox(const Environment& env, const TargetConfig& target, std::string run_id)
      : env_(env), target_(target.name), run_id_(std::move(run_id)) {}
  ~EphemeralSandbox() override { Cleanup(); }

  std::string kind() const override { return "ephemeral"; }

  void Start(int min_major, CancelToken& cancel) override {
    if (cluster_) return;
    if (env_.pg.major < min_major)
      throw Error(
          ErrorKind::kUnsupported,
          "the dump is of PostgreSQL " + std::to_string(min_major) +
              " but the sandbox binaries are PostgreSQL " + std::to_string(env_.pg.major) + " (" +
              env_.pg.bin_dir + ")",
          "install PostgreSQL " + std::to_string(min_major) + " or newer and set agent.pg_bin_dir");
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
    cluster_ = LocalCluster::Create(o, &cancel);
    dir_ = cluster_->dir();
    LogDebug("ephemeral sandbox started",
             {{"target", target_}, {"run_id", run_id_}, {"dir", dir_}, {"port", cluster_->port()}});
  }

  std::string CreateDatabase(const std::string& wanted_name) override {
    RequireStarted();
    std::string name = TruncateIdent(wanted_name.empty() ? "restored" : wanted_name);
    WithPgErrors("cannot create database " + name + " in the sandbox", [&] {
      auto c = ConnectSandbox(ConnInfo("postgres"));
      pqxx::nontransaction tx(*c);
      // template0: a restore needs an empty database whatever template1 holds.
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

  int ServerMajor() const override { return cluster_ ? env_.pg.major : 0; }

  std::string ServerProblem() override { return cluster_ ? cluster_->Problem() : std::string(); }

  std::string Cleanup() override {
    try {
      cluster_.reset();  // stops the server and removes its dir
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
  void RequireStarted() const {
    if (!cluster_) throw Error(ErrorKind::kConfig, "the ephemeral sandbox is not started");
  }

  Environment env_;
  std::string target_;
  std::string run_id_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string dir_;  // kept after cluster_ is gone, to verify removal
};

}  // namespace

std::unique_ptr<Sandbox> MakeEphemeralSandbox(const Environment& env, const TargetConfig& target,
                                              const std::string& run_id,
                                              const std::string& source_system_id) {
  // A cluster initdb'd a moment ago has a fresh system identifier: it can never be the source.
  (void)source_system_id;
  return std::make_unique<EphemeralSandbox>(env, target, run_id);
}

}  // namespace rw
