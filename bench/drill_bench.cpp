// Drill speed against the reference of RECIPES.md: pgbench scale N plus three wide tables, dumped
// with pg_dump -Fd. Measures (1) a bare `pg_restore -j 2` into an already-running throwaway-tuned
// cluster and (2) a full drill (sandbox start, restore, schema, exact counts and checksums on both
// sides, teardown), and prints their ratio. Target: full drill <= 1.4x the bare restore.
//
// usage: restorewatch_bench [--scale N] [--wide-rows N] [--runs N] [--keep-source]
// Needs PostgreSQL 15 binaries (auto-detected); runs servers as `postgres` when started as root.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/environment.h"
#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/runtime/drill_runner.h"
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

}  // namespace

int main(int argc, char** argv) {
  int scale = 20, wide_rows = 500000, runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--scale") scale = std::atoi(argv[i + 1]);
    if (a == "--wide-rows") wide_rows = std::atoi(argv[i + 1]);
    if (a == "--runs") runs = std::atoi(argv[i + 1]);
  }
  InitLogging(LogFormat::kText, "warn");
  std::string base;
  try {
    base = MakeTempDir("/var/tmp", "restorewatch-bench-");
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
    auto source = LocalCluster::Create(so);
    source->Psql("create database ref");
    std::printf("building the reference: pgbench scale %d + 3 wide tables of %d rows ...\n", scale,
                wide_rows);
    auto t0 = std::chrono::steady_clock::now();
    ProcessSpec pgb;
    pgb.argv = {env.pg.Path("pgbench"), "-i", "-q", "-s", std::to_string(scale), "-d",
                source->ConnInfo("ref")};
    pgb.timeout = std::chrono::minutes(20);
    Must(RunProcess(pgb), "pgbench -i");
    for (int w = 1; w <= 3; ++w) {
      std::string t = "wide" + std::to_string(w);
      source->Psql(
          "create table " + t +
              " (id bigint primary key, name text, doc jsonb, amount numeric(14,4), at timestamptz,"
              " uid uuid, tags text[]);"
              "insert into " +
              t + " select g, repeat('n', 20) || g, jsonb_build_object('g', g, 'w', " +
              std::to_string(w) +
              ", 's', md5(g::text)), g / 7.0, now() - (g || ' s')::interval, md5(g::text)::uuid,"
              " array[g::text, md5(g::text)] from generate_series(1, " +
              std::to_string(wide_rows) + ") g;",
          "ref");
    }
    source->Psql("vacuum analyze", "ref");
    std::string size = source->Psql("select pg_size_pretty(pg_database_size('ref'))");
    size.erase(size.find_last_not_of("\n ") + 1);
    std::printf("  built in %.1f s, database size %s\n", Seconds(t0), size.c_str());

    std::string dump = base + "/backups/ref-1.dir";
    MakeDirs(base + "/backups");
    ProcessSpec pd;
    pd.argv = {env.pg.Path("pg_dump"), "-Fd", "-j", "2", "-d", source->ConnInfo("ref"), "-f", dump};
    pd.timeout = std::chrono::minutes(20);
    Must(RunProcess(pd), "pg_dump");

    // (1) bare pg_restore -j 2 into an already-running tuned cluster.
    ClusterOptions to = so;
    to.name_prefix = "tuned-";
    auto tuned = LocalCluster::Create(to);
    std::vector<double> bare;
    for (int i = 0; i < runs; ++i) {
      std::string db = "r" + std::to_string(i);
      tuned->Psql("create database " + db);
      ProcessSpec pr;
      pr.argv = {env.pg.Path("pg_restore"), "-j", "2", "--no-owner", "--no-privileges", "-d",
                 tuned->ConnInfo(db),       dump};
      pr.timeout = std::chrono::minutes(20);
      auto t = std::chrono::steady_clock::now();
      Must(RunProcess(pr), "pg_restore");
      bare.push_back(Seconds(t));
      tuned->Psql("drop database " + db);
    }
    tuned.reset();

    // (2) full drills, exact compare (the source is quiescent).
    TargetConfig target;
    target.name = "bench";
    target.source = ConnSpec(source->ConnInfo("ref"));
    target.backup.paths = {base + "/backups"};
    target.backup.pattern = "ref-*";
    target.backup.settle = std::chrono::milliseconds(100);
    target.drill.jobs = 2;
    target.checks.compare = CompareMode::kExact;
    std::vector<double> full;
    DrillReport last;
    for (int i = 0; i < runs; ++i) {
      CancelToken cancel;
      auto t = std::chrono::steady_clock::now();
      last = RunDrill(env, target, nullptr, cancel);
      full.push_back(Seconds(t));
      if (last.result != DrillResult::kSuccess) {
        std::printf("%s\n", RenderReportText(last).c_str());
        throw Error(ErrorKind::kBadInput, "the drill did not pass: " + last.reason);
      }
    }
    std::printf("\n%s\n", RenderReportText(last).c_str());
    double b = Median(bare), f = Median(full);
    std::printf("bare pg_restore -j 2 into a running tuned cluster: median %.2f s over %d runs\n",
                b, runs);
    std::printf(
        "full drill (start, restore, schema, exact counts + checksums, teardown): median %.2f s\n",
        f);
    std::printf("ratio %.2fx (target <= 1.40x)\n", f / b);
    source.reset();
  } catch (const Error& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    if (!base.empty()) RemoveTree(base);
    return 2;
  }
  RemoveTree(base);
  return 0;
}
