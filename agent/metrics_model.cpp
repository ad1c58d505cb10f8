#include "agent/metrics_model.h"

#include <algorithm>

namespace rw {

MetricFamilyData Gauge(std::string name, std::string help, double value,
                       std::vector<std::pair<std::string, std::string>> labels) {
  MetricFamilyData f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = MetricType::kGauge;
  f.samples.push_back(MetricSample{std::move(labels), value});
  return f;
}

void MetricsBoard::Set(const std::string& target, const std::string& producer,
                       std::vector<MetricFamilyData> families) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    entries_[{target, producer}] = std::move(families);
  }
  Changed();
}

void MetricsBoard::OnChange(std::function<void()> listener) {
  std::lock_guard<std::mutex> lk(listener_mu_);
  listener_ = std::move(listener);
}

void MetricsBoard::Changed() {
  ++generation_;
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lk(listener_mu_);
    fn = listener_;
  }
  if (fn) fn();
}

void MetricsBoard::EraseTarget(const std::string& target) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first.first == target)
        it = entries_.erase(it);
      else
        ++it;
    }
  }
  Changed();
}

std::vector<MetricFamilyData> MetricsBoard::Snapshot() const {
  std::map<std::string, MetricFamilyData> merged;
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [key, fams] : entries_) {
    for (const auto& f : fams) {
      auto& m = merged[f.name];
      if (m.name.empty()) {
        m.name = f.name;
        m.help = f.help;
        m.type = f.type;
      }
      for (const auto& s : f.samples) {
        MetricSample out;
        if (!key.first.empty()) out.labels.push_back({"target", key.first});
        out.labels.insert(out.labels.end(), s.labels.begin(), s.labels.end());
        out.value = s.value;
        m.samples.push_back(std::move(out));
      }
    }
  }
  std::vector<MetricFamilyData> out;
  out.reserve(merged.size());
  for (auto& [name, f] : merged) out.push_back(std::move(f));
  return out;
}

}  // namespace rw
