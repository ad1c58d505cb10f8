#pragma once
// DrillProgress: where a running drill is, for the person watching it. The drill runner sets the
// stage (discover, fetch, restore, recovery, checks, cleanup), sources and checks set the step
// within it ("pg_restore", "checksum") and what is done (bytes, "tables hashed" 3 of 12); the
// status API, `verify`'s stderr lines and the daemon's "drill progress" log line read snapshots.
// Every update is a short critical section (no I/O under the lock), so it may be called from the
// hot loop of a source or a check.
//
// A source that can only learn what is done by asking (the sandbox's database size,
// pg_stat_progress_copy) registers a probe; the ticker (ProgressTicker) calls it once per
// interval on its own thread, never under the lock and never from an HTTP handler (the API only
// copies what was measured). Thread-safe.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/cancel.h"

namespace rw {

struct ProgressSnapshot {
  bool running = false;
  std::string target;
  std::string run_id;
  std::string stage;  // empty before the first stage
  std::string step;   // within the stage, e.g. "pg_restore", "checksum"; may be empty
  double drill_elapsed_seconds = 0;
  double stage_elapsed_seconds = 0;
  std::optional<std::uint64_t> bytes_done;   // e.g. the sandbox database's size
  std::optional<std::uint64_t> bytes_total;  // when known
  std::string bytes_what;                    // "restored", "WAL replayed"
  std::optional<std::int64_t> items_done;    // e.g. tables hashed
  std::optional<std::int64_t> items_total;
  std::string items_what;  // "tables hashed"
  std::string note;        // one line, e.g. "COPY public.big: 120000 rows"
};

// One human line: "restore (pg_restore) for 12.3s, drill 14.0s: 1.2 GiB restored; COPY ...".
std::string ProgressLine(const ProgressSnapshot& s);

class DrillProgress {
 public:
  // What a probe found; empty members leave the current values alone.
  struct Probed {
    std::optional<std::uint64_t> bytes_done;
    std::string note;
  };
  using Probe = std::function<Probed()>;

  // A drill starts: everything is reset.
  void Begin(const std::string& target, const std::string& run_id);
  // A drill stage starts (clears the step, counters, note and probe).
  void Stage(const std::string& stage);
  // A step within the stage starts (clears counters and note, keeps the probe).
  void Step(const std::string& step);
  void Bytes(std::uint64_t done, std::optional<std::uint64_t> total, const std::string& what);
  void Items(std::int64_t done, std::int64_t total, const std::string& what);
  void Note(const std::string& note);
  // Registers the probe the ticker calls (replacing any); bytes it returns count as `what`.
  void SetProbe(Probe probe, const std::string& what);
  void ClearProbe();
  // The drill ended.
  void End();

  ProgressSnapshot Get() const;
  // Calls the probe (when one is set and a drill runs) and stores what it found. Never throws:
  // a probe that fails leaves the values as they were. Called by the ticker.
  void RunProbe();

  // Called after every Stage() with the new snapshot (verify's "stage started" lines). Set it
  // before the drill starts; it runs on the drill thread, outside the lock.
  void OnStage(std::function<void(const ProgressSnapshot&)> f);

 private:
  using Clock = std::chrono::steady_clock;
  mutable std::mutex mu_;
  ProgressSnapshot s_;            // guarded by mu_ (elapsed fields are computed in Get())
  Clock::time_point drill_t0_;    // guarded by mu_
  Clock::time_point stage_t0_;    // guarded by mu_
  std::shared_ptr<Probe> probe_;  // guarded by mu_
  std::string probe_what_;        // guarded by mu_
  std::function<void(const ProgressSnapshot&)> on_stage_;
};

// The progress interval: RESTOREWATCH_PROGRESS_INTERVAL ("500ms", "10s": a duration, see
// units.h) when set and valid, else 10 s. Read once per call.
std::chrono::milliseconds ProgressInterval();

// Every `interval` while a drill runs: runs the probe, then calls `out` with a snapshot. Stops
// (joins its thread) when destroyed.
class ProgressTicker {
 public:
  ProgressTicker(DrillProgress& progress, std::chrono::milliseconds interval,
                 std::function<void(const ProgressSnapshot&)> out);
  ~ProgressTicker();
  ProgressTicker(const ProgressTicker&) = delete;
  ProgressTicker& operator=(const ProgressTicker&) = delete;

 private:
  CancelToken stop_;
  std::thread thread_;
};

// The daemon's ticker output: one "drill progress" info log line with the snapshot's fields.
void LogProgress(const ProgressSnapshot& s);

}  // namespace rw
