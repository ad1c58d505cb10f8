#pragma once
// What the agent resolved about its host at start-up: PostgreSQL tools, the unprivileged identity
// for children, and the dirs. Built once from AgentConfig; immutable; shared read-only by threads.
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"

namespace rw {

struct Environment {
  PgTools pg;
  std::optional<RunAs> run_as;  // set when the agent runs as root
  std::string work_dir;
  std::string state_dir;
  // Detects tools and resolves run_as; creates work_dir and state_dir. Throws Error(kConfig/kIo).
  static Environment FromConfig(const AgentConfig& agent);
};

}  // namespace rw
