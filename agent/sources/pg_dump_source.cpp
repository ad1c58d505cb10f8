#include "agent/sources/pg_dump_source.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/path_guard.h"
#include "agent/pg/pg_conn.h"
#include "agent/pg/process.h"
#include "agent/secrets.h"
#include "agent/sources/pg_dump_discovery.h"
#include "agent/sources/pg_dump_text.h"
#include "agent/sources/s3_source.h"

namespace rw {
namespace {

using namespace pgdump;
using Clock = std::chrono::steady_clock;

// Bytes of `pg_restore -l` output kept: the header comes first and RunProcess keeps the tail.
constexpr std::size_t kListCapture = 64u << 20;
// Bytes of restore-tool stderr kept (the first errors matter most; thousands of errors fit).
constexpr std::size_t kErrCapture = 8u << 20;
// Plain dumps: how much text is read for the header.
constexpr std::size_t kPlainHead = 64 * 1024;
// An archive time later than the file's mtime by more than this is not believed (a pg_dump in
// another time zone than the agent): the file's own times are used instead.
constexpr double kClockSlack = 60;

// What probing one backup found; cached by (path, size, mtime).
struct Probe {
  DumpFormat format = DumpFormat::kUnknown;
  DumpHeader header;
  std::string problem;  // why it cannot be restored; empty when it looks restorable
  ErrorKind problem_kind = ErrorKind::kBadInput;
};

std::string JoinDirs(const std::vector<std::string>& dirs) {
  std::string out;
  for (const auto& d : dirs) out += (out.empty() ? "" : ", ") + d;
  return out;
}

std::string Seconds(Duration d) { return FormatDuration(d); }

// What the progress ticker asks the sandbox during a load (on the ticker's thread, every
// interval): the database's size so far and the COPY in flight (pg_stat_progress_copy, 14+).
DrillProgress::Probe LoadProbe(const std::string& conninfo) {
  return [conninfo] {
    DrillProgress::Probed p;
    auto c = ConnectSandbox(conninfo, std::chrono::seconds(5));
    pqxx::nontransaction tx(*c);
    p.bytes_done = tx.exec1("select pg_database_size(current_database())")[0].as<std::uint64_t>();
    try {
      for (const auto& row :
           tx.exec("select relid::regclass::text, tuples_processed from pg_stat_progress_copy"
                   " where datname = current_database() order by pid limit 3"))
        p.note += (p.note.empty() ? "COPY " : ", ") + row[0].as<std::string>("?") + " " +
                  std::to_string(row[1].as<std::int64_t>(0)) + " rows";
    } catch (const std::exception&) {
      // An older scratch server has no pg_stat_progress_copy: the size alone says enough.
    }
    return p;
  };
}

// A command line as the runbook keeps it: every word with secrets masked.
std::vector<std::string> Redacted(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (const auto& a : argv) out.push_back(Redact(a));
  return out;
}

// Whether the agent may read the backup at all (a file, or a directory dump's toc.dat). An
// unreadable backup says nothing about the backup: it is an error of the environment (kIo), not
// a failure of the backup. Returns the problem, or "" when readable (or not openable for a reason
// the format probe reports better, such as a missing toc.dat).
std::string Unreadable(const Entry& e) {
  std::string path = e.is_dir ? e.path + "/toc.dat" : e.path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return {};
  }
  int err = errno;
  if (err != EACCES && err != EPERM && err != EIO) return {};
  std::string who = "uid " + std::to_string(geteuid());
  if (struct passwd* pw = getpwuid(geteuid())) who = pw->pw_name;
  return "cannot read " + path + ": " + std::strerror(err) + " (the agent runs as " + who + ")";
}

// The error kind for a restore tool's failure: the environment's fault (disk, connection) is not
// the backup's.
ErrorKind KindOf(const std::vector<ToolError>& errors) {
  for (const auto& e : errors) {
    if (LooksLikeDiskFull(e.context)) return ErrorKind::kIo;
    // The backup may be fine: the agent (or its restore tool) was not let in.
    if (e.context.find("Permission denied") != std::string::npos) return ErrorKind::kIo;
    if (e.context.find("server closed the connection unexpectedly") != std::string::npos ||
        e.context.find("connection to server") != std::string::npos ||
        e.context.find("terminating connection") != std::string::npos)
      return ErrorKind::kProcess;
  }
  return ErrorKind::kBadInput;
}

// After a restore tool failed: when what died was not the backup's fault, throws the one-line
// reason naming it, as an error of the environment (kProcess): the sandbox's server stopped
// answering (killed, crashed), or the tool itself was killed by a signal. Otherwise returns.
void ThrowIfSomethingDied(const ProcessResult& r, const SandboxHost& sandbox,
                          const std::string& tool, const std::string& file,
                          const std::string& first_error) {
  std::string ping = sandbox.ConnInfo("postgres") + " connect_timeout=5";
  if (PQping(ping.c_str()) == PQPING_NO_RESPONSE) {
    throw Error(ErrorKind::kProcess,
                "the " + sandbox.kind() + " sandbox's server died during the restore of " + file +
                    (first_error.empty() ? "" : " (" + tool + ": " + first_error + ")"));
  }
  if (r.term_signal != 0) {
    const char* name = strsignal(r.term_signal);
    throw Error(ErrorKind::kProcess,
                tool + " was killed by signal " + std::to_string(r.term_signal) +
                    (name ? std::string(" (") + name + ")" : "") + " while restoring " + file);
  }
}

// A pg_dump source: see pg_dump_source.h. Config and environment are copied and immutable; the
// probe cache is the only mutable state and is guarded by mu_, so Catalogue() (monitor thread)
// and Latest()/Restore() (drill thread) may run at once. Probing itself runs outside the lock.
class PgDumpSource : public BackupSource {
 public:
  PgDumpSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target.name), cfg_(target.backup) {}

  std::string type() const override { return "pg_dump"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    Scan s = DoScan(cancel);
    BackupCatalogue c;
    auto& k = c.by_kind["logical"];
    k.count = s.backups.size();
    if (const BackupInfo* n = SelectNewest(s.backups)) k.newest = *n;
    for (const auto& b : s.backups)
      if (!k.oldest || b.completed_at < k.oldest->completed_at) k.oldest = b;
    c.backups = s.backups;
    c.notes = std::move(s.notes);
    if (s.running > 0) c.running["logical"] = s.running;
    return c;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    Scan s = DoScan(cancel);
    const BackupInfo* n = SelectNewest(s.backups);
    if (!n) {
      std::string msg = "no backup matches '" + cfg_.pattern + "' in " + JoinDirs(cfg_.paths);
      if (!s.notes.empty()) {
        msg += " (";
        for (std::size_t i = 0; i < s.notes.size(); ++i) msg += (i ? "; " : "") + s.notes[i];
        msg += ")";
      }
      throw Error(ErrorKind::kBadInput, msg);
    }
    return *n;
  }

  // The contract: asks the host for a fresh running cluster, then loads the dump into it.
  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;
  // Loads into an already started sandbox; an unusable backup is thrown as Error(kBadInput).
  RestoreOutcome Restore(const BackupInfo& backup, Sandbox& sandbox, const RestoreOptions& options,
                         CancelToken& cancel) override;

 private:
  // What loading found: the outcome, or why the backup is unusable (a finding).
  struct Loaded {
    RestoreOutcome out;
    std::string unusable;  // non-empty: the backup cannot be restored, and why
    std::string tool;      // the sub-stage's name: pg_restore or psql
    // The command lines run, in order (secrets masked), for the runbook.
    std::vector<std::vector<std::string>> commands;
    std::vector<std::string> roles_created;
  };
  Loaded Load(const BackupInfo& backup, SandboxHost& sandbox, const RestoreOptions& options,
              CancelToken& cancel);

  struct Scan {
    std::vector<BackupInfo> backups;  // complete ones
    std::vector<std::string> notes;
    // Dumps being written (restorewatch_backup_running): a file whose size or mtime changed
    // between two looks `settle` apart, or a temporary name or a directory without toc.dat yet
    // that changed within BackupCatalogue::kRunningQuietSeconds (pg_dump -Fd writes toc.dat
    // last; a pg_dump that died leaves one that soon stops counting).
    std::size_t running = 0;
  };

  Scan DoScan(CancelToken& cancel);
  std::vector<Entry> Settled(std::vector<Entry> entries, CancelToken& cancel,
                             std::vector<std::string>* notes, std::size_t* running) const;
  Probe ProbeEntry(const Entry& e, CancelToken* cancel);
  BackupInfo ToInfo(const Entry& e, const Probe& p, std::vector<std::string>* notes) const;
  static std::string NewestGlobals(const std::vector<Entry>& files);

  ProcessSpec ClientSpec(const SandboxHost& sandbox, Clock::time_point deadline) const;
  // Returns why the globals file made the backup unusable, or "".
  std::string RunGlobals(const std::string& path, const std::string& file_for_msgs,
                         SandboxHost& sandbox, const RestoreOptions& options,
                         Clock::time_point deadline, CancelToken& cancel, RestoreOutcome* out,
                         std::vector<std::vector<std::string>>* commands) const;

  const Environment env_;
  const std::string target_;
  const BackupConfig cfg_;
  std::mutex mu_;
  std::map<std::string, std::pair<Entry, Probe>> cache_;  // path -> (look it was probed at, probe)
};

// Entries written to within the last `settle` get a second look `settle` later; those whose size
// or mtime changed meanwhile are still being written. Entries older than that have already been
// quiet for a whole settle period, which is what a second look would show.
std::vector<Entry> PgDumpSource::Settled(std::vector<Entry> entries, CancelToken& cancel,
                                         std::vector<std::string>* notes,
                                         std::size_t* running) const {
  const double settle = ToSeconds(cfg_.settle);
  const double now = NowUnix();
  bool any_recent = false;
  for (const auto& e : entries) any_recent |= static_cast<double>(e.mtime_ns) / 1e9 > now - settle;
  if (!any_recent || settle <= 0) return entries;
  if (!cancel.SleepFor(cfg_.settle)) throw Error(ErrorKind::kCancelled, "cancelled");
  std::vector<Entry> out;
  for (auto& e : entries) {
    if (static_cast<double>(e.mtime_ns) / 1e9 <= now - settle) {
      out.push_back(std::move(e));
      continue;
    }
    Entry again;
    if (!Look(e.path, &again)) {
      notes->push_back(e.name + ": skipped, it disappeared while being looked at");
    } else if (!(again == e)) {
      ++*running;
      notes->push_back(e.name + ": skipped, still being written (" +
                       (again.size != e.size ? "size" : "mtime") + " changed within " +
                       Seconds(cfg_.settle) + ")");
    } else {
      out.push_back(std::move(again));
    }
  }
  return out;
}

PgDumpSource::Scan PgDumpSource::DoScan(CancelToken& cancel) {
  Scan s;
  std::vector<Entry> candidates;
  const double quiet_since = NowUnix() - BackupCatalogue::kRunningQuietSeconds;
  auto recent = [&](const Entry& e) { return static_cast<double>(e.mtime_ns) / 1e9 > quiet_since; };
  for (auto& e : ListMatching(cfg_.paths, cfg_.pattern)) {
    if (!cfg_.globals_pattern.empty() &&
        fnmatch(cfg_.globals_pattern.c_str(), e.name.c_str(), 0) == 0)
      continue;                             // the globals file is not a backup of its own
    if (IsReferenceName(e.name)) continue;  // `restorewatch dump`'s reference of a dump beside it
    if (IsInFlightName(e.name)) {
      s.notes.push_back(e.name + ": skipped, a temporary name (being written)");
      if (recent(e)) ++s.running;
      continue;
    }
    if (e.is_dir && SniffPath(e.path).format != DumpFormat::kDirectory) {
      // pg_dump -Fd writes toc.dat last: without it the directory is in flight or not a dump.
      s.notes.push_back(e.name + ": skipped, a directory without toc.dat");
      if (recent(e)) ++s.running;
      continue;
    }
    candidates.push_back(std::move(e));
  }
  // Globals files get the same second look, in the same wait.
  std::set<std::string> globals_paths;
  if (!cfg_.globals_pattern.empty()) {
    for (auto& e : ListMatching(cfg_.paths, cfg_.globals_pattern)) {
      if (e.is_dir || IsInFlightName(e.name)) continue;
      globals_paths.insert(e.path);
      candidates.push_back(std::move(e));
    }
  }
  // A globals file being written counts too: the same backup job writes it.
  candidates = Settled(std::move(candidates), cancel, &s.notes, &s.running);
  std::vector<Entry> globals_files;
  for (auto it = candidates.begin(); it != candidates.end();) {
    if (globals_paths.count(it->path)) {
      globals_files.push_back(std::move(*it));
      it = candidates.erase(it);
    } else {
      ++it;
    }
  }
  std::string globals = NewestGlobals(globals_files);

  std::map<std::string, bool> seen;
  for (const auto& e : candidates) {
    Probe p = ProbeEntry(e, &cancel);
    if (!p.problem.empty()) s.notes.push_back(p.problem);
    BackupInfo b = ToInfo(e, p, &s.notes);
    b.globals_path = globals;
    s.backups.push_back(std::move(b));
    seen[e.path] = true;
  }
  // Forget probes of files that are gone, so the cache does not grow without bound.
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = cache_.begin(); it != cache_.end();)
    it = seen.count(it->first) ? std::next(it) : cache_.erase(it);
  return s;
}

// The newest settled globals file (by mtime, then name), or "".
std::string PgDumpSource::NewestGlobals(const std::vector<Entry>& files) {
  const Entry* best = nullptr;
  for (const auto& e : files)
    if (!best || e.mtime_ns > best->mtime_ns ||
        (e.mtime_ns == best->mtime_ns && e.path > best->path))
      best = &e;
  return best ? best->path : "";
}

Probe PgDumpSource::ProbeEntry(const Entry& e, CancelToken* cancel) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = cache_.find(e.path);
    if (it != cache_.end() && it->second.first == e) return it->second.second;
  }
  Probe p;
  if (std::string why = Unreadable(e); !why.empty()) {
    // Not cached: the permissions may be fixed without the file changing.
    p.problem = why;
    p.problem_kind = ErrorKind::kIo;
    return p;
  }
  Sniff sniff = SniffPath(e.path);
  p.format = sniff.format;
  if (p.format == DumpFormat::kUnknown) {
    p.problem = e.path + " is not a pg_dump backup: " + sniff.problem;
  } else if (IsArchive(p.format)) {
    ProcessSpec spec;
    spec.argv = {env_.pg.Path("pg_restore"), "-l", e.path};
    spec.timeout = std::chrono::minutes(2);
    spec.capture_limit = kListCapture;
    ProcessResult r = RunProcess(spec, cancel);
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while reading " + e.path);
    if (r.ok()) {
      p.header = ParseArchiveList(r.out);
    } else {
      auto errs = ParsePgRestoreErrors(r.err, nullptr);
      std::string why = errs.empty() ? r.Summary() : JoinFirst(errs, 3);
      p.problem = "pg_restore cannot read " + e.path + ": " + why;
      if (why.find("Permission denied") != std::string::npos) p.problem_kind = ErrorKind::kIo;
      int vmaj = 0, vmin = 0;
      auto at = why.find("unsupported version (");
      if (at != std::string::npos) sscanf(why.c_str() + at + 21, "%d.%d", &vmaj, &vmin);
      // Archive format 1.x newer than this pg_restore knows; anything else is a damaged header.
      if (vmaj == 1 && vmin > 14 && vmin < 100) {
        p.problem_kind = ErrorKind::kUnsupported;
        p.problem = e.path + " was written by a newer pg_dump than pg_restore " +
                    std::to_string(env_.pg.major) + " in " + env_.pg.bin_dir + " can read: " + why;
      }
    }
  } else {
    std::string dec = Decompressor(p.format);
    std::string dec_path;
    if (!dec.empty()) {
      auto found = FindProgram(dec);
      if (!found) {
        p.problem = e.path + " is " + dec + "-compressed but " + dec + " is not installed";
        p.problem_kind = ErrorKind::kUnsupported;
      } else {
        dec_path = *found;
      }
    }
    if (p.problem.empty()) {
      std::string head = ReadHead(e.path, dec_path, kPlainHead);
      if (!dec.empty()) {
        Sniff inner = SniffBytes(head);
        if (inner.format == DumpFormat::kCustom || inner.format == DumpFormat::kTar) {
          p.problem = e.path + " is a " + dec +
                      "-compressed pg_dump archive: decompress it for "
                      "pg_restore, or dump with pg_dump -Fc -Z instead";
          p.problem_kind = ErrorKind::kUnsupported;
        } else if (inner.format != DumpFormat::kPlain) {
          p.problem = e.path + " is not a pg_dump backup once decompressed: " +
                      (inner.problem.empty() ? "unreadable" : inner.problem);
        }
      }
      p.header = ParsePlainHeader(head);
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  cache_[e.path] = {e, p};
  return p;
}

BackupInfo PgDumpSource::ToInfo(const Entry& e, const Probe& p,
                                std::vector<std::string>* notes) const {
  BackupInfo b;
  b.id = e.name;
  b.kind = "logical";
  b.tool = "pg_dump";
  b.format = FormatName(p.format);
  b.path = e.path;
  b.size_bytes = e.size;
  b.completed_at = static_cast<double>(e.mtime_ns) / 1e9;
  double fallback = e.birth && *e.birth <= b.completed_at ? *e.birth : b.completed_at;
  if (p.header.started_at && *p.header.started_at <= b.completed_at + kClockSlack) {
    b.started_at = *p.header.started_at;
    b.started_exact = true;
  } else {
    if (p.header.started_at)
      notes->push_back(e.name + ": its header time " + FormatTimestamp(*p.header.started_at) +
                       " is after the file was written; pg_dump may run in another time zone than "
                       "the agent, so the file's own time is used");
    b.started_at = fallback;
  }
  b.database = p.header.database;
  b.server_major = p.header.server_major;
  b.dump_tool_major = p.header.dump_tool_major;
  b.reference_path = ReferenceBeside(e.path);
  return b;
}

ProcessSpec PgDumpSource::ClientSpec(const SandboxHost& sandbox, Clock::time_point deadline) const {
  ProcessSpec spec;
  spec.env = sandbox.ClientEnv();
  spec.env["PGOPTIONS"] = "";  // nothing from the agent's environment alters the restore
  spec.env["PGAPPNAME"] = "restorewatch-restore";
  spec.stdout_path = "-";
  spec.capture_limit = kErrCapture;
  auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
  if (left <= Duration::zero()) throw Error(ErrorKind::kTimeout, "the restore ran out of time");
  spec.timeout = left;
  return spec;
}

// Runs a pg_dumpall --globals-only file into the sandbox's postgres database, statement by
// statement (no ON_ERROR_STOP): "already exists" (the postgres role, roles created before) is
// expected; any other error not allowed by the config makes the backup unusable (returned).
std::string PgDumpSource::RunGlobals(const std::string& path, const std::string& file_for_msgs,
                                     SandboxHost& sandbox, const RestoreOptions& options,
                                     Clock::time_point deadline, CancelToken& cancel,
                                     RestoreOutcome* out,
                                     std::vector<std::vector<std::string>>* commands) const {
  ProcessSpec spec = ClientSpec(sandbox, deadline);
  spec.argv = {env_.pg.Path("psql"), "-X", "-q", "-d", sandbox.ConnInfo("postgres"), "-f", path};
  commands->push_back(Redacted(spec.argv));
  ProcessResult r = RunProcess(spec, &cancel);
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while restoring " + path);
  if (r.timed_out) throw Error(ErrorKind::kTimeout, "psql timed out on " + path);
  // Roles such as postgres exist in every sandbox already.
  std::vector<ToolError> errs;
  for (auto& e : ParsePsqlErrors(r.err))
    if (e.line.find("already exists") == std::string::npos) errs.push_back(e);
  std::vector<ToolError> bad = RejectedErrors(errs, options.allow_errors, &out->accepted_errors);
  if (!r.ok() || !bad.empty()) {
    const ErrorKind kind = bad.empty() ? ErrorKind::kProcess : KindOf(bad);
    const std::string why = "globals file " + path + " (for " + file_for_msgs +
                            ") failed: " + (bad.empty() ? r.Summary() : JoinFirst(bad, 3));
    if (kind == ErrorKind::kBadInput) return why;
    throw Error(kind, why);
  }
  return {};
}

RestoredCopy PgDumpSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                   const RestoreOptions& options, CancelToken& cancel) {
  RestoredCopy copy;
  copy.not_run = {{"fetch", "pg_dump reads the file in place"}, {"recovery", "logical restore"}};
  SandboxCapabilities needed;
  needed.can_create_cluster = true;
  RequireCapabilities(host, needed, "the pg_dump source");
  auto t0 = Clock::now();
  if (options.progress) options.progress->Step("sandbox start");
  host.Start(backup.server_major, cancel);
  copy.stages.push_back({"restore", "sandbox start",
                         std::chrono::duration<double>(Clock::now() - t0).count(),
                         host.kind() + " sandbox ready"});
  auto t1 = Clock::now();
  Loaded l = Load(backup, host, options, cancel);
  const double load_s = std::chrono::duration<double>(Clock::now() - t1).count();
  copy.stages.push_back({"restore", l.tool, load_s, l.out.tool_summary, l.commands});
  copy.roles_created = l.roles_created;
  copy.accepted_errors = l.out.accepted_errors;
  if (!l.unusable.empty()) {
    copy.usable = false;
    copy.reason = l.unusable;
    return copy;
  }
  copy.usable = true;
  copy.databases = {l.out.database};
  copy.conninfo = host.LibpqConnInfo(l.out.database);
  // A logical copy holds what the dump's snapshot saw; no LSN or timeline applies.
  copy.consistent_at = backup.started_at;
  copy.consistent_at_exact = backup.started_exact;
  copy.summary = l.out.tool_summary;
  return copy;
}

RestoreOutcome PgDumpSource::Restore(const BackupInfo& backup, Sandbox& sandbox,
                                     const RestoreOptions& options, CancelToken& cancel) {
  Loaded l = Load(backup, sandbox, options, cancel);
  if (!l.unusable.empty()) throw Error(ErrorKind::kBadInput, l.unusable);
  return l.out;
}

PgDumpSource::Loaded PgDumpSource::Load(const BackupInfo& backup, SandboxHost& sandbox,
                                        const RestoreOptions& options, CancelToken& cancel) {
  const auto deadline = Clock::now() + options.timeout;
  cancel.ThrowIfCancelled();
  Loaded loaded;
  RestoreOutcome& out = loaded.out;
  Entry e;
  if (!Look(backup.path, &e)) throw Error(ErrorKind::kIo, "backup " + backup.path + " is gone");
  Probe p = ProbeEntry(e, &cancel);
  loaded.tool = IsArchive(p.format) ? "pg_restore" : "psql";
  if (!p.problem.empty()) {
    if (p.problem_kind != ErrorKind::kBadInput) throw Error(p.problem_kind, p.problem);
    loaded.unusable = p.problem;
    return loaded;
  }
  const std::string& file = backup.path;

  int tool_major = p.header.dump_tool_major ? p.header.dump_tool_major : backup.dump_tool_major;
  int server_major = p.header.server_major ? p.header.server_major : backup.server_major;
  if (tool_major > env_.pg.major)
    throw Error(ErrorKind::kUnsupported,
                "dump made by pg_dump " + std::to_string(tool_major) + " needs PostgreSQL " +
                    std::to_string(tool_major) + " binaries; have " +
                    std::to_string(env_.pg.major) + " in " + env_.pg.bin_dir,
                "install PostgreSQL " + std::to_string(tool_major) + " and set agent.pg_bin_dir");
  if (server_major > sandbox.ServerMajor())
    throw Error(ErrorKind::kUnsupported, "dump of a PostgreSQL " + std::to_string(server_major) +
                                             " server needs a sandbox of PostgreSQL " +
                                             std::to_string(server_major) + " or newer; the " +
                                             sandbox.kind() + " sandbox is " +
                                             std::to_string(sandbox.ServerMajor()));

  std::string dec = Decompressor(p.format), dec_path;
  if (!dec.empty()) {
    auto found = FindProgram(dec);
    if (!found)
      throw Error(ErrorKind::kUnsupported,
                  file + " is " + dec + "-compressed but " + dec + " is not installed",
                  "install " + dec);
    dec_path = *found;
  }

  const bool archive = IsArchive(p.format);
  const bool ours_alone = sandbox.capabilities().exclusive_server;
  // A globals file alters roles server-wide (passwords too): only on a server that is ours alone.
  const bool globals = !backup.globals_path.empty() && ours_alone;
  std::string connect_db;
  if (!archive && p.header.creates_database) {
    // pg_dump --create: the script creates its database and connects to it itself.
    if (!ours_alone)
      throw Error(ErrorKind::kUnsupported,
                  "plain dump " + file + " was made with --create: it would create database '" +
                      p.header.database + "' on the " + sandbox.kind() +
                      " server, outside the agent's marks",
                  "dump without --create, or use the ephemeral sandbox");
    out.database = p.header.database;
    connect_db = "postgres";
  } else {
    std::string wanted = !options.database.empty()  ? options.database
                         : !backup.database.empty() ? backup.database
                                                    : "restored";
    out.database = sandbox.CreateDatabase(wanted);
    connect_db = out.database;
  }
  if (options.progress) {
    options.progress->Step(loaded.tool);
    options.progress->SetProbe(LoadProbe(sandbox.LibpqConnInfo(out.database)), "restored");
  }
  // The probe reads the sandbox: it must stop before the sandbox may go away.
  struct ClearProbe {
    DrillProgress* p;
    ~ClearProbe() {
      if (p) p->ClearProbe();
    }
  } clear_probe{options.progress};
  if (globals) {
    loaded.unusable = RunGlobals(backup.globals_path, file, sandbox, options, deadline, cancel,
                                 &out, &loaded.commands);
    if (!loaded.unusable.empty()) return loaded;
  }

  if (archive) {
    ProcessSpec spec = ClientSpec(sandbox, deadline);
    spec.argv = {env_.pg.Path("pg_restore"), "-d", sandbox.ConnInfo(connect_db),
                 "--no-tablespaces"};
    std::string summary = "pg_restore";
    // Tar archives cannot be restored in parallel.
    if (p.format != DumpFormat::kTar && options.jobs > 1) {
      spec.argv.insert(spec.argv.end(), {"-j", std::to_string(options.jobs)});
      summary += " -j " + std::to_string(options.jobs);
    }
    if (!globals) {
      // Without the roles of the source, owners and grants cannot be restored.
      spec.argv.insert(spec.argv.end(), {"--no-owner", "--no-privileges"});
      summary += " --no-owner --no-privileges";
    }
    spec.argv.push_back(file);
    loaded.commands.push_back(Redacted(spec.argv));
    ProcessResult r = RunProcess(spec, &cancel);
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while restoring " + file);
    if (r.timed_out)
      throw Error(ErrorKind::kTimeout,
                  "pg_restore timed out after " + FormatDuration(options.timeout) + " on " + file);
    int ignored = -1;
    auto errs = ParsePgRestoreErrors(r.err, &ignored);
    if (!r.ok() || !errs.empty()) {
      std::vector<ToolError> bad = RejectedErrors(errs, options.allow_errors, &out.accepted_errors);
      // pg_restore went through the whole archive only when it ends with "errors ignored on
      // restore: N"; anything else (a fatal error, a signal) fails whatever the allow-list says.
      bool completed =
          r.term_signal == 0 && ignored >= 0 && ignored <= static_cast<int>(errs.size());
      if (!bad.empty() || !completed) {
        const auto& shown = bad.empty() ? errs : bad;
        ThrowIfSomethingDied(r, sandbox, "pg_restore", file,
                             shown.empty() ? "" : JoinFirst(shown, 1));
        const ErrorKind kind = shown.empty() ? ErrorKind::kProcess : KindOf(shown);
        const std::string why = "pg_restore failed on " + file + ": " +
                                (shown.empty() ? r.Summary() : JoinFirst(shown, 3));
        if (kind != ErrorKind::kBadInput) throw Error(kind, why);
        loaded.unusable = why;
        return loaded;
      }
    }
    out.tool_summary = summary + " (" + FormatName(p.format) + " format)";
  } else {
    std::string summary = dec.empty() ? "psql" : dec + " -dc | psql";
    std::size_t roles_created = 0;
    if (!globals) {
      // psql cannot skip OWNER TO and GRANT: create the roles they name (NOLOGIN) first.
      RoleScanner scan;
      auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
      ForEachLine(
          file, dec_path,
          [&scan](const std::string& line) {
            scan.Line(line);
            return true;
          },
          &cancel, left);
      auto created = sandbox.CreateRoles({scan.roles().begin(), scan.roles().end()});
      roles_created = created.size();
      loaded.roles_created = created;
    }
    ProcessSpec psql = ClientSpec(sandbox, deadline);
    // With an allow-list psql must go on after an error to let the rest be judged; without one,
    // the first error ends the restore.
    psql.argv = {env_.pg.Path("psql"),
                 "-X",
                 "-q",
                 "-v",
                 options.allow_errors.empty() ? "ON_ERROR_STOP=1" : "ON_ERROR_STOP=0",
                 "-d",
                 sandbox.ConnInfo(connect_db),
                 "-f",
                 dec.empty() ? file : "-"};
    ProcessResult r;
    if (dec.empty()) {
      loaded.commands.push_back(Redacted(psql.argv));
      r = RunProcess(psql, &cancel);
    } else {
      ProcessSpec producer;
      producer.argv = {dec_path, "-dc", file};
      if (dec == "zstd") producer.argv.insert(producer.argv.begin() + 1, "-q");
      producer.timeout = psql.timeout;
      producer.capture_limit = 64 * 1024;
      // A pipeline: the decompressor, then psql reading its output.
      loaded.commands.push_back(Redacted(producer.argv));
      loaded.commands.push_back(Redacted(psql.argv));
      r = RunPipeline(producer, psql, &cancel);
    }
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while restoring " + file);
    if (r.timed_out)
      throw Error(ErrorKind::kTimeout,
                  "psql timed out after " + FormatDuration(options.timeout) + " on " + file);
    auto errs = ParsePsqlErrors(r.err);
    std::vector<ToolError> bad = RejectedErrors(errs, options.allow_errors, &out.accepted_errors);
    if (!r.ok() || !bad.empty()) {
      const auto& shown = bad.empty() ? errs : bad;
      ThrowIfSomethingDied(r, sandbox, "psql", file, shown.empty() ? "" : JoinFirst(shown, 1));
      const ErrorKind kind = shown.empty() ? ErrorKind::kProcess : KindOf(shown);
      const std::string why =
          "psql failed on " + file + ": " + (shown.empty() ? r.Summary() : JoinFirst(shown, 3));
      if (kind != ErrorKind::kBadInput) throw Error(kind, why);
      loaded.unusable = why;
      return loaded;
    }
    out.tool_summary = summary + " (" + FormatName(p.format) + " format)";
    if (roles_created)
      out.tool_summary += ", " + std::to_string(roles_created) + " role(s) created first";
  }
  if (globals) out.tool_summary += " after globals " + backup.globals_path;
  LogDebug("pg_dump backup restored", {{"target", target_},
                                       {"backup", backup.id},
                                       {"database", out.database},
                                       {"tool", out.tool_summary}});
  return loaded;
}

}  // namespace

std::unique_ptr<BackupSource> MakePgDumpSource(const Environment& env, const TargetConfig& target) {
  // backup.path = "s3://...": listed and downloaded by the S3 source, restored by this one.
  if (target.backup.paths.size() == 1 && IsS3Url(target.backup.paths[0]))
    return MakeS3PgDumpSource(env, target);
  return std::make_unique<PgDumpSource>(env, target);
}

}  // namespace rw
