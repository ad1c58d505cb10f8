#pragma once
// A cancellation flag shared between the owner of some work (daemon, drill timeout, signal
// handler thread) and the work itself. Thread-safe. Work polls cancelled() or sleeps with
// SleepFor(), which returns early (false) when cancelled.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace rw {

class CancelToken {
 public:
  void Cancel() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }
  bool cancelled() const { return cancelled_.load(); }
  // Sleeps up to d; returns true if the full time passed, false if cancelled meanwhile.
  bool SleepFor(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lk(mu_);
    return !cv_.wait_for(lk, d, [this] { return cancelled_.load(); });
  }
  // Throws Error(kCancelled) if cancelled.
  void ThrowIfCancelled() const;

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace rw
