#include "checks/live/source_collector.h"

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "checks/live/collector_util.h"

namespace rw {

std::vector<MetricFamilyData> SourceCollector::Collect(CollectContext& ctx) {
  ctx.cancel.ThrowIfCancelled();
  std::optional<bool> in_recovery;
  try {
    try {
      auto conn = OpenMonitorSession(ctx.target.source, ctx.target, ctx.cancel);
      pqxx::nontransaction tx(*conn);
      in_recovery = tx.exec1("select pg_is_in_recovery()")[0].as<bool>();
    } catch (...) {
      RethrowAsError("source");
    }
  } catch (const Error& e) {
    // Only transitions are logged: a source that stays down would otherwise log every tick.
    if (was_up_ && !ctx.cancel.cancelled())
      LogWarn("source is down", {{"target", ctx.target.name}, {"reason", e.what()}});
  }
  if (in_recovery && !was_up_) LogInfo("source is up again", {{"target", ctx.target.name}});
  was_up_ = in_recovery.has_value();

  std::vector<MetricFamilyData> out;
  out.push_back(Gauge("restorewatch_source_up",
                      "1 if the last monitoring connection to the source worked, else 0",
                      in_recovery ? 1 : 0));
  if (in_recovery)
    out.push_back(Gauge("restorewatch_pg_in_recovery", kInRecoveryHelp, *in_recovery ? 1 : 0,
                        {{"server", "source"}}));
  return out;
}

}  // namespace rw
