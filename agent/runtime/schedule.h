#pragma once
// Drill scheduling policy, kept apart from the threads that apply it (Agent::SchedulerLoop) so it
// can be tested without a clock: slot jitter, which slots are due, what happens to a due slot
// (start, skip, wait) and the catch-up of slots missed while the agent was down. Also the small
// state file that remembers, per target, the last slot handled (state_dir/<target>/schedule.toml).
//
// Vocabulary: a *slot* is a minute the cron schedule matches; its *fire time* is the slot plus
// its jitter; a slot is *due* once its fire time has passed and it has not been *handled* (run,
// skipped or collapsed into a catch-up). `handled` is the newest slot dealt with: every slot at or
// before it is done. Pure functions, thread-safe; the state file functions do I/O only.
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "agent/cron.h"
#include "agent/units.h"

namespace rw {

// The delay of one slot: in [0, jitter] at whole-second resolution, a fixed function of the
// target's name and the slot (FNV-1a), so a restart does not re-roll it and targets sharing a
// schedule spread out. 0 when jitter is under a second.
Duration SlotJitter(const std::string& target, std::time_t slot, Duration jitter);
std::time_t SlotFireTime(const std::string& target, std::time_t slot, Duration jitter);

// The due slots after `handled`, oldest first: slots s > handled with fire time <= now. Walking
// stops at the first slot whose fire time is still ahead (a later slot with less jitter waits for
// it). When `handled` is more than a day (plus jitter) behind, everything older than that is
// collapsed into one slot (the newest old one), so a long outage costs one entry, not thousands.
std::vector<std::time_t> DueSlots(const CronSchedule& schedule, const std::string& target,
                                  Duration jitter, std::time_t handled, std::time_t now);

enum class SkipReason { kStillRunning, kConcurrencyLimit };
// "still_running", "concurrency_limit": the `reason` label of restorewatch_drill_skipped_total.
const char* SkipReasonName(SkipReason r);
inline constexpr SkipReason kSkipReasons[] = {SkipReason::kStillRunning,
                                              SkipReason::kConcurrencyLimit};

// May a drill of a target start now? Never two of the same target; at most `max_concurrent`
// drills in the agent.
enum class Admission { kStart, kStillRunning, kConcurrencyLimit };
Admission AdmitDrill(bool target_running, int active_drills, int max_concurrent);

struct SlotPlan {
  std::optional<std::time_t> start;                         // slot whose drill starts now
  std::vector<std::pair<std::time_t, SkipReason>> skipped;  // slots given up (counted)
  int collapsed = 0;        // older due slots folded into `start` without a count (catch-up)
  bool waiting = false;     // the newest due slot waits for a free drill slot
  std::time_t handled = 0;  // new value of `handled`
};

// What to do with a target's due slots (from DueSlots) given the admission decision:
//  - none due: nothing, handled unchanged;
//  - the target's drill still runs: every due slot is skipped (still_running);
//  - no free drill slot: the newest due slot waits, older ones are skipped (concurrency_limit):
//    a slot is given up only when a newer one supersedes it;
//  - admitted: the newest due slot starts; older ones (only after an outage or a stall of the
//    scheduler) are collapsed into it, so a backlog runs one drill.
SlotPlan PlanSlots(const std::vector<std::time_t>& due, Admission admission, std::time_t handled);

// Where the scheduler starts for a target it begins to watch. `persisted`: the last handled slot
// from the state file.
//  - no state file (the target never ran under a schedule): start from `now`, no catch-up; the
//    first drill is the next slot;
//  - `fresh` (a reload added the target, gave it a schedule or changed it): start from `now` as
//    well; catch-up is only for slots missed while the agent was down;
//  - otherwise (agent start) resume from `persisted`: slots missed meanwhile are due at once, and
//    PlanSlots runs one catch-up drill for all of them.
std::time_t InitialHandled(std::optional<std::time_t> persisted, bool fresh, std::time_t now);

// state_dir/<target>/schedule.toml: `last_slot` (Unix seconds) and a readable copy. Load returns
// nullopt when the file is missing or unreadable; a corrupt file is reported in *problem (and
// then treated as missing). Save writes atomically (temp file + rename) and throws Error(kIo).
std::optional<std::time_t> LoadScheduleState(const std::string& target_dir, std::string* problem);
void SaveScheduleState(const std::string& target_dir, std::time_t last_slot);

}  // namespace rw
