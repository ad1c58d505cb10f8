// The agent itself (issue 13 target 5), measured on the real `restorewatch run` binary against a
// real PostgreSQL 15 source holding 1,000 tables, with 20 physical replication slots each
// streamed by a pg_receivewal (so the replication and slots collectors report 20 rows):
//   - resident memory (VmRSS, the larger of two readings 7 s apart after a 15 s warm-up) and
//     threads, with 3 targets and with 50 targets (targets: < 16 MiB and < 32 MiB), the agent
//     run with the Environment= of the shipped systemd unit (deploy/systemd), as deployed; with
//     3 targets also without it, for comparison;
//   - /metrics latency at 200 requests/s on loopback while a drill runs (p99 < 5 ms);
//   - the database time of one monitoring tick (< 50 ms): the pg_stat_statements total_exec_time
//     of every statement the agent ran in the source's database over a window, divided by the
//     ticks in that window (table_activity's pg_current_snapshot() runs once per target tick).
//     Connection set-up and protocol time are not in it: database time only.
// Prints one table: figure, measured, target, met/missed. Exits non-zero only when the bench
// could not run.
//
// usage: restorewatch_agent_bench [--tables N] [--slots N] [--load-seconds S] [--window S]
//                                 [--summary FILE]  (the target rows, for restorewatch_bench --all)
// Needs PostgreSQL 15 binaries and pg_stat_statements; runs servers as `postgres` as root.
#include <crypt.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/environment.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "bench/summary.h"

using namespace rw;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUser = "bench";
const char* kPass = "bench-pass";

void Must(const ProcessResult& r, const char* what) {
  if (!r.ok()) throw Error(ErrorKind::kProcess, std::string(what) + ": " + r.Summary());
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw Error(ErrorKind::kIo, "cannot write " + path);
}

std::string BcryptHash(const std::string& password) {
  char* salt = crypt_gensalt_ra("$2b$", 10, nullptr, 0);
  if (!salt) throw Error(ErrorKind::kIo, "crypt_gensalt_ra failed");
  crypt_data data{};
  const char* h = crypt_r(password.c_str(), salt, &data);
  std::free(salt);
  if (!h) throw Error(ErrorKind::kIo, "crypt_r failed");
  return h;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// VmRSS (KiB) and Threads of a process from /proc/PID/status.
void ProcStatus(pid_t pid, double* rss_mib, int* threads) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) *rss_mib = std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    if (line.rfind("Threads:", 0) == 0) *threads = std::atoi(line.c_str() + 8);
  }
}

// RssAnon and RssFile (MiB) of a process: the heap and stacks versus mapped library pages.
std::string RssSplit(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  double anon = 0, file = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("RssAnon:", 0) == 0) anon = std::strtod(line.c_str() + 8, nullptr) / 1024.0;
    if (line.rfind("RssFile:", 0) == 0) file = std::strtod(line.c_str() + 8, nullptr) / 1024.0;
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "anon %.1f MiB, file %.1f MiB", anon, file);
  return buf;
}

// With RW_BENCH_SMAPS set: the resident KiB of a process by mapped file (anonymous memory as
// "[anon]", heap and stacks by their names), largest first, to see where the RSS goes.
void PrintSmaps(pid_t pid) {
  if (!std::getenv("RW_BENCH_SMAPS")) return;
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::map<std::string, long> by_file;
  std::string current = "[anon]";
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17) {
      // "start-end perms offset dev inode [path]"
      std::istringstream f(line);
      std::string range, perms, off, dev, inode, path;
      f >> range >> perms >> off >> dev >> inode;
      std::getline(f, path);
      path.erase(0, path.find_first_not_of(' '));
      current = path.empty() ? "[anon]" : path;
    } else if (line.rfind("Rss:", 0) == 0) {
      by_file[current] += std::strtol(line.c_str() + 4, nullptr, 10);
    }
  }
  std::vector<std::pair<long, std::string>> v;
  for (const auto& [k, kib] : by_file) v.push_back({kib, k});
  std::sort(v.rbegin(), v.rend());
  for (const auto& [kib, k] : v)
    if (kib >= 64) std::printf("  %8ld KiB  %s\n", kib, k.c_str());
}

std::unique_ptr<httplib::Client> Client(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(5, 0);
  c->set_basic_auth(kUser, kPass);
  c->set_keep_alive(true);
  return c;
}

int Status(int port, const std::string& path) {
  auto res = Client(port)->Get(path.c_str());
  return res ? res->status : 0;
}

template <typename Pred>
bool WaitFor(Pred pred, double seconds) {
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Load {
  std::vector<double> ms;  // latency of each answered request
  int failed = 0;          // no answer, or not 200
  int during_drill = 0;    // answers whose restorewatch_drill_running{target="t1"} was 1
  double seconds = 0;
};

// `rate` requests/s of GET /metrics for `seconds`, spread over 4 keep-alive clients, each on a
// fixed schedule (a late request is sent at once; none is skipped).
Load Hammer(int port, int rate, double seconds) {
  const int clients = 4;
  const auto step = std::chrono::microseconds(1000000 * clients / rate);
  const int per_client = static_cast<int>(seconds * rate / clients);
  Load total;
  std::mutex mu;
  std::vector<std::thread> threads;
  const auto t0 = Clock::now() + std::chrono::milliseconds(50);
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      Load mine;
      auto cli = Client(port);
      auto next = t0 + std::chrono::microseconds(1000000 / rate * c);
      for (int i = 0; i < per_client; ++i, next += step) {
        std::this_thread::sleep_until(next);
        auto s = Clock::now();
        // As Prometheus asks: gzip (httplib's client would also offer br and deflate).
        auto res = cli->Get("/metrics", {{"Accept-Encoding", "gzip"}});
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
        if (!res || res->status != 200) {
          ++mine.failed;
          continue;
        }
        mine.ms.push_back(ms);
        if (res->body.find("restorewatch_drill_running{target=\"t1\"} 1") != std::string::npos)
          ++mine.during_drill;
      }
      std::lock_guard<std::mutex> lk(mu);
      total.ms.insert(total.ms.end(), mine.ms.begin(), mine.ms.end());
      total.failed += mine.failed;
      total.during_drill += mine.during_drill;
    });
  for (auto& t : threads) t.join();
  total.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return total;
}

struct Row {
  std::string figure, measured, target;
  int met;  // 1 met, 0 missed, -1 informational
};

}  // namespace

int main(int argc, char** argv) {
  int tables = 1000, slots = 20;
  double load_seconds = 10, window = 20;
  std::string summary;  // --summary FILE: the target rows for restorewatch_bench --all
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--tables") tables = std::atoi(argv[i + 1]);
    if (a == "--slots") slots = std::atoi(argv[i + 1]);
    if (a == "--load-seconds") load_seconds = std::atof(argv[i + 1]);
    if (a == "--window") window = std::atof(argv[i + 1]);
    if (a == "--summary") summary = argv[i + 1];
  }
  InitLogging(LogFormat::kText, "warn");
  std::string base;
  std::vector<Row> rows;
  std::unique_ptr<LocalCluster> source;
  std::vector<std::unique_ptr<ChildProcess>> receivers;
  try {
    base = MakeTempDir("/var/tmp", "restorewatch-agent-bench-");
    chmod(base.c_str(), 0755);
    AgentConfig ac;
    ac.work_dir = base + "/work";
    ac.state_dir = base + "/state";
    Environment env = Environment::FromConfig(ac);

    ClusterOptions so;
    so.tools = env.pg;
    so.parent_dir = base;
    so.name_prefix = "source-";
    so.run_as = env.run_as;
    so.throwaway = false;  // a real source: wal_level replica, slots, wal senders
    so.settings = {{"max_connections", "400"},
                   {"max_wal_senders", std::to_string(slots + 10)},
                   {"max_replication_slots", std::to_string(slots + 10)},
                   {"shared_preload_libraries", "'pg_stat_statements'"},
                   {"pg_stat_statements.max", "10000"},
                   {"fsync", "off"}};
    source = LocalCluster::Create(so);
    source->Psql("create database app");
    source->Psql("create extension pg_stat_statements");
    std::printf("source: %d tables, %d slots with pg_receivewal ...\n", tables, slots);
    source->Psql("do $$ begin for i in 1.." + std::to_string(tables) +
                     " loop execute format('create table t%s(id int primary key, v text)', i);"
                     " execute format('insert into t%s select g, md5(g::text) from "
                     "generate_series(1, 20) g', i); end loop; end $$",
                 "app");
    source->Psql("analyze", "app");
    const std::string backups = base + "/backups";
    MakeDirs(backups);
    ProcessSpec dump;
    dump.argv = {env.pg.Path("pg_dump"),  "-Fc", "-d",
                 source->ConnInfo("app"), "-f",  backups + "/db-1.dump"};
    dump.timeout = std::chrono::minutes(10);
    Must(RunProcess(dump), "pg_dump");
    for (int i = 0; i < slots; ++i) {
      const std::string slot = "bench_slot_" + std::to_string(i);
      source->Psql("select pg_create_physical_replication_slot('" + slot + "', true)");
      const std::string dir = base + "/wal-" + std::to_string(i);
      MakeDirs(dir);
      ProcessSpec rcv;
      rcv.argv = {env.pg.Path("pg_receivewal"), "-D", dir,        "-S", slot, "-d",
                  source->ConnInfo("postgres"), "-n", "--no-sync"};
      receivers.push_back(std::make_unique<ChildProcess>(rcv, base + "/receivewal.log"));
    }
    if (!WaitFor(
            [&] {
              return Trim(source->Psql("select count(*) from pg_stat_replication")) ==
                     std::to_string(slots);
            },
            60))
      throw Error(ErrorKind::kTimeout, "the pg_receivewal consumers did not all connect");

    WriteText(base + "/web.yml",
              "basic_auth_users:\n  " + std::string(kUser) + ": '" + BcryptHash(kPass) + "'\n");
    const std::string agent_bin = std::string(RW_AGENT_BINARY);
    // The agent runs as deployed: with the Environment= of the shipped systemd unit (the
    // container image sets the same), on top of the minimal environment every child gets.
    std::map<std::string, std::string> unit_env;
    {
      std::ifstream unit(RW_SYSTEMD_UNIT);
      if (!unit) throw Error(ErrorKind::kIo, std::string("cannot read ") + RW_SYSTEMD_UNIT);
      for (std::string line; std::getline(unit, line);) {
        if (line.rfind("Environment=", 0) != 0) continue;
        const std::string kv = line.substr(12);
        const auto eq = kv.find('=');
        if (eq != std::string::npos) unit_env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      for (const auto& [k, v] : unit_env)
        std::printf("agent environment (unit): %s=%s\n", k.c_str(), v.c_str());
    }
    auto config = [&](int targets, const std::string& interval, int port) {
      std::string c = "[agent]\nlisten = \"127.0.0.1:" + std::to_string(port) +
                      "\"\nstate_dir = \"" + base + "/state\"\nwork_dir = \"" + base +
                      "/work\"\nlog_format = \"json\"\nlog_level = \"warn\"\n"
                      "web_config_file = \"web.yml\"\nenable_drill_api = true\n";
      for (int t = 1; t <= targets; ++t)
        c += "\n[[target]]\nname = \"t" + std::to_string(t) + "\"\nsource = \"" +
             source->ConnInfo("app") + "\"\nmonitor_interval = \"" + interval +
             "\"\n\n[target.backup]\npath = \"" + backups +
             "\"\npattern = \"db-*.dump\"\nsettle = \"100ms\"\n";
      return c;
    };
    auto run_agent = [&](int targets, const std::string& interval, int port,
                         bool with_unit_env = true) {
      const std::string cfg = base + "/agent-" + std::to_string(targets) + ".toml";
      WriteText(cfg, config(targets, interval, port));
      ProcessSpec spec;
      spec.argv = {agent_bin, "run", "-c", cfg};
      if (with_unit_env) spec.env = unit_env;
      auto p = std::make_unique<ChildProcess>(spec, base + "/agent.log");
      if (!WaitFor([&] { return Status(port, "/readyz") == 200; }, 120))
        throw Error(ErrorKind::kTimeout,
                    "the agent with " + std::to_string(targets) + " targets never got ready");
      return p;
    };
    auto stop_agent = [](std::unique_ptr<ChildProcess>& p) {
      p->Stop(SIGTERM, std::chrono::seconds(60));
      p.reset();
    };

    // ---- 3 targets without the unit's environment: memory only, for comparison ----
    {
      const int port = PickFreePort();
      auto agent = run_agent(3, "5s", port, /*with_unit_env=*/false);
      std::this_thread::sleep_for(std::chrono::seconds(15));
      double rss = 0, rss2 = 0;
      int threads = 0;
      ProcStatus(agent->pid(), &rss, &threads);
      std::this_thread::sleep_for(std::chrono::seconds(7));
      ProcStatus(agent->pid(), &rss2, &threads);
      rss = std::max(rss, rss2);
      rows.push_back({"RSS, 3 targets, without the unit's Environment= (MiB)",
                      bench::Fmt("%.1f", rss), "-", -1});
      std::printf("3 targets, no unit environment: RSS %.1f MiB (%s)\n", rss,
                  RssSplit(agent->pid()).c_str());
      stop_agent(agent);
    }

    // ---- 3 targets: memory, tick database time, /metrics under load during a drill ----
    {
      const int port = PickFreePort();
      auto agent = run_agent(3, "5s", port);
      std::this_thread::sleep_for(std::chrono::seconds(15));  // warm-up: three ticks at least
      double rss = 0;
      int threads = 0;
      ProcStatus(agent->pid(), &rss, &threads);
      // The larger of two readings 7 s apart (malloc_trim runs every 10 s).
      std::this_thread::sleep_for(std::chrono::seconds(7));
      double rss2 = 0;
      ProcStatus(agent->pid(), &rss2, &threads);
      rss = std::max(rss, rss2);
      rows.push_back({"RSS, 3 targets (MiB)", bench::Fmt("%.1f", rss), "< 16", rss < 16 ? 1 : 0});
      rows.push_back({"threads, 3 targets", std::to_string(threads), "-", -1});
      std::printf("3 targets: RSS %.1f MiB (%s), %d threads\n", rss, RssSplit(agent->pid()).c_str(),
                  threads);
      PrintSmaps(agent->pid());

      source->Psql("select pg_stat_statements_reset()");
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(window * 1000)));
      const std::string q =
          "select coalesce(sum(total_exec_time), 0), coalesce(sum(calls) filter (where query like "
          "'%pg_current_snapshot()%'), 0) from pg_stat_statements s join pg_database d on d.oid "
          "= s.dbid where d.datname = 'app'";
      std::string out = Trim(source->Psql(q));
      const double total_ms = std::strtod(out.c_str(), nullptr);
      const double ticks = std::strtod(out.c_str() + out.find('|') + 1, nullptr);
      const double per_tick = ticks > 0 ? total_ms / ticks : 0;
      std::printf("tick database time: %.1f ms over %.0f ticks (%.1f ms each)\n", total_ms, ticks,
                  per_tick);
      rows.push_back({"DB time per tick, " + std::to_string(tables) + " tables (ms)",
                      bench::Fmt("%.1f", per_tick), "< 50", ticks > 0 && per_tick < 50 ? 1 : 0});

      // A drill through the API, then the load while it runs.
      auto cli = Client(port);
      auto res = cli->Post("/api/v1/targets/t1/drill");
      if (!res || res->status != 202)
        throw Error(ErrorKind::kProcess, "the drill API did not start a drill (status " +
                                             std::to_string(res ? res->status : 0) + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      Load l = Hammer(port, 200, load_seconds);
      const double p50 = Percentile(l.ms, 0.50), p99 = Percentile(l.ms, 0.99);
      std::printf(
          "/metrics at 200/s for %.1f s: %zu answered, %d failed, %d during the drill; p50 %.2f "
          "ms, p99 %.2f ms, max %.2f ms\n",
          l.seconds, l.ms.size(), l.failed, l.during_drill, p50, p99, Percentile(l.ms, 1.0));
      rows.push_back({"/metrics p50 during a drill (ms)", bench::Fmt("%.2f", p50), "-", -1});
      rows.push_back({"/metrics p99 during a drill (ms)", bench::Fmt("%.2f", p99), "< 5",
                      p99 < 5 && l.failed == 0 ? 1 : 0});
      rows.push_back({"scrapes answered while the drill ran",
                      std::to_string(l.during_drill) + "/" + std::to_string(l.ms.size()), "-", -1});
      // The drill ends (bounded) before the agent stops, so memory after it is seen too.
      WaitFor(
          [&] {
            auto r = cli->Get("/metrics");
            return r &&
                   r->body.find("restorewatch_drill_running{target=\"t1\"} 0") != std::string::npos;
          },
          300);
      std::this_thread::sleep_for(std::chrono::seconds(6));
      ProcStatus(agent->pid(), &rss, &threads);
      rows.push_back({"RSS after the drill, 3 targets (MiB)", bench::Fmt("%.1f", rss), "-", -1});
      stop_agent(agent);
    }
    // ---- 50 targets: memory ----
    {
      const int port = PickFreePort();
      auto agent = run_agent(50, "5s", port);
      std::this_thread::sleep_for(std::chrono::seconds(15));
      double rss = 0;
      int threads = 0;
      ProcStatus(agent->pid(), &rss, &threads);
      // The larger of two readings 7 s apart (malloc_trim runs every 10 s).
      std::this_thread::sleep_for(std::chrono::seconds(7));
      double rss2 = 0;
      ProcStatus(agent->pid(), &rss2, &threads);
      rss = std::max(rss, rss2);
      std::printf("50 targets: RSS %.1f MiB (%s), %d threads\n", rss,
                  RssSplit(agent->pid()).c_str(), threads);
      rows.push_back({"RSS, 50 targets (MiB)", bench::Fmt("%.1f", rss), "< 32", rss < 32 ? 1 : 0});
      rows.push_back({"threads, 50 targets", std::to_string(threads), "-", -1});
      // Whether the pool keeps pace: table_activity turns of all 50 targets in 10 s (each is due
      // 5 s after the end of the previous one, so a little under 100).
      source->Psql("select pg_stat_statements_reset()");
      std::this_thread::sleep_for(std::chrono::seconds(10));
      const std::string turns = Trim(
          source->Psql("select coalesce(sum(calls), 0) from pg_stat_statements where query like "
                       "'%pg_current_snapshot()%'"));
      std::printf("50 targets: %s table_activity turns in 10 s\n", turns.c_str());
      rows.push_back({"table_activity turns in 10 s, 50 targets", turns, "~100 (pace)", -1});
      stop_agent(agent);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agent bench could not run: %s\n", e.what());
    for (auto& r : receivers) r->Stop(SIGTERM, std::chrono::seconds(5));
    source.reset();
    if (!base.empty()) RemoveTree(base);
    return 2;
  }
  for (auto& r : receivers) r->Stop(SIGTERM, std::chrono::seconds(5));
  source.reset();
  RemoveTree(base);

  std::printf("\n| figure | measured | target | |\n|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %s | %s |\n", r.figure.c_str(), r.measured.c_str(), r.target.c_str(),
                r.met < 0 ? ""
                : r.met   ? "met"
                          : "MISSED");
  if (!summary.empty()) {
    std::vector<bench::TargetRow> judged;
    for (const auto& r : rows)
      if (r.met >= 0) judged.push_back({"5", r.figure, r.measured, r.target, r.met});
    if (!bench::WriteSummary(summary, judged)) {
      std::fprintf(stderr, "agent bench: cannot write %s\n", summary.c_str());
      return 2;
    }
  }
  return 0;
}
