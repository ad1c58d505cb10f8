#pragma once
// restorewatch configuration: plain structs, each field with its meaning, unit and default,
// declared once. LoadConfig() fills them from TOML (toml++), checking types and ranges and
// rejecting unknown keys; every problem in a file is collected, each naming file, line and key.
// Checks and sources receive these typed structs, never TOML nodes. Secrets (passwords) are read
// here from password_file or ${ENV} expansion and are kept out of every DSN that is logged or
// exported.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/copies_options.h"
#include "agent/cron.h"
#include "agent/notifier_options.h"
#include "agent/pg/conninfo.h"
#include "agent/sources/barman_options.h"
#include "agent/sources/basebackup_options.h"
#include "agent/sources/command_options.h"
#include "agent/sources/pg_dump_options.h"
#include "agent/sources/pgbackrest_options.h"
#include "agent/storage/s3_options.h"
#include "agent/units.h"

namespace rw {

enum class LogFormat { kText, kJson };
enum class SandboxKind { kEphemeral, kScratch };
enum class CompareMode { kChurn, kExact };
// drill.pick: which backup a drill restores. kLatest: the newest complete one. kRandom: one of
// the catalogue's complete backups, those never verified first, then the least recently
// verified (agent/ledger.h PickBackup).
enum class DrillPick { kLatest, kRandom };

// A PostgreSQL connection: a conninfo parsed once by libpq (key=value or postgresql:// URI) into
// keywords, without the password, plus the password kept apart. Connections are made from the
// keywords (agent/pg/pg_conn.h); nothing is ever appended to the text the user wrote.
struct ConnSpec {
  ConnKeywords keywords;  // e.g. host=db1 port=5432 dbname=blog user=restorewatch (no password)
  std::string password;   // from password_file, ${ENV} or a password in the conninfo; never logged

  ConnSpec() = default;
  // Parses `conninfo` (a password in it moves to `password` unless one is given). Throws
  // Error(kConfig) on a malformed conninfo, with a message that never quotes it.
  ConnSpec(const std::string& conninfo, std::string password = {});
  // Same without throwing: nullopt and a reason that never quotes the text.
  static std::optional<ConnSpec> Parse(const std::string& conninfo, std::string* error);

  // The value of one keyword, or nullopt.
  std::optional<std::string> Get(const std::string& key) const;
  // The keywords with the password added, for libpq only. Never log or export them.
  ConnKeywords ForLibpq() const;
  // key=value text safe for logs, metrics and the API: the keywords without password and
  // sslpassword.
  std::string Redacted() const;
};

struct AgentConfig {
  std::string listen = "127.0.0.1:9847";            // HTTP listen address host:port (port 0 = any)
  std::string state_dir = "/var/lib/restorewatch";  // persistent state (drill history, samples)
  std::string work_dir = "/var/tmp/restorewatch";   // sandboxes and temp files; must have room
  std::string pg_bin_dir = "auto";  // PostgreSQL binaries; "auto" picks the newest installed
  std::string run_as = "postgres";  // PostgreSQL children run as this user when the agent is root
  LogFormat log_format = LogFormat::kText;
  std::string log_level = "info";                       // trace, debug, info, warn, error
  Duration shutdown_timeout = std::chrono::seconds(5);  // bound for graceful stop
  // exporter-toolkit style web config (TLS and basic auth for every HTTP path); empty = plain
  // HTTP without auth. A relative path is relative to the config file's directory.
  std::string web_config_file;
  // POST /api/v1/targets/NAME/drill starts a drill now; needs basic_auth_users in the web config.
  bool enable_drill_api = false;
  int max_concurrent_drills =
      1;  // drills of different targets at once (1..64); never two per target
};

// Generic [target.backup] keys. The source's own keys (pattern, globals_pattern for pg_dump)
// are declared and read beside the source (agent/sources/pg_dump_options.h).
struct BackupConfig : PgDumpBackupOptions,
                      PgbackrestBackupOptions,
                      BarmanBackupOptions,
                      CommandBackupOptions,
                      CopiesBackupOptions {
  std::string type = "pg_dump";    // selects the BackupSource (table in agent/backup_source.cpp)
  std::vector<std::string> paths;  // directories searched ("path" accepts a string or an array)
  Duration max_age = std::chrono::hours(26);  // freshness objective; 0 disables
  // Per-kind freshness objectives, e.g. { full = "8d", incr = "26h" }: the newest backup of
  // each kind named must be younger than its value (max_age stays the any-kind objective).
  // Kinds: logical (pg_dump), full (basebackup, barman), full/diff/incr (pgbackrest), any name
  // the command source's list uses. Empty = none.
  std::map<std::string, Duration> max_age_by_kind;
  // Retention objective: the oldest backup kept must be at least this old; 0 = none.
  Duration min_retention = Duration::zero();
  // Point-in-time recovery objective (wal_archive, basebackup sources): from the oldest base
  // backup with an unbroken WAL chain after it to the newest archived segment; 0 = none.
  Duration pitr_window = Duration::zero();
  Duration settle = std::chrono::seconds(2);  // a file whose size changes within this is in flight
  Duration catalogue_interval = std::chrono::minutes(5);  // how often the catalogue is refreshed
  // The directory the source's archive_command writes WAL segments into (absolute; empty: none).
  // Its continuity is watched between drills (the wal_archive collector).
  std::string wal_archive;
  // [target.backup.s3]: the object store of s3:// paths (agent/storage/s3_options.h).
  S3Options s3;
};

// Per-stage limits inside the drill timeout; 0 = bounded by drill.timeout only. A stage that runs
// past its limit is cancelled and the drill ends as error, naming the stage and the limit.
struct StageTimeouts {
  Duration discover = Duration::zero();
  Duration restore = Duration::zero();  // sandbox start + restore
  Duration checks = Duration::zero();
};

// Generic [target.drill] keys; the source's own (jobs, allow_restore_errors for pg_dump) are
// declared and read beside it (agent/sources/pg_dump_options.h).
struct DrillConfig : PgDumpDrillOptions, BasebackupDrillOptions, CopiesDrillOptions {
  std::optional<CronSchedule> schedule;      // cron; absent = only on demand (verify)
  Duration jitter = Duration::zero();        // each slot starts up to this much later (per-target
                                             // deterministic delay); keep it below the slot gap
  Duration timeout = std::chrono::hours(2);  // whole drill; on expiry it is cancelled (error)
  StageTimeouts stage_timeouts;
  Duration rto = Duration::zero();  // objective for the total time; 0 = none
  SandboxKind sandbox = SandboxKind::kEphemeral;
  ConnSpec scratch;      // for sandbox = "scratch": a maintenance DB conninfo
  std::string database;  // name of the database the dump is restored as; default: source dbname
  DrillPick pick = DrillPick::kLatest;
  // Set by the loader when [target.drill] names recovery_target (physical sources): with
  // pick = "random" an older backup recovers to its own consistent end unless one is given.
  bool recovery_target_given = false;
};

struct RowCountConfig {
  bool enabled = true;
  std::int64_t slack_rows = 0;  // added to every table's churn bound (never to unknown churn)
};

struct AppendOnlyTable {
  std::string table;  // "schema.table"
  std::string key;    // monotonically increasing column
};

struct ChecksumConfig {
  bool enabled = true;
  std::vector<AppendOnlyTable> append_only;
  int sample_keys = 10;  // differing keys reported per table
};

struct SqlCheckConfig {
  std::string name;
  std::string query;   // must return one row, one column
  std::string expect;  // "= 5", ">= 1", "< 10", "!= 0", "5", "'text'"; empty with compare_source
  bool compare_source = false;  // also run on the source and require equal results
};

struct ChecksConfig {
  CompareMode compare = CompareMode::kChurn;
  bool schema = true;
  RowCountConfig row_count;
  ChecksumConfig checksum;
  std::map<std::string, std::string> freshness;  // "schema.table" -> timestamp column
  std::vector<SqlCheckConfig> sql;
  bool amcheck = false;  // amcheck's verification of the restored copy (reads it all, see README)
  std::vector<std::string> exclude_tables;           // globs over "schema.table"
  Duration stats_settle = std::chrono::seconds(11);  // wait before re-reading pgstat on a mismatch
};

struct TargetConfig {
  std::string name;                        // [a-z0-9_-], unique; the `target` label
  ConnSpec source;                         // the primary (read-only sessions only)
  std::vector<ConnSpec> standbys;          // optional standby connections
  std::vector<std::string> standby_names;  // label per standby (application_name or host:port)
  Duration monitor_interval = std::chrono::seconds(15);
  Duration connect_timeout = std::chrono::seconds(5);
  Duration statement_timeout = std::chrono::seconds(30);     // monitor queries
  Duration drill_statement_timeout = std::chrono::hours(1);  // source-side drill queries (hashing)
  Duration lock_timeout = std::chrono::seconds(5);
  BackupConfig backup;
  DrillConfig drill;
  ChecksConfig checks;
};

struct Config {
  std::string path;  // file it came from
  AgentConfig agent;
  std::vector<TargetConfig> targets;
  std::vector<NotifierConfig> notifiers;  // [[notifier]] (agent/notifier_options.h)
  const TargetConfig* FindTarget(const std::string& name) const;
};

struct ConfigError {
  std::string file;
  int line = 0;  // 0 when unknown
  // Dotted path, named by target once its name is known: "target.blog.drill.jobs"; by index
  // before that or for a duplicate name: "target[1].name"; arrays by index: "checks.sql[0].expect".
  std::string key;
  std::string message;
  std::string ToString() const;  // "FILE:LINE: KEY: MESSAGE"
};

struct ConfigLoad {
  std::optional<Config> config;  // set only when errors is empty
  std::vector<ConfigError> errors;
};

// Reads and validates a config file. Never throws; every problem is in errors, sorted by line.
// Zero [[target]] tables is valid (the agent then only serves HTTP; the daemon warns). Strings get
// ${VAR} expanded (unset VAR is an error; "$${" is a literal "${"). A conninfo is parsed first
// (by libpq) and ${VAR} is expanded inside each parsed value, so a value from the environment may
// hold spaces and quotes; a conninfo that is exactly one "${VAR}" takes the whole conninfo from
// VAR. A password in a conninfo or a password_file (relative to the config file's directory) ends
// up in ConnSpec::password only; standbys without a password of their own use the source's. Every
// password met is registered for redaction (agent/secrets.h). No error message carries a password
// or quotes a conninfo.
ConfigLoad LoadConfig(const std::string& path);
// Same, from text (file is used for messages and for relative password_file paths).
ConfigLoad LoadConfigText(const std::string& text, const std::string& file);

}  // namespace rw
