#include "agent/sources/barman_source.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/process.h"
#include "agent/sources/barman_catalogue.h"
#include "agent/sources/physical_recovery.h"
#include "agent/units.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;
// Bound on a catalogue command (list-backups, show-backup): barman answers from its own files.
constexpr Duration kCatalogueTimeout = std::chrono::minutes(2);

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// The first 24-hex-digit WAL segment name in `text`, or "".
std::string SegmentIn(const std::string& text) {
  for (std::size_t i = 0; i + 24 <= text.size(); ++i) {
    std::size_t n = 0;
    while (n < 24 && std::isxdigit(static_cast<unsigned char>(text[i + n])) &&
           !std::islower(static_cast<unsigned char>(text[i + n])))
      ++n;
    const bool before = i > 0 && std::isxdigit(static_cast<unsigned char>(text[i - 1]));
    const bool after =
        i + 24 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 24]));
    if (n == 24 && !before && !after) return text.substr(i, 24);
    i += n;
  }
  return {};
}

// The line of barman's output that says why it failed: its "ERROR:"/"EXCEPTION:" line (with
// the line naming a WAL segment or an OS cause after it, when there is one), else the tool's
// cause line, else the exit status.
std::string BarmanReason(const ProcessResult& r) {
  if (r.timed_out) return "timed out";
  const std::string text = r.err + "\n" + r.out;
  std::istringstream in(text);
  std::string error, detail;
  for (std::string line; std::getline(in, line);) {
    line = Trim(line);
    if (line.empty()) continue;
    if (error.empty() && (line.rfind("ERROR:", 0) == 0 || line.rfind("EXCEPTION:", 0) == 0))
      error = line;
    else if (!error.empty() && detail.empty() &&
             (!SegmentIn(line).empty() || line.find("No such file") != std::string::npos ||
              line.find("Permission denied") != std::string::npos))
      detail = line;
  }
  if (!error.empty()) return detail.empty() ? error : error + " " + detail;
  const std::string cause = CauseLine(text);
  return cause.empty() ? r.Summary() : cause;
}

// "2026-12-04 14:33:17.778224+00:00": an unambiguous time for barman's --target-time.
std::string BarmanTime(double t) {
  std::string s = FormatTimestamp(std::floor(t));  // 2026-12-04T14:33:17Z
  char frac[16];
  std::snprintf(frac, sizeof frac, "%06d",
                static_cast<int>(std::llround((t - std::floor(t)) * 1e6)) % 1000000);
  return s.substr(0, 10) + " " + s.substr(11, 8) + "." + frac + "+00:00";
}

std::string CurrentUser() {
  const passwd* pw = getpwuid(geteuid());
  return pw != nullptr ? pw->pw_name : std::to_string(geteuid());
}

BackupInfo ToInfo(const barman::BarmanBackup& b) {
  BackupInfo i;
  i.id = b.id;
  i.kind = "full";
  i.tool = "barman";
  i.format = "barman";
  i.started_at = b.begin_time > 0 ? b.begin_time : b.end_time;
  i.started_exact = b.begin_time > 0;
  i.completed_at = b.end_time;
  i.size_bytes = b.size_bytes;
  i.server_major = b.server_major;
  return i;
}

class BarmanSource : public BackupSource {
 public:
  BarmanSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target), opt_(target.backup.barman) {}
  std::string type() const override { return "barman"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    std::vector<barman::BarmanBackup> list = List(cancel);
    BackupCatalogue out;
    const barman::BarmanBackup* newest = barman::NewestComplete(list);
    for (const auto& b : list) {
      if (!b.complete()) {
        out.notes.push_back(b.id + ": status " + b.status);
        // A backup barman is taking (STARTED) or whose WAL it still waits for is running.
        if (b.status == "STARTED" || b.status == "WAITING_FOR_WALS") ++out.running["full"];
        continue;
      }
      out.backups.push_back(ToInfo(b));
      auto& k = out.by_kind["full"];
      ++k.count;
      // list-backups gives the end time: enough for the retention kept.
      if (b.end_time > 0 && (!k.oldest || b.end_time < k.oldest->completed_at))
        k.oldest = ToInfo(b);
    }
    if (newest != nullptr) out.by_kind["full"].newest = ToInfo(Show(*newest, cancel));
    if (!out.running.empty()) out.by_kind["full"];  // running 1 beside count 0 for a first backup
    return out;
  }

  // list-backups lacks what show-backup says (begin time, server version): read it.
  BackupInfo Describe(const BackupInfo& listed, CancelToken& cancel) override {
    barman::BarmanBackup b;
    b.id = listed.id;
    b.status = "DONE";
    return ToInfo(Show(b, cancel));
  }

  BackupInfo Latest(CancelToken& cancel) override {
    std::vector<barman::BarmanBackup> list = List(cancel);
    const barman::BarmanBackup* newest = barman::NewestComplete(list);
    if (newest == nullptr) {
      std::string why = "no complete (DONE) backup in barman server " + opt_.server;
      if (!list.empty()) why += " (" + list.front().id + ": status " + list.front().status + ")";
      throw Error(ErrorKind::kBadInput, why);
    }
    return ToInfo(Show(*newest, cancel));
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  // Who barman runs as: backup.run_as (default agent.run_as) when the agent is root; the
  // agent's own user otherwise.
  std::optional<RunAs> Identity() const {
    if (env_.run_as) return ResolveRunAs(opt_.run_as.empty() ? env_.run_as->user : opt_.run_as);
    if (!opt_.run_as.empty() && opt_.run_as != CurrentUser())
      throw Error(ErrorKind::kConfig,
                  "backup.run_as = \"" + opt_.run_as + "\" but the agent runs as " + CurrentUser() +
                      " and cannot switch users (only as root)",
                  "run the agent as " + opt_.run_as + " or drop backup.run_as");
    return std::nullopt;
  }

  // Runs `barman -c CONFIG [-f json] ARGS...` as Identity(), bounded by `timeout` and `cancel`.
  ProcessResult Barman(const std::vector<std::string>& args, bool json, Duration timeout,
                       CancelToken& cancel) const {
    const auto program = FindProgram("barman");
    if (!program)
      throw Error(ErrorKind::kProcess, "barman is not installed (no barman in PATH)",
                  "apt-get install --no-install-recommends barman barman-cli");
    ProcessSpec spec;
    spec.argv = {*program, "-c", opt_.config};
    if (json) spec.argv.insert(spec.argv.end(), {"-f", "json"});
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.run_as = Identity();
    spec.timeout = std::max<Duration>(timeout, std::chrono::seconds(1));
    spec.capture_limit = 4 * 1024 * 1024;
    ProcessResult r = RunProcess(spec, &cancel);
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "drill cancelled");
    return r;
  }

  // A catalogue command: its JSON output, or Error naming barman and quoting it.
  std::string CatalogueCommand(const std::vector<std::string>& args, CancelToken& cancel) const {
    ProcessResult r = Barman(args, true, kCatalogueTimeout, cancel);
    std::string what = "barman";
    for (const auto& a : args) what += " " + a;
    if (r.timed_out)
      throw Error(ErrorKind::kTimeout,
                  what + " did not answer within " + FormatDuration(kCatalogueTimeout));
    if (!r.ok()) {
      std::string why = barman::JsonErrors(r.out);
      if (why.empty()) why = BarmanReason(r);
      throw Error(ErrorKind::kProcess, what + " failed (config " + opt_.config + "): " + why);
    }
    return r.out;
  }

  std::vector<barman::BarmanBackup> List(CancelToken& cancel) const {
    const std::string out = CatalogueCommand({"list-backups", opt_.server}, cancel);
    std::vector<barman::BarmanBackup> list;
    std::string why;
    if (!barman::ParseListBackups(out, opt_.server, &list, &why))
      throw Error(ErrorKind::kProcess, "barman list-backups " + opt_.server + ": " + why);
    return list;
  }

  barman::BarmanBackup Show(const barman::BarmanBackup& from, CancelToken& cancel) const {
    const std::string out = CatalogueCommand({"show-backup", opt_.server, from.id}, cancel);
    barman::BarmanBackup b = from;
    std::string why;
    if (!barman::ParseShowBackup(out, opt_.server, &b, &why))
      throw Error(ErrorKind::kProcess,
                  "barman show-backup " + opt_.server + " " + from.id + ": " + why);
    return b;
  }

  const Environment& env_;
  const TargetConfig& target_;
  const BarmanBackupOptions::Barman& opt_;
};

RestoredCopy BarmanSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                   const RestoreOptions& options, CancelToken& cancel) {
  RestoredCopy copy;
  SandboxCapabilities needed;
  needed.can_start_from_files = true;
  RequireCapabilities(host, needed, "the barman source");
  // barman recover writes into the sandbox's data directory (mode 0700, agent.run_as's): only
  // that user can. Refused rather than loosening the directory's permissions.
  const std::optional<RunAs> who = Identity();
  if (env_.run_as && who && who->uid != env_.run_as->uid)
    throw Error(ErrorKind::kConfig,
                "backup.run_as = \"" + who->user + "\" differs from agent.run_as = \"" +
                    env_.run_as->user +
                    "\": barman recover writes the sandbox's data directory, which belongs to "
                    "agent.run_as",
                "run barman and the sandbox as one user: set backup.run_as and agent.run_as to "
                "the same user (barman_user in barman.conf)");
  const auto deadline = Clock::now() + options.timeout;
  auto left = [&] { return std::chrono::duration_cast<Duration>(deadline - Clock::now()); };
  auto begin = [&](const char* stage) {
    if (options.begin_stage) options.begin_stage(stage);
  };
  auto timed_out = [&](const std::string& what) {
    return Error(ErrorKind::kTimeout, what + " did not finish within the drill's timeout");
  };

  begin("fetch");
  barman::BarmanBackup bb;
  bb.id = backup.id;
  bb = Show(bb, cancel);
  if (!bb.complete()) {
    copy.reason = "barman backup " + backup.id + " has status " + bb.status + ", not DONE";
    return copy;
  }
  if (bb.server_major != 0 && bb.server_major != env_.pg.major) {
    copy.reason = "barman backup " + backup.id + " is of PostgreSQL " +
                  std::to_string(bb.server_major) + " but the sandbox runs " +
                  std::to_string(env_.pg.major) + " (a physical copy needs the same major version)";
    return copy;
  }

  // barman check: the server's setup as Barman sees it; a FAILED line is quoted.
  auto t = Clock::now();
  ProcessResult r = Barman({"check", opt_.server}, false, left(), cancel);
  if (r.timed_out) throw timed_out("barman check " + opt_.server);
  std::string failed;
  {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (line.find(": FAILED") != std::string::npos)
        failed += (failed.empty() ? "" : "; ") + Trim(line);
  }
  if (!r.ok() && failed.empty())  // no check ran at all: unknown server, unreadable config
    throw Error(ErrorKind::kProcess, "barman check " + opt_.server + " failed (config " +
                                         opt_.config + "): " + BarmanReason(r));
  copy.stages.push_back({"fetch", "barman check", Since(t), failed.empty() ? "ok" : failed});
  if (!failed.empty()) {
    copy.reason = "barman check " + opt_.server + " failed: " + failed;
    return copy;
  }

  // barman verify-backup: pg_verifybackup against the manifest, in Barman's storage.
  t = Clock::now();
  r = Barman({"verify-backup", opt_.server, backup.id}, false, left(), cancel);
  if (r.timed_out) throw timed_out("barman verify-backup " + opt_.server + " " + backup.id);
  copy.stages.push_back({"fetch", "verify-backup", Since(t),
                         r.ok() ? "files match the backup manifest" : BarmanReason(r)});
  if (!r.ok()) {
    copy.reason =
        "barman verify-backup " + opt_.server + " " + backup.id + " failed: " + BarmanReason(r);
    if (copy.reason.find("manifest") != std::string::npos)
      copy.reason += " (backups taken with backup_method = rsync need `barman generate-manifest " +
                     opt_.server + " " + backup.id + "` first)";
    return copy;
  }

  // barman recover into the sandbox's data directory, with every WAL segment copied in.
  const std::string target = target_.drill.recovery_target;
  std::vector<std::string> args = {"recover", "--no-get-wal"};
  if (target == "immediate") {
    args.insert(args.end(), {"--target-immediate", "--target-action", "promote"});
  } else if (target != "latest") {
    const auto when = ParseTimestamp(target);
    if (!when) throw Error(ErrorKind::kConfig, "recovery_target \"" + target + "\" is not a time");
    args.insert(args.end(), {"--target-time", BarmanTime(*when), "--target-action", "promote"});
  }
  const std::string data_dir = host.NewDataDirectory(cancel);
  args.insert(args.end(), {opt_.server, backup.id, data_dir});
  t = Clock::now();
  r = Barman(args, false, left(), cancel);
  if (r.timed_out) throw timed_out("barman recover " + opt_.server + " " + backup.id);
  if (!r.ok()) {
    const std::string why = BarmanReason(r);
    const std::string seg = SegmentIn(why);
    copy.stages.push_back({"fetch", "recover", Since(t), why});
    if (why.find("WAL") != std::string::npos && !seg.empty()) {
      copy.reason = "WAL segment " + seg + " is missing or unreadable in barman's archive of " +
                    opt_.server + ": barman recover failed: " + why;
      return copy;
    }
    throw Error(ErrorKind::kProcess,
                "barman recover " + opt_.server + " " + backup.id + " failed: " + why);
  }
  // What barman copied must reach from the backup's start without a gap (barman copies what its
  // catalogue lists; a segment it never received leaves a hole that recovery would stop at).
  const bool pitr = target != "latest";
  wal::ContinuityOptions co;
  co.archive_dir = data_dir + (pitr ? "/barman_wal" : "/pg_wal");
  const auto start = wal::ParseLsn(bb.begin_lsn);
  const auto stop = wal::ParseLsn(bb.end_lsn);
  if (start && bb.timeline > 0)
    co.start = wal::StartPoint{static_cast<std::uint32_t>(bb.timeline), *start, stop};
  wal::ContinuityReport rep = wal::CheckContinuity(co, &cancel);
  copy.stages.push_back(
      {"fetch", "recover", Since(t),
       "barman recover" + (pitr ? " to " + target : std::string()) + ", WAL " + rep.Summary()});
  if (!rep.ok()) {
    copy.reason = "the WAL barman recover copied for backup " + backup.id +
                  " is not continuous: " + rep.Summary();
    return copy;
  }

  // recovery: barman wrote the recovery settings (postgresql.auto.conf, recovery.signal) for a
  // target; "latest" replays everything in pg_wal from the backup label.
  begin("recovery");
  DataDirStart how;
  RecoveryFollowOptions fo;
  fo.start_lsn = bb.begin_lsn;
  fo.fallback_consistent_at = backup.completed_at;
  fo.deadline = deadline;
  FollowRecovery(host, data_dir, how, fo, cancel, &copy);
  if (!DescribeDatabases(host, options.database, &copy)) return copy;
  copy.usable = true;
  copy.summary = "barman backup " + backup.id + " of " + opt_.server + " recovered to " +
                 (target == "latest" ? std::string("the end of barman's archive") : target) +
                 " at " + copy.lsn.value_or("");
  return copy;
}

}  // namespace

std::unique_ptr<BackupSource> MakeBarmanSource(const Environment& env, const TargetConfig& target) {
  return std::make_unique<BarmanSource>(env, target);
}

}  // namespace rw
