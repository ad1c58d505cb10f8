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

#include "agent/cancel.h"
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

// One collector run's session, registered against the run's CancelToken while it lives, so the
// thread that stops the collectors can cancel its in-flight statement (CancelMonitorQueries).
// Used like a connection: `*session`, `session->`. Owned by one collector thread; neither
// copyable nor movable (OpenMonitorSession returns it by guaranteed elision).
class MonitorSession {
 public:
  // Throws Error(kCancelled) when `cancel` has already fired.
  MonitorSession(std::unique_ptr<pqxx::connection> conn, const CancelToken* cancel);
  ~MonitorSession();
  MonitorSession(const MonitorSession&) = delete;
  MonitorSession& operator=(const MonitorSession&) = delete;
  pqxx::connection& operator*() const { return *conn_; }
  pqxx::connection* operator->() const { return conn_.get(); }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  const CancelToken* cancel_;
};

// A short-lived read-only session for one collector run: Connect(spec, MonitorLimits(target)),
// so connect_timeout, statement_timeout and lock_timeout bound everything the run does, and a
// stop (CancelMonitorQueries on `cancel`) cancels its running statement at once. Throws
// Error(kConnect) when the server cannot be reached, Error(kUnsupported) when it is older than
// kMinServerMajor, Error(kCancelled) when `cancel` fired meanwhile.
MonitorSession OpenMonitorSession(const ConnSpec& spec, const TargetConfig& target,
                                  const CancelToken& cancel);

// From the thread stopping a collector, after cancel.Cancel(): sends a cancel request (PQcancel,
// through pqxx::connection::cancel_query) for every live MonitorSession opened with `cancel`, so
// the collector's statement fails now rather than after statement_timeout. Never throws.
void CancelMonitorQueries(const CancelToken& cancel);

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
