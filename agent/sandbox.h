#pragma once
// The sandbox family: the throwaway server a drill restores into. Implementations (one file each
// in agent/sandboxes/): "ephemeral" (the agent's own cluster in work_dir, the default) and
// "scratch" (an existing server given by scratch_dsn), picked by [target.drill] sandbox through
// the table in agent/sandbox.cpp.
//
// Two interfaces:
// - SandboxHost: what a BackupSource may ask of the sandbox while it restores. It declares what it
//   can do (SandboxCapabilities) and offers primitives: a fresh running cluster (Start +
//   CreateDatabase + CreateRoles: what a logical restore needs), or an empty data directory and
//   "start this data directory with these recovery settings" (what a physical restore needs).
//   Sources pick by capability, never by kind().
// - Sandbox: the drill's handle on top of it (the server's own account of a failure, Cleanup()).
//
// A sandbox must never be the source: Start() refuses a server whose system identifier equals the
// source's. Only what the sandbox created and marked is ever dropped. One drill thread uses a
// sandbox; Cleanup() may also be called from the destructor.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/environment.h"

namespace rw {

// What a sandbox host can do; a source checks these before asking for a primitive.
struct SandboxCapabilities {
  // Start(): a fresh running cluster to load a logical dump into.
  bool can_create_cluster = false;
  // NewDataDirectory() + StartDataDirectory(): start PostgreSQL on files a source put in place
  // (a base backup), in recovery.
  bool can_start_from_files = false;
  // The server is the agent's alone: server-wide changes (roles from a globals file, a plain
  // dump's CREATE DATABASE) touch nothing of anyone else.
  bool exclusive_server = false;
  // The restored data lives in agent.work_dir (the drill checks its free space first).
  bool uses_work_dir = false;
};

// How StartDataDirectory() starts a data directory a source filled.
struct DataDirStart {
  // Extra postgresql.conf settings, values as written in the file (quote strings:
  // {"restore_command", "'cp /archive/%f %p'"}, {"recovery_target", "'immediate'"}). Appended
  // after the sandbox's own, so they win; the sandbox always forces archive_mode = off, a unix
  // socket only (listen_addresses = '') and no primary_conninfo, whatever is given here.
  std::vector<std::pair<std::string, std::string>> settings;
  // Signal files created empty in the data dir before start: "recovery.signal",
  // "standby.signal".
  std::vector<std::string> signal_files;
  // Bound on the wait until the server accepts connections (a server in archive recovery accepts
  // them once consistent when hot_standby is on, its default).
  Duration timeout = std::chrono::minutes(5);
  // The binaries to run it with: those of the backup's major version (PgTools::ForMajor). Empty
  // bin_dir: the sandbox's own (agent.pg_bin_dir).
  PgTools tools;
};

// A data directory StopDataDirectory() shut down, left in place until Cleanup().
struct StoppedDataDir {
  std::string data_dir;
  PgTools tools;  // the binaries that ran it (pg_checksums, pg_controldata of that major)
};

class SandboxHost {
 public:
  virtual ~SandboxHost() = default;
  // "ephemeral" or "scratch": for messages and the report only; never branch on it.
  virtual std::string kind() const = 0;
  virtual SandboxCapabilities capabilities() const = 0;

  // --- a fresh running cluster (can_create_cluster) ---
  // Makes the server ready (initdb+start, or connect and verify). min_major: the dump's server
  // version; a server older than it is refused with Error(kUnsupported). Throws Error.
  virtual void Start(int min_major, CancelToken& cancel) = 0;
  // Creates an empty database carrying the agent's mark, returns its actual name.
  virtual std::string CreateDatabase(const std::string& wanted_name) = 0;
  // Creates the roles (NOLOGIN) among `roles` that do not exist yet, so that a plain dump's
  // OWNER TO and GRANT statements succeed; returns those created. A sandbox that shares its server
  // (scratch) marks them and drops them in Cleanup(). The default creates nothing. Throws Error.
  virtual std::vector<std::string> CreateRoles(const std::vector<std::string>& roles) {
    (void)roles;
    return {};
  }

  // --- files (can_start_from_files) ---
  // A new empty data directory (mode 0700, owned by the user PostgreSQL runs as) that the
  // sandbox owns and removes in Cleanup(); returns its path. Files put there must be readable and
  // writable by that user (agent.run_as). One per sandbox. Throws Error(kUnsupported) when the
  // sandbox cannot (see capabilities()), kIo otherwise.
  virtual std::string NewDataDirectory(CancelToken& cancel);
  // Starts `postgres` on `data_dir` (from NewDataDirectory()) with `how`, unix socket only,
  // archive_mode = off, and waits (bounded by how.timeout and `cancel`) until it accepts
  // connections; afterwards ConnInfo() reaches it. Throws Error(kProcess) with the server log's
  // reason when it exits, kTimeout, kCancelled; kUnsupported when the sandbox cannot.
  virtual void StartDataDirectory(const std::string& data_dir, const DataDirStart& how,
                                  CancelToken& cancel);
  // Shuts down the server StartDataDirectory() started, cleanly (fast shutdown: a checkpoint, then
  // exit; bounded, a server that does not stop is killed, which offline tools then report), and
  // leaves its data directory in place until Cleanup(), for offline checks (pg_checksums). After
  // it, ConnInfo() reaches nothing. Throws Error(kUnsupported) when the sandbox cannot (scratch),
  // kConfig when it started no data directory.
  virtual StoppedDataDir StopDataDirectory();

  // --- connecting to what was started ---
  // Superuser conninfo for a database inside the sandbox. Never carries a password, so it may be
  // put on a command line (pg_restore -d, psql -d); clients also need ClientEnv().
  virtual std::string ConnInfo(const std::string& dbname) const = 0;
  // Environment a client program (pg_restore, psql) needs beside ConnInfo, e.g. PGPASSWORD for a
  // scratch server. Never log it.
  virtual std::map<std::string, std::string> ClientEnv() const { return {}; }
  // Conninfo for an in-process libpq connection (ConnectSandbox): ConnInfo plus any password.
  // Never log it, never put it on a command line.
  virtual std::string LibpqConnInfo(const std::string& dbname) const { return ConnInfo(dbname); }
  virtual int ServerMajor() const = 0;
  // When a restore broke off (connection lost, disk full): the sandbox server's own account of
  // it, one line (a PANIC/FATAL from its log, or that it is no longer running), or empty when it
  // has nothing to say or cannot tell (a scratch server's log is not ours to read).
  virtual std::string ServerProblem() { return {}; }
};

class Sandbox : public SandboxHost {
 public:
  // Removes everything created (databases, server, dirs). Idempotent, never throws; returns a
  // one-line problem or empty.
  virtual std::string Cleanup() = 0;
};

// For a source: throws Error(kUnsupported) naming `who` and every capability in `needed` that
// `host` lacks ("the basebackup source needs a sandbox that can start PostgreSQL from backup
// files; the scratch sandbox cannot", hint: use the ephemeral sandbox). Returns when it has them.
void RequireCapabilities(const SandboxHost& host, const SandboxCapabilities& needed,
                         const std::string& who);

// Picks the implementation by DrillConfig::sandbox (table in agent/sandbox.cpp).
// source_system_id: the source's system identifier, to refuse a sandbox that is the source
// (empty when unknown). run_id names databases/dirs.
std::unique_ptr<Sandbox> MakeSandbox(const Environment& env, const TargetConfig& target,
                                     const std::string& run_id,
                                     const std::string& source_system_id);

}  // namespace rw
