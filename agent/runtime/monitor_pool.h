#pragma once
// The shared pool that runs every periodic monitoring job of the agent (each collector of each
// target, and the /metrics pre-render) on a few worker threads, instead of one thread per
// collector per target (22 threads for 3 targets, 304 for 50 before; each thread also cost its
// stack pages and a malloc arena).
//
// A job is a function run once per turn that returns the delay until its next turn (measured
// from the end of the turn, as the old per-collector loops slept); a delay <= 0 ends the job. A
// job never runs twice at once, and jobs are started in order of when they are due.
//
// Workers: min_workers always; one more (up to max_workers) when a due job has waited longer
// than grow_after (2 s) with every worker busy (a hung database holds a worker only for its
// connect/statement timeout, and the others keep ticking); a worker above min_workers retires
// after idle_retire (10 s) without work. Growth is checked when a worker takes a job and by
// Maintain() (the agent calls it every second), so it also happens while every worker is stuck.
// When no worker is stuck (none in its turn for grow_after) the jobs are merely behind: the pool
// then adds at most one worker per grow_after, and only if `cpu_saturated` (when set) says the
// host has CPU to spare: on a saturated database host more workers would only add load to the
// source, hold one more sample in flight each, and keep no better pace (50 targets on 2 busy
// cores: 79 to 92 turns of 100 with 32 workers).
//
// Thread-safe. Stop() (or the destructor) cancels every job, waits for running turns and joins
// the workers.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/units.h"

namespace rw {

class MonitorPool {
 public:
  using Clock = std::chrono::steady_clock;
  using JobId = std::uint64_t;
  using Job = std::function<Duration()>;  // one turn; returns the delay to the next (<= 0: end)

  struct Options {
    int min_workers = 2;
    int max_workers = 32;
    Duration grow_after = std::chrono::seconds(2);
    Duration idle_retire = std::chrono::seconds(10);
    // True when the host's CPUs are saturated (HostCpuWatch); asked at most once a second,
    // only when the jobs are behind and no worker is stuck. Empty: never saturated.
    std::function<bool()> cpu_saturated;
  };

  MonitorPool();
  explicit MonitorPool(Options options);
  ~MonitorPool();
  MonitorPool(const MonitorPool&) = delete;
  MonitorPool& operator=(const MonitorPool&) = delete;

  // Adds a job whose first turn is due after `first_delay`. Returns its id (never 0). After
  // Stop() the job is not added and 0 is returned.
  JobId Add(Job job, Duration first_delay = Duration::zero());
  // Makes the job's next turn due within `within` (only ever sooner). A kick during a turn makes
  // the turn after it due within `within` of its end. Unknown or ended ids are ignored.
  void Kick(JobId id, Duration within = Duration::zero());
  // The job gets no further turn (a running turn finishes). Does not wait.
  void Cancel(JobId id);
  // Waits until none of `ids` has a running turn, after Cancel(). True when none runs by
  // `deadline`.
  bool Wait(const std::vector<JobId>& ids, Clock::time_point deadline);
  // Grows the pool when a due job waits past grow_after with every worker busy.
  void Maintain();
  // Cancels every job, waits for running turns until `deadline` and joins the workers that
  // ended. True when every worker was joined; false leaves the stuck ones running (the
  // destructor then waits for them).
  bool Stop(Clock::time_point deadline);

  int workers() const;       // live worker threads
  std::size_t jobs() const;  // jobs not ended or cancelled

 private:
  struct Entry {
    Job fn;
    Clock::time_point due;
    bool running = false;
    Clock::time_point started;  // of the running turn
    bool cancelled = false;
    std::optional<Clock::time_point> kicked;  // a Kick() during the running turn
  };
  void Work(std::uint64_t worker);
  void SpawnLocked();
  void MaybeGrowLocked(Clock::time_point now);
  void JoinFinished();

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;      // work became due, a turn ended, a worker ended, stop
  std::map<JobId, Entry> entries_;  // guarded by mu_
  std::set<std::pair<Clock::time_point, JobId>> queue_;  // guarded by mu_: idle jobs by due time
  JobId next_id_ = 1;                                    // guarded by mu_
  std::map<std::uint64_t, std::thread> threads_;         // guarded by mu_
  std::vector<std::uint64_t> finished_;                  // guarded by mu_: ended, not joined
  std::uint64_t next_worker_ = 1;                        // guarded by mu_
  int live_ = 0;                                         // guarded by mu_: workers not ended
  int busy_ = 0;                                         // guarded by mu_
  bool stopping_ = false;                                // guarded by mu_
  Clock::time_point saturated_at_;                       // guarded by mu_: last cpu_saturated()
  bool saturated_ = false;                               // guarded by mu_: its answer
  Clock::time_point grew_at_;  // guarded by mu_: last growth for jobs merely behind
};

// /proc/pressure/cpu's "some" line: the share of the last 10 s in which a task waited for a CPU
// (percent) and the total of that waiting since boot (microseconds).
struct CpuPressure {
  double avg10 = 0;
  std::uint64_t total_us = 0;
};
std::optional<CpuPressure> ParseCpuPressure(const std::string& text);

// Whether the host's CPUs are saturated: tasks waited for a CPU at least half of the time since
// the previous call (from the "some" total, so it answers within a second, where avg10 lags by
// its 10 s average), or of the last 10 s on the first call. False where the kernel has no
// pressure information (the pool then grows as before). Not thread-safe: the pool calls it
// under its lock.
class HostCpuWatch {
 public:
  explicit HostCpuWatch(std::string path = "/proc/pressure/cpu") : path_(std::move(path)) {}
  bool Saturated();

 private:
  std::string path_;
  std::optional<std::uint64_t> last_total_us_;
  std::chrono::steady_clock::time_point last_at_;
};

}  // namespace rw
