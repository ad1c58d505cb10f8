#pragma once
// Helpers shared by the live collectors in checks/: opening a monitoring session and building
// metric families from nullable query results. Pure functions except OpenMonitorSession;
// thread-safe.
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "agent/config.h"
#include "agent/metrics_model.h"

namespace rw {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Help text of restorewatch_pg_in_recovery, shared by the source and standby collectors (the
// board merges their families, so both must describe it alike).
inline constexpr const char* kInRecoveryHelp =
    "1 if the server is in recovery (a standby), 0 if it is a primary";

// Oldest server the collectors' queries support (pg_wal_lsn_diff and pg_stat_replication's
// lag columns appeared in PostgreSQL 10).
inline constexpr int kMinServerMajor = 10;

// A short-lived read-only session for one collector run: Connect(spec, MonitorLimits(target)),
// so connect_timeout, statement_timeout and lock_timeout bound everything the run does. Throws
// Error(kConnect) when the server cannot be reached, Error(kUnsupported) when it is older than
// kMinServerMajor.
std::unique_ptr<pqxx::connection> OpenMonitorSession(const ConnSpec& spec,
                                                     const TargetConfig& target);

// An empty family of the given name, help and type.
MetricFamilyData Family(std::string name, std::string help, MetricType type = MetricType::kGauge);
// Adds one sample.
void AddSample(MetricFamilyData& family, double value, Labels labels = {});
// Adds one sample when value is set ("never happened is absence").
void AddSample(MetricFamilyData& family, const std::optional<double>& value, Labels labels = {});
// Appends `family` to `out` unless it has no samples (a family without series is left out).
void AppendFamily(std::vector<MetricFamilyData>& out, MetricFamilyData family);

// The field's value as a number, nullopt when SQL NULL.
std::optional<double> OptDouble(const pqxx::field& f);
std::optional<bool> OptBool(const pqxx::field& f);
// The field's text, `fallback` when SQL NULL.
std::string TextOr(const pqxx::field& f, const std::string& fallback = {});

// The family named `name` in `families`, or nullptr (used by tests and by callers that merge).
const MetricFamilyData* FindFamily(const std::vector<MetricFamilyData>& families,
                                   const std::string& name);
// The value of the sample of family `name` whose labels include all of `match`; nullopt when
// absent.
std::optional<double> FindValue(const std::vector<MetricFamilyData>& families,
                                const std::string& name, const Labels& match = {});

}  // namespace rw
