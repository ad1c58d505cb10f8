#include "agent/sources/physical_recovery.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

std::string ConfQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void FollowRecovery(SandboxHost& host, const std::string& data_dir, const DataDirStart& how_in,
                    const RecoveryFollowOptions& options, CancelToken& cancel, RestoredCopy* copy) {
  DataDirStart how = how_in;
  how.timeout = std::max<Duration>(
      Duration::zero(), std::chrono::duration_cast<Duration>(options.deadline - Clock::now()));
  auto tr = Clock::now();
  if (options.progress) options.progress->Step("start in recovery, until consistent");
  host.StartDataDirectory(data_dir, how, cancel);
  copy->data_dir = data_dir;
  const double to_consistent = Since(tr);
  // What recovery started with, for the runbook: the settings, then the signal files.
  std::vector<std::pair<std::string, std::string>> used = how_in.settings;
  for (const auto& f : how_in.signal_files) used.emplace_back(f, "");
  copy->stages.push_back(
      {"recovery", "consistency", to_consistent, "accepting connections", {}, used});
  std::unique_ptr<pqxx::connection> c;
  bool promoted = false;
  if (options.progress) options.progress->Step("wal replay");
  const std::string from = options.start_lsn.empty() ? "0/0" : options.start_lsn;
  // Polled often at first (a short replay ends within a few polls, and the drill's RTO should
  // not carry a fixed 200 ms), then every 200 ms.
  auto poll = std::chrono::milliseconds(10);
  Clock::time_point refused_since{};  // epoch: not refused
  while (Clock::now() < options.deadline) {
    cancel.ThrowIfCancelled();
    try {
      if (!c) c = ConnectSandbox(host.LibpqConnInfo("postgres"));
      pqxx::nontransaction tx(*c);
      pqxx::row st =
          tx.exec1("select pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), " +
                   tx.quote(from) + "::pg_lsn)::float8");
      if (options.progress && !st[1].is_null() && st[1].as<double>() >= 0)
        options.progress->Bytes(static_cast<std::uint64_t>(st[1].as<double>()), std::nullopt,
                                "of WAL replayed");
      if (!st[0].as<bool>()) {
        promoted = true;
        break;
      }
      refused_since = Clock::time_point{};
    } catch (const pqxx::broken_connection&) {
      c.reset();
    } catch (const Error& e) {
      // A server that ends recovery with an error (its target not reached, a segment missing)
      // refuses connections ("in recovery mode", "shutting down") until it has exited: wait for
      // that, so the drill reports the server's own reason (ServerProblem), not our probe's
      // refusal. A refusal from a server that stays up for 10 s is the error itself.
      if (e.kind() != ErrorKind::kConnect) throw;
      c.reset();
      if (!host.ServerProblem().empty())
        throw Error(ErrorKind::kProcess, "the sandbox server stopped during recovery");
      if (refused_since == Clock::time_point{}) refused_since = Clock::now();
      if (Clock::now() - refused_since > std::chrono::seconds(10)) throw;
    }
    cancel.SleepFor(poll);
    poll = std::min<std::chrono::milliseconds>(poll * 2, std::chrono::milliseconds(200));
  }
  if (!promoted)
    throw Error(ErrorKind::kTimeout, "recovery did not end within the drill's timeout");
  pqxx::nontransaction tx(*c);
  const std::string start = options.start_lsn.empty() ? "0/0" : options.start_lsn;
  pqxx::row row = tx.exec1(
      "select pg_last_wal_replay_lsn()::text,"
      " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), " +
      tx.quote(start) +
      "::pg_lsn)::float8,"
      " extract(epoch from pg_last_xact_replay_timestamp())::float8,"
      " (select timeline_id from pg_control_checkpoint())");
  const double replay_s = Since(tr);
  const double bytes = row[1].as<double>(0);
  const double wal_s = std::max(0.0, replay_s - to_consistent);
  std::string msg = std::to_string(static_cast<long long>(bytes)) + " bytes of WAL replayed";
  if (!options.start_lsn.empty() && replay_s > 0)
    msg += " (" + std::to_string(static_cast<long long>(bytes / replay_s / 1024)) + " KiB/s)";
  copy->stages.push_back({"recovery", "wal replay", wal_s, msg});
  copy->lsn = row[0].as<std::string>("");
  copy->timeline = row[3].as<int>(0);
  if (!row[2].is_null()) {
    copy->consistent_at = row[2].as<double>();
    copy->consistent_at_exact = true;
  } else {
    copy->consistent_at = options.fallback_consistent_at;  // nothing replayed: the backup's end
  }
  if (options.stop_commit_time && *options.stop_commit_time > copy->consistent_at) {
    copy->consistent_at = *options.stop_commit_time;  // the commit it stopped on, replayed
    copy->consistent_at_exact = true;
  }
}

bool DescribeDatabases(SandboxHost& host, const std::string& wanted, RestoredCopy* copy) {
  auto c = ConnectSandbox(host.LibpqConnInfo("postgres"));
  pqxx::nontransaction tx(*c);
  copy->databases.clear();
  for (const auto& r : tx.exec("select datname from pg_database where not datistemplate"
                               " and datname <> 'postgres' order by datname"))
    copy->databases.push_back(r[0].as<std::string>());
  if (!wanted.empty()) {
    auto it = std::find(copy->databases.begin(), copy->databases.end(), wanted);
    if (it == copy->databases.end()) {
      copy->reason = "the restored cluster has no database " + wanted;
      return false;
    }
    std::rotate(copy->databases.begin(), it, it + 1);
  }
  if (copy->databases.empty()) copy->databases.push_back("postgres");
  copy->conninfo = host.LibpqConnInfo(copy->databases.front());
  return true;
}

ArchiveSnapshot SnapshotArchive(const std::string& archive_dir) {
  ArchiveSnapshot snap;
  DIR* d = opendir(archive_dir.c_str());
  if (!d) throw Error(ErrorKind::kIo, "cannot list the WAL archive " + archive_dir);
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (wal::ParseArchiveName(name).kind != wal::ArchiveFileKind::kSegment) continue;
    struct stat st {};
    if (stat((archive_dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      snap.segments.emplace_back(name, static_cast<std::uint64_t>(st.st_size));
  }
  closedir(d);
  return snap;
}

std::string ReplayShortOfArchive(const ArchiveSnapshot& before, const std::string& reached,
                                 std::uint32_t segment_size) {
  const auto lsn = wal::ParseLsn(reached);
  if (!lsn || *lsn == 0 || segment_size == 0) return {};
  std::optional<std::uint64_t> newest;
  std::string newest_name;
  for (const auto& [name, size] : before.segments) {
    const wal::ArchiveName n = wal::ParseArchiveName(name);
    const auto segno = n.SegNo(segment_size);
    if (!segno || (n.compression.empty() && size != segment_size)) continue;
    if (!newest || *segno > *newest) {
      newest = segno;
      newest_name = name;
    }
  }
  // The LSN after the last record replayed: a segment ended by a switch puts it at the start of
  // the next one, hence lsn - 1.
  if (!newest || wal::SegmentNo(*lsn - 1, segment_size) >= *newest) return {};
  std::string in;  // the segment it stopped in, when archived
  for (const auto& [name, size] : before.segments)
    if (wal::ParseArchiveName(name).SegNo(segment_size) == wal::SegmentNo(*lsn, segment_size))
      in = " in segment " + name;
  return "recovery stopped at " + reached + in + ", short of the end of the archive (" +
         newest_name + " was archived): the WAL after " + reached +
         " could not be replayed (a corrupt or unreadable record)";
}

}  // namespace rw
