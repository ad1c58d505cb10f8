#include "agent/runtime/drill_pick.h"

#include "agent/ledger.h"
#include "agent/log.h"

namespace rw {

bool PhysicalBackups(const TargetConfig& target) {
  const BackupConfig& b = target.backup;
  if (b.type == "pg_dump") return false;
  if (b.type == "command") return b.command.format == CommandFormat::kBasebackup;
  return true;
}

DrillChoice PickDrillBackup(const TargetConfig& target, BackupSource& source,
                            const std::string& state_dir, CancelToken& cancel, std::uint64_t seed) {
  DrillChoice out;
  if (target.drill.pick == DrillPick::kLatest) {
    out.backup = source.Latest(cancel);
    out.pick = "latest";
    return out;
  }
  const BackupCatalogue catalogue = source.Catalogue(cancel);
  auto picked = PickBackup(catalogue.backups, VerificationLedger(state_dir).Load(), seed);
  if (!picked) {
    // Nothing complete to choose from: the source says why, as for "latest".
    out.backup = source.Latest(cancel);
    out.pick = "random: the catalogue lists no complete backup, took the latest";
    return out;
  }
  out.backup = source.Describe(picked->backup, cancel);
  out.pick = "random: " + picked->reason;
  if (PhysicalBackups(target) && !picked->newest && !target.drill.recovery_target_given) {
    // Replaying every segment since an old backup to the archive's end would prove the newest
    // backup's WAL again at a high cost; its own consistent end proves this backup.
    out.recovery_target = "immediate";
    out.pick += "; an older backup, recovered to its own consistent end (recovery_target unset)";
  }
  LogInfo("drill picked a backup", {{"target", target.name},
                                    {"backup", out.backup.id},
                                    {"kind", out.backup.kind},
                                    {"pick", out.pick}});
  return out;
}

}  // namespace rw
