#pragma once
// The restore runbook of a target (`restorewatch runbook`, GET /api/v1/targets/NAME/runbook):
// Markdown describing what the LAST PASSING drill really ran and proved, read from the target's
// state dir (last_success.toml through LoadLastSuccessReport, drills.jsonl for the recent record):
// the steps in order with their exact command lines (secrets masked) and the recovery settings of
// a physical restore, how long each took, the RPO measured (the copy's point against the source's
// time when the drill started), the prerequisites (PostgreSQL major, disk used, roles), the checks
// that proved it with their coverage, and when it was last proven. Never a template: with no
// passing drill there is no runbook.
#include <optional>
#include <string>
#include <vector>

#include "agent/drill_log.h"
#include "agent/model.h"

namespace rw {

struct RunbookInput {
  std::string target;
  std::string backup_type;            // from the config: pg_dump, basebackup
  std::string source;                 // the source, redacted conninfo
  DrillReport proven;                 // the last drill that passed
  std::vector<DrillLogEntry> recent;  // the newest drills (oldest first), may be empty
  double now = 0;                     // Unix seconds, for "N ago"
  std::string version;                // restorewatch's version
};

// The Markdown text. Everything is passed through Redact() (agent/secrets.h) as a safety net.
std::string RenderRunbook(const RunbookInput& in);

// A command line for a POSIX shell: words quoted only where needed ('it'\''s').
std::string ShellCommand(const std::vector<std::string>& argv);

struct RunbookResult {
  bool found = false;  // false: no passing drill is recorded (text says so, one line)
  std::string text;
};
// Reads `dir` (state_dir/<target>) and renders the runbook. Never throws.
RunbookResult BuildRunbook(const std::string& target, const std::string& backup_type,
                           const std::string& source, const std::string& dir, double now);

}  // namespace rw
