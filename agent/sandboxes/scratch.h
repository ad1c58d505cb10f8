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

// The mark written on every database the agent creates on a scratch server:
// "restorewatch:<target>:<run_id> host=H boot=B pid=P start=S", the owner's identity (orphans.h)
// so a sweep can tell a crashed owner's database from a live one's.
std::string ScratchMark(const std::string& target, const std::string& run_id);

// Crash cleanup on a scratch server: drops the databases (then roles) whose mark names an owner
// that is provably gone (same host, and another boot, no such pid, or a reused pid). Never an
// unmarked database, one with an older mark without owner identity, one whose owner lives, or one
// marked on another host. Also run by every scratch sandbox's Start(), before its drill. Returns
// the databases dropped; throws Error(kConnect/kQuery) when the server cannot be swept.
std::vector<std::string> RemoveOrphanedScratchDatabases(const TargetConfig& target);
// The same for every scratch server of the config (once per conninfo), at daemon start-up. Never
// throws: problems are logged. Bounded by each target's connect_timeout.
void SweepScratchServers(const Config& config);
// The database the scratch sandbox creates: restorewatch_<target>_<runid>, lowercased, characters
// outside [a-z0-9_] replaced by '_', at most 63 bytes (the target part is shortened first).
std::string ScratchDatabaseName(const std::string& target, const std::string& run_id);

}  // namespace rw
