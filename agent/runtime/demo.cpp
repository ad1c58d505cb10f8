// `restorewatch demo`: the whole product on a sample database, with nothing to configure. It
// creates a source cluster, fills it, starts the agent (monitoring + /metrics), takes a pg_dump
// backup, changes the source a little (as a live database would), runs a restore drill, prints
// the report, and serves until Ctrl-C. Everything lives in one temp dir removed at exit.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_cluster.h"
#include "agent/runtime/agent.h"
#include "agent/runtime/daemon.h"
#include "agent/runtime/signals.h"
#include "exporters/report.h"

namespace rw {
namespace {

const char* kSampleSchema = R"SQL(
create schema shop;
create schema audit;
create table shop.customers (
  id bigserial primary key,
  name text not null,
  email text unique,
  created_at timestamptz not null default now(),
  tags text[],
  profile jsonb
);
create table shop.orders (
  id bigserial primary key,
  customer_id bigint not null references shop.customers(id),
  amount numeric(12,2) not null check (amount >= 0),
  placed_at timestamptz not null default now(),
  note text
);
create index on shop.orders (customer_id);
create table shop.events (
  id bigserial primary key,
  kind text not null,
  payload jsonb,
  at timestamptz not null default now()
);
create table audit.log (at timestamptz not null, who text, what bytea);
create table shop.measurements (id bigint not null, taken date not null, value double precision)
  partition by range (taken);
create table shop.measurements_2026h1 partition of shop.measurements for values from ('2026-01-01') to ('2026-07-01');
create table shop.measurements_2026h2 partition of shop.measurements for values from ('2026-07-01') to ('2027-01-01');
create view shop.order_totals as select customer_id, sum(amount) as total from shop.orders group by customer_id;
create function shop.is_vip(c bigint) returns boolean language sql stable
  as $$ select coalesce(sum(amount), 0) > 1000 from shop.orders where customer_id = c $$;

insert into shop.customers (name, email, created_at, tags, profile)
  select 'customer ' || g, 'c' || g || '@example.com', now() - (g || ' minutes')::interval,
         array['tag' || (g % 7), 'tier' || (g % 3)],
         jsonb_build_object('age', 20 + g % 50, 'newsletter', g % 2 = 0)
  from generate_series(1, 5000) g;
insert into shop.orders (customer_id, amount, placed_at, note)
  select 1 + (g % 5000), round((random() * 500)::numeric, 2), now() - (g || ' seconds')::interval,
         case when g % 10 = 0 then null else 'order ' || g end
  from generate_series(1, 40000) g;
insert into shop.events (kind, payload) select 'signup', jsonb_build_object('n', g) from generate_series(1, 20000) g;
insert into audit.log select now() - (g || ' hours')::interval, 'admin', decode(md5(g::text), 'hex')
  from generate_series(1, 2000) g;
insert into shop.measurements select g, date '2026-01-01' + (g % 360), g * 0.25 from generate_series(1, 10000) g;
select lo_from_bytea(0, convert_to('a large object survives the restore too', 'UTF8'));
)SQL";

// Waits up to `seconds` for `pred`, in 100 ms steps; false on timeout.
template <typename Pred>
bool WaitFor(Pred pred, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (pred()) return true;
    usleep(100 * 1000);
  }
  return pred();
}

}  // namespace

int RunDemo(const std::string& listen, bool once) {
  BlockShutdownSignals();
  sigset_t sigs = ShutdownSignals();
  InitLogging(LogFormat::kText, "warn");

  std::string base;
  int exit_code = 2;
  try {
    base = MakeTempDir("/tmp", "restorewatch-demo-");
    chmod(base.c_str(), 0755);
    std::printf("restorewatch demo: working in %s\n", base.c_str());

    Config cfg;
    cfg.path = "(demo)";
    cfg.agent.listen = listen;
    cfg.agent.state_dir = base + "/state";
    cfg.agent.work_dir = base + "/work";
    cfg.agent.log_level = "warn";
    Environment env = Environment::FromConfig(cfg.agent);

    std::printf("  creating a sample source database (PostgreSQL %d in %s) ...\n", env.pg.major,
                env.pg.bin_dir.c_str());
    ClusterOptions co;
    co.tools = env.pg;
    co.parent_dir = base;
    co.name_prefix = "source-";
    co.run_as = env.run_as;
    co.throwaway = false;
    co.marker = "restorewatch demo source";
    auto source = LocalCluster::Create(co);
    source->Psql("create database shop");
    source->Psql(kSampleSchema, "shop");

    std::string backups = base + "/backups";
    MakeDirs(backups, 0755);
    TargetConfig t;
    t.name = "demo";
    t.source = ConnSpec(source->ConnInfo("shop"));
    t.monitor_interval = std::chrono::seconds(5);
    t.backup.paths = {backups};
    t.backup.pattern = "shop-*.dump";
    t.backup.settle = std::chrono::milliseconds(200);
    t.backup.catalogue_interval = std::chrono::seconds(10);
    t.drill.rto = std::chrono::minutes(5);
    t.drill.jobs = 2;
    t.checks.checksum.append_only = {{"shop.events", "id"}};
    t.checks.freshness = {{"shop.orders", "placed_at"}, {"shop.events", "at"}};
    t.checks.stats_settle = std::chrono::seconds(2);
    SqlCheckConfig sql;
    sql.name = "customers exist";
    sql.query = "select count(*) from shop.customers";
    sql.expect = ">= 1000";
    t.checks.sql.push_back(sql);
    SqlCheckConfig vip;
    vip.name = "vip count matches the source";
    vip.query = "select count(*) from shop.customers where shop.is_vip(id)";
    vip.compare_source = true;
    t.checks.sql.push_back(vip);
    cfg.targets.push_back(t);

    Agent agent(cfg, AgentOptions{true, false});
    agent.Start();
    std::printf("  agent listening on http://%s:%d (/metrics, /api/v1/status)\n",
                listen.substr(0, listen.rfind(':')).c_str(), agent.http_port());
    // The first table-activity sample must predate the backup, so churn since it is known.
    if (!WaitFor([&] { return agent.Ready(); }, 30))
      std::printf("  (collectors are slow to answer; going on)\n");
    // Archive headers carry whole seconds: let the clock pass the sample's second.
    usleep(1100 * 1000);

    char name[64];
    std::time_t now = std::time(nullptr);
    std::strftime(name, sizeof name, "shop-%Y%m%dT%H%M%SZ.dump", std::gmtime(&now));
    std::printf("  taking a backup: pg_dump -Fc -> %s/%s\n", backups.c_str(), name);
    ProcessSpec dump;
    dump.argv = {env.pg.Path("pg_dump"),   "-Fc", "-d",
                 source->ConnInfo("shop"), "-f",  backups + "/" + name};
    dump.timeout = std::chrono::minutes(5);
    ProcessResult dr = RunProcess(dump);
    if (!dr.ok()) throw Error(ErrorKind::kProcess, "pg_dump failed: " + dr.Summary());

    std::printf(
        "  the source keeps changing after the backup: 500 new events, 20 orders updated\n");
    source->Psql(
        "insert into shop.events (kind, payload) select 'click', jsonb_build_object('n', g) from "
        "generate_series(1, 500) g;"
        "update shop.orders set note = 'changed after the backup' where id <= 20;"
        "select pg_stat_force_next_flush();",
        "shop");

    std::printf("  running a restore drill ...\n\n");
    DrillReport r = agent.RunDrillNow("demo");
    std::cout << RenderReportText(r) << std::endl;
    exit_code = r.result == DrillResult::kSuccess ? 0 : r.result == DrillResult::kFailure ? 1 : 2;

    if (!once) {
      std::printf("serving http://%s:%d/metrics - press Ctrl-C to stop and remove everything\n",
                  listen.substr(0, listen.rfind(':')).c_str(), agent.http_port());
      std::fflush(stdout);
      int sig = 0;
      while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
      }
    }
    agent.Stop();
    source.reset();
  } catch (const Error& e) {
    std::fprintf(stderr, "restorewatch demo: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "HINT: %s\n", e.hint().c_str());
    exit_code = 2;
  }
  if (!base.empty()) {
    std::string err;
    if (!RemoveTree(base, &err))
      std::fprintf(stderr, "restorewatch demo: cleanup: %s\n", err.c_str());
    else
      std::printf("removed %s\n", base.c_str());
  }
  return exit_code;
}

}  // namespace rw
