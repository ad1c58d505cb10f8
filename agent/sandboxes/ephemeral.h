#pragma once
// The ephemeral sandbox (the default): a LocalCluster with throwaway settings in work_dir, unix
// socket only, random port, run as the unprivileged user, binaries at least the dump's major
// version. Cleanup() stops the server (immediate shutdown: the copy is thrown away) and removes
// its dir.
#include <memory>

#include "agent/sandbox.h"

namespace rw {

std::unique_ptr<Sandbox> MakeEphemeralSandbox(const Environment& env, const TargetConfig& target,
                                              const std::string& run_id,
                                              const std::string& source_system_id);

}  // namespace rw
