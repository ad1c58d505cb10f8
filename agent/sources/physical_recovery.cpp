#include "agent/sources/physical_recovery.h"

#include <algorithm>
#include <memory>

#include "agent/errors.h"
#include "agent/pg_conn.h"

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
    } catch (const pqxx::broken_connection&) {
      c.reset();
    }
    cancel.SleepFor(std::chrono::milliseconds(200));
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

}  // namespace rw
