#include "agent/runtime/dump_cmd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "agent/cancel.h"
#include "agent/config.h"
#include "agent/errors.h"
#include "agent/pg/conninfo.h"
#include "agent/pg/pg_conn.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"
#include "agent/runtime/signals.h"
#include "agent/secrets.h"
#include "agent/units.h"
#include "checks/drill/catalog.h"
#include "checks/drill/reference.h"
#include "checks/drill/table_scan.h"

namespace rw {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

void RemovePath(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    RemoveTree(path);
  } else {
    unlink(path.c_str());
  }
}

std::string DefaultName(const std::string& target) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return target + "-" + buf + ".dump";
}

// Writes `text` to `path` through a temp file, fsync and rename. Throws Error(kIo).
void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot write " + tmp + ": " + std::strerror(err));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw Error(ErrorKind::kIo, "cannot rename " + tmp + ": " + std::strerror(err));
  }
}

struct DumpOutcome {
  std::string output, reference_path;
  std::size_t tables = 0;
  std::int64_t rows = 0;
};

DumpOutcome Dump(const Config& cfg, const TargetConfig& t, const DumpArgs& a, CancelToken& cancel) {
  char fmt = 0;
  if (a.format == "custom") fmt = 'c';
  if (a.format == "directory") fmt = 'd';
  if (a.format == "plain") fmt = 'p';
  if (!fmt)
    throw Error(ErrorKind::kConfig,
                "--format must be custom, directory or plain, not '" + a.format + "'");
  std::string output = a.output;
  if (output.empty()) {
    if (t.backup.paths.empty())
      throw Error(ErrorKind::kConfig,
                  "target " + t.name + " has no backup path: give --output PATH");
    std::string dir = t.backup.paths.front();
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    output = dir + "/" + DefaultName(t.name);
  }
  while (output.size() > 1 && output.back() == '/') output.pop_back();
  const std::string part = output + ".part";
  const std::string ref_path = ReferencePathFor(output);
  if (Exists(output)) throw Error(ErrorKind::kIo, output + " exists already: not overwritten");
  if (Exists(part))
    throw Error(ErrorKind::kIo, part + " exists (another dump running, or a stale one): remove it");
  PgTools tools = PgTools::Detect(cfg.agent.pg_bin_dir);

  Reference ref;
  ref.target = t.name;
  ref.dump_format = a.format;
  std::size_t tables = 0;
  std::int64_t rows = 0;
  bool part_created = false;
  try {
    SessionLimits limits = DrillSourceLimits(t);
    limits.application_name = "restorewatch_dump";
    auto conn = Connect(t.source, limits);
    CancelWatch watch(cancel, *conn);
    WithPgErrors("cannot take the reference on the source", [&] {
      // The transaction stays open for the whole pg_dump, which may take longer than any timeout.
      PrepareReferenceSession(*conn);
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*conn, "rw_dump");
      pqxx::row s = tx.exec1(
          "select pg_export_snapshot(), extract(epoch from now())::float8, current_database(),"
          " pg_current_snapshot()::text");
      ref.snapshot = s[0].as<std::string>();
      ref.snapshot_time = s[1].as<double>();
      ref.database = s[2].as<std::string>();
      ref.horizon = s[3].as<std::string>("");
      ref.system_identifier = ReadSystemIdentifier(tx);
      HashReferenceTables(*conn, tx, t, cancel, &ref);
      tables = ref.tables.size();
      for (const auto& rt : ref.tables) rows += rt.rows;

      // pg_dump in the same snapshot, while this transaction holds it (and AccessShare locks on
      // every table hashed, so no DDL can slip in between).
      ProcessSpec spec;
      spec.argv = {tools.Path("pg_dump"),
                   "--snapshot=" + ref.snapshot,
                   std::string("-F") + fmt,
                   "-f",
                   part,
                   "-d",
                   FormatConnInfo(t.source.keywords)};
      if (!t.source.password.empty()) spec.env["PGPASSWORD"] = t.source.password;
      spec.env["PGAPPNAME"] = "restorewatch_dump";
      spec.stdout_path = "-";
      part_created = true;
      ProcessResult r = RunProcess(spec, &cancel);
      if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while pg_dump was running");
      if (!r.ok()) throw Error(ErrorKind::kProcess, "pg_dump failed: " + Redact(r.Summary()));
      tx.commit();
    });
    ref.dump_files = HashDumpFiles(part);
    if (fmt != 'd' && ref.dump_files.size() == 1) {
      auto slash = output.rfind('/');
      ref.dump_files[0].name = slash == std::string::npos ? output : output.substr(slash + 1);
    }
    WriteAtomically(ref_path, ReferenceToJson(ref));
    if (rename(part.c_str(), output.c_str()) != 0) {
      const int err = errno;
      unlink(ref_path.c_str());
      throw Error(ErrorKind::kIo, "cannot rename " + part + ": " + std::strerror(err));
    }
  } catch (...) {
    if (part_created) RemovePath(part);
    throw;
  }
  return DumpOutcome{output, ref_path, tables, rows};
}

}  // namespace

int RunDump(const DumpArgs& a) {
  BlockShutdownSignals();
  ConfigLoad load = LoadConfig(a.config_path);
  if (!load.config) {
    for (const auto& e : load.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    return 2;
  }
  const Config& cfg = *load.config;
  const TargetConfig* t = cfg.FindTarget(a.target);
  if (a.target.empty() || !t) {
    std::fprintf(stderr, "dump: %s\n",
                 a.target.empty() ? "--target NAME is required"
                                  : ("no target named '" + a.target + "'").c_str());
    return 2;
  }
  // Ctrl-C / SIGTERM stop pg_dump and remove what it wrote.
  CancelToken cancel;
  std::atomic<bool> done{false};
  std::thread signals([&] {
    sigset_t set = ShutdownSignals();
    timespec ts{0, 200 * 1000 * 1000};
    while (!done) {
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) cancel.Cancel();
    }
  });
  int code = 0;
  try {
    DumpOutcome o = Dump(cfg, *t, a, cancel);
    std::printf("dump written: %s (%zu tables, %lld rows); reference %s\n", o.output.c_str(),
                o.tables, static_cast<long long>(o.rows), o.reference_path.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "dump: %s\n", e.what());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dump: %s\n", Redact(e.what()).c_str());
    code = 2;
  }
  done = true;
  signals.join();
  return code;
}

}  // namespace rw
