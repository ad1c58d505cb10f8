#include "agent/runtime/cli.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "agent/runtime/daemon.h"
#include "agent/runtime/dump_cmd.h"
#include "version.h"

namespace rw {
namespace {

const char* kUsage =
    "restorewatch: proves PostgreSQL backups can be restored, and watches archiving and "
    "replication\n"
    "\n"
    "usage:\n"
    "  restorewatch run -c FILE                             run the agent (drills on schedule, "
    "monitoring, /metrics)\n"
    "  restorewatch verify -c FILE [--target NAME] [--json] run one restore drill now and print "
    "the report\n"
    "  restorewatch check-config -c FILE                    validate a config file, listing every "
    "error\n"
    "  restorewatch history -c FILE [--target NAME] [--json] [--last N]  the last N drills, pass "
    "rate and RTO\n"
    "  restorewatch runbook -c FILE --target NAME [--output PATH]  the restore runbook of the last "
    "passing drill\n"
    "  restorewatch dump -c FILE --target NAME [--format custom|directory|plain] [--output PATH]\n"
    "                                                       pg_dump with an exact reference for "
    "drills\n"
    "  restorewatch demo [--listen ADDR] [--once]           self-contained demo on a sample "
    "database\n"
    "  restorewatch --version\n"
    "  restorewatch VERB --help\n"
    "\n"
    "exit codes:\n"
    "  0  success (verify: every drill passed)\n"
    "  1  verify: a check failed or the backup is unusable; runbook: no drill passed yet\n"
    "  2  could not run: invalid config or arguments, start-up failure, or a drill that could not "
    "run\n";

const char* kRunHelp =
    "usage: restorewatch run -c FILE\n"
    "\n"
    "Runs the agent: live collectors on each target's monitor_interval, restore drills on each\n"
    "target's drill.schedule (one at a time), and HTTP on agent.listen: /metrics, /healthz, "
    "/readyz,\n"
    "/api/v1/status.\n"
    "Signals: SIGHUP reloads FILE (a broken file is rejected and the running config kept;\n"
    "restorewatch_config_last_reload_successful shows it); SIGTERM/SIGINT stop gracefully, "
    "cancelling\n"
    "a running drill and removing its sandbox.\n"
    "exit codes: 0 stopped by a signal, 2 invalid config or start-up failure\n";

const char* kVerifyHelp =
    "usage: restorewatch verify -c FILE [--target NAME] [--json]\n"
    "\n"
    "Runs one restore drill now for every target (or only NAME): finds the latest backup, restores "
    "it\n"
    "into a sandbox, compares it with the source, removes the sandbox, prints the report (text, or "
    "JSON\n"
    "with --json) and records it in the state dir. Ctrl-C cancels and cleans up.\n"
    "--json prints one object, whatever the number of targets: {\"schema_version\": 1, "
    "\"drills\": [...]}\n"
    "(docs/verify-json.md). Progress goes to stderr, never stdout: a line as each stage starts "
    "and,\n"
    "every 10 s, the running stage with its elapsed time and what is done (on a terminal a plain "
    "line,\n"
    "otherwise the \"drill progress\" log line, which --json leaves out).\n"
    "exit codes: 0 every drill passed, 1 a check failed or the backup is unusable, 2 could not "
    "run\n";

const char* kHistoryHelp =
    "usage: restorewatch history -c FILE [--target NAME] [--json] [--last N]\n"
    "\n"
    "Shows the newest N drills (default 20, at most 500) of every target (or only NAME) from the\n"
    "state dir's drill log (state_dir/<target>/drills.jsonl, written by the daemon and by "
    "verify):\n"
    "each drill's result, stages and checks, the pass rate, and the RTO (the total stage's\n"
    "duration, over passed drills) min/median/max with its trend (median of the newer half of\n"
    "those drills against the older half). --json prints one JSON object per target (an array\n"
    "when there are several).\n"
    "exit codes: 0 shown (also when no drill is recorded yet), 2 invalid config, arguments or "
    "target\n";

const char* kRunbookHelp =
    "usage: restorewatch runbook -c FILE --target NAME [--output PATH]\n"
    "\n"
    "Writes the restore runbook of NAME as Markdown, from what its LAST PASSING drill really ran\n"
    "(state_dir/NAME/last_success.toml and drills.jsonl): the steps in order with their exact "
    "command\n"
    "lines (pg_restore with its -j and database, pg_verifybackup, ...) and, for base backups, the\n"
    "recovery settings (restore_command, recovery_target_*), how long each step took, the RPO "
    "measured\n"
    "(the copy's point against the source's time), the prerequisites (PostgreSQL major, disk "
    "used,\n"
    "roles), the checks that proved it with their coverage (rows verified), and when it was last\n"
    "proven. Passwords never appear. Commands address the drill's sandbox: point them at your "
    "server.\n"
    "The same text is served at GET /api/v1/targets/NAME/runbook (text/markdown).\n"
    "--output: write PATH (replaced atomically) instead of stdout.\n"
    "exit codes: 0 written, 1 no drill of NAME has passed yet (nothing written), 2 invalid "
    "config,\n"
    "arguments or target, or PATH cannot be written\n";

const char* kCheckConfigHelp =
    "usage: restorewatch check-config -c FILE\n"
    "\n"
    "Validates FILE and prints every error as FILE:LINE: KEY: MESSAGE.\n"
    "exit codes: 0 valid, 2 invalid\n";

const char* kDumpHelp =
    "usage: restorewatch dump -c FILE --target NAME [--format custom|directory|plain] [--output "
    "PATH]\n"
    "\n"
    "Takes a pg_dump of the target's source with an exact reference beside it. In one REPEATABLE "
    "READ\n"
    "READ ONLY transaction on the source it exports a snapshot, records every table's row count "
    "and\n"
    "content hash (as the drill computes them), and runs pg_dump --snapshot in that snapshot. It "
    "then\n"
    "writes PATH.restorewatch.json: the counts and hashes and the SHA-256 of the dump file(s). A "
    "drill\n"
    "of a dump with a reference compares every table exactly against it instead of the live "
    "source,\n"
    "and fails when the dump changed since (its SHA-256 differs).\n"
    "--format: custom (default), directory or plain. --output: default is the target's first "
    "backup\n"
    "path, NAME-YYYYmmddTHHMMSSZ.dump (UTC; any format). pg_dump writes PATH.part first; PATH "
    "appears\n"
    "only once the reference is written. An existing PATH is not overwritten.\n"
    "exit codes: 0 dump and reference written, 2 could not (the reason on one line; nothing is "
    "left\n"
    "behind)\n";

const char* kDemoHelp =
    "usage: restorewatch demo [--listen ADDR] [--once]\n"
    "\n"
    "Needs no config: creates a sample PostgreSQL source with data in a temp dir, takes a pg_dump "
    "backup,\n"
    "starts monitoring, changes the source a little, runs a full restore drill, prints the report, "
    "and\n"
    "serves /metrics on ADDR (default 127.0.0.1:9847) until Ctrl-C. --once exits after the "
    "report.\n"
    "Everything it created is removed when it exits.\n"
    "exit codes: 0 the drill passed, 1 it failed, 2 could not run\n";

struct Args {
  std::string verb;
  std::string config;
  std::string target;
  std::string listen = "127.0.0.1:9847";
  std::string format = "custom";
  std::string output;
  bool json = false;
  bool once = false;
  int last = 20;
  bool help = false;
  std::string error;
};

Args Parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> v(argv + 1, argv + argc);
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string& s = v[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= v.size()) {
        a.error = std::string(flag) + " needs a value";
        return "";
      }
      return v[++i];
    };
    if (s == "-h" || s == "--help" || s == "help") {
      a.help = true;
    } else if (s == "--version" || s == "version") {
      a.verb = "version";
    } else if (s == "-c" || s == "--config") {
      a.config = value("-c");
    } else if (s.rfind("--config=", 0) == 0) {
      a.config = s.substr(9);
    } else if (s == "--target" || s == "-t") {
      a.target = value("--target");
    } else if (s == "--format" || s == "-F") {
      a.format = value("--format");
    } else if (s == "--output" || s == "-o") {
      a.output = value("--output");
    } else if (s == "--listen") {
      a.listen = value("--listen");
    } else if (s == "--last") {
      const std::string n = value("--last");
      if (!n.empty() && n.size() <= 3 && n.find_first_not_of("0123456789") == std::string::npos &&
          std::stoi(n) >= 1 && std::stoi(n) <= 500) {
        a.last = std::stoi(n);
      } else if (a.error.empty()) {
        a.error = "--last needs a number from 1 to 500";
      }
    } else if (s == "--json") {
      a.json = true;
    } else if (s == "--once") {
      a.once = true;
    } else if (a.verb.empty() && !s.empty() && s[0] != '-') {
      a.verb = s;
    } else {
      a.error = "unexpected argument '" + s + "'";
    }
  }
  return a;
}

int Usage(const char* text, int code) {
  std::fputs(text, code == 0 ? stdout : stderr);
  return code;
}

}  // namespace

int RunCli(int argc, char** argv) {
  Args a = Parse(argc, argv);
  const char* help = kUsage;
  if (a.verb == "run") help = kRunHelp;
  if (a.verb == "verify") help = kVerifyHelp;
  if (a.verb == "check-config") help = kCheckConfigHelp;
  if (a.verb == "history") help = kHistoryHelp;
  if (a.verb == "demo") help = kDemoHelp;
  if (a.verb == "dump") help = kDumpHelp;
  if (a.verb == "runbook") help = kRunbookHelp;
  if (a.help) return Usage(help, 0);
  if (!a.error.empty()) {
    std::fprintf(stderr, "restorewatch: %s\n\n", a.error.c_str());
    return Usage(help, 2);
  }
  if (a.verb == "version") {
    std::printf("restorewatch %s (revision %s)\n", kVersion, kRevision);
    return 0;
  }
  bool needs_config = a.verb == "run" || a.verb == "verify" || a.verb == "check-config" ||
                      a.verb == "history" || a.verb == "dump" || a.verb == "runbook";
  if (needs_config && a.config.empty()) {
    std::fprintf(stderr, "restorewatch %s: -c FILE is required\n\n", a.verb.c_str());
    return Usage(help, 2);
  }
  if (a.verb == "run") return RunDaemon(a.config);
  if (a.verb == "verify") return RunVerify(a.config, a.target, a.json);
  if (a.verb == "check-config") return RunCheckConfig(a.config);
  if (a.verb == "history") return RunHistory(a.config, a.target, a.json, a.last);
  if (a.verb == "demo") return RunDemo(a.listen, a.once);
  if (a.verb == "runbook") return RunRunbook(a.config, a.target, a.output);
  if (a.verb == "dump") return RunDump(DumpArgs{a.config, a.target, a.format, a.output});
  if (a.verb.empty()) return Usage(kUsage, 2);
  std::fprintf(stderr, "restorewatch: unknown command '%s'\n\n", a.verb.c_str());
  return Usage(kUsage, 2);
}

}  // namespace rw
