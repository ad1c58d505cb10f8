#pragma once
// Persistent state in state_dir/<target>/, shared between the daemon and one-shot `verify` runs.
//  - ActivityStore: samples of pg_stat_user_tables counters per table over time (written by the
//    table_activity collector, read by the row_count/checksum checks to bound churn since a
//    backup's snapshot), with the source's transaction horizon at each sample (the evidence for
//    row-level proof). Stored as an append-only text file, compacted so it stays small: every
//    sample of the last 2 hours, then one per hour for 8 days; older ones dropped.
//  - DrillHistory: the last drill report and the timestamps/counters that must survive restarts
//    (drills.toml: the summary; last_drill.toml: the last report with a copy of the summary, so
//    either file rebuilds the other), and the drill-in-progress markers
//    (drill_running.<pid>.toml) that turn a drill interrupted by a crash into an `error` drill.
// Thread-safe within a process (internal mutex). Across processes, writers append whole lines or
// replace files atomically (write + rename), so a reader never sees a torn record.
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/model.h"

namespace rw {

struct TableCounters {
  std::int64_t n_tup_ins = 0;
  std::int64_t n_tup_upd = 0;
  std::int64_t n_tup_del = 0;
  std::int64_t n_live_tup = 0;
};

struct ActivitySample {
  ActivitySample() = default;
  ActivitySample(double ts_, std::map<std::string, TableCounters> tables_,
                 std::string snapshot_ = {}, bool commit_timestamps_ = false)
      : ts(ts_),
        tables(std::move(tables_)),
        snapshot(std::move(snapshot_)),
        commit_timestamps(commit_timestamps_) {}
  double ts = 0;                                // Unix seconds when read
  std::map<std::string, TableCounters> tables;  // "schema.table" -> counters
  // The source's transaction horizon, pg_current_snapshot() as text ("xmin:xmax:xip,..."), read
  // before `ts` was stamped; so a backup taken at or after ts saw every transaction this snapshot
  // sees as committed. Empty when not recorded (older samples, or the query failed).
  std::string snapshot;
  bool commit_timestamps = false;  // the source had track_commit_timestamp = on
};

// Rows a table gained and lost between two samples (upper bounds of what changed).
struct TableChurn {
  std::int64_t inserted = 0;
  std::int64_t updated = 0;
  std::int64_t deleted = 0;
  bool touched() const { return inserted || updated || deleted; }
};

class ActivityStore {
 public:
  // dir: state_dir/<target>; created if missing (Error kIo on failure).
  explicit ActivityStore(std::string dir);
  // Appends a sample (persisted before return) and compacts now and then.
  void Append(const ActivitySample& sample);
  // The newest sample with ts <= t, re-reading the file (another process may have written).
  std::optional<ActivitySample> AtOrBefore(double t);
  std::optional<ActivitySample> Latest();
  // Time of the oldest sample kept, or nullopt when there is none.
  std::optional<double> Earliest();
  // Per-table churn from `from` to `to`; tables missing in `from` but present in `to` are new
  // (all live rows inserted). A counter that went backwards (stats reset) yields nullopt.
  static std::map<std::string, std::optional<TableChurn>> Churn(const ActivitySample& from,
                                                                const ActivitySample& to);
  std::size_t SampleCount();

 private:
  void LoadLocked();
  void CompactLocked();
  std::string dir_, path_;
  std::mutex mu_;
  std::vector<ActivitySample> samples_;
  std::size_t appends_since_compact_ = 0;
  // Delta-append bookkeeping (agent/state.cpp): the file as this process last wrote it. When the
  // file's identity or size differ, another process wrote and the base is reloaded from disk.
  std::uint64_t known_ino_ = 0;
  std::uint64_t known_size_ = 0;
  std::size_t since_full_ = 0;
  bool compacted_once_ = false;
};

struct DrillHistorySummary {
  std::optional<double> last_run;  // any result
  std::optional<double> last_success;
  std::optional<double> last_failure;                  // failure or error
  std::map<std::string, std::int64_t> runs_by_result;  // success/failure/error -> count
  std::optional<DrillReport> last_report;
};

// Damaged state: a state file that does not parse, is truncated (new files end with a trailer
// line) or holds impossible values (a negative counter) is moved aside as
// <name>.corrupt-<UTC time> with a warning log line, and what it held is rebuilt from the other
// file where possible (drills.toml from the summary copy in last_drill.toml, or from the report
// alone; the report is lost with last_drill.toml). Counters never go backwards within a process
// (a high-water mark per result) and never go negative. Missing files are a fresh start, silently.
class DrillHistory {
 public:
  // dir: state_dir/<target>; created if missing (Error kIo). Also recovers interrupted drills:
  // every drill_running.<pid>.toml whose owner is provably gone (orphans.h OwnerStateOf) is
  // claimed (renamed, so two processes never both record it) and recorded as an `error` drill
  // with reason "interrupted: the agent stopped during the drill (pid N)".
  explicit DrillHistory(std::string dir);
  // Marks a drill of this target as running in this process (drill_running.<pid>.toml, written
  // atomically). Record() clears it. Never throws (a failure is logged).
  void BeginDrill(double started_at);
  // Records a finished drill (atomically replaces the state files) and clears this process's
  // drill-in-progress marker.
  void Record(const DrillReport& report);
  DrillHistorySummary Load();
  // The interrupted drills the constructor recorded (oldest first).
  const std::vector<DrillReport>& recovered() const { return recovered_; }

 private:
  DrillHistorySummary LoadLocked();
  void RecordLocked(const DrillReport& report);
  void RecoverInterruptedLocked();
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::int64_t> runs_floor_;  // highest counts seen (never go backwards)
  std::vector<DrillReport> recovered_;
};

// The full report of the newest drill that passed, from `dir` (state_dir/<target>):
// last_success.toml (written by DrillHistory::Record()), else last_drill.toml when that drill
// passed; nullopt when none is kept. Read-only: a damaged file is skipped with a warning, never
// moved aside, and nothing is created.
std::optional<DrillReport> LoadLastSuccessReport(const std::string& dir);

// Report <-> TOML/JSON, used by DrillHistory, the JSON report and the API (agent/drill_history.cpp;
// ActivityStore lives in agent/state.cpp).
std::string ReportToJson(const DrillReport& r);
std::string ReportToToml(const DrillReport& r);
std::optional<DrillReport> ReportFromToml(const std::string& text);

}  // namespace rw
