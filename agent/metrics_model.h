#pragma once
// Metric values as plain data, so checks/live/collectors (producers) and exporters (the /metrics
// serializer) share only agent/ types. MetricsBoard keeps the latest families per (target,
// producer); a scrape copies the board under a short lock and never waits for work. Series that
// a producer stops reporting (a dropped slot, a gone standby) disappear with its next Set().
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rw {

enum class MetricType { kGauge, kCounter };

struct MetricSample {
  std::vector<std::pair<std::string, std::string>> labels;  // without `target` (added by the board)
  double value = 0;
};

struct MetricFamilyData {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<MetricSample> samples;
};

// Convenience for producers: one gauge with a single sample.
MetricFamilyData Gauge(std::string name, std::string help, double value,
                       std::vector<std::pair<std::string, std::string>> labels = {});

class MetricsBoard {
 public:
  // Replaces what `producer` last reported for `target` (target "" = agent-wide, no target label).
  void Set(const std::string& target, const std::string& producer,
           std::vector<MetricFamilyData> families);
  // Drops everything of a target (target removed on reload).
  void EraseTarget(const std::string& target);
  // Merged view: families with the same name combined, `target` label added first. Sorted by name.
  std::vector<MetricFamilyData> Snapshot() const;
  // Called (outside the board's lock, on the writer's thread) after every Set/EraseTarget; the
  // agent re-renders /metrics then. Empty: none. Must be quick.
  void OnChange(std::function<void()> listener);
  // Bumped by every Set/EraseTarget.
  std::uint64_t generation() const { return generation_.load(); }

 private:
  void Changed();
  std::atomic<std::uint64_t> generation_{0};
  std::mutex listener_mu_;
  std::function<void()> listener_;  // guarded by listener_mu_
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::vector<MetricFamilyData>> entries_;
};

}  // namespace rw
