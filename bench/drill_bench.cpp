// Drill speed against the reference of RECIPES.md (issue 13): pgbench scale N plus three wide
// tables (text, jsonb, numeric, timestamptz, uuid, text[]; secondary indexes; a foreign key),
// about 3.5M rows at scale 20, dumped with pg_dump -Fd and taken as a base backup + WAL archive.
// Prints one table of medians over --runs rounds (each round runs the floor and every drill once,
// so load drifting over the bench's minutes weighs on all alike; each round's ratios are shown):
//   baseline  a careful script: single-job pg_restore into a default server just started, then
//             an ordered md5 of every table on both sides (psql COPY | md5sum);
//   floor     a bare `pg_restore -j 2` into an already-running throwaway-tuned cluster;
//   drill     a full pg_dump drill (sandbox start, restore, schema, exact counts and checksums on
//             both sides, teardown);
//   physical  a full physical drill of the base backup + archive (recovery to its end, same
//   checks);
//   ref drill the pg_dump drill of a dump taken by `restorewatch dump`, whose reference holds the
//             source's counts and hashes from dump time: the drill hashes the restored side only
//             (the source-side scan of the plain drill shares this machine's two cores with the
//             restore, which a remote source does not);
// their ratios (drill/floor target <= 1.15, physical/drill <= 0.5; with --large also the small
// reference's floor and drill in each round, for target 6: the large ratio over the small one's),
// and the checksum's cost: the
// drill's count + hash scan against a sequential count(*) on pgbench_accounts (target <= 3x) and
// on the wide tables (<= 5x), with the candidate formulations beside it so the choice shows, what
// any checksum of every value pays before hashing (the same scan counting every column: the rows
// taken apart), and each column's hash alone (its type's hash function, ns per row).
// Then where the time goes: the machine's busy CPU (core-seconds, /proc/stat) of each measured run,
// the least wall time that much CPU needs on this machine's cores, and how much a second session
// scanning at the same time adds to one session's throughput here (what overlapping work can win).
// Exits non-zero only when the bench could not run (usage, setup, a drill that did not pass).
//
// usage: see bench/drill_bench_args.h (restorewatch_bench --help).
// Needs PostgreSQL 15 binaries (auto-detected); runs servers as `postgres` when started as root.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/environment.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/pg_conn.h"
#include "agent/runtime/drill_runner.h"
#include "agent/runtime/dump_cmd.h"
#include "bench/drill_bench_args.h"
#include "bench/summary.h"
#include "checks/drill/catalog.h"
#include "checks/drill/table_scan.h"
#include "exporters/report.h"

using namespace rw;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Must(const ProcessResult& r, const char* what) {
  if (!r.ok()) throw Error(ErrorKind::kProcess, std::string(what) + ": " + r.Summary());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string Trim(std::string s) {
  s.erase(s.find_last_not_of("\n ") + 1);
  return s;
}

// Wall seconds of one statement on `conn`.
double TimeSql(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction nt(conn);
  auto t = std::chrono::steady_clock::now();
  nt.exec(sql);
  return Seconds(t);
}

// The candidate formulations of the checksum's per-table scan, for a table alias t.
struct Candidate {
  const char* name;
  const char* note;
  std::string (*sql)(const TableInfo&);
};

std::string Row(const TableInfo& t) {
  std::string row = "row(";
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (i) row += ", ";
    row += "t." + QuoteIdent(t.columns[i].name);
    if (t.columns[i].hash_as_text) row += "::text";
  }
  return row + ")";
}

std::string From(const TableInfo& t) { return " from only " + t.Sql() + " t"; }

// Candidates()'s index of the drill's own formulation (0 is count(*), 1 the columns read).
constexpr std::size_t kChosen = 2;

const std::vector<Candidate>& Candidates() {
  static const std::vector<Candidate> c = {
      {"count(*)", "the floor: a sequential scan",
       [](const TableInfo& t) { return "select count(*)" + From(t); }},
      {"every column read, no hash", "count(c) of each column: rows taken apart, values unread",
       [](const TableInfo& t) {
         std::string q = "select count(*)";
         for (const auto& c : t.columns) q += ", count(t." + QuoteIdent(c.name) + ")";
         return q + From(t);
       }},
      {"chosen: per-column, seed mix", "drill's scan (table_scan.cpp): typed column hashes",
       [](const TableInfo& t) {
         return "select count(*), coalesce(sum(" + RowHashSql(t, HashMethod::kRecord) + "), 0)" +
                From(t);
       }},
      {"format 3: row(col) for timestamptz", "the drill before: such types as 1-column records",
       [](const TableInfo& t) {
         return "select count(*), coalesce(sum(" +
                RowHashSql(t, HashMethod::kRecord, HashFormat::kV3) + "), 0)" + From(t);
       }},
      {"record h, seed mix", "hashint4extended(0, hash_record_extended(row))",
       [](const TableInfo& t) {
         return "select count(*), sum(hashint4extended(0, hash_record_extended(" + Row(t) +
                ", 0)))" + From(t);
       }},
      {"format 2: record h, text mix", "hashtextextended(h::text, 0): before format 3",
       [](const TableInfo& t) {
         return "select count(*), coalesce(sum(" +
                RowHashSql(t, HashMethod::kRecord, HashFormat::kV2) + "), 0)" + From(t);
       }},
      {"record h, no mix: sum(h)", "linear: blind to values swapped between rows",
       [](const TableInfo& t) {
         return "select count(*), sum(hash_record_extended(" + Row(t) + ", 0))" + From(t);
       }},
      {"hashint8extended(h, 0)", "folds h to 32 bits first: 2^-32 per changed row",
       [](const TableInfo& t) {
         return "select count(*), sum(hashint8extended(hash_record_extended(" + Row(t) +
                ", 0), 0))" + From(t);
       }},
      {"hashtextextended(row::text)", "one hash over the row's text form",
       [](const TableInfo& t) {
         return "select count(*), sum(hashtextextended(" + Row(t) + "::text, 0))" + From(t);
       }},
      {"hash of the row's binary form", "record_send(row), its bytes hashed as bytea[1]",
       [](const TableInfo& t) {
         return "select count(*), sum(hash_array_extended(array[record_send(" + Row(t) + ")], 0))" +
                From(t);
       }},
      {"per-column sums", "one sum per column: linear, swap-blind",
       [](const TableInfo& t) {
         std::string q = "select count(*)";
         for (const auto& c : t.columns)
           q += ", sum(hash_record_extended(row(t." + QuoteIdent(c.name) +
                (c.hash_as_text ? "::text" : "") + "), 0))";
         return q + From(t);
       }},
      {"md5(row::text)", "a script's per-row md5, summed as bigint",
       [](const TableInfo& t) {
         return "select count(*), sum(('x' || left(md5(" + Row(t) +
                "::text), 16))::bit(64)::bigint::numeric)" + From(t);
       }},
  };
  return c;
}

// Median seconds of each statement of `sqls` over `runs` rounds (at least 5), every round running
// each once in turn, so a noisy neighbour's burst slows one round of all rather than all rounds of
// one. A round of each first warms the cache.
std::vector<double> InterleavedMedians(pqxx::connection& conn, const std::vector<std::string>& sqls,
                                       int runs) {
  for (const auto& q : sqls) TimeSql(conn, q);
  std::vector<std::vector<double>> v(sqls.size());
  for (int i = 0; i < std::max(runs, 5); ++i)
    for (std::size_t k = 0; k < sqls.size(); ++k) v[k].push_back(TimeSql(conn, sqls[k]));
  std::vector<double> out;
  for (const auto& x : v) out.push_back(Median(x));
  return out;
}

// Median seconds per candidate, summed over `tables`.
std::vector<double> CandidateSeconds(pqxx::connection& conn, const std::vector<TableInfo>& tables,
                                     int runs) {
  std::vector<std::string> sqls;
  for (const auto& c : Candidates())
    for (const auto& t : tables) sqls.push_back(c.sql(t));
  const std::vector<double> each = InterleavedMedians(conn, sqls, runs);
  std::vector<double> out(Candidates().size(), 0);
  for (std::size_t k = 0; k < each.size(); ++k) out[k / tables.size()] += each[k];
  return out;
}

// One column's share of the chosen scan: its keyed hash summed alone, less the same scan counting
// the column without hashing it.
struct ColumnCost {
  std::string table, column, type, hash;  // hash: the SQL function that hashes it
  double ns_per_row = 0;
};

std::vector<ColumnCost> ColumnCosts(pqxx::connection& conn, const TableInfo& t, std::int64_t rows,
                                    int runs) {
  std::vector<std::string> sqls, hashes;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    hashes.push_back(ColumnHashSql(t.columns[i], static_cast<int>(i) + 1));
    sqls.push_back("select count(t." + QuoteIdent(t.columns[i].name) + ")" + From(t));
    sqls.push_back("select sum(" + hashes[i] + ")" + From(t));
  }
  const std::vector<double> s = InterleavedMedians(conn, sqls, runs);
  std::vector<ColumnCost> out;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    ColumnCost c;
    c.table = t.name;
    c.column = t.columns[i].name;
    c.type = t.columns[i].type;
    std::string h = hashes[i];
    if (h.rfind("coalesce(", 0) == 0) h = h.substr(9);
    c.hash = h.substr(0, h.find('('));
    c.ns_per_row = rows > 0 ? std::max(0.0, s[2 * i + 1] - s[2 * i]) * 1e9 / rows : 0;
    out.push_back(c);
  }
  return out;
}

// The careful script's check: an md5 of every table's rows in a fixed order, by psql COPY piped
// through md5sum. Returns table -> md5.
std::map<std::string, std::string> OrderedMd5(const Environment& env, const std::string& conninfo,
                                              const std::vector<TableInfo>& tables) {
  std::map<std::string, std::string> out;
  for (const auto& t : tables) {
    std::string order;
    for (std::size_t i = 1; i <= t.columns.size(); ++i)
      order += (i > 1 ? ", " : "") + std::to_string(i);
    const std::string copy =
        "copy (select * from only " + t.Sql() + " order by " + order + ") to stdout";
    ProcessSpec p;
    p.argv = {
        "/bin/bash",         "-c",     "set -o pipefail; \"$0\" -X -q -d \"$1\" -c \"$2\" | md5sum",
        env.pg.Path("psql"), conninfo, copy};
    p.timeout = std::chrono::hours(2);
    auto r = RunProcess(p);
    Must(r, "psql copy | md5sum");
    out[t.name] = Trim(r.out).substr(0, 32);
  }
  return out;
}

// The machine's busy CPU time (all processes: the agent, pg_restore, every server backend), from
// /proc/stat: user + nice + system + irq + softirq + steal, in core-seconds. The bench's drills
// and the floor run their work in other processes, so only a machine-wide count sees it all.
double BusyCoreSeconds() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return 0;
  unsigned long long v[8] = {0};
  int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                      &v[4], &v[5], &v[6], &v[7]);
  std::fclose(f);
  if (n < 8) return 0;
  const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // not idle, iowait
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Wall and busy CPU of one measured run.
struct Timed {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double cpu0 = BusyCoreSeconds();
  void Stop(std::vector<double>* wall, std::vector<double>* cpu) const {
    wall->push_back(Seconds(t0));
    cpu->push_back(BusyCoreSeconds() - cpu0);
  }
};

// This process's peak resident memory (VmHWM) in MiB: the drills run in it, so a figure that stays
// the same from --quick to --large shows no per-row work in the agent.
double PeakRssMiB() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lf kB", &kib) == 1) break;
  std::fclose(f);
  return kib / 1024.0;
}

// A "median s" cell, or the reason it was not measured.
std::string Cell(double v, bool measured, const char* why) {
  if (!measured) return why;
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string Ratio(double a, double b, bool measured) {
  if (!measured || b <= 0) return "-";
  char r[32];
  std::snprintf(r, sizeof r, "%.2fx", a / b);
  return r;
}

void WaitArchived(const LocalCluster& c, const std::string& archive) {
  const std::string seg = Trim(c.Psql("select pg_walfile_name(pg_switch_wal())"));
  for (int i = 0; i < 1200; ++i) {
    struct stat st {};
    if (::stat((archive + "/" + seg).c_str(), &st) == 0 && st.st_size == 16 * 1024 * 1024) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw Error(ErrorKind::kTimeout, "WAL segment " + seg + " not archived within 120 s");
}

// Builds the reference in database `db` of `source` (created here): pgbench -i at `scale`, three
// wide tables of `wide_rows` rows with secondary indexes, a foreign key, vacuum analyze.
void BuildReference(const Environment& env, LocalCluster& source, const std::string& db, int scale,
                    long wide_rows) {
  source.Psql("create database " + db);
  ProcessSpec pgb;
  pgb.argv = {env.pg.Path("pgbench"), "-i", "-q", "-s", std::to_string(scale), "-d",
              source.ConnInfo(db)};
  pgb.timeout = std::chrono::hours(4);
  Must(RunProcess(pgb), "pgbench -i");
  for (int w = 1; w <= 3; ++w) {
    std::string t = "wide" + std::to_string(w);
    source.Psql(
        "create table " + t +
            " (id bigint primary key, name text, doc jsonb, amount numeric(14,4), at timestamptz,"
            " uid uuid, tags text[]);"
            "insert into " +
            t + " select g, repeat('n', 20) || g, jsonb_build_object('g', g, 'w', " +
            std::to_string(w) +
            ", 's', md5(g::text)), g / 7.0, now() - (g || ' s')::interval, md5(g::text)::uuid,"
            " array[g::text, md5(g::text)] from generate_series(1, " +
            std::to_string(wide_rows) + ") g;" + "create index on " + t + " (at);" +
            "create index on " + t + " (uid);",
        db);
  }
  // A foreign key (its validation is part of every restore).
  source.Psql("alter table wide2 add foreign key (id) references wide1 (id)", db);
  source.Psql("vacuum analyze", db);
}

// pg_dump -Fd -j 2 of `conninfo` into `dir`.
void DumpDirectory(const Environment& env, const std::string& conninfo, const std::string& dir) {
  ProcessSpec pd;
  pd.argv = {env.pg.Path("pg_dump"), "-Fd", "-j", "2", "-d", conninfo, "-f", dir};
  pd.timeout = std::chrono::hours(4);
  Must(RunProcess(pd), "pg_dump");
}

DrillReport PassingDrill(const Environment& env, const TargetConfig& target) {
  CancelToken cancel;
  DrillReport r = RunDrill(env, target, nullptr, cancel);
  if (r.result != DrillResult::kSuccess) {
    std::printf("%s\n", RenderReportText(r).c_str());
    throw Error(ErrorKind::kBadInput, "the " + target.name + " drill did not pass: " + r.reason);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bench::DrillBenchArgs args;
  const std::string usage_error =
      bench::ParseDrillBenchArgs(std::vector<std::string>(argv + 1, argv + argc), &args);
  if (!usage_error.empty()) {
    std::fprintf(stderr, "bench: %s\n%s", usage_error.c_str(), bench::kDrillBenchUsage);
    return 2;
  }
  if (args.help) {
    std::printf("%s", bench::kDrillBenchUsage);
    return 0;
  }
  const int scale = args.scale, runs = args.runs;
  const long wide_rows = args.WideRows();
  InitLogging(LogFormat::kText, std::getenv("RW_BENCH_LOG") ? std::getenv("RW_BENCH_LOG") : "warn");
  std::string base;
  std::vector<bench::TargetRow> targets;  // this bench's rows of the issue 13 targets
  try {
    base = MakeTempDir(args.dir, "restorewatch-bench-");
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
    so.throwaway = true;  // loading speed only; the source's settings do not affect the drill
    const std::string archive = base + "/archive";
    if (args.physical) {
      MakeDirs(archive, 0700, env.run_as);
      so.settings = {
          {"wal_level", "'replica'"},
          {"max_wal_senders", "10"},
          {"archive_mode", "on"},
          {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"}};
    }
    auto source = LocalCluster::Create(so);
    std::printf("building the reference: pgbench scale %d + 3 wide tables of %ld rows ...\n", scale,
                wide_rows);
    std::fflush(stdout);
    auto t0 = std::chrono::steady_clock::now();
    BuildReference(env, *source, "ref", scale, wide_rows);
    const std::string size = Trim(source->Psql("select pg_size_pretty(pg_database_size('ref'))"));
    const long rows = 100000L * scale + 3 * wide_rows;
    std::printf("  built in %.1f s: %ld rows, database size %s\n", Seconds(t0), rows, size.c_str());
    std::fflush(stdout);
    // --large: the small reference too, in a cluster of its own (no archive: the physical drill
    // replays the large source's WAL only), so target 6 (the large drill/floor ratio within 5% of
    // the small one's) compares two ratios of one run, their rounds interleaved like every other
    // figure here.
    const int small_scale = bench::DrillBenchArgs().scale;
    const std::string small_dump = base + "/small-backups/small-1.dir";
    std::unique_ptr<LocalCluster> small_source;
    if (args.large) {
      std::printf(
          "building the small reference for target 6: pgbench scale %d + 3 wide tables of"
          " %ld rows ...\n",
          small_scale, 25000L * small_scale);
      std::fflush(stdout);
      ClusterOptions sso = so;
      sso.name_prefix = "small-source-";
      sso.settings.clear();
      small_source = LocalCluster::Create(sso);
      BuildReference(env, *small_source, "ref", small_scale, 25000L * small_scale);
      MakeDirs(base + "/small-backups");
      DumpDirectory(env, small_source->ConnInfo("ref"), small_dump);
    }

    std::string dump = base + "/backups/ref-1.dir";
    MakeDirs(base + "/backups");
    DumpDirectory(env, source->ConnInfo("ref"), dump);

    // The same data dumped by `restorewatch dump` (a reference of counts and hashes taken in the
    // dump's snapshot), for the drill that hashes the restored side only.
    const std::string ref_dir = base + "/refbackups";
    MakeDirs(ref_dir);
    {
      const std::string cfg = base + "/bench.toml";
      std::FILE* f = std::fopen(cfg.c_str(), "w");
      if (!f) throw Error(ErrorKind::kIo, "cannot write " + cfg);
      std::fprintf(f,
                   "[agent]\nwork_dir = \"%s/work\"\nstate_dir = \"%s/state\"\n"
                   "[[target]]\nname = \"bench\"\nsource = \"%s\"\n[target.backup]\n"
                   "type = \"pg_dump\"\npath = \"%s\"\n",
                   base.c_str(), base.c_str(), source->ConnInfo("ref").c_str(), ref_dir.c_str());
      std::fclose(f);
      DumpArgs da;
      da.config_path = cfg;
      da.target = "bench";
      da.format = "directory";
      da.output = ref_dir + "/ref-1.dir";
      if (RunDump(da) != 0) throw Error(ErrorKind::kProcess, "restorewatch dump failed");
    }

    const std::string phys = base + "/physical";
    if (args.physical) {
      MakeDirs(phys, 0700, env.run_as);
      ProcessSpec bb;
      bb.argv = {env.pg.Path("pg_basebackup"),
                 "-d",
                 source->ConnInfo("postgres"),
                 "-D",
                 phys + "/b1",
                 "-Fp",
                 "-c",
                 "fast"};
      bb.run_as = env.run_as;
      bb.timeout = std::chrono::hours(4);
      Must(RunProcess(bb), "pg_basebackup");
      WaitArchived(*source, archive);
    }

    // Checksum cost on the quiescent source: the drill's scan and the candidates, each against a
    // sequential count(*) of the same tables.
    std::printf("measuring the checksum scan ...\n");
    std::fflush(stdout);
    std::vector<TableInfo> accounts, wide;
    auto conn = ConnectSandbox(source->ConnInfo("ref"));
    {
      pqxx::nontransaction nt(*conn);
      for (auto& t : ListTables(nt, {})) {
        if (t.name == "public.pgbench_accounts") accounts.push_back(t);
        if (t.name.rfind("public.wide", 0) == 0) wide.push_back(t);
      }
    }
    if (accounts.size() != 1 || wide.size() != 3)
      throw Error(ErrorKind::kQuery, "the reference's tables were not found");
    const std::vector<double> cand_accounts = CandidateSeconds(*conn, accounts, runs);
    const std::vector<double> cand_wide = CandidateSeconds(*conn, wide, runs);
    std::vector<ColumnCost> column_costs;
    for (const TableInfo* t : {&accounts[0], &wide[0]}) {
      std::int64_t rows = 0;
      {
        pqxx::nontransaction nt(*conn);
        rows = nt.exec1("select count(*)" + From(*t))[0].as<std::int64_t>();
      }
      for (auto& c : ColumnCosts(*conn, *t, rows, runs)) column_costs.push_back(std::move(c));
    }
    // How much two sessions at once get out of this machine: the drill's scan of wide1 and wide2
    // one after the other in one session, then each in its own session at the same time.
    std::vector<double> one_session, two_sessions;
    {
      auto conn2 = ConnectSandbox(source->ConnInfo("ref"));
      const std::string q1 = Candidates()[kChosen].sql(wide[0]),
                        q2 = Candidates()[kChosen].sql(wide[1]);
      for (int i = 0; i < runs; ++i) {
        one_session.push_back(TimeSql(*conn, q1) + TimeSql(*conn, q2));
        auto t = std::chrono::steady_clock::now();
        std::thread other([&] { TimeSql(*conn2, q2); });
        TimeSql(*conn, q1);
        other.join();
        two_sessions.push_back(Seconds(t));
      }
    }
    conn.reset();

    // Baseline: what a careful script does.
    std::vector<double> baseline;
    if (args.baseline) {
      std::vector<TableInfo> all;
      {
        auto c = ConnectSandbox(source->ConnInfo("ref"));
        pqxx::nontransaction nt(*c);
        all = ListTables(nt, {});
      }
      ClusterOptions defo = so;
      defo.name_prefix = "default-";
      defo.throwaway = false;  // a default server
      defo.settings.clear();
      for (int i = 0; i < runs; ++i) {
        std::printf("baseline run %d/%d ...\n", i + 1, runs);
        std::fflush(stdout);
        auto t = std::chrono::steady_clock::now();
        auto plain = LocalCluster::Create(defo);
        plain->Psql("create database copy");
        ProcessSpec pr;
        pr.argv = {env.pg.Path("pg_restore"), "--no-owner", "--no-privileges", "-d",
                   plain->ConnInfo("copy"),   dump};
        pr.timeout = std::chrono::hours(4);
        Must(RunProcess(pr), "pg_restore (single job)");
        auto a = OrderedMd5(env, source->ConnInfo("ref"), all);
        auto b = OrderedMd5(env, plain->ConnInfo("copy"), all);
        if (a != b) throw Error(ErrorKind::kBadInput, "baseline: ordered md5s differ");
        plain.reset();
        baseline.push_back(Seconds(t));
      }
    }

    // Floor: bare pg_restore -j 2 into an already-running tuned cluster. Its runs and the drills'
    // go in rounds (floor, drill, drill against the reference, physical drill; then again), so
    // the machine's load drifting over the minutes of the bench weighs on every figure alike.
    ClusterOptions to = so;
    to.name_prefix = "tuned-";
    to.settings.clear();
    auto tuned = LocalCluster::Create(to);
    std::vector<double> bare, bare_cpu;
    auto floor_run = [&](int i, const std::string& from, std::vector<double>* wall,
                         std::vector<double>* cpu) {
      std::string db = "r" + std::to_string(i);
      tuned->Psql("create database " + db);
      ProcessSpec pr;
      pr.argv = {env.pg.Path("pg_restore"), "-j", "2", "--no-owner", "--no-privileges", "-d",
                 tuned->ConnInfo(db),       from};
      pr.timeout = std::chrono::hours(4);
      Timed t;
      Must(RunProcess(pr), "pg_restore");
      t.Stop(wall, cpu);
      tuned->Psql("drop database " + db);
    };

    // Full drills, exact compare (the source is quiescent).
    TargetConfig target;
    target.name = "bench";
    target.source = ConnSpec(source->ConnInfo("ref"));
    target.backup.paths = {base + "/backups"};
    target.backup.pattern = "ref-*";
    target.backup.settle = std::chrono::milliseconds(100);
    target.drill.jobs = 2;
    target.drill.timeout = std::chrono::hours(6);
    target.checks.compare = CompareMode::kExact;
    TargetConfig rt = target;
    rt.name = "bench_ref";
    rt.backup.paths = {ref_dir};
    TargetConfig pt = target;
    pt.name = "bench_physical";
    pt.backup.type = "basebackup";
    pt.backup.paths = {phys};
    pt.backup.wal_archive = archive;
    pt.drill.recovery_target = "latest";
    TargetConfig small_target = target;
    small_target.name = "bench_small";
    if (small_source) {
      small_target.source = ConnSpec(small_source->ConnInfo("ref"));
      small_target.backup.paths = {base + "/small-backups"};
      small_target.backup.pattern = "small-*";
    }
    std::vector<double> full, physical, with_ref, full_cpu, physical_cpu, with_ref_cpu;
    std::vector<double> small_bare, small_full, unused_cpu;  // --large: the small reference
    DrillReport last, last_phys, last_ref;
    for (int i = 0; i < runs; ++i) {
      std::printf("round %d/%d: floor, pg_dump drill, drill against the dump's reference%s ...\n",
                  i + 1, runs, args.physical ? ", physical drill" : "");
      std::fflush(stdout);
      floor_run(i, dump, &bare, &bare_cpu);
      {
        Timed t;
        last = PassingDrill(env, target);
        t.Stop(&full, &full_cpu);
      }
      {
        Timed t;
        last_ref = PassingDrill(env, rt);
        t.Stop(&with_ref, &with_ref_cpu);
      }
      if (args.physical) {
        Timed t;
        last_phys = PassingDrill(env, pt);
        t.Stop(&physical, &physical_cpu);
      }
      if (small_source) {
        std::printf("round %d/%d: the small reference's floor and pg_dump drill ...\n", i + 1,
                    runs);
        std::fflush(stdout);
        floor_run(i, small_dump, &small_bare, &unused_cpu);
        Timed t;
        PassingDrill(env, small_target);
        t.Stop(&small_full, &unused_cpu);
      }
    }
    tuned.reset();
    std::printf("\n%s\n", RenderReportText(last).c_str());
    std::printf("%s\n", RenderReportText(last_ref).c_str());
    if (args.physical) std::printf("%s\n", RenderReportText(last_phys).c_str());

    const double bl = Median(baseline), fl = Median(bare), dr = Median(full), ph = Median(physical),
                 rd = Median(with_ref);
    std::printf(
        "\nrestorewatch drill bench: pgbench scale %d + 3 wide tables x %ld rows = %ld rows (%s),"
        " medians of %d runs\n",
        scale, wide_rows, rows, size.c_str(), runs);
    std::printf("%-62s %10s\n", "measurement", "median s");
    std::printf("%-62s %10s\n", "baseline: pg_restore -j 1 into a new default server + md5",
                Cell(bl, args.baseline, "skipped").c_str());
    std::printf("%-62s %10s\n", "floor: pg_restore -j 2 into a running tuned cluster",
                Cell(fl, true, "").c_str());
    std::printf("%-62s %10s\n", "pg_dump drill: sandbox, restore, schema, exact checks, teardown",
                Cell(dr, true, "").c_str());
    std::printf("%-62s %10s\n", "pg_dump drill, source hashed at dump time (restorewatch dump)",
                Cell(rd, true, "").c_str());
    std::printf("%-62s %10s\n", "physical drill: base backup + archive, same checks",
                Cell(ph, args.physical, "skipped").c_str());
    std::printf("%-62s %10s  (target <= 1.15x)\n", "ratio drill / floor",
                Ratio(dr, fl, true).c_str());
    std::printf("%-62s %10s  (target <= 1.15x)\n", "ratio drill with dump-time reference / floor",
                Ratio(rd, fl, true).c_str());
    std::printf("%-62s %10s\n", "ratio drill / baseline", Ratio(dr, bl, args.baseline).c_str());
    std::printf("%-62s %10s  (target <= 0.50x)\n", "ratio physical drill / pg_dump drill",
                Ratio(ph, dr, args.physical).c_str());
    std::printf("%-62s %9.1f\n", "peak RSS of this process, drills included (MiB)", PeakRssMiB());
    if (small_source) {
      const double sfl = Median(small_bare), sdr = Median(small_full);
      std::printf("small reference in this run (pgbench scale %d + 3 wide tables x %ld rows):\n",
                  small_scale, 25000L * small_scale);
      std::printf("%-62s %10s\n", "  floor", Cell(sfl, true, "").c_str());
      std::printf("%-62s %10s\n", "  pg_dump drill", Cell(sdr, true, "").c_str());
      std::printf("%-62s %10s\n", "  ratio drill / floor", Ratio(sdr, sfl, true).c_str());
      std::printf("%-62s %9.2fx  (target 6: within 5%%)\n",
                  "ratio drill / floor: this size over the small reference",
                  sfl > 0 && sdr > 0 && fl > 0 ? (dr / fl) / (sdr / sfl) : 0);
    }
    // The spread: each round's own ratios (its drills against its floor run).
    auto rounds = [&](const char* name, const std::vector<double>& v) {
      std::string line;
      for (std::size_t i = 0; i < v.size() && i < bare.size(); ++i) {
        char cell[16];
        std::snprintf(cell, sizeof cell, " %.2fx", bare[i] > 0 ? v[i] / bare[i] : 0);
        line += cell;
      }
      std::printf("%-62s%s\n", name, line.c_str());
    };
    rounds("by round: drill / that round's floor", full);
    rounds("by round: drill with dump-time reference / that round's floor", with_ref);
    if (small_source) {
      std::string line;
      for (std::size_t i = 0; i < small_full.size() && i < small_bare.size(); ++i)
        line += bench::Fmt(" %.2fx", small_bare[i] > 0 ? small_full[i] / small_bare[i] : 0);
      std::printf("%-62s%s\n", "by round: the small reference's drill / its floor", line.c_str());
    }
    // Where the drill's time over the floor goes: the machine's busy CPU in each run. Overlapping
    // work can hide idle time, not CPU work: a run cannot take less wall time than its busy
    // core-seconds over the cores, so that quotient over the floor is the best ratio any overlap
    // of the same work could reach here.
    const double cores = static_cast<double>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    const double fc = Median(bare_cpu), dc = Median(full_cpu), rc = Median(with_ref_cpu),
                 pc = Median(physical_cpu);
    std::printf("\nCPU: busy core-seconds of the whole machine per run (medians; %.0f cores)\n",
                cores);
    std::printf("%-46s %8s %11s %6s %18s\n", "measurement", "wall s", "CPU core-s", "busy",
                "CPU-bound minimum");
    auto cpu_row = [&](const char* name, double wall, double cpu, bool measured) {
      if (!measured) {
        std::printf("%-46s %8s\n", name, "skipped");
        return;
      }
      std::printf("%-46s %8.2f %11.2f %5.0f%% %8.2f s %6.2fx\n", name, wall, cpu,
                  wall > 0 ? 100.0 * cpu / (wall * cores) : 0, cpu / cores,
                  fl > 0 ? cpu / cores / fl : 0);
    };
    cpu_row("floor: pg_restore -j 2", fl, fc, true);
    cpu_row("pg_dump drill", dr, dc, true);
    cpu_row("pg_dump drill, dump-time reference", rd, rc, true);
    cpu_row("physical drill", ph, pc, args.physical);
    std::printf("%-46s %8s %11.2f\n", "pg_dump drill's CPU beyond the floor", "", dc - fc);
    std::printf("%-46s %8s %11.2f\n", "  of which the source-side scan (drill - ref drill)", "",
                dc - rc);
    std::printf(
        "CPU-bound minimum: busy core-seconds / cores, as a ratio to the floor's wall time: the "
        "wall time that much busy CPU needs even when packed without a gap\n");
    const double one = Median(one_session), two = Median(two_sessions);
    std::printf(
        "two scans at once (wide1, wide2): %.2f s in one session one after the other, %.2f s in two"
        " sessions at the same time: %.2fx the throughput of one session\n",
        one, two, two > 0 ? one / two : 0);
    std::printf("\nchecksum scan cost, per formulation (seconds; ratio to count(*)):\n");
    std::printf("%-36s %16s %16s  %s\n", "formulation", "pgbench_accounts", "wide tables", "note");
    for (std::size_t i = 0; i < Candidates().size(); ++i) {
      char a[48], w[48];
      std::snprintf(a, sizeof a, "%.2f %6.2fx", cand_accounts[i],
                    cand_accounts[0] > 0 ? cand_accounts[i] / cand_accounts[0] : 0);
      std::snprintf(w, sizeof w, "%.2f %6.2fx", cand_wide[i],
                    cand_wide[0] > 0 ? cand_wide[i] / cand_wide[0] : 0);
      std::printf("%-36s %16s %16s  %s\n", Candidates()[i].name, a, w, Candidates()[i].note);
    }
    std::printf(
        "targets for the chosen scan: <= 3x count(*) on pgbench_accounts, <= 5x on the "
        "wide tables\n");
    std::printf(
        "chosen scan / every column read: %.2fx on pgbench_accounts, %.2fx on the wide tables (the "
        "hashing itself; taking the rows apart is the rest)\n",
        cand_accounts[1] > 0 ? cand_accounts[kChosen] / cand_accounts[1] : 0,
        cand_wide[1] > 0 ? cand_wide[kChosen] / cand_wide[1] : 0);
    std::printf(
        "\nwhere the hashing goes: each column's keyed hash summed alone, less counting the same "
        "column (wall-clock ns per row of the scan as the server plans it, parallel workers "
        "included)\n");
    std::printf("%-24s %-10s %-24s %-24s %7s\n", "table", "column", "type", "hash function",
                "ns/row");
    for (const auto& c : column_costs)
      std::printf("%-24s %-10s %-24s %-24s %7.0f\n", c.table.c_str(), c.column.c_str(),
                  c.type.c_str(), c.hash.c_str(), c.ns_per_row);

    // The issue 13 targets this bench measures, for the closing table.
    auto ratio_row = [&](const char* t, const char* figure, double v, double of, double limit,
                         bool measured) {
      if (!measured || of <= 0) return;
      targets.push_back({t, figure, bench::Fmt("%.2fx", v / of), bench::Fmt("<= %.2fx", limit),
                         v / of <= limit ? 1 : 0});
    };
    ratio_row("1", "pg_dump drill / floor (source hashed live)", dr, fl, 1.15, true);
    ratio_row("1", "pg_dump drill with dump-time reference / floor", rd, fl, 1.15, true);
    ratio_row("2", "checksum scan / count(*), pgbench_accounts", cand_accounts[kChosen],
              cand_accounts[0], 3.0, true);
    ratio_row("2", "checksum scan / count(*), wide tables", cand_wide[kChosen], cand_wide[0], 5.0,
              true);
    ratio_row("3", "physical drill / pg_dump drill", ph, dr, 0.5, args.physical);
    if (small_source) {
      // Target 6: this size's drill/floor over the small reference's, both from this run. Judged
      // on the side that matters (the drill's cost over the restore must not grow with size);
      // the measured quotient shows how far it is from 1.00x either way.
      const double sfl = Median(small_bare), sdr = Median(small_full);
      const double large_ratio = fl > 0 ? dr / fl : 0, small_ratio = sfl > 0 ? sdr / sfl : 0;
      const double q = small_ratio > 0 ? large_ratio / small_ratio : 0;
      targets.push_back({"6",
                         "drill/floor at " + size + " (" + bench::Fmt("%.2fx", large_ratio) +
                             ") / the small one's (" + bench::Fmt("%.2fx", small_ratio) + ")",
                         bench::Fmt("%.2fx", q), "<= 1.05x", q > 0 && q <= 1.05 ? 1 : 0});
      targets.push_back({"6", "peak RSS of the bench process, drills included",
                         bench::Fmt("%.1f MiB", PeakRssMiB()), "flat with size", -1});
    }
    source.reset();
  } catch (const Error& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    if (!base.empty()) RemoveTree(base);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    if (!base.empty()) RemoveTree(base);
    return 2;
  }
  RemoveTree(base);
  if (!args.all) {
    bench::PrintTargets("issue 13 targets measured by this bench (--all adds targets 4 and 5)",
                        targets);
    return 0;
  }
  // --all: the WAL continuity bench and the agent bench, each writing its target rows to a
  // summary file, then one table of every target.
  std::string sums;
  try {
    sums = MakeTempDir(args.dir, "restorewatch-bench-summary-");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 2;
  }
  int rc = 0;
  for (const char* sibling : {RW_WAL_BENCH_BINARY, RW_AGENT_BENCH_BINARY}) {
    const std::string summary = sums + "/summary.tsv";
    std::printf("\n$ %s\n", sibling);
    std::fflush(stdout);
    const std::string cmd = std::string("'") + sibling + "' --summary '" + summary + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "bench: %s could not run\n", sibling);
      rc = 2;
    }
  }
  for (auto& r : bench::ReadSummary(sums + "/summary.tsv")) targets.push_back(r);
  std::stable_sort(
      targets.begin(), targets.end(),
      [](const bench::TargetRow& a, const bench::TargetRow& b) { return a.target < b.target; });
  RemoveTree(sums);
  bench::PrintTargets("issue 13: every target, measured in this run", targets);
  return rc;
}
