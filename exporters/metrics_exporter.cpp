#include "exporters/metrics_exporter.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "exporters/process_metrics.h"

namespace rw {
namespace {

prometheus::MetricFamily ToPrometheus(const MetricFamilyData& f) {
  prometheus::MetricFamily out;
  out.name = f.name;
  out.help = f.help;
  out.type = f.type == MetricType::kCounter ? prometheus::MetricType::Counter
                                            : prometheus::MetricType::Gauge;
  for (const auto& s : f.samples) {
    prometheus::ClientMetric m;
    for (const auto& [k, v] : s.labels) m.label.push_back(prometheus::ClientMetric::Label{k, v});
    if (f.type == MetricType::kCounter)
      m.counter.value = s.value;
    else
      m.gauge.value = s.value;
    out.metric.push_back(std::move(m));
  }
  return out;
}

}  // namespace

MetricsExporter::MetricsExporter(const MetricsBoard& board)
    : board_(board), registry_(std::make_shared<prometheus::Registry>()) {}

MetricsExporter::~MetricsExporter() = default;

std::string MetricsExporter::Render() const {
  std::vector<prometheus::MetricFamily> fams = registry_->Collect();
  for (const auto& f : board_.Snapshot())
    if (!f.samples.empty()) fams.push_back(ToPrometheus(f));
  for (const auto& f : ProcessFamilies()) fams.push_back(ToPrometheus(f));
  return prometheus::TextSerializer().Serialize(fams);
}

std::string RenderFamilies(const std::vector<MetricFamilyData>& families) {
  std::vector<prometheus::MetricFamily> fams;
  for (const auto& f : families)
    if (!f.samples.empty()) fams.push_back(ToPrometheus(f));
  return prometheus::TextSerializer().Serialize(fams);
}

}  // namespace rw
