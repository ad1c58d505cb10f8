#include "agent/runtime/schedule.h"

#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/pg/process.h"

namespace rw {
namespace {

std::uint64_t Fnv1a(const std::string& text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

constexpr std::time_t kDay = 24 * 60 * 60;
constexpr std::size_t kMaxDue = 5000;  // a day of per-minute slots, and then some

}  // namespace

Duration SlotJitter(const std::string& target, std::time_t slot, Duration jitter) {
  const std::int64_t seconds = jitter.count() / 1000;
  if (seconds <= 0) return Duration::zero();
  const std::uint64_t h = Fnv1a(target + "@" + std::to_string(static_cast<long long>(slot)));
  return std::chrono::seconds(
      static_cast<std::int64_t>(h % static_cast<std::uint64_t>(seconds + 1)));
}

std::time_t SlotFireTime(const std::string& target, std::time_t slot, Duration jitter) {
  return slot + static_cast<std::time_t>(SlotJitter(target, slot, jitter).count() / 1000);
}

std::vector<std::time_t> DueSlots(const CronSchedule& schedule, const std::string& target,
                                  Duration jitter, std::time_t handled, std::time_t now) {
  std::vector<std::time_t> due;
  std::time_t from = handled;
  // Far behind: everything up to the horizon is certainly due (its jitter has passed); keep only
  // the newest of those and walk the rest one by one.
  const std::time_t horizon = now - static_cast<std::time_t>(jitter.count() / 1000) - kDay;
  if (from < horizon) {
    if (auto p = schedule.Previous(horizon); p && *p > handled) due.push_back(*p);
    from = horizon;
  }
  for (auto s = schedule.Next(from); s && *s <= now && due.size() < kMaxDue;
       s = schedule.Next(*s)) {
    if (SlotFireTime(target, *s, jitter) > now) break;
    due.push_back(*s);
  }
  return due;
}

const char* SkipReasonName(SkipReason r) {
  switch (r) {
    case SkipReason::kStillRunning:
      return "still_running";
    case SkipReason::kConcurrencyLimit:
      return "concurrency_limit";
  }
  return "unknown";
}

Admission AdmitDrill(bool target_running, int active_drills, int max_concurrent) {
  if (target_running) return Admission::kStillRunning;
  if (active_drills >= std::max(1, max_concurrent)) return Admission::kConcurrencyLimit;
  return Admission::kStart;
}

SlotPlan PlanSlots(const std::vector<std::time_t>& due, Admission admission, std::time_t handled) {
  SlotPlan p;
  p.handled = handled;
  if (due.empty()) return p;
  switch (admission) {
    case Admission::kStillRunning:
      for (std::time_t s : due) p.skipped.emplace_back(s, SkipReason::kStillRunning);
      p.handled = due.back();
      break;
    case Admission::kConcurrencyLimit:
      for (std::size_t i = 0; i + 1 < due.size(); ++i)
        p.skipped.emplace_back(due[i], SkipReason::kConcurrencyLimit);
      if (due.size() >= 2) p.handled = due[due.size() - 2];
      p.waiting = true;
      break;
    case Admission::kStart:
      p.start = due.back();
      p.collapsed = static_cast<int>(due.size()) - 1;
      p.handled = due.back();
      break;
  }
  return p;
}

std::time_t InitialHandled(std::optional<std::time_t> persisted, bool fresh, std::time_t now) {
  if (!persisted || fresh) return now;
  // A clock that went backwards must not hold the schedule back until it catches up.
  return std::min(*persisted, now);
}

std::optional<std::time_t> LoadScheduleState(const std::string& target_dir, std::string* problem) {
  const std::string path = target_dir + "/schedule.toml";
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  try {
    toml::table t = toml::parse(text.str(), path);
    if (auto v = t["last_slot"].value<std::int64_t>(); v && *v >= 0)
      return static_cast<std::time_t>(*v);
    if (problem) *problem = path + ": no valid last_slot";
  } catch (const toml::parse_error& e) {
    if (problem) *problem = path + ": " + std::string(e.description());
  }
  return std::nullopt;
}

void SaveScheduleState(const std::string& target_dir, std::time_t last_slot) {
  MakeDirs(target_dir, 0755);
  const std::string path = target_dir + "/schedule.toml";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# restorewatch: the last drill slot handled for this target (run, skipped or caught\n"
           "# up). A slot after it that passed while the agent was down is run once at start.\n"
        << "last_slot = " << static_cast<long long>(last_slot) << "\n"
        << "last_slot_utc = \"" << FormatTimestamp(static_cast<double>(last_slot)) << "\"\n";
    out.flush();
    if (!out) throw Error(ErrorKind::kIo, "cannot write " + tmp);
  }
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ErrorKind::kIo, "cannot replace " + path);
}

}  // namespace rw
