#include "agent/drill_progress.h"

#include <cstdlib>

#include "agent/log.h"
#include "agent/units.h"

namespace rw {

namespace {

// What is done, as one phrase: "1.2 GiB restored, 3 of 12 tables hashed; COPY ...".
std::string DoneText(const ProgressSnapshot& s) {
  std::string out;
  if (s.bytes_done) {
    out += FormatSize(*s.bytes_done);
    if (s.bytes_total) out += " of " + FormatSize(*s.bytes_total);
    if (!s.bytes_what.empty()) out += " " + s.bytes_what;
  }
  if (s.items_done) {
    if (!out.empty()) out += ", ";
    out += std::to_string(*s.items_done);
    if (s.items_total) out += " of " + std::to_string(*s.items_total);
    if (!s.items_what.empty()) out += " " + s.items_what;
  }
  if (!s.note.empty()) out += (out.empty() ? "" : "; ") + s.note;
  return out;
}

}  // namespace

std::string ProgressLine(const ProgressSnapshot& s) {
  if (s.stage.empty()) return "starting";
  std::string out = s.stage;
  if (!s.step.empty()) out += " (" + s.step + ")";
  out += " for " + FormatSeconds(s.stage_elapsed_seconds) + ", drill " +
         FormatSeconds(s.drill_elapsed_seconds);
  std::string done = DoneText(s);
  if (!done.empty()) out += ": " + done;
  return out;
}

void DrillProgress::Begin(const std::string& target, const std::string& run_id) {
  std::lock_guard<std::mutex> lk(mu_);
  s_ = ProgressSnapshot{};
  s_.running = true;
  s_.target = target;
  s_.run_id = run_id;
  drill_t0_ = stage_t0_ = Clock::now();
  probe_.reset();
}

void DrillProgress::Stage(const std::string& stage) {
  ProgressSnapshot now;
  std::function<void(const ProgressSnapshot&)> f;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (s_.stage == stage) return;  // a stage the source already announced
    s_.stage = stage;
    s_.step.clear();
    s_.bytes_done.reset();
    s_.bytes_total.reset();
    s_.bytes_what.clear();
    s_.items_done.reset();
    s_.items_total.reset();
    s_.items_what.clear();
    s_.note.clear();
    probe_.reset();
    stage_t0_ = Clock::now();
    f = on_stage_;
  }
  if (f) f(Get());
}

void DrillProgress::Step(const std::string& step) {
  std::lock_guard<std::mutex> lk(mu_);
  s_.step = step;
  s_.items_done.reset();
  s_.items_total.reset();
  s_.items_what.clear();
  s_.note.clear();
}

void DrillProgress::Bytes(std::uint64_t done, std::optional<std::uint64_t> total,
                          const std::string& what) {
  std::lock_guard<std::mutex> lk(mu_);
  s_.bytes_done = done;
  s_.bytes_total = total;
  s_.bytes_what = what;
}

void DrillProgress::Items(std::int64_t done, std::int64_t total, const std::string& what) {
  std::lock_guard<std::mutex> lk(mu_);
  s_.items_done = done;
  s_.items_total = total;
  s_.items_what = what;
}

void DrillProgress::Note(const std::string& note) {
  std::lock_guard<std::mutex> lk(mu_);
  s_.note = note;
}

void DrillProgress::SetProbe(Probe probe, const std::string& what) {
  std::lock_guard<std::mutex> lk(mu_);
  probe_ = std::make_shared<Probe>(std::move(probe));
  probe_what_ = what;
}

void DrillProgress::ClearProbe() {
  std::lock_guard<std::mutex> lk(mu_);
  probe_.reset();
}

void DrillProgress::End() {
  std::lock_guard<std::mutex> lk(mu_);
  s_.running = false;
  probe_.reset();
}

ProgressSnapshot DrillProgress::Get() const {
  std::lock_guard<std::mutex> lk(mu_);
  ProgressSnapshot s = s_;
  if (s.running) {
    const auto now = Clock::now();
    s.drill_elapsed_seconds = std::chrono::duration<double>(now - drill_t0_).count();
    s.stage_elapsed_seconds = std::chrono::duration<double>(now - stage_t0_).count();
  }
  return s;
}

void DrillProgress::RunProbe() {
  std::shared_ptr<Probe> probe;
  std::string what;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!s_.running || !probe_) return;
    probe = probe_;
    what = probe_what_;
  }
  Probed p;
  try {
    p = (*probe)();
  } catch (...) {
    return;  // the sandbox may be going away; the last values stand
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (probe_ != probe) return;  // the stage moved on meanwhile: what was probed is stale
  if (p.bytes_done) {
    s_.bytes_done = p.bytes_done;
    s_.bytes_what = what;
  }
  if (!p.note.empty()) s_.note = p.note;
}

void DrillProgress::OnStage(std::function<void(const ProgressSnapshot&)> f) {
  std::lock_guard<std::mutex> lk(mu_);
  on_stage_ = std::move(f);
}

std::chrono::milliseconds ProgressInterval() {
  if (const char* v = std::getenv("RESTOREWATCH_PROGRESS_INTERVAL")) {
    if (auto d = ParseDuration(v); d && d->count() > 0)
      return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }
  return std::chrono::seconds(10);
}

ProgressTicker::ProgressTicker(DrillProgress& progress, std::chrono::milliseconds interval,
                               std::function<void(const ProgressSnapshot&)> out)
    : thread_([this, &progress, interval, out = std::move(out)] {
        while (stop_.SleepFor(interval)) {
          if (!progress.Get().running) continue;
          progress.RunProbe();
          ProgressSnapshot s = progress.Get();
          if (s.running && out) out(s);
        }
      }) {}

ProgressTicker::~ProgressTicker() {
  stop_.Cancel();
  thread_.join();
}

void LogProgress(const ProgressSnapshot& s) {
  LogInfo("drill progress", {{"target", s.target},
                             {"run_id", s.run_id},
                             {"stage", s.stage},
                             {"step", s.step},
                             {"stage_elapsed_seconds", s.stage_elapsed_seconds},
                             {"drill_elapsed_seconds", s.drill_elapsed_seconds},
                             {"done", DoneText(s)},
                             {"progress", ProgressLine(s)}});
}

}  // namespace rw
