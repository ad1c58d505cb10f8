#pragma once
// Crash cleanup: dirs under work_dir that carry the agent's marker (.restorewatch, written by
// LocalCluster) but whose owning process is gone are leftovers of a crash or a kill -9. Only such
// marked dirs are ever removed. Safe to call at start-up while other restorewatch processes (a
// `verify` beside the daemon) run: their dirs name a live pid and are kept.
#include <string>
#include <vector>

namespace rw {

// Returns the dirs removed; problems are logged.
std::vector<std::string> RemoveOrphanedWorkDirs(const std::string& work_dir);

}  // namespace rw
