#pragma once
// The scratch sandbox: an existing server from drill.scratch_dsn. Databases are created as
// restorewatch_<target>_<runid> with COMMENT 'restorewatch:<target>:<runid>'; Cleanup() drops only
// databases whose comment carries that mark. Start() refuses the source itself (same system
// identifier and database) and servers older than the dump.
#include <memory>

#include "agent/sandbox.h"

namespace rw {

std::unique_ptr<Sandbox> MakeScratchSandbox(const Environment& env, const TargetConfig& target,
                                            const std::string& run_id,
                                            const std::string& source_system_id);

// The mark written on every database the agent creates on a scratch server.
std::string ScratchMark(const std::string& target, const std::string& run_id);

}  // namespace rw
