#include "agent/sources/pgbackrest_source.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/process.h"
#include "agent/sources/pgbackrest_info.h"
#include "agent/sources/physical_recovery.h"
#include "agent/units.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

constexpr Duration kInfoTimeout = std::chrono::minutes(2);

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Duration Left(Clock::time_point deadline) {
  return std::max<Duration>(std::chrono::seconds(1),
                            std::chrono::duration_cast<Duration>(deadline - Clock::now()));
}

// "2026-12-02 20:45:19.126266+00" for --target (pgBackRest writes it as recovery_target_time).
std::string TargetTime(double t) {
  std::string s = FormatTimestamp(std::floor(t));  // 2026-12-02T20:45:19Z
  char frac[16];
  std::snprintf(frac, sizeof frac, "%06d",
                static_cast<int>(std::llround((t - std::floor(t)) * 1e6)) % 1000000);
  return s.substr(0, 10) + " " + s.substr(11, 8) + "." + frac + "+00";
}

std::string CurrentUser() {
  const passwd* pw = getpwuid(geteuid());
  return pw != nullptr ? pw->pw_name : std::to_string(geteuid());
}

// The segment number of a WAL file name (timeline ignored: a promoted copy is on a new one).
std::optional<std::uint64_t> SegNoOf(const std::string& name) {
  wal::ArchiveName n = wal::ParseArchiveName(name);
  if (n.kind != wal::ArchiveFileKind::kSegment) return std::nullopt;
  return n.SegNo(wal::kDefaultSegmentSize);
}

class PgbackrestSource : public BackupSource {
 public:
  PgbackrestSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target), opts_(target.backup.pgbackrest) {}
  std::string type() const override { return "pgbackrest"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    pgbackrest::StanzaInfo info = Info(cancel, kInfoTimeout);
    BackupCatalogue out;
    for (const auto& b : info.backups) {
      auto& k = out.by_kind[b.type];
      ++k.count;
      BackupInfo bi = ToInfo(info, b);
      out.backups.push_back(bi);
      if (!k.newest || bi.completed_at >= k.newest->completed_at) k.newest = bi;
      if (!k.oldest || bi.completed_at < k.oldest->completed_at) k.oldest = bi;
      if (b.error)
        out.notes.push_back(b.label + ": pgBackRest found page checksum errors while backing up");
    }
    if (info.backup_running) {
      out.notes.push_back("a pgBackRest backup is running");
      // The lock (status.lock.backup.held) does not say which type runs: every kind the stanza
      // has counts as running while it is held (at least full, on a stanza without backups).
      out.running["full"] = 1;
      for (const auto& [kind, k] : out.by_kind) out.running[kind] = 1;
    }
    return out;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    pgbackrest::StanzaInfo info = Info(cancel, kInfoTimeout);
    const pgbackrest::Backup* b = info.Newest();
    if (b == nullptr)
      throw Error(
          ErrorKind::kBadInput,
          "no backup in pgBackRest stanza \"" + opts_.stanza + "\"" + RepoText() +
              (info.status_message.empty() ? std::string()
                                           : " (pgbackrest info: " + info.status_message + ")"));
    return ToInfo(info, *b);
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  std::string RepoText() const {
    return opts_.repo > 0 ? " repo" + std::to_string(opts_.repo) : std::string();
  }

  BackupInfo ToInfo(const pgbackrest::StanzaInfo& info, const pgbackrest::Backup& b) const {
    BackupInfo out;
    out.id = b.label;
    out.kind = b.type;
    out.tool = "pgbackrest";
    out.format = "pgbackrest";
    out.path = "stanza " + opts_.stanza +
               (b.repo_key > 0 ? " repo" + std::to_string(b.repo_key) : RepoText());
    out.started_at = b.start;
    out.completed_at = b.stop;
    out.started_exact = true;
    out.size_bytes = b.size;  // what a restore writes (the space check reads it as such)
    try {
      out.server_major = std::stoi(info.VersionOf(b));
    } catch (const std::exception&) {
      out.server_major = 0;
    }
    return out;
  }

  // Who pgbackrest runs as: backup.run_as, else agent.run_as. A non-root agent cannot switch
  // users: it runs pgbackrest as itself, and refuses a run_as naming someone else.
  std::optional<RunAs> User() const {
    if (geteuid() == 0) {
      const std::string user = !opts_.run_as.empty() ? opts_.run_as
                               : env_.run_as         ? env_.run_as->user
                                                     : "postgres";
      return ResolveRunAs(user);  // Error(kConfig) for a missing user or root
    }
    if (!opts_.run_as.empty() && opts_.run_as != CurrentUser())
      throw Error(ErrorKind::kConfig,
                  "backup.run_as is \"" + opts_.run_as + "\" but the agent runs as \"" +
                      CurrentUser() + "\" and cannot switch users",
                  "run the agent as root or as " + opts_.run_as);
    return std::nullopt;
  }

  std::string Program() const {
    auto p = FindProgram("pgbackrest");
    if (!p)
      throw Error(ErrorKind::kProcess, "pgbackrest is not installed (no pgbackrest in PATH)",
                  "install pgBackRest (Debian: apt-get install pgbackrest)");
    return *p;
  }

  // Runs `pgbackrest --config=F --stanza=S [--repo=N] <options> <command>`. The user's log files
  // are left alone (--log-level-file=off): the agent keeps what it needs from the output.
  ProcessResult Run(const std::string& command, const std::vector<std::string>& extra,
                    Duration timeout, CancelToken& cancel) const {
    ProcessSpec spec;
    spec.argv = {Program(), "--config=" + opts_.config, "--stanza=" + opts_.stanza};
    if (opts_.repo > 0) spec.argv.push_back("--repo=" + std::to_string(opts_.repo));
    spec.argv.push_back("--log-level-file=off");
    spec.argv.push_back("--log-timestamp=n");
    spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
    spec.argv.push_back(command);
    spec.run_as = User();
    spec.timeout = timeout;
    spec.capture_limit = 4 * 1024 * 1024;
    ProcessResult r = RunProcess(spec, &cancel);
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "pgbackrest " + command + " cancelled");
    if (r.timed_out)
      throw Error(ErrorKind::kTimeout,
                  "pgbackrest " + command + " did not finish within " + FormatDuration(timeout));
    return r;
  }

  // pgBackRest's own error line from a failed command.
  static std::string Quote(const ProcessResult& r) {
    // Not the "command begin" line: it lists every option (secure ones redacted by pgBackRest,
    // but the agent repeats none of them).
    std::string text;
    std::istringstream in(r.err + "\n" + r.out);
    for (std::string line; std::getline(in, line);)
      if (line.find(" command begin ") == std::string::npos) text += line + "\n";
    std::string line = CauseLine(text);
    if (line.empty()) line = "exit code " + std::to_string(r.exit_code);
    return line;
  }

  pgbackrest::StanzaInfo Info(CancelToken& cancel, Duration timeout) const {
    // An unreachable object store is retried for minutes with the default io-timeout (60 s,
    // seen: 4 min for a refused connection); a listing needs only small answers.
    // Only the JSON on stdout, whatever log levels pgbackrest.conf sets; errors on stderr.
    ProcessResult r = Run(
        "info",
        {"--output=json", "--io-timeout=15", "--log-level-console=off", "--log-level-stderr=warn"},
        timeout, cancel);
    if (!r.ok())
      throw Error(ErrorKind::kIo, "pgbackrest info of stanza \"" + opts_.stanza + "\"" +
                                      RepoText() + " failed: " + Quote(r));
    std::string why;
    auto info = pgbackrest::ParseInfo(r.out, opts_.stanza, &why);
    if (!info)
      throw Error(ErrorKind::kIo, "pgbackrest info of stanza \"" + opts_.stanza +
                                      "\" printed no usable JSON: " + why);
    if (std::string p = info->Problem(); !p.empty())
      throw Error(ErrorKind::kIo,
                  "pgbackrest info: stanza \"" + opts_.stanza + "\"" + RepoText() + ": " + p,
                  "check stanza and config in [target.backup], and that " +
                      std::string("the repository is reachable as the pgbackrest user"));
    return *info;
  }

  const Environment& env_;
  const TargetConfig& target_;
  const PgbackrestOptions& opts_;
};

// What a passing verify checked, from its text output: "backup set L valid: 1267 files, 5 WAL
// segments" (each count only when verify printed it).
std::string VerifiedText(const std::string& out, const std::string& label) {
  auto number_after = [&](const std::string& line, const std::string& key) {
    const auto at = line.find(key);
    if (at == std::string::npos) return std::string();
    const auto b = at + key.size();
    return line.substr(b, line.find_first_not_of("0123456789", b) - b);
  };
  std::string files, wal;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.find("backup: " + label + ", status: valid") != std::string::npos)
      files = number_after(line, "total valid files: ");
    if (line.find("archiveId: ") != std::string::npos)
      wal = number_after(line, "total valid WAL: ");
  }
  std::string text = "backup set " + label + " valid";
  if (!files.empty()) text += ": " + files + " files";
  if (!wal.empty()) text += (files.empty() ? ": " : ", ") + wal + " WAL segments";
  return text;
}

// A restore error about the backup's own files in the repository (a finding), as opposed to the
// environment (disk, permissions, network: an error).
bool NamesRepositoryFile(const std::string& line) {
  return line.find("[055]") != std::string::npos ||  // FileMissingError
         line.find("missing file") != std::string::npos ||
         line.find("checksum") != std::string::npos || line.find("/pg_data/") != std::string::npos;
}

RestoredCopy PgbackrestSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                       const RestoreOptions& options, CancelToken& cancel) {
  RestoredCopy copy;
  SandboxCapabilities needed;
  needed.can_start_from_files = true;
  RequireCapabilities(host, needed, "the pgbackrest source");
  const auto deadline = Clock::now() + options.timeout;
  auto begin = [&](const char* stage) {
    if (options.begin_stage) options.begin_stage(stage);
  };
  // The sandbox's data dir belongs to agent.run_as, and its restore_command runs archive-get as
  // that user: pgbackrest must be the same user to write the files and read the repository.
  const std::optional<RunAs> user = User();
  if (user && env_.run_as && user->uid != env_.run_as->uid)
    throw Error(ErrorKind::kConfig,
                "backup.run_as \"" + user->user + "\" differs from agent.run_as \"" +
                    env_.run_as->user +
                    "\": the sandbox's data directory belongs to agent.run_as and its "
                    "restore_command runs pgbackrest archive-get as that user",
                "make them the same user (usually postgres)");

  // fetch: is the backup set still there and whole (verify), then restore it into the sandbox.
  begin("fetch");
  auto tv = Clock::now();
  pgbackrest::StanzaInfo info = Info(cancel, std::min<Duration>(kInfoTimeout, Left(deadline)));
  const pgbackrest::Backup* set = info.Find(backup.id);
  if (set == nullptr) {
    copy.reason = "backup set " + backup.id + " is no longer in pgBackRest stanza \"" +
                  opts_.stanza + "\"" + RepoText() + " (expired since it was listed?)";
    return copy;
  }
  const std::string version = info.VersionOf(*set);
  if (!version.empty() && version != std::to_string(env_.pg.major)) {
    copy.reason = "backup set " + backup.id + " is of PostgreSQL " + version +
                  " but the sandbox runs " + std::to_string(env_.pg.major) +
                  " (a physical copy needs the same major version)";
    return copy;
  }
  const pgbackrest::ArchiveRange* archive = info.ArchiveOf(*set);
  const std::string archive_max = archive != nullptr ? archive->max : std::string();

  ProcessResult v = Run("verify",
                        {"--set=" + backup.id, "--output=text", "--verbose",
                         "--log-level-console=info", "--log-level-stderr=warn"},
                        Left(deadline), cancel);
  const std::string problem = pgbackrest::VerifyProblem(v.out + "\n" + v.err);
  // A verify that ran to its end judged the backup; one that failed (repository unreachable,
  // bad option) judged nothing, unless it named a file first.
  const bool named_file = problem.find('\'') != std::string::npos;
  const bool judged = v.ok() ? problem.rfind("verify printed no status", 0) != 0 : named_file;
  if (!judged)
    throw Error(ErrorKind::kProcess, "pgbackrest verify of backup set " + backup.id +
                                         " failed: " + (v.ok() ? problem : Quote(v)));
  copy.stages.push_back({"fetch", "pgbackrest verify", Since(tv),
                         problem.empty() ? VerifiedText(v.out, backup.id) : problem});
  if (!problem.empty()) {
    copy.reason = "pgbackrest verify: backup set " + backup.id + " of stanza \"" + opts_.stanza +
                  "\" is invalid: " + problem;
    return copy;
  }

  auto tr = Clock::now();
  const std::string data_dir = host.NewDataDirectory(cancel);
  const std::string sandbox_dir = data_dir.substr(0, data_dir.rfind('/'));
  std::vector<std::string> args = {"--pg1-path=" + data_dir, "--set=" + backup.id,
                                   "--archive-mode=off",
                                   // Tablespaces would otherwise go back to the source's paths.
                                   "--tablespace-map-all=" + sandbox_dir + "/tablespaces",
                                   "--log-level-console=off", "--log-level-stderr=warn"};
  std::string target = target_.drill.recovery_target;
  std::string target_text = "the end of the archive";
  if (target == "immediate") {
    args.push_back("--type=immediate");
    args.push_back("--target-action=promote");
    target_text = "consistency";
  } else if (target != "latest" && !target.empty()) {
    auto t = ParseTimestamp(target);
    if (!t) throw Error(ErrorKind::kConfig, "recovery_target \"" + target + "\" is not a time");
    target_text = TargetTime(*t);
    args.push_back("--type=time");
    args.push_back("--target=" + target_text);
    args.push_back("--target-action=promote");
  } else {
    args.push_back("--type=default");  // replay all the archive has, then promote
  }
  ProcessResult rr = Run("restore", args, Left(deadline), cancel);
  if (!rr.ok()) {
    const std::string line = Quote(rr);
    copy.stages.push_back({"fetch", "pgbackrest restore", Since(tr), line});
    if (NamesRepositoryFile(line)) {
      copy.reason = "pgbackrest restore of backup set " + backup.id + " failed: " + line;
      return copy;
    }
    throw Error(ErrorKind::kProcess,
                "pgbackrest restore of backup set " + backup.id + " failed: " + line);
  }
  // The copy must fetch WAL with archive-get only (read-only), never run anything that writes
  // into the repository.
  std::string restore_command;
  {
    std::ifstream in(data_dir + "/postgresql.auto.conf");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("restore_command", 0) == 0) restore_command = line;
  }
  if (restore_command.find(" archive-get ") == std::string::npos ||
      restore_command.find("archive-push") != std::string::npos)
    throw Error(ErrorKind::kProcess,
                "pgbackrest restore wrote no archive-get restore_command into " + data_dir +
                    "/postgresql.auto.conf; the copy is not started");
  copy.stages.push_back(
      {"fetch", "pgbackrest restore", Since(tr),
       "backup set " + backup.id + " (" + set->type + ", " + FormatSize(set->size) + ")"});

  // recovery: pgBackRest wrote the recovery settings (restore_command with archive-get, the
  // target) into postgresql.auto.conf and recovery.signal; the sandbox adds archive_mode = off
  // on its command line.
  begin("recovery");
  DataDirStart how;
  how.signal_files = {"recovery.signal"};
  RecoveryFollowOptions fo;
  fo.start_lsn = set->start_lsn;
  fo.fallback_consistent_at = backup.completed_at;
  fo.deadline = deadline;
  FollowRecovery(host, data_dir, how, fo, cancel, &copy);
  const std::string lsn = copy.lsn.value_or("");

  // Recovery to latest must reach the newest segment the repository held when the drill began.
  if (target == "latest" && !archive_max.empty()) {
    auto reached = wal::ParseLsn(lsn);
    auto newest = SegNoOf(archive_max);
    // Replay must get past the start of that segment: it holds at least the record that ended
    // it (a switch) or its own records.
    if (reached && newest && *reached <= *newest * wal::kDefaultSegmentSize) {
      // pg_last_wal_replay_lsn() is the end of the last record replayed: the WAL from the
      // segment holding it on (on the archive's newest timeline) could not be read.
      const std::uint32_t tl = wal::ParseArchiveName(archive_max).timeline;
      const std::string from = wal::SegmentName(
          tl, wal::SegmentNo(*reached, wal::kDefaultSegmentSize), wal::kDefaultSegmentSize);
      copy.reason = "recovery of backup set " + backup.id + " stopped at " + lsn +
                    " before the newest archived segment " + archive_max +
                    " in the repository: WAL from segment " + from +
                    " on is missing or unreadable (pgbackrest archive-get)";
      return copy;
    }
  }
  if (!DescribeDatabases(host, options.database, &copy)) return copy;
  copy.usable = true;
  copy.summary =
      "pgBackRest backup set " + backup.id + " (" + set->type + ", stanza " + opts_.stanza +
      RepoText() + ") recovered to " + target_text + " at " + lsn +
      (copy.consistent_at_exact ? ", last replayed commit " + FormatTimestamp(copy.consistent_at)
                                : std::string(", no commit replayed after the backup"));
  return copy;
}

}  // namespace

std::unique_ptr<BackupSource> MakePgbackrestSource(const Environment& env,
                                                   const TargetConfig& target) {
  return std::make_unique<PgbackrestSource>(env, target);
}

}  // namespace rw
