#include "agent/sources/command_source.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/errors.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/pg/process.h"
#include "agent/sources/basebackup_source.h"
#include "agent/sources/fetch_dir.h"
#include "agent/sources/pg_dump_source.h"
#include "agent/units.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool ValidId(const std::string& id) {
  if (id.empty() || id == "." || id == "..") return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string("._-:+@").find(c) == std::string::npos)
      return false;
  return true;
}

// The tail of a command's stderr, as one line: its last three non-empty lines joined by " | ",
// at most 500 bytes.
std::string StderrQuote(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i)
    out += (out.empty() ? "" : " | ") + lines[i];
  if (out.size() > 500) out = "..." + out.substr(out.size() - 497);
  return out;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
    s.replace(p, from.size(), to);
  return s;
}

// Names in `dir` (no . and ..), sorted.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}
bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class CommandSource : public BackupSource {
 public:
  CommandSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target), opt_(target.backup.command) {}
  std::string type() const override { return "command"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    BackupCatalogue out;
    for (const auto& b : List(cancel)) {
      if (b.running)
        ++out.running[b.kind];  // "running": true in the list: in progress, not a backup yet
      else
        out.Add(b.kind, b);
    }
    return out;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    std::vector<BackupInfo> list = List(cancel);
    list.erase(std::remove_if(list.begin(), list.end(), [](const auto& b) { return b.running; }),
               list.end());
    if (list.empty()) throw Error(ErrorKind::kBadInput, "the list command printed no backup ([])");
    return *std::max_element(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.started_at < b.started_at;
    });
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  std::string Format() const {
    return opt_.format == CommandFormat::kPgDump ? "pg_dump" : "basebackup";
  }

  // Runs one of the user's commands (`what`: "list" or "fetch"), bounded by backup.timeout and
  // `cancel`; throws Error quoting its stderr unless it succeeded.
  ProcessResult Run(const char* what, std::vector<std::string> argv, const std::string& cwd,
                    CancelToken& cancel) const {
    ProcessSpec spec;
    if (opt_.shell) {
      std::string line;
      for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
      argv = {"/bin/sh", "-c", line};
    }
    spec.argv = std::move(argv);
    spec.run_as = env_.run_as;
    spec.cwd = cwd;
    spec.timeout = opt_.timeout;
    spec.capture_limit = 16 * 1024 * 1024;
    spec.env["RESTOREWATCH_TARGET"] = target_.name;
    ProcessResult r;
    try {
      r = RunProcess(spec, &cancel);
    } catch (const Error& e) {
      throw Error(ErrorKind::kProcess,
                  std::string("the ") + what + " command cannot start: " + e.what());
    }
    if (r.cancelled) throw Error(ErrorKind::kCancelled, "drill cancelled");
    const std::string quote = StderrQuote(r.err);
    if (r.timed_out)
      throw Error(ErrorKind::kTimeout,
                  std::string("the ") + what + " command did not finish within " +
                      FormatDuration(opt_.timeout) + " (backup.timeout) and was killed" +
                      (quote.empty() ? "" : "; stderr: " + quote));
    if (!r.ok())
      throw Error(ErrorKind::kProcess,
                  std::string("the ") + what + " command failed (" +
                      (r.term_signal ? "killed by signal " + std::to_string(r.term_signal)
                                     : "exit code " + std::to_string(r.exit_code)) +
                      ")" + (quote.empty() ? "" : ": " + quote));
    return r;
  }

  std::vector<BackupInfo> List(CancelToken& cancel) const {
    ProcessResult r = Run("list", opt_.list, "", cancel);
    std::vector<BackupInfo> out;
    std::string why;
    if (!ParseCommandList(r.out, opt_.format == CommandFormat::kPgDump ? "logical" : "full", &out,
                          &why))
      throw Error(ErrorKind::kProcess,
                  "the list command's output does not follow the contract "
                  "(docs/command-source.md): " +
                      why);
    for (auto& b : out) b.format = Format();
    return out;
  }

  const Environment& env_;
  const TargetConfig& target_;
  const CommandBackupOptions::Command& opt_;
};

RestoredCopy CommandSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                    const RestoreOptions& options, CancelToken& cancel) {
  if (opt_.format == CommandFormat::kBasebackup && target_.backup.wal_archive.empty())
    throw Error(ErrorKind::kConfig,
                "backup.wal_archive is required with format = \"basebackup\" (recovery reads it)");
  if (!ValidId(backup.id)) throw Error(ErrorKind::kBadInput, "bad backup id '" + backup.id + "'");
  if (options.begin_stage) options.begin_stage("fetch");
  FetchDir dir(env_.work_dir, target_.name, env_.run_as);
  std::vector<std::string> argv;
  for (const auto& a : opt_.fetch)
    argv.push_back(Replace(Replace(a, "{id}", backup.id), "{dir}", dir.path()));
  auto t = Clock::now();
  Run("fetch", argv, dir.path(), cancel);
  const double fetch_s = Since(t);

  // What fetch left: the backup itself in {dir} (a directory-format dump, a pg_basebackup
  // output), or one file or directory inside it.
  std::string path = dir.path();
  const auto entries = Entries(dir.path());
  const bool whole = opt_.format == CommandFormat::kPgDump
                         ? Exists(path + "/toc.dat")
                         : Exists(path + "/backup_manifest") || Exists(path + "/PG_VERSION");
  if (!whole) {
    if (entries.size() != 1) {
      std::string names;
      for (std::size_t i = 0; i < entries.size() && i < 5; ++i)
        names += (i ? ", " : "") + entries[i];
      throw Error(ErrorKind::kBadInput,
                  "the fetch command left " + std::to_string(entries.size()) + " entries in " +
                      dir.path() + (names.empty() ? "" : " (" + names + ")") + ": expected one " +
                      (opt_.format == CommandFormat::kPgDump
                           ? "pg_dump file or directory"
                           : "pg_basebackup output (or its files directly)"));
    }
    path += "/" + entries[0];
    if (opt_.format == CommandFormat::kBasebackup && !IsDir(path))
      throw Error(ErrorKind::kBadInput, "the fetch command left a file (" + entries[0] +
                                            "), not a pg_basebackup output directory, in " +
                                            dir.path());
  }
  BackupInfo fetched = backup;
  fetched.path = path;
  fetched.tool = "command";
  const SubStage fetch_stage{"fetch", "fetch command", fetch_s,
                             "fetched " + backup.id + " (" + Format() + ")"};

  // The restore proper is the pg_dump or basebackup source's own.
  RestoredCopy copy;
  if (opt_.format == CommandFormat::kPgDump) {
    if (options.begin_stage) options.begin_stage("restore");
    copy = MakePgDumpSource(env_, target_)->Restore(fetched, host, options, cancel);
    copy.not_run.erase(std::remove_if(copy.not_run.begin(), copy.not_run.end(),
                                      [](const auto& n) { return n.first == "fetch"; }),
                       copy.not_run.end());
  } else {
    copy = MakeBasebackupSource(env_, target_)->Restore(fetched, host, options, cancel);
  }
  copy.stages.insert(copy.stages.begin(), fetch_stage);
  if (!copy.summary.empty()) copy.summary = "fetched by command, " + copy.summary;
  return copy;
}

}  // namespace

bool ParseCommandList(const std::string& text, const std::string& default_kind,
                      std::vector<BackupInfo>* out, std::string* error) {
  json::Value doc;
  std::string why;
  if (!json::Parse(text, &doc, &why)) {
    *error = "not JSON: " + why;
    return false;
  }
  if (doc.t != json::Value::T::kArr) {
    *error = "expected a JSON array of backups";
    return false;
  }
  out->clear();
  std::set<std::string> seen;
  for (std::size_t i = 0; i < doc.a.size(); ++i) {
    const json::Value& e = doc.a[i];
    const std::string at = "entry " + std::to_string(i) + ": ";
    if (e.t != json::Value::T::kObj) {
      *error = at + "expected an object {\"id\", \"time\", \"size\", \"kind\"}";
      return false;
    }
    BackupInfo b;
    const json::Value* id = e.Get("id");
    if (id == nullptr || id->t != json::Value::T::kStr) {
      *error = at + "\"id\" (a string) is missing";
      return false;
    }
    b.id = id->s;
    if (!ValidId(b.id)) {
      *error = at + "id \"" + b.id + "\" has characters other than letters, digits and . _ - : + @";
      return false;
    }
    if (!seen.insert(b.id).second) {
      *error = at + "id \"" + b.id + "\" is listed twice";
      return false;
    }
    const json::Value* time = e.Get("time");
    if (time == nullptr || time->t != json::Value::T::kStr) {
      *error = at + "\"time\" (an RFC 3339 string) is missing";
      return false;
    }
    const auto t = ParseTimestamp(time->s);
    if (!t) {
      *error = at + "time \"" + time->s + "\" is not RFC 3339 (e.g. \"2026-11-25T03:15:04Z\")";
      return false;
    }
    b.started_at = b.completed_at = *t;
    b.started_exact = true;
    if (const json::Value* size = e.Get("size"); size != nullptr) {
      if (size->t != json::Value::T::kNum || size->AsDouble() < 0) {
        *error = at + "\"size\" must be a number of bytes";
        return false;
      }
      b.size_bytes = static_cast<std::uint64_t>(size->AsDouble());
    }
    b.kind = default_kind;
    if (const json::Value* kind = e.Get("kind"); kind != nullptr) {
      if (kind->t != json::Value::T::kStr || kind->s.empty()) {
        *error = at + "\"kind\" must be a non-empty string";
        return false;
      }
      b.kind = kind->s;
    }
    if (const json::Value* running = e.Get("running"); running != nullptr) {
      if (running->t != json::Value::T::kBool) {
        *error = at + "\"running\" must be true or false";
        return false;
      }
      b.running = running->b;
    }
    b.tool = "command";
    out->push_back(std::move(b));
  }
  return true;
}

std::unique_ptr<BackupSource> MakeCommandSource(const Environment& env,
                                                const TargetConfig& target) {
  return std::make_unique<CommandSource>(env, target);
}

}  // namespace rw
