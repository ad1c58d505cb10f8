#pragma once
// The scratch sandbox: an existing server from drill.scratch. Databases are created as
// restorewatch_<target>_<runid> with COMMENT 'restorewatch:<target>:<runid>'; Cleanup() drops only
// databases this object created whose comment still carries that mark. Start() refuses the source
// itself (same system identifier, whatever the database; an unknown source identifier is refused
// too) and servers older than the dump. Client programs get the password through ClientEnv()
// (PGPASSWORD), never through ConnInfo(); roles a plain dump needs are created marked and dropped
// the same way.
#include <memory>

#include "agent/sandbox.h"

namespace rw {

std::unique_ptr<Sandbox> MakeScratchSandbox(const Environment& env, const TargetConfig& target,
                                            const std::string& run_id,
                                            const std::string& source_system_id);

// The mark written on every database the agent creates on a scratch server.
std::string ScratchMark(const std::string& target, const std::string& run_id);
// The database the scratch sandbox creates: restorewatch_<target>_<runid>, lowercased, characters
// outside [a-z0-9_] replaced by '_', at most 63 bytes (the target part is shortened first).
std::string ScratchDatabaseName(const std::string& target, const std::string& run_id);

}  // namespace rw
