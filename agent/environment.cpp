#include "agent/environment.h"

namespace rw {

Environment Environment::FromConfig(const AgentConfig& agent) {
  Environment e;
  e.pg = PgTools::Detect(agent.pg_bin_dir);
  e.run_as = ResolveRunAs(agent.run_as);
  e.work_dir = agent.work_dir;
  e.state_dir = agent.state_dir;
  MakeDirs(e.work_dir, 0755);
  MakeDirs(e.state_dir, 0750);
  return e;
}

}  // namespace rw
