#pragma once
// Which backup a drill restores (drill.pick), the discover stage's one call. "latest": the
// source's newest complete backup. "random": one of its catalogue's complete backups, never
// verified first (agent/ledger.h PickBackup), described as the source restores it. For a physical
// source an older backup picked this way recovers to its own consistent end ("immediate") unless
// [target.drill] names a recovery_target (the loader refuses those no older backup can prove).
// Runs on the drill thread; reads the ledger, writes nothing.
#include <cstdint>
#include <optional>
#include <string>

#include "agent/backup_source.h"
#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/model.h"

namespace rw {

struct DrillChoice {
  BackupInfo backup;
  std::string pick;  // DrillReport::pick: "latest", or "random: <why>"
  // Set when this backup must recover to another target than the configured one.
  std::optional<std::string> recovery_target;
};

// Throws what the source throws (Error kBadInput "no backup ..." when there is none).
DrillChoice PickDrillBackup(const TargetConfig& target, BackupSource& source,
                            const std::string& state_dir, CancelToken& cancel, std::uint64_t seed);

// True when the target's backups are restored physically (recovery_target applies).
bool PhysicalBackups(const TargetConfig& target);

}  // namespace rw
