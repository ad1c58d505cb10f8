#include "agent/sources/basebackup_source.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>

#include "agent/config_reader.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/process.h"
#include "agent/sources/basebackup_catalogue.h"
#include "agent/sources/basebackup_verify.h"
#include "agent/sources/physical_recovery.h"
#include "agent/units.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A restore_command reading `archive`, compressed segments too (sh; %f and %p are PostgreSQL's).
std::string RestoreCommand(const std::string& archive) {
  const std::string a = "'" + archive + "'";  // archive paths with a quote are refused at load
  return "f=" + a +
         "/%f; if [ -f \"$f\" ]; then cp \"$f\" \"%p\"; "
         "elif [ -f \"$f.gz\" ]; then gzip -dc \"$f.gz\" > \"%p\"; "
         "elif [ -f \"$f.zst\" ]; then zstd -dcq \"$f.zst\" > \"%p\"; "
         "elif [ -f \"$f.lz4\" ]; then lz4 -dcq \"$f.lz4\" > \"%p\"; "
         "elif [ -f \"$f.bz2\" ]; then bzip2 -dc \"$f.bz2\" > \"%p\"; "
         "elif [ -f \"$f.xz\" ]; then xz -dc \"$f.xz\" > \"%p\"; else exit 1; fi";
}

// The commits (time and record LSN, oldest first) of the archived WAL from `start` on
// `timeline`, read with pg_waldump: targets are chosen from real commits, not guessed. pg_waldump
// reads uncompressed segments only.
struct Commit {
  double time = 0;
  std::string lsn;  // of the commit record
};
std::vector<std::string> CommitsCommand(const PgTools& pg, const std::string& archive,
                                        wal::Lsn start, std::uint32_t timeline) {
  return {pg.Path("pg_waldump"),
          "-p",
          archive,
          "-r",
          "Transaction",
          "-s",
          wal::FormatLsn(start),
          "-t",
          std::to_string(timeline)};
}
std::vector<Commit> Commits(const PgTools& pg, const std::string& archive, wal::Lsn start,
                            std::uint32_t timeline, CancelToken& cancel) {
  ProcessSpec spec;
  spec.argv = CommitsCommand(pg, archive, start, timeline);
  spec.timeout = std::chrono::minutes(10);
  spec.capture_limit = 64 * 1024 * 1024;
  ProcessResult r = RunProcess(spec, &cancel);
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "drill cancelled");
  // pg_waldump ends with an error at the end of the available WAL: its output still counts.
  std::vector<Commit> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto p = line.find("desc: COMMIT ");
    auto l = line.find("lsn: ");
    if (p == std::string::npos || l == std::string::npos) continue;
    std::string ts = line.substr(p + 13);  // "2026-12-02 20:45:19.126266 UTC; ..."
    ts = ts.substr(0, ts.find(';'));
    std::string lsn = line.substr(l + 5);
    lsn = lsn.substr(0, lsn.find(','));
    if (auto t = ParseTimestamp(ts); t && wal::ParseLsn(lsn)) out.push_back({*t, lsn});
  }
  return out;
}

// "2026-12-02 20:45:19.126266+00" for recovery_target_time (microseconds kept).
std::string TargetTime(double t) {
  std::string s = FormatTimestamp(std::floor(t));  // 2026-12-02T20:45:19Z
  char frac[16];
  std::snprintf(frac, sizeof frac, "%06d",
                static_cast<int>(std::llround((t - std::floor(t)) * 1e6)) % 1000000);
  return s.substr(0, 10) + " " + s.substr(11, 8) + "." + frac + "+00";
}

BackupInfo ToInfo(const basebackup::BaseBackupEntry& e) {
  BackupInfo b;
  b.id = e.id;
  b.kind = "full";
  b.tool = "pg_basebackup";
  b.format = basebackup::FormatName(e.layout, e.compression);
  b.path = e.path;
  b.started_at = e.start_time.value_or(e.stop_time);
  b.completed_at = e.stop_time;
  b.started_exact = e.start_time.has_value();
  b.size_bytes = e.size_bytes;
  b.server_major = e.server_major;
  return b;
}

class BasebackupSource : public BackupSource {
 public:
  BasebackupSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target) {}
  std::string type() const override { return "basebackup"; }

  basebackup::BaseBackupCatalogue Read(CancelToken& cancel) const {
    if (target_.backup.paths.empty())
      throw Error(ErrorKind::kConfig, "backup.path is required for type \"basebackup\"");
    basebackup::CatalogueOptions o;
    o.wal_archive = target_.backup.wal_archive;
    return basebackup::ReadCatalogue(target_.backup.paths[0], o, &cancel);
  }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    auto cat = Read(cancel);
    BackupCatalogue out;
    for (const auto& e : cat.backups) {
      if (!e.complete) {
        out.notes.push_back(e.id + ": " + e.problem);
        continue;
      }
      auto& k = out.by_kind["full"];
      ++k.count;
      BackupInfo b = ToInfo(e);
      if (!k.newest || b.started_at >= k.newest->started_at) k.newest = b;
    }
    out.notes.insert(out.notes.end(), cat.notes.begin(), cat.notes.end());
    return out;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    auto cat = Read(cancel);
    const auto* latest = cat.Latest();
    if (!latest) {
      std::string why = "no complete base backup in " + target_.backup.paths[0];
      if (!cat.backups.empty())
        why += " (" + cat.backups.back().id + ": " + cat.backups.back().problem + ")";
      throw Error(ErrorKind::kBadInput, why);
    }
    return ToInfo(*latest);
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  const Environment& env_;
  const TargetConfig& target_;
};

RestoredCopy BasebackupSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                       const RestoreOptions& options, CancelToken& cancel) {
  RestoredCopy copy;
  SandboxCapabilities needed;
  needed.can_start_from_files = true;
  RequireCapabilities(host, needed, "the basebackup source");
  if (target_.backup.wal_archive.empty())
    throw Error(ErrorKind::kConfig, "backup.wal_archive is required for type \"basebackup\"");
  const auto deadline = Clock::now() + options.timeout;
  auto begin = [&](const char* stage) {
    if (options.begin_stage) options.begin_stage(stage);
  };

  // fetch: the backup's files into an empty data dir of the sandbox, verified with its manifest.
  begin("fetch");
  basebackup::BaseBackupEntry e =
      basebackup::ReadBaseBackup(backup.path, {target_.backup.wal_archive}, &cancel);
  if (!e.complete) {
    copy.reason = "backup " + backup.id + " is not complete: " + e.problem;
    return copy;
  }
  if (e.server_major != env_.pg.major) {
    copy.reason = "backup " + backup.id + " is of PostgreSQL " + std::to_string(e.server_major) +
                  " but the sandbox runs " + std::to_string(env_.pg.major) +
                  " (a physical copy needs the same major version)";
    return copy;
  }
  auto t0 = Clock::now();
  auto step = [&](const char* name) {
    if (options.progress) options.progress->Step(name);
  };
  step(e.layout == basebackup::Layout::kTar ? "extract and pg_verifybackup" : "pg_verifybackup");
  const std::string data_dir = host.NewDataDirectory(cancel);
  basebackup::VerifyOptions vo;
  vo.tools = env_.pg;
  vo.run_as = env_.run_as;
  vo.extract_dir = data_dir;
  vo.wal_archive = target_.backup.wal_archive;
  std::vector<std::vector<std::string>> extract_commands;
  vo.extract_commands = &extract_commands;
  basebackup::VerifyResult v = basebackup::VerifyBaseBackup(e, vo, &cancel);
  if (e.layout == basebackup::Layout::kTar)
    copy.stages.push_back({"fetch", "extract", v.extract_seconds, e.base_file, extract_commands});
  copy.stages.push_back({"fetch",
                         "pg_verifybackup",
                         v.verify_seconds,
                         v.ok ? (v.wal_parsed ? "files and WAL match the manifest"
                                              : "files match the manifest; " + v.wal_note)
                              : v.reason,
                         {v.verify_command}});
  if (!v.ok) {
    copy.reason = "backup " + backup.id + " does not match its manifest: " + v.reason;
    return copy;
  }
  if (e.layout == basebackup::Layout::kPlain) {
    auto tc = Clock::now();
    step("copy");
    ProcessSpec cp;
    cp.argv = {"cp", "-a", "--", backup.path + "/.", data_dir + "/"};
    cp.run_as = env_.run_as;
    cp.timeout = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    ProcessResult r = RunProcess(cp, &cancel);
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "drill cancelled");
    if (!r.ok()) throw Error(ErrorKind::kIo, "cannot copy " + backup.path + ": " + r.err);
    copy.stages.push_back({"fetch", "copy", Since(tc), "copied into the sandbox", {cp.argv}});
  }
  (void)t0;

  // recovery: start in archive recovery, follow it to promotion.
  begin("recovery");
  DataDirStart how;
  how.signal_files = {"recovery.signal"};
  how.settings = {{"restore_command", ConfQuote(RestoreCommand(target_.backup.wal_archive))},
                  {"recovery_target_action", "'promote'"},
                  {"recovery_target_timeline", "'latest'"}};
  std::string target = target_.drill.recovery_target;
  if (target == "random" || (!target.empty() && target[0] == '-')) {
    // Chosen from the real commit times recovery can reach: over weeks, random covers the
    // whole window; an offset takes the newest commit at least that old.
    auto tc = Clock::now();
    std::vector<Commit> commits =
        Commits(env_.pg, target_.backup.wal_archive, e.stop_lsn, e.stop_timeline, cancel);
    std::optional<Commit> pick;
    if (target == "random") {
      if (!commits.empty()) {
        static std::mt19937_64 rng(std::random_device{}());
        pick = commits[std::uniform_int_distribution<std::size_t>(0, commits.size() - 1)(rng)];
      }
    } else {
      auto d = ParseDuration(target.substr(1));
      const double limit = NowUnix() - (d ? std::chrono::duration<double>(*d).count() : 0.0);
      for (const auto& c : commits)
        if (c.time <= limit) pick = c;
    }
    copy.stages.push_back(
        {"recovery",
         "choose target",
         Since(tc),
         std::to_string(commits.size()) + " commits in the window" +
             (pick ? ", chose the commit at " + TargetTime(pick->time) + " (lsn " + pick->lsn + ")"
                   : std::string()),
         {CommitsCommand(env_.pg, target_.backup.wal_archive, e.stop_lsn, e.stop_timeline)}});
    if (!pick) {
      copy.reason = "no commit in the archive after backup " + backup.id +
                    (target == "random" ? std::string() : " is older than " + target.substr(1)) +
                    " (recovery_target = \"" + target + "\")";
      return copy;
    }
    LogInfo("recovery target chosen from the archive's commits",
            {{"commit_time", TargetTime(pick->time)},
             {"lsn", pick->lsn},
             {"commits", static_cast<std::int64_t>(commits.size())},
             {"setting", target_.drill.recovery_target}});
    // The commit record's LSN, inclusive: exact, and it works for the newest commit too (a time
    // target stops only on seeing a later commit).
    how.settings.push_back({"recovery_target_lsn", ConfQuote(pick->lsn)});
    how.settings.push_back({"recovery_target_inclusive", "on"});
    target = "the commit at " + TargetTime(pick->time);
  } else if (target == "immediate") {
    how.settings.push_back({"recovery_target", "'immediate'"});
  } else if (target != "latest") {
    how.settings.push_back({"recovery_target_time", ConfQuote(target)});
  }
  RecoveryFollowOptions fo;
  fo.start_lsn = wal::FormatLsn(e.start_lsn);
  fo.fallback_consistent_at = backup.completed_at;
  fo.deadline = deadline;
  fo.progress = options.progress;
  FollowRecovery(host, data_dir, how, fo, cancel, &copy);
  const std::string lsn = copy.lsn.value_or("");

  // Recovery to latest must reach the newest archived segment.
  if (target == "latest") {
    wal::ContinuityOptions co;
    co.archive_dir = target_.backup.wal_archive;
    co.start = wal::StartPoint{e.start_timeline, e.start_lsn, e.stop_lsn};
    wal::ContinuityReport rep = wal::CheckContinuity(co, &cancel);
    if (!rep.ok()) {
      copy.reason = "the WAL archive is not continuous after backup " + backup.id + ": " +
                    rep.Summary() + " (recovery stopped at " + lsn + ")";
      return copy;
    }
  }
  if (!DescribeDatabases(host, options.database, &copy)) return copy;
  copy.usable = true;
  copy.summary = "base backup " + backup.id + " (" + backup.format + ") recovered to " +
                 (target == "latest" ? std::string("the end of the archive") : target) + " at " +
                 lsn;
  return copy;
}

}  // namespace

void ReadBasebackupDrillOptions(config::Reader& r, BasebackupDrillOptions* out) {
  if (r.Str("recovery_target", &out->recovery_target)) {
    const std::string& t = out->recovery_target;
    const bool offset = t.size() > 1 && t[0] == '-' && ParseDuration(t.substr(1)).has_value();
    if (t != "latest" && t != "immediate" && t != "random" && !offset && !ParseTimestamp(t))
      r.Error("recovery_target",
              "must be \"latest\", \"immediate\", \"random\", an offset such as \"-1h\" or a "
              "time such as \"2026-11-24 03:00:00+00\"");
  }
}

std::unique_ptr<BackupSource> MakeBasebackupSource(const Environment& env,
                                                   const TargetConfig& target) {
  return std::make_unique<BasebackupSource>(env, target);
}

}  // namespace rw
