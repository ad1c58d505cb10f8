#pragma once
// Renders /metrics: the prometheus-cpp registry (agent-wide series such as build_info) plus the
// MetricsBoard snapshot (collectors, drills) and the process_* families, in the Prometheus text
// format 0.0.4. Render() only
// copies what is already collected; it never queries a database. Thread-safe.
#include <memory>
#include <string>
#include <vector>

#include "agent/metrics_model.h"

namespace prometheus {
class Registry;
}

namespace rw {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsExporter {
 public:
  explicit MetricsExporter(const MetricsBoard& board);
  ~MetricsExporter();
  std::string Render() const;
  // For series that live for the whole process (registered once).
  prometheus::Registry& registry() { return *registry_; }

 private:
  const MetricsBoard& board_;
  std::shared_ptr<prometheus::Registry> registry_;
};

// Text format of plain families (used by Render and by tests).
std::string RenderFamilies(const std::vector<MetricFamilyData>& families);

}  // namespace rw
