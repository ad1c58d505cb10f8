#pragma once
// Findings as data: what a drill found, stage by stage and check by check. Produced by the drill
// runner and the checks, rendered by exporters (text/JSON report, metrics, API), persisted by the
// state store. Plain values; not thread-safe by themselves (copy them across threads).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rw {

// pass: proven good. warn: good, with a remark. fail: a finding. skipped: not run by choice or
// because a precondition was absent. error: could not run. Only pass and warn count as passed.
enum class Outcome { kPass, kWarn, kFail, kSkipped, kError };
const char* OutcomeName(Outcome o);
std::optional<Outcome> ParseOutcome(const std::string& s);
// The worse of two outcomes for a drill: error > fail > warn > pass; skipped ranks as pass.
Outcome Worse(Outcome a, Outcome b);

// The drill's overall result, as in restorewatch_drill_runs_total{result}.
enum class DrillResult { kSuccess, kFailure, kError };
const char* DrillResultName(DrillResult r);

// One backup as its source sees it.
struct BackupInfo {
  std::string id;              // stable within the source, e.g. the file name
  std::string kind;            // logical, full, incr, diff
  std::string tool;            // pg_dump, pg_basebackup, pgbackrest, barman, command
  std::string format;          // custom, directory, tar, plain, plain.gz, plain.zst, plain.lz4
  std::string path;            // file or directory
  std::string globals_path;    // pg_dumpall --globals-only file restored first, if any
  double started_at = 0;       // Unix seconds: the snapshot time (churn window starts here)
  double completed_at = 0;     // Unix seconds: when the backup was complete
  bool started_exact = false;  // true when started_at came from the backup itself, not mtime
  std::uint64_t size_bytes = 0;
  std::string database;     // database the dump was taken of, when known
  int server_major = 0;     // major version of the server dumped, when known (e.g. 15)
  int dump_tool_major = 0;  // major version of pg_dump that wrote it, when known
  // `<path>.restorewatch.json` when `restorewatch dump` wrote one beside the backup (an exact
  // reference: checks/drill/reference.h); empty otherwise.
  std::string reference_path;
  // The command source's list said "running": true: a backup in progress, never drilled (it only
  // feeds BackupCatalogue::running).
  bool running = false;
  // Where a drill read it: empty for backup.path, else the name of the copy (drill.from).
  std::string location;
};

// What a source's catalogue holds right now (freshness metrics).
struct BackupCatalogue {
  struct Kind {
    std::size_t count = 0;
    std::optional<BackupInfo> newest;
    std::optional<BackupInfo> oldest;  // by completion time: the retention actually kept
  };
  std::map<std::string, Kind> by_kind;  // kind -> summary
  std::vector<std::string> notes;       // e.g. files skipped because still being written
  // Every complete backup, any kind, as listed (pick = "random" and the verification ledger).
  std::vector<BackupInfo> backups;
  // kind -> backups of that kind in progress right now (restorewatch_backup_running). A source
  // that cannot tell the kind of a running backup (pgBackRest's lock) marks each kind it makes.
  std::map<std::string, std::size_t> running;
  // How long a half-written backup (a base backup directory without backup_manifest, a
  // directory-format dump without toc.dat) may stay unchanged and still count as running: a
  // writer that died leaves one that stops counting after this, so it cannot hold back the
  // backup-age alerts for ever.
  static constexpr double kRunningQuietSeconds = 15 * 60;
  // Counts `b` under `kind` and keeps the newest (by start) and the oldest (by completion).
  void Add(const std::string& kind, const BackupInfo& b) {
    backups.push_back(b);
    Kind& k = by_kind[kind];
    ++k.count;
    if (!k.newest || b.started_at >= k.newest->started_at) k.newest = b;
    if (!k.oldest || b.completed_at < k.oldest->completed_at) k.oldest = b;
  }
};

// Per-table detail of a check.
struct TableFinding {
  std::string table;  // "schema.table" or an object name for schema findings
  Outcome outcome = Outcome::kPass;
  std::string message;
  std::optional<std::int64_t> source_rows;
  std::optional<std::int64_t> restored_rows;
  std::optional<std::int64_t> allowed_drift;
  std::vector<std::string> sample_keys;  // differing keys, at most ChecksumConfig::sample_keys
};

struct CheckResult {
  std::string name;  // schema, row_count, checksum, freshness, sql:<name>
  Outcome outcome = Outcome::kSkipped;
  std::string message;  // one line
  double duration_seconds = 0;
  std::vector<TableFinding> details;  // failed/warned ones always; passing ones may be omitted
  std::int64_t tables_compared = 0;
  std::int64_t tables_mismatched = 0;
  std::int64_t rows_checksummed = 0;  // restored side
  std::int64_t indexes_checked = 0;   // amcheck: B-tree indexes verified
  // Coverage: a table or row is *verified* when the copy was proven to hold it as the source
  // had it at the backup (equal count and content hash, or an exact match for a table untouched
  // since). Unverified: compared but a difference no evidence explains, or not compared because
  // written since the backup. Source-side rows.
  std::int64_t tables_unverified = 0;
  std::int64_t rows_verified = 0;
  std::int64_t rows_unverified = 0;
  std::vector<std::string> unverified;        // "schema.table: reason", at most a few
  std::optional<double> recovered_timestamp;  // freshness: newest row time in the restored copy
};

struct StageResult {
  std::string name;  // discover, fetch, restore, recovery, checks, cleanup
  Outcome outcome = Outcome::kSkipped;
  std::string message;
  double duration_seconds = 0;
};

// One step a source ran inside a drill stage ("sandbox start", "pg_restore", "extract",
// "wal replay"), with its wall time. `stage` is the drill stage it counts toward (fetch, restore,
// recovery), so the runner can report it there. What it ran is kept too, for the runbook
// (`restorewatch runbook`): the exact command lines (argv, secrets masked) and the settings a
// server was started with (physical recovery: restore_command, recovery_target_*).
struct SubStage {
  std::string stage;  // fetch, restore or recovery
  std::string name;   // e.g. "sandbox start", "pg_restore"
  double duration_seconds = 0;
  std::string message;                                  // optional one line
  std::vector<std::vector<std::string>> commands = {};  // in the order they ran
  // postgresql.conf settings of a server start (values as written in the file), then its signal
  // files as {"recovery.signal", ""} (a key ending in ".signal" with an empty value).
  std::vector<std::pair<std::string, std::string>> settings = {};
};

struct DrillReport {
  std::string target;
  std::string run_id;  // e.g. 20261125T031504Z-3f2a
  double started_at = 0;
  double finished_at = 0;
  DrillResult result = DrillResult::kError;
  std::string reason;  // one line: why it failed or could not run; empty on success
  std::optional<BackupInfo> backup;
  // Why this backup (drill.pick): "latest", or "random: never drilled (2 of 3 ...)"; empty in
  // reports written before drill.pick existed.
  std::string pick;
  std::vector<StageResult> stages;  // the stages that ran, in order, then "total"
  // Stages of the drill's list (discover, fetch, restore, recovery, checks, cleanup) that did not
  // run, each `skipped` with its reason ("pg_dump reads the file in place"). Kept apart from
  // `stages`, which is what the history, the metrics and the RTO read.
  std::vector<StageResult> not_run;
  std::vector<CheckResult> checks;
  // The point the restored copy represents (RestoredCopy::consistent_at, lsn, timeline); 0 or
  // empty when no copy was made or it is unknown (a logical copy has no LSN).
  double copy_consistent_at = 0;
  std::string copy_lsn;
  int copy_timeline = 0;
  std::uint64_t restored_size_bytes = 0;
  std::string sandbox;  // ephemeral or scratch
  // What the source ran, step by step (RestoredCopy::stages), for the runbook; empty when no
  // restore ran. sandbox_major: the PostgreSQL major of the sandbox server (0 when unknown).
  std::vector<SubStage> steps;
  int sandbox_major = 0;
  std::vector<std::string> roles_created;  // roles created in the sandbox before loading
  double total_seconds() const { return finished_at - started_at; }
};

}  // namespace rw
