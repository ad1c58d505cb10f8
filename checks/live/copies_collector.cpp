#include "checks/live/copies_collector.h"

#include "agent/errors.h"
#include "agent/log.h"
#include "checks/live/collector_util.h"

namespace rw {
namespace {

constexpr const char* k321Help =
    "1 if at least 3 locations hold the newest backup, on at least 2 media, at least 1 of them "
    "offsite";

}  // namespace

std::vector<MetricFamilyData> CopiesFamilies(const std::vector<CopyState>& states) {
  auto present = Family("restorewatch_backup_copy_present",
                        "1 if this location holds the primary's newest complete backup, matching "
                        "it (location \"primary\" is backup.path)");
  auto newest = Family("restorewatch_backup_copy_last_completion_timestamp_seconds",
                       "When the newest complete backup found in this location completed");
  for (const auto& s : states) {
    AddSample(present, s.present ? 1 : 0,
              {{"location", s.location}, {"offsite", s.offsite ? "true" : "false"}});
    AddSample(newest, s.newest_completed_at, {{"location", s.location}});
  }
  std::vector<MetricFamilyData> out;
  AppendFamily(out, std::move(present));
  AppendFamily(out, std::move(newest));
  out.push_back(Gauge("restorewatch_backup_321_ok", k321Help, Evaluate321(states).ok() ? 1 : 0));
  return out;
}

std::optional<double> CopiesCollector::NewestIn(CollectContext& ctx, const CopyConfig& copy) {
  if (ctx.env == nullptr) return std::nullopt;
  try {
    CopySource& cs = sources_[copy.name];
    if (!cs.source) {
      cs.target = std::make_unique<TargetConfig>(CopyTarget(ctx.target, copy));
      cs.source = MakeBackupSource(*ctx.env, *cs.target);
    }
    std::optional<double> newest;
    for (const auto& [kind, k] : cs.source->Catalogue(ctx.cancel).by_kind)
      if (k.newest && (!newest || k.newest->completed_at > *newest))
        newest = k.newest->completed_at;
    return newest;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCancelled) throw;
    ctx.notes.push_back("copy \"" + copy.name + "\": catalogue: " + e.what());
    return std::nullopt;
  }
}

std::vector<MetricFamilyData> CopiesCollector::Collect(CollectContext& ctx) {
  if (!ctx.backup_source || ctx.target.backup.copies.empty()) return {};
  ctx.cancel.ThrowIfCancelled();
  std::optional<BackupInfo> newest;
  for (const auto& [kind, k] : ctx.backup_source->Catalogue(ctx.cancel).by_kind)
    if (k.newest && (!newest || k.newest->completed_at > newest->completed_at)) newest = k.newest;
  if (!newest) {
    // Nothing to copy yet: the policy cannot hold (RestorewatchNoBackups says why).
    ctx.notes.push_back("no complete backup in the primary location, so no copy can hold it");
    return {Gauge("restorewatch_backup_321_ok", k321Help, 0)};
  }
  std::vector<CopyState> states = checker_.Check(ctx.target, *newest, ctx.cancel);
  for (std::size_t i = 1; i < states.size(); ++i)
    states[i].newest_completed_at = NewestIn(ctx, ctx.target.backup.copies[i - 1]);
  for (const auto& s : states) {
    if (!s.present) ctx.notes.push_back("copy \"" + s.location + "\" (" + s.path + ") " + s.reason);
    if (s.present && !s.note.empty())
      ctx.notes.push_back("copy \"" + s.location + "\" (" + s.path + ") " + s.note);
    std::string& last = last_reason_[s.location];
    if (last != s.reason) {
      if (s.present)
        LogInfo("backup copy holds the newest backup again",
                {{"target", ctx.target.name}, {"location", s.location}, {"backup", newest->id}});
      else
        LogWarn("backup copy does not hold the newest backup",
                {{"target", ctx.target.name}, {"location", s.location}, {"reason", s.reason}});
      last = s.reason;
    }
  }
  const Policy321 policy = Evaluate321(states);
  if (!policy.ok())
    ctx.notes.push_back("3-2-1 not met for " + newest->id + ": " + policy.ToString());
  return CopiesFamilies(states);
}

}  // namespace rw
