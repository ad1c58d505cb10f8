#pragma once
// Sandbox: the throwaway database server a drill restores into. Implementations (one file each in
// agent/sandboxes/): "ephemeral" (the agent's own cluster, the default) and "scratch" (an existing
// server given by scratch_dsn). A sandbox must never be the source: Start() refuses a server whose
// system identifier equals the source's. Only what the sandbox created and marked is ever dropped.
// One drill thread uses a sandbox; Cleanup() may also be called from the destructor.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"

namespace rw {

class Sandbox {
 public:
  virtual ~Sandbox() = default;
  virtual std::string kind() const = 0;
  // Makes the server ready (initdb+start, or connect and verify). min_major: the dump's server
  // version; a server older than it is refused with Error(kUnsupported). Throws Error.
  virtual void Start(int min_major, CancelToken& cancel) = 0;
  // Creates an empty database carrying the agent's mark, returns its actual name.
  virtual std::string CreateDatabase(const std::string& wanted_name) = 0;
  // Superuser conninfo for a database inside the sandbox. Never carries a password, so it may be
  // put on a command line (pg_restore -d, psql -d); clients also need ClientEnv().
  virtual std::string ConnInfo(const std::string& dbname) const = 0;
  // Environment a client program (pg_restore, psql) needs beside ConnInfo, e.g. PGPASSWORD for a
  // scratch server. Never log it.
  virtual std::map<std::string, std::string> ClientEnv() const { return {}; }
  // Conninfo for an in-process libpq connection (ConnectSandbox): ConnInfo plus any password.
  // Never log it, never put it on a command line.
  virtual std::string LibpqConnInfo(const std::string& dbname) const { return ConnInfo(dbname); }
  // Creates the roles (NOLOGIN) among `roles` that do not exist yet, so that a plain dump's
  // OWNER TO and GRANT statements succeed; returns those created. A sandbox that shares its server
  // (scratch) marks them and drops them in Cleanup(). The default creates nothing. Throws Error.
  virtual std::vector<std::string> CreateRoles(const std::vector<std::string>& roles) {
    (void)roles;
    return {};
  }
  virtual int ServerMajor() const = 0;
  // When a restore broke off (connection lost, disk full): the sandbox server's own account of
  // it, one line (a PANIC/FATAL from its log, or that it is no longer running), or empty when it
  // has nothing to say or cannot tell (a scratch server's log is not ours to read).
  virtual std::string ServerProblem() { return {}; }
  // Removes everything created (databases, server, dirs). Idempotent, never throws; returns a
  // one-line problem or empty.
  virtual std::string Cleanup() = 0;
};

// Picks the implementation by DrillConfig::sandbox (table in agent/sandbox.cpp).
// source_system_id: the source's system identifier, to refuse a sandbox that is the source
// (empty when unknown). run_id names databases/dirs.
std::unique_ptr<Sandbox> MakeSandbox(const Environment& env, const TargetConfig& target,
                                     const std::string& run_id,
                                     const std::string& source_system_id);

}  // namespace rw
