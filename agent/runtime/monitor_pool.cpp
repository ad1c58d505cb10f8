#include "agent/runtime/monitor_pool.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace rw {

MonitorPool::MonitorPool() : MonitorPool(Options{}) {}

MonitorPool::MonitorPool(Options options) : options_(options) {
  std::lock_guard<std::mutex> lk(mu_);
  if (options_.cpu_saturated) {  // the baseline of the first answer
    saturated_ = options_.cpu_saturated();
    saturated_at_ = Clock::now();
  }
  for (int i = 0; i < std::max(1, options_.min_workers); ++i) SpawnLocked();
}

MonitorPool::~MonitorPool() {
  Stop(Clock::now());
  // Only workers stuck in a turn are left: they use the pool, so wait for them.
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return live_ == 0; });
  std::map<std::uint64_t, std::thread> threads;
  threads.swap(threads_);
  finished_.clear();
  lk.unlock();
  for (auto& [id, t] : threads)
    if (t.joinable()) t.join();
}

void MonitorPool::SpawnLocked() {
  const std::uint64_t id = next_worker_++;
  ++live_;
  threads_.emplace(id, std::thread([this, id] { Work(id); }));
}

void MonitorPool::MaybeGrowLocked(Clock::time_point now) {
  if (stopping_ || queue_.empty() || busy_ < live_ || live_ >= options_.max_workers) return;
  if (now - queue_.begin()->first < options_.grow_after) return;
  const bool stuck = std::any_of(entries_.begin(), entries_.end(), [&](const auto& kv) {
    return kv.second.running && now - kv.second.started >= options_.grow_after;
  });
  if (!stuck) {
    // Merely behind: one more worker per grow_after at most, and none while the CPUs are busy.
    if (now - grew_at_ < options_.grow_after) return;
    if (options_.cpu_saturated) {
      if (now - saturated_at_ >= std::chrono::seconds(1)) {
        saturated_ = options_.cpu_saturated();
        saturated_at_ = now;
      }
      if (saturated_) return;  // behind because the CPUs are busy: more workers do not help
    }
    grew_at_ = now;
  }
  SpawnLocked();
}

std::optional<CpuPressure> ParseCpuPressure(const std::string& text) {
  // "some avg10=58.89 avg60=48.58 avg300=28.29 total=678227437"
  const std::string key = "some avg10=";
  const auto at = text.find(key);
  if (at == std::string::npos || (at > 0 && text[at - 1] != '\n')) return std::nullopt;
  const auto eol = text.find('\n', at);
  const std::string line = text.substr(at, eol == std::string::npos ? eol : eol - at);
  CpuPressure p;
  const char* begin = line.c_str() + key.size();
  char* end = nullptr;
  p.avg10 = std::strtod(begin, &end);
  if (end == begin || p.avg10 < 0 || p.avg10 > 100) return std::nullopt;
  const auto t = line.find(" total=");
  if (t == std::string::npos) return std::nullopt;
  begin = line.c_str() + t + 7;
  if (*begin < '0' || *begin > '9') return std::nullopt;
  p.total_us = std::strtoull(begin, &end, 10);
  if (end == begin) return std::nullopt;
  return p;
}

bool HostCpuWatch::Saturated() {
  std::ifstream in(path_);
  if (!in) return false;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto p = ParseCpuPressure(text);
  if (!p) return false;
  const auto now = std::chrono::steady_clock::now();
  bool saturated = p->avg10 >= 50.0;
  if (last_total_us_ && p->total_us >= *last_total_us_) {
    const double span_us = std::chrono::duration<double, std::micro>(now - last_at_).count();
    if (span_us >= 200e3)
      saturated = static_cast<double>(p->total_us - *last_total_us_) >= 0.5 * span_us;
  }
  last_total_us_ = p->total_us;
  last_at_ = now;
  return saturated;
}

void MonitorPool::JoinFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_.clear();
  }
  for (auto& t : done) t.join();
}

MonitorPool::JobId MonitorPool::Add(Job job, Duration first_delay) {
  JobId id = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return 0;
    id = next_id_++;
    Entry e;
    e.fn = std::move(job);
    e.due = Clock::now() + first_delay;
    queue_.emplace(e.due, id);
    entries_.emplace(id, std::move(e));
  }
  cv_.notify_all();
  JoinFinished();
  return id;
}

void MonitorPool::Kick(JobId id, Duration within) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.cancelled) return;
    Entry& e = it->second;
    const auto due = Clock::now() + within;
    if (e.running) {
      if (!e.kicked || due < *e.kicked) e.kicked = due;
      return;
    }
    if (due >= e.due) return;
    queue_.erase({e.due, id});
    e.due = due;
    queue_.emplace(e.due, id);
  }
  cv_.notify_all();
}

void MonitorPool::Cancel(JobId id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.running) {
    it->second.cancelled = true;  // erased when its turn ends
    return;
  }
  queue_.erase({it->second.due, id});
  entries_.erase(it);
}

bool MonitorPool::Wait(const std::vector<JobId>& ids, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_until(lk, deadline, [&] {
    return std::none_of(ids.begin(), ids.end(), [&](JobId id) {
      auto it = entries_.find(id);
      return it != entries_.end() && it->second.running;
    });
  });
}

void MonitorPool::Maintain() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    MaybeGrowLocked(Clock::now());
  }
  JoinFinished();
}

bool MonitorPool::Stop(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(mu_);
  stopping_ = true;
  queue_.clear();
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.running) {
      it->second.cancelled = true;
      ++it;
    } else {
      it = entries_.erase(it);
    }
  }
  cv_.notify_all();
  const bool all = cv_.wait_until(lk, deadline, [this] { return live_ == 0; });
  lk.unlock();
  JoinFinished();
  return all;
}

int MonitorPool::workers() const {
  std::lock_guard<std::mutex> lk(mu_);
  return live_;
}

std::size_t MonitorPool::jobs() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::size_t n = 0;
  for (const auto& [id, e] : entries_)
    if (!e.cancelled) ++n;
  return n;
}

void MonitorPool::Work(std::uint64_t worker) {
  std::unique_lock<std::mutex> lk(mu_);
  auto idle_since = Clock::now();
  while (!stopping_) {
    const auto now = Clock::now();
    if (!queue_.empty() && queue_.begin()->first <= now) {
      const JobId id = queue_.begin()->second;
      queue_.erase(queue_.begin());
      Entry& e = entries_.at(id);
      e.running = true;
      e.started = now;
      ++busy_;
      MaybeGrowLocked(now);
      Job fn = e.fn;  // a copy: the entry may be erased by Stop() meanwhile
      lk.unlock();
      Duration next = Duration::zero();
      try {
        next = fn();
      } catch (...) {
        next = std::chrono::seconds(1);  // a job that throws is tried again later
      }
      fn = nullptr;  // what the job captured goes on this side of the lock
      lk.lock();
      --busy_;
      auto it = entries_.find(id);
      if (it != entries_.end()) {
        Entry& done = it->second;
        done.running = false;
        if (done.cancelled || stopping_ || next <= Duration::zero()) {
          entries_.erase(it);
        } else {
          done.due = Clock::now() + next;
          if (done.kicked && *done.kicked < done.due) done.due = std::max(*done.kicked, now);
          done.kicked.reset();
          queue_.emplace(done.due, id);
        }
      }
      cv_.notify_all();
      idle_since = Clock::now();
      continue;
    }
    if (now - idle_since >= options_.idle_retire) {
      if (live_ > options_.min_workers) break;
      idle_since = now;
    }
    auto wake = idle_since + options_.idle_retire;
    if (!queue_.empty()) wake = std::min(wake, queue_.begin()->first);
    cv_.wait_until(lk, wake);
  }
  --live_;
  finished_.push_back(worker);
  cv_.notify_all();
}

}  // namespace rw
