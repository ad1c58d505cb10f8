#pragma once
// The drill log: one JSON line per finished drill in state_dir/<target>/drills.jsonl, appended
// by the daemon (Agent::RecordDrill) and by `verify`, read by `restorewatch history` and
// /api/v1/targets/NAME/history. DrillHistory (agent/state.h) keeps the last report and the
// counters; this keeps the sequence, so trends can be shown.
//
// Bounded: when the file holds more than kKeep + kSlack lines it is compacted to the last kKeep
// (rewritten and renamed into place). Appends and compactions from several processes are
// serialised by flock on drills.lock; each append is one write(2) of one whole line. A torn last
// line (a crash mid-write) is skipped when reading and never glued to the next record. Readers
// need no lock (rename is atomic). Thread-safe.
//
// A line (version 1):
//   {"v":1,"run_id":"...","target":"t1","started_at":1764690000.5,"finished_at":...,
//    "result":"success","reason":"","sandbox":"ephemeral","restored_size_bytes":123,
//    "backup":{"id":"db-1.dump","kind":"logical","tool":"pg_dump","completed_at":...,
//              "size_bytes":456},
//    "stages":[{"name":"restore","outcome":"pass","duration_seconds":1.2,"message":""},...],
//    "checks":[{"name":"schema","outcome":"pass","duration_seconds":0.1,"message":"..."},...]}
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/model.h"

namespace rw {

struct DrillLogEntry {
  std::string run_id;
  std::string target;
  double started_at = 0;   // Unix seconds
  double finished_at = 0;  // Unix seconds
  std::string result;      // success, failure, error
  std::string reason;      // one line; empty on success
  std::string sandbox;
  std::uint64_t restored_size_bytes = 0;
  std::optional<BackupInfo> backup;  // id, kind, tool, completed_at, size_bytes only
  std::vector<StageResult> stages;   // including "total"
  std::vector<CheckResult> checks;   // name, outcome, message, duration only (no table details)
  // The measured RTO: the "total" stage's duration (finished_at - started_at when absent).
  double rto_seconds() const;
};

DrillLogEntry EntryFromReport(const DrillReport& report);
std::string EntryToJsonLine(const DrillLogEntry& entry);  // no trailing newline
std::optional<DrillLogEntry> EntryFromJsonLine(const std::string& line);

class DrillLog {
 public:
  static constexpr std::size_t kKeep = 500;
  static constexpr std::size_t kSlack = 50;
  explicit DrillLog(std::string dir);  // state_dir/<target>; created when first written
  // Appends one drill (and compacts when due). Never throws: a failure is logged as a warning,
  // since losing a history line must not lose the drill's result.
  void Append(const DrillReport& report);
  // The newest `last` drills, oldest first. *unreadable counts lines that did not parse.
  std::vector<DrillLogEntry> Read(std::size_t last = kKeep,
                                  std::size_t* unreadable = nullptr) const;
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// What `history` shows about a run of drills (oldest first).
struct DrillLogSummary {
  std::size_t drills = 0;
  std::size_t passed = 0;  // result success
  double pass_rate = 0;    // passed / drills; 0 when there are none
  // RTO over the successful drills only (a failed drill did not produce a verified restore).
  std::size_t rto_samples = 0;
  std::optional<double> rto_min, rto_median, rto_max;
  // Trend: the median RTO of the older half of those samples against the newer half (the
  // middle one is left out when the count is odd). Needs at least 2 samples.
  std::optional<double> rto_older_median, rto_newer_median;
  std::optional<double> rto_change_ratio;  // newer / older - 1
  std::string rto_trend;                   // "slower" (> +10%), "faster" (< -10%), "stable", ""
};
DrillLogSummary SummarizeDrills(const std::vector<DrillLogEntry>& entries);

}  // namespace rw
