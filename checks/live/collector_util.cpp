#include "checks/live/collector_util.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"

namespace rw {

namespace {

// Live sessions by the token of the run that opened them. The lock is held while a cancel request
// is sent, so a session cannot be closed under it (~MonitorSession takes the lock first).
std::mutex g_sessions_mu;
std::multimap<const CancelToken*, pqxx::connection*>& Sessions() {
  static auto* sessions = new std::multimap<const CancelToken*, pqxx::connection*>();
  return *sessions;
}

}  // namespace

MonitorSession::MonitorSession(std::unique_ptr<pqxx::connection> conn, const CancelToken* cancel)
    : conn_(std::move(conn)), cancel_(cancel) {
  {
    std::lock_guard<std::mutex> lk(g_sessions_mu);
    Sessions().emplace(cancel_, conn_.get());
  }
  // A stop that came while connecting found nothing to cancel: give up now instead.
  if (cancel_->cancelled()) {
    {
      std::lock_guard<std::mutex> lk(g_sessions_mu);
      auto range = Sessions().equal_range(cancel_);
      for (auto it = range.first; it != range.second; ++it)
        if (it->second == conn_.get()) {
          Sessions().erase(it);
          break;
        }
    }
    throw Error(ErrorKind::kCancelled, "cancelled");
  }
}

MonitorSession::~MonitorSession() {
  std::lock_guard<std::mutex> lk(g_sessions_mu);
  auto range = Sessions().equal_range(cancel_);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second == conn_.get()) {
      Sessions().erase(it);
      break;
    }
}

MonitorSession OpenMonitorSession(const ConnSpec& spec, const TargetConfig& target,
                                  const CancelToken& cancel) {
  cancel.ThrowIfCancelled();
  auto conn = Connect(spec, MonitorLimits(target));
  int major = ServerMajor(*conn);
  if (major < kMinServerMajor)
    throw Error(ErrorKind::kUnsupported,
                "server version " + std::to_string(major) + " is not supported by the collectors",
                "the collectors need PostgreSQL " + std::to_string(kMinServerMajor) + " or later");
  return MonitorSession(std::move(conn), &cancel);
}

void CancelMonitorQueries(const CancelToken& cancel) {
  std::lock_guard<std::mutex> lk(g_sessions_mu);
  auto range = Sessions().equal_range(&cancel);
  for (auto it = range.first; it != range.second; ++it) {
    try {
      it->second->cancel_query();
    } catch (const std::exception&) {
      // Nothing running, or the server is gone: the statement ends on its own either way.
    }
  }
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
