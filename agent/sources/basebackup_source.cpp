#include "agent/sources/basebackup_source.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "agent/config_reader.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "agent/pg/process.h"
#include "agent/sources/basebackup_catalogue.h"
#include "agent/sources/basebackup_verify.h"
#include "agent/sources/physical_recovery.h"
#include "agent/sources/s3_source.h"
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

// The commits (time, record LSN and top-level xid, oldest first) of the archived WAL from `start`
// on `timeline` (up to `end` when given), read with pg_waldump: targets are chosen from real
// commits, not guessed. pg_waldump reads uncompressed segments only. `complete` (optional): set to
// whether pg_waldump read everything up to `end` (it ends with an error where the WAL runs out).
struct Commit {
  double time = 0;
  std::string lsn;        // of the commit record
  std::uint32_t xid = 0;  // the committed top-level transaction
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
                            std::uint32_t timeline, CancelToken& cancel, wal::Lsn end = 0,
                            bool* complete = nullptr, std::string* problem = nullptr) {
  ProcessSpec spec;
  spec.argv = CommitsCommand(pg, archive, start, timeline);
  if (end) {
    spec.argv.push_back("-e");
    spec.argv.push_back(wal::FormatLsn(end));
  }
  spec.timeout = std::chrono::minutes(10);
  spec.capture_limit = 64 * 1024 * 1024;
  ProcessResult r = RunProcess(spec, &cancel);
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "drill cancelled");
  if (complete) *complete = r.ok();
  if (problem) *problem = r.ok() ? std::string() : r.Summary();
  // Without `end`, pg_waldump ends with an error at the end of the available WAL: its output
  // still counts.
  std::vector<Commit> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto l = line.find("lsn: ");
    if (l == std::string::npos) continue;
    Commit c;
    std::string ts;
    if (auto p = line.find("desc: COMMIT "); p != std::string::npos) {
      ts = line.substr(p + 13);  // "2026-12-02 20:45:19.126266 UTC; ..."
      auto x = line.find("tx: ");
      if (x == std::string::npos) continue;
      c.xid = static_cast<std::uint32_t>(std::strtoul(line.c_str() + x + 4, nullptr, 10));
    } else if (auto q = line.find("desc: COMMIT_PREPARED "); q != std::string::npos) {
      // "COMMIT_PREPARED 745: 2026-12-02 ...": the prepared transaction's xid.
      std::string rest = line.substr(q + 22);
      c.xid = static_cast<std::uint32_t>(std::strtoul(rest.c_str(), nullptr, 10));
      auto colon = rest.find(": ");
      if (colon == std::string::npos) continue;
      ts = rest.substr(colon + 2);
    } else {
      continue;
    }
    ts = ts.substr(0, ts.find(';'));
    std::string lsn = line.substr(l + 5);
    lsn = lsn.substr(0, lsn.find(','));
    auto t = ParseTimestamp(ts);
    if (!t || !wal::ParseLsn(lsn)) continue;
    c.time = *t;
    c.lsn = lsn;
    out.push_back(c);
  }
  return out;
}

// A pg_current_snapshot() text, "xmin:xmax:xip,xip" (64-bit xids).
struct Snapshot {
  std::uint64_t xmin = 0, xmax = 0;
  std::set<std::uint64_t> xip;
  // Whether the transaction with 32-bit id `xid` (recent: within 2^31 of xmax) had committed
  // before the snapshot was taken, given that it did commit: it is older than every running one,
  // or older than the next one to start and not running then.
  bool Sees(std::uint32_t xid) const {
    const std::uint64_t full = xmax + static_cast<std::int64_t>(static_cast<std::int32_t>(
                                          xid - static_cast<std::uint32_t>(xmax)));
    return full < xmin || (full < xmax && xip.count(full) == 0);
  }
};
std::optional<Snapshot> ParseSnapshot(const std::string& text) {
  Snapshot s;
  char* end = nullptr;
  s.xmin = std::strtoull(text.c_str(), &end, 10);
  if (!end || *end != ':') return std::nullopt;
  s.xmax = std::strtoull(end + 1, &end, 10);
  if (!end || *end != ':' || s.xmax < s.xmin) return std::nullopt;
  ++end;
  while (*end) {
    char* next = nullptr;
    std::uint64_t x = std::strtoull(end, &next, 10);
    if (next == end) return std::nullopt;
    s.xip.insert(x);
    end = next;
    if (*end == ',') ++end;
  }
  return s;
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
        if (e.running) ++out.running["full"];
        continue;
      }
      out.Add("full", ToInfo(e));
    }
    out.notes.insert(out.notes.end(), cat.notes.begin(), cat.notes.end());
    return out;
  }

  bool WantsSourcePoint() const override { return target_.drill.recovery_target == "snapshot"; }

  BackupInfo Latest(CancelToken& cancel) override {
    auto cat = Read(cancel);
    const auto* latest = cat.Latest();
    if (!latest) {
      std::string why = "no complete base backup in " + target_.backup.paths[0];
      if (!cat.backups.empty())
        why += " (" + cat.backups.back().id + ": " + cat.backups.back().problem + ")";
      throw Error(ErrorKind::kBadInput, why);
    }
    // Newer ones that are not complete (half-copied, cut short) are never drilled: say so.
    for (auto it = cat.backups.rbegin(); it != cat.backups.rend() && &*it != latest; ++it)
      if (!it->complete)
        LogWarn("newer base backup " + it->id + " skipped: " + it->problem,
                {{"target", target_.name}, {"backup", it->id}, {"drilled", latest->id}});
    return ToInfo(*latest);
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  bool ChooseSnapshotPoint(const basebackup::BaseBackupEntry& e, const BackupInfo& backup,
                           const RestoreOptions& options, Clock::time_point deadline,
                           CancelToken& cancel, DataDirStart* how, RestoredCopy* copy,
                           std::optional<double>* stop_commit_time) const;

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
  // A physical copy runs on the binaries of its own major version (pg_bin_dir = "auto").
  const std::optional<PgTools> pg = env_.pg.ForMajor(e.server_major);
  if (!pg) {
    copy.reason = "backup " + backup.id + " is of PostgreSQL " + std::to_string(e.server_major) +
                  " but the sandbox runs " + std::to_string(env_.pg.major) +
                  " (a physical copy needs the same major version; " +
                  (env_.pg.detected ? "PostgreSQL " + std::to_string(e.server_major) +
                                          " is not installed in /usr/lib/postgresql"
                                    : "agent.pg_bin_dir is " + env_.pg.bin_dir) +
                  ")";
    return copy;
  }
  auto t0 = Clock::now();
  auto step = [&](const char* name) {
    if (options.progress) options.progress->Step(name);
  };
  step(e.layout == basebackup::Layout::kTar ? "extract and pg_verifybackup" : "pg_verifybackup");
  const std::string data_dir = host.NewDataDirectory(cancel);
  basebackup::VerifyOptions vo;
  vo.tools = *pg;
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
  how.tools = *pg;
  how.signal_files = {"recovery.signal"};
  how.settings = {{"restore_command", ConfQuote(RestoreCommand(target_.backup.wal_archive))},
                  {"recovery_target_action", "'promote'"},
                  {"recovery_target_timeline", "'latest'"}};
  std::string target = target_.drill.recovery_target;
  std::optional<double> stop_commit_time;  // set when recovery stops on a chosen commit's LSN
  if (target == "random" || (!target.empty() && target[0] == '-')) {
    // Chosen from the real commit times recovery can reach: over weeks, random covers the
    // whole window; an offset takes the newest commit at least that old.
    auto tc = Clock::now();
    std::vector<Commit> commits =
        Commits(*pg, target_.backup.wal_archive, e.stop_lsn, e.stop_timeline, cancel);
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
    stop_commit_time = pick->time;
    target = "the commit at " + TargetTime(pick->time);
  } else if (target == "snapshot") {
    if (!ChooseSnapshotPoint(e, backup, options, deadline, cancel, &how, &copy, &stop_commit_time))
      return copy;
    target = "the source's snapshot at " + TargetTime(options.source_point->time);
  } else if (target == "immediate") {
    how.settings.push_back({"recovery_target", "'immediate'"});
  } else if (target != "latest") {
    how.settings.push_back({"recovery_target_time", ConfQuote(target)});
  }
  // What recovery to the end of the archive must reach: the archive as it is before it starts.
  const ArchiveSnapshot archived =
      target == "latest" ? SnapshotArchive(target_.backup.wal_archive) : ArchiveSnapshot{};
  RecoveryFollowOptions fo;
  fo.start_lsn = wal::FormatLsn(e.start_lsn);
  fo.fallback_consistent_at = backup.completed_at;
  fo.stop_commit_time = stop_commit_time;
  fo.deadline = deadline;
  fo.progress = options.progress;
  FollowRecovery(host, data_dir, how, fo, cancel, &copy);
  const std::string lsn = copy.lsn.value_or("");
  if (options.source_point && target_.drill.recovery_target == "snapshot") {
    // The copy must be of the source's own history, or equality would prove nothing.
    auto c = ConnectSandbox(host.LibpqConnInfo("postgres"));
    pqxx::nontransaction tx(*c);
    const std::string sysid =
        tx.exec1("select system_identifier::text from pg_control_system()")[0].as<std::string>();
    const std::string& want = options.source_point->system_identifier;
    if (!want.empty() && sysid != want) {
      copy.reason = "backup " + backup.id + " is of another cluster (system identifier " + sysid +
                    ") than the source (" + want + ")";
      return copy;
    }
    copy.at_source_point = true;
  }

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
    if (auto why = ReplayShortOfArchive(archived, lsn, rep.segment_size); !why.empty()) {
      copy.reason = "backup " + backup.id + ": " + why;
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

// recovery_target = "snapshot": the WAL point at which the copy holds exactly the transactions the
// source's snapshot S sees. Every commit S sees was written to WAL before the insert position L
// read right after S, so the archive up to L holds them all; the point is the last commit record
// S sees, provided no commit S does not see comes before it (then recovery to it, inclusive,
// replays exactly S's committed set, and whatever was in progress there is aborted at promotion,
// as it is invisible to S). Returns false with copy->reason set when the backup cannot reach S.
bool BasebackupSource::ChooseSnapshotPoint(const basebackup::BaseBackupEntry& e,
                                           const BackupInfo& backup, const RestoreOptions& options,
                                           Clock::time_point deadline, CancelToken& cancel,
                                           DataDirStart* how, RestoredCopy* copy,
                                           std::optional<double>* stop_commit_time) const {
  if (!options.source_point)
    throw Error(ErrorKind::kUnsupported,
                "recovery_target = \"snapshot\" needs a snapshot of the source, and the drill "
                "took none");
  const SourcePoint& sp = *options.source_point;
  const std::optional<Snapshot> snap = ParseSnapshot(sp.snapshot);
  const std::optional<wal::Lsn> l = wal::ParseLsn(sp.lsn);
  if (!snap || !l)
    throw Error(ErrorKind::kQuery,
                "unreadable snapshot of the source: '" + sp.snapshot + "' at '" + sp.lsn + "'");
  if (*l <= e.stop_lsn) {
    copy->reason = "the source's WAL position " + sp.lsn + " is not after the end of backup " +
                   backup.id + " (" + wal::FormatLsn(e.stop_lsn) +
                   "): the backup is not of the source's history";
    return false;
  }
  // The archive must hold every record up to L: bounded wait (an idle source archives its last
  // segment only at archive_timeout).
  auto tw = Clock::now();
  const auto wait_until = std::min(deadline, tw + target_.drill.snapshot_archive_wait);
  std::vector<Commit> commits;
  // L right after a page header (an idle source just after a WAL switch) is read up to the page's
  // start: the same records, and pg_waldump ends cleanly there (wal::WaldumpEnd).
  const wal::Lsn end = wal::WaldumpEnd(*l, wal::ArchiveSegmentSize(target_.backup.wal_archive));
  for (int attempt = 0;; ++attempt) {
    bool complete = false;
    std::string problem;
    commits = Commits(env_.pg, target_.backup.wal_archive, e.start_lsn, e.stop_timeline, cancel,
                      end, &complete, &problem);
    if (complete) break;
    if (Clock::now() + std::chrono::seconds(2) >= wait_until)
      throw Error(ErrorKind::kTimeout,
                  "the WAL archive did not reach the source's snapshot position " + sp.lsn +
                      " on timeline " + std::to_string(e.stop_timeline) + " within " +
                      FormatDuration(std::chrono::duration_cast<Duration>(Clock::now() - tw)) +
                      " (pg_waldump: " + problem +
                      "); an idle source archives its last segment only at archive_timeout: set "
                      "it, or raise drill.snapshot_archive_wait");
    cancel.SleepFor(std::chrono::seconds(attempt < 5 ? 1 : 3));
  }
  const Commit* last_seen = nullptr;
  const Commit* first_unseen = nullptr;
  std::size_t seen = 0;
  for (const auto& c : commits) {  // in LSN order
    if (snap->Sees(c.xid)) {
      last_seen = &c;
      ++seen;
    } else if (!first_unseen) {
      first_unseen = &c;
    }
  }
  auto at = [](const Commit* c) { return *wal::ParseLsn(c->lsn); };
  if (first_unseen && last_seen && at(first_unseen) < at(last_seen))
    throw Error(ErrorKind::kUnsupported,
                "no WAL point holds exactly the source's snapshot: transaction " +
                    std::to_string(first_unseen->xid) + ", committed after it, is at " +
                    first_unseen->lsn + ", before transaction " + std::to_string(last_seen->xid) +
                    ", which it sees, at " + last_seen->lsn +
                    " (two commits finished in the opposite order of their WAL records); the "
                    "next drill takes a new snapshot");
  if (first_unseen && at(first_unseen) < e.stop_lsn)
    throw Error(ErrorKind::kUnsupported, "the source's snapshot does not see transaction " +
                                             std::to_string(first_unseen->xid) + ", committed at " +
                                             first_unseen->lsn + " before the end of backup " +
                                             backup.id);
  std::string chose;
  if (last_seen && at(last_seen) >= e.stop_lsn) {
    how->settings.push_back({"recovery_target_lsn", ConfQuote(last_seen->lsn)});
    how->settings.push_back({"recovery_target_inclusive", "on"});
    *stop_commit_time = last_seen->time;
    chose = "the commit of transaction " + std::to_string(last_seen->xid) + " at " + last_seen->lsn;
  } else {
    // Nothing S sees committed after the backup's end: the consistency point is S's point.
    how->settings.push_back({"recovery_target", "'immediate'"});
    chose = "consistency (no commit the snapshot sees after the backup's end)";
  }
  copy->stages.push_back(
      {"recovery", "choose target", std::chrono::duration<double>(Clock::now() - tw).count(),
       "source snapshot " + sp.snapshot + " at " + sp.lsn + ": " + std::to_string(commits.size()) +
           " commits after the backup's start, " + std::to_string(seen) +
           " seen by the snapshot; recover to " + chose});
  LogInfo("recovery target chosen from the source's snapshot",
          {{"snapshot", sp.snapshot}, {"lsn", sp.lsn}, {"target", chose}});
  return true;
}

}  // namespace

void ReadBasebackupDrillOptions(config::Reader& r, BasebackupDrillOptions* out) {
  if (r.Str("recovery_target", &out->recovery_target)) {
    const std::string& t = out->recovery_target;
    const bool offset = t.size() > 1 && t[0] == '-' && ParseDuration(t.substr(1)).has_value();
    if (t != "latest" && t != "immediate" && t != "random" && t != "snapshot" && !offset &&
        !ParseTimestamp(t))
      r.Error("recovery_target",
              "must be \"latest\", \"immediate\", \"random\", \"snapshot\", an offset such as "
              "\"-1h\" or a time such as \"2026-11-24 03:00:00+00\"");
  }
  r.Dur("snapshot_archive_wait", &out->snapshot_archive_wait, config::Reader::Zero::kRefused);
}

std::unique_ptr<BackupSource> MakeBasebackupSource(const Environment& env,
                                                   const TargetConfig& target) {
  // backup.path = "s3://...": listed and downloaded by the S3 source, restored by this one.
  if (target.backup.paths.size() == 1 && IsS3Url(target.backup.paths[0]))
    return MakeS3BasebackupSource(env, target);
  return std::make_unique<BasebackupSource>(env, target);
}

}  // namespace rw
