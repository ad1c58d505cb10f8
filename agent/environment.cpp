#include "agent/environment.h"

#include "agent/errors.h"
#include "agent/path_guard.h"

namespace rw {

Environment Environment::FromConfig(const AgentConfig& agent) {
  Environment e;
  // LoadConfig already refuses these; a config built in code (demo, tests) is checked here too.
  if (auto why = UnsafeWorkDir(agent.work_dir, agent.state_dir))
    throw Error(ErrorKind::kConfig, "agent.work_dir " + agent.work_dir + " " + *why);
  e.pg = PgTools::Detect(agent.pg_bin_dir);
  e.run_as = ResolveRunAs(agent.run_as);
  e.work_dir = agent.work_dir;
  e.state_dir = agent.state_dir;
  MakeDirs(e.work_dir, 0755);
  MakeDirs(e.state_dir, 0750);
  return e;
}

}  // namespace rw
