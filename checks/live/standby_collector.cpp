#include "checks/live/standby_collector.h"

#include <algorithm>
#include <future>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "checks/live/collector_util.h"

namespace rw {
namespace {

StandbyReading ReadStandby(const ConnSpec& spec, const TargetConfig& target,
                           const CancelToken& cancel) {
  try {
    auto conn = OpenMonitorSession(spec, target, cancel);
    // pg_get_wal_replay_pause_state() (14+) also tells a requested but not yet effective pause.
    std::string paused = ServerMajor(*conn) >= 14
                             ? "pg_get_wal_replay_pause_state() <> 'not paused'"
                             : "pg_is_wal_replay_paused()";
    pqxx::nontransaction tx(*conn);
    pqxx::row f = tx.exec1(
        "select pg_is_in_recovery(), (select status from pg_stat_wal_receiver limit 1),"
        " (select pid from pg_stat_wal_receiver limit 1),"
        " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0'),"
        " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'),"
        " extract(epoch from now() - pg_last_xact_replay_timestamp()),"
        " case when pg_is_in_recovery() then " +
        paused + " end");
    StandbyReading r;
    r.in_recovery = f[0].as<bool>();
    if (!f[1].is_null()) r.receiver_status = f[1].as<std::string>();
    r.receiver_hidden = f[1].is_null() && !f[2].is_null();
    r.received_lsn_bytes = OptDouble(f[3]);
    r.replayed_lsn_bytes = OptDouble(f[4]);
    r.since_last_replayed_commit_seconds = OptDouble(f[5]);
    r.replay_paused = OptBool(f[6]);
    return r;
  } catch (...) {
    RethrowAsError("standby");
  }
}

}  // namespace

std::optional<double> ReplayDelaySeconds(const StandbyReading& r) {
  if (!r.in_recovery) return std::nullopt;
  if (r.received_lsn_bytes && r.replayed_lsn_bytes &&
      *r.replayed_lsn_bytes >= *r.received_lsn_bytes)
    return 0.0;
  if (!r.since_last_replayed_commit_seconds) return std::nullopt;
  return std::max(0.0, *r.since_last_replayed_commit_seconds);
}

std::vector<MetricFamilyData> StandbyFamilies(
    const std::vector<std::pair<std::string, std::optional<StandbyReading>>>& readings) {
  auto up = Family("restorewatch_standby_up",
                   "1 if the last monitoring connection to the standby worked, else 0");
  auto in_recovery = Family("restorewatch_pg_in_recovery", kInRecoveryHelp);
  auto receiver = Family("restorewatch_standby_wal_receiver_up",
                         "1 if the standby's WAL receiver is streaming, else 0");
  auto received =
      Family("restorewatch_standby_received_lsn_bytes",
             "Last WAL position received and flushed by the standby, as bytes since 0/0");
  auto replayed = Family("restorewatch_standby_replayed_lsn_bytes",
                         "Last WAL position replayed by the standby, as bytes since 0/0");
  auto delay = Family("restorewatch_standby_replay_delay_seconds",
                      "Seconds since the last replayed commit's time; 0 when everything received "
                      "is replayed");
  auto paused = Family("restorewatch_standby_replay_paused",
                       "1 if WAL replay on the standby is paused or a pause is requested, else 0");
  for (const auto& [server, r] : readings) {
    Labels labels{{"server", server}};
    AddSample(up, r ? 1 : 0, labels);
    if (!r) continue;
    AddSample(in_recovery, r->in_recovery ? 1 : 0, labels);
    AddSample(receiver, r->receiver_status == std::optional<std::string>("streaming") ? 1 : 0,
              labels);
    AddSample(received, r->received_lsn_bytes, labels);
    AddSample(replayed, r->replayed_lsn_bytes, labels);
    AddSample(delay, ReplayDelaySeconds(*r), labels);
    if (r->replay_paused) AddSample(paused, *r->replay_paused ? 1 : 0, labels);
  }
  std::vector<MetricFamilyData> out;
  for (auto* f : {&up, &in_recovery, &receiver, &received, &replayed, &delay, &paused})
    AppendFamily(out, std::move(*f));
  return out;
}

std::string StandbyLabel(const TargetConfig& target, std::size_t i) {
  if (i < target.standby_names.size() && !target.standby_names[i].empty())
    return target.standby_names[i];
  return "standby" + std::to_string(i);
}

std::vector<MetricFamilyData> StandbyCollector::Collect(CollectContext& ctx) {
  const TargetConfig& t = ctx.target;
  was_up_.resize(t.standbys.size(), true);
  std::vector<std::pair<std::string, std::optional<StandbyReading>>> readings;
  // Standbys are read concurrently, each on its own session, so N unreachable standbys cost one
  // connect_timeout, not N.
  std::vector<std::future<StandbyReading>> pending;
  const CancelToken& cancel = ctx.cancel;
  for (std::size_t i = 0; i < t.standbys.size(); ++i)
    pending.push_back(std::async(
        std::launch::async, [&t, &cancel, i] { return ReadStandby(t.standbys[i], t, cancel); }));
  for (std::size_t i = 0; i < t.standbys.size(); ++i) {
    std::string server = StandbyLabel(t, i);
    std::optional<StandbyReading> r;
    try {
      r = pending[i].get();
    } catch (const Error& e) {
      if (was_up_[i] && !ctx.cancel.cancelled())
        LogWarn("standby is down", {{"target", t.name}, {"server", server}, {"reason", e.what()}});
    }
    if (r && r->receiver_hidden)
      throw Error(ErrorKind::kQuery,
                  "standby " + server + ": pg_stat_wal_receiver hides its status from this role",
                  "GRANT pg_monitor TO the monitoring role");
    if (r && !was_up_[i]) LogInfo("standby is up again", {{"target", t.name}, {"server", server}});
    was_up_[i] = r.has_value();
    readings.emplace_back(server, std::move(r));
  }
  ctx.cancel.ThrowIfCancelled();
  return StandbyFamilies(readings);
}

}  // namespace rw
