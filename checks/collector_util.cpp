#include "checks/collector_util.h"

#include <algorithm>

#include "agent/errors.h"
#include "agent/pg_conn.h"

namespace rw {

std::unique_ptr<pqxx::connection> OpenMonitorSession(const ConnSpec& spec,
                                                     const TargetConfig& target) {
  auto conn = Connect(spec, MonitorLimits(target));
  int major = ServerMajor(*conn);
  if (major < kMinServerMajor)
    throw Error(ErrorKind::kUnsupported,
                "server version " + std::to_string(major) + " is not supported by the collectors",
                "the collectors need PostgreSQL " + std::to_string(kMinServerMajor) + " or later");
  return conn;
}

MetricFamilyData Family(std::string name, std::string help, MetricType type) {
  MetricFamilyData f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddSample(MetricFamilyData& family, double value, Labels labels) {
  family.samples.push_back(MetricSample{std::move(labels), value});
}

void AddSample(MetricFamilyData& family, const std::optional<double>& value, Labels labels) {
  if (value) AddSample(family, *value, std::move(labels));
}

void AppendFamily(std::vector<MetricFamilyData>& out, MetricFamilyData family) {
  if (!family.samples.empty()) out.push_back(std::move(family));
}

std::optional<double> OptDouble(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<double>();
}

std::optional<bool> OptBool(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<bool>();
}

std::string TextOr(const pqxx::field& f, const std::string& fallback) {
  return f.is_null() ? fallback : f.as<std::string>();
}

const MetricFamilyData* FindFamily(const std::vector<MetricFamilyData>& families,
                                   const std::string& name) {
  for (const auto& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

std::optional<double> FindValue(const std::vector<MetricFamilyData>& families,
                                const std::string& name, const Labels& match) {
  const MetricFamilyData* f = FindFamily(families, name);
  if (!f) return std::nullopt;
  for (const auto& s : f->samples) {
    bool all = std::all_of(match.begin(), match.end(), [&](const auto& want) {
      return std::find(s.labels.begin(), s.labels.end(), want) != s.labels.end();
    });
    if (all) return s.value;
  }
  return std::nullopt;
}

}  // namespace rw
