#pragma once
// A PostgreSQL cluster owned by the agent: initdb into a fresh temp dir, `postgres` started as a
// child (foreground, so the agent owns the pid), unix socket only unless tcp is asked for, a random
// free port, as the unprivileged user when the agent is root. Used by the ephemeral sandbox, the
// demo's sample source and the test harness. The destructor stops the server and removes the dir,
// also after failures. A marker file (.restorewatch) names the owner so crash cleanup can tell the
// agent's own dirs apart. Not thread-safe: one owner.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/cancel.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"

namespace rw {

struct ClusterOptions {
  PgTools tools;
  std::string parent_dir;           // the cluster's dir is created under it
  std::string name_prefix = "pg-";  // dir name prefix
  std::optional<RunAs> run_as;      // from ResolveRunAs; nullopt when not root
  bool tcp = false;                 // also listen on 127.0.0.1 (replication, pg_basebackup)
  bool throwaway = true;            // fsync/synchronous_commit/full_page_writes off, wal_level
                                    // minimal, autovacuum off, big maintenance_work_mem
  // extra postgresql.conf settings, values as written in the file (quote strings: "'replica'")
  std::vector<std::pair<std::string, std::string>> settings;
  // settings passed as `-c key=value` on the postgres command line (raw values, no quotes): they
  // win over postgresql.conf and postgresql.auto.conf (a restored backup's ALTER SYSTEM)
  std::vector<std::pair<std::string, std::string>> command_line;
  Duration start_timeout = std::chrono::seconds(60);
  std::string marker;  // text written to the marker file (e.g. "target=blog run=...")
  // When set, Create() copies the data dir from a cached initdb result kept in this dir (built
  // once by initdb, rebuilt when the initdb or postgres binary changes) instead of running initdb:
  // a copy of its 39 MB takes ~0.05 s where initdb takes 0.5-1.5 s. Every cluster copied from it
  // shares its system identifier, so `avoid_system_id` (the source's) forces a new template.
  std::string template_parent;
  std::string avoid_system_id;
};

// An empty database (from template0) in every template-made cluster, for a sandbox to rename
// instead of creating one.
inline constexpr const char* kSpareDatabase = "restorewatch_spare";

// The cached initdb result for `opts` (its data dir), built under opts.template_parent when
// missing or made by other binaries; `.initdb-template-*`, with a stamp file, never a marker the
// orphan sweep would take. Thread-safe. Throws Error like initdb.
std::string EnsureInitdbTemplate(const ClusterOptions& opts, CancelToken* cancel = nullptr);
// The system identifier in a data dir's global/pg_control, as decimal text; empty if unreadable.
std::string ReadSystemIdentifier(const std::string& data_dir);

class LocalCluster {
 public:
  // initdb + start. Throws Error (kProcess/kIo/kTimeout) with initdb's or the server log's reason;
  // everything created so far is removed before throwing.
  static std::unique_ptr<LocalCluster> Create(const ClusterOptions& opts,
                                              CancelToken* cancel = nullptr);
  // Creates a new cluster dir under opts.parent_dir (mode 0700, owned by run_as) with the marker
  // file, for a data dir that Adopt() starts later. Throws Error(kIo).
  static std::string NewClusterDir(const ClusterOptions& opts);
  // Adopts an existing data dir (a restored base backup, a standby) inside `dir` (which this object
  // then owns and removes) and starts it. data_dir must be owned by run_as.
  static std::unique_ptr<LocalCluster> Adopt(const ClusterOptions& opts, const std::string& dir,
                                             const std::string& data_dir,
                                             CancelToken* cancel = nullptr);
  ~LocalCluster();  // Stop() + remove dir

  // libpq conninfo for a database (superuser `postgres`, trust auth over the unix socket).
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // Same over TCP 127.0.0.1 (only when opts.tcp).
  std::string TcpConnInfo(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& socket_dir() const { return socket_dir_; }
  const ClusterOptions& options() const { return opts_; }
  bool running() const { return server_ != nullptr; }

  // Fast shutdown (SIGINT) and wait, bounded. Idempotent.
  void Stop();
  // Immediate shutdown (SIGQUIT), simulating a crash.
  void Kill();
  // Starts again on the same port and waits until it accepts connections. Throws like Create.
  void Start(CancelToken* cancel = nullptr);
  // Appends settings to postgresql.conf (values as SQL literals, e.g. "'on'"); they take effect
  // on the next reload (SELECT pg_reload_conf()) or Start.
  void AppendConf(const std::vector<std::pair<std::string, std::string>>& settings);
  // Runs SQL through psql as superuser on `dbname`; throws Error(kQuery) with psql's stderr.
  std::string Psql(const std::string& sql, const std::string& dbname = "postgres") const;
  // The server log's last lines (for error messages).
  std::string LogTail(std::size_t max_bytes = 4000) const;
  // Why the server stopped serving, one line: "the server is no longer running (killed by signal
  // 9)" and/or its last PANIC/FATAL log line; empty when it runs and logged no such line.
  std::string Problem();

 private:
  explicit LocalCluster(ClusterOptions opts);
  void WriteConf();
  void WaitReady(CancelToken* cancel);
  ClusterOptions opts_;
  std::string dir_, data_dir_, socket_dir_, log_path_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

// A TCP port that was free a moment ago on 127.0.0.1 (bind to port 0, read it back, close).
int PickFreePort();

}  // namespace rw
