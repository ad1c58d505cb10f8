#pragma once
// Entry points of the verbs that run the agent. Each returns the process exit code.
#include <string>

namespace rw {

// `run -c FILE`: the daemon until SIGTERM/SIGINT (exit 0); SIGHUP reloads the config and keeps
// the old one when the new one is broken. Exit 2 when the config is invalid or start-up fails.
int RunDaemon(const std::string& config_path);

// `verify -c FILE [--target NAME] [--json]`: one drill per selected target now.
// Exit 0 all passed, 1 a check failed (or the backup is unusable), 2 could not run.
int RunVerify(const std::string& config_path, const std::string& target, bool json);

// `history -c FILE [--target NAME] [--json] [--last N]`: the newest N drills of each target (or
// NAME) from state_dir/<target>/drills.jsonl, with pass rate and RTO. Exit 0, 2 bad config/target.
int RunHistory(const std::string& config_path, const std::string& target, bool json, int last);

// `runbook -c FILE --target NAME [--output PATH]`: the Markdown runbook of NAME's last passing
// drill (exporters/runbook.h) on stdout or into PATH. Exit 0 written, 1 no drill of NAME passed
// yet, 2 bad config, target or PATH.
int RunRunbook(const std::string& config_path, const std::string& target,
               const std::string& output);
// `check-config -c FILE`: every error with file and line; exit 0 valid, 2 invalid.
int RunCheckConfig(const std::string& config_path);

// `demo [--listen ADDR] [--once]`: a sample source, a backup, a drill, /metrics until Ctrl-C;
// removes everything it created.
int RunDemo(const std::string& listen, bool once);

}  // namespace rw
