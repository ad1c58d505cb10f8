// The restore contract (agent/backup_source.h, agent/sandbox.h, agent/restored_copy.h) and the
// drill runner's stage list, with fake sources, sandboxes and checks: which stages run, which are
// listed as skipped and why, an unusable copy as a finding, errors named by the stage the source
// was in, capabilities instead of kinds, and the copy's point reaching the checks.
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "agent/config.h"
#include "agent/drill_log.h"
#include "agent/errors.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/process.h"
#include "agent/runtime/drill_metrics.h"
#include "agent/runtime/drill_record.h"
#include "agent/runtime/drill_runner.h"
#include "agent/sandboxes/scratch.h"
#include "agent/sources/pg_dump_source.h"
#include "checks/registry.h"

using namespace rw;
using namespace std::chrono_literals;

namespace {

// A sandbox that starts nothing: it records what the source asked of it.
class FakeSandbox : public Sandbox {
 public:
  SandboxCapabilities caps;
  int* starts = nullptr;
  int* cleanups = nullptr;
  std::string kind() const override { return "fake"; }
  SandboxCapabilities capabilities() const override { return caps; }
  void Start(int, CancelToken&) override {
    if (starts) ++*starts;
  }
  std::string CreateDatabase(const std::string& n) override { return n; }
  std::string ConnInfo(const std::string& db) const override {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " connect_timeout=1 dbname=" + db;
  }
  int ServerMajor() const override { return 15; }
  std::string Cleanup() override {
    if (cleanups) ++*cleanups;
    return {};
  }

 private:
  int port_ = PickFreePort();  // nothing listens: the size query fails at once
};

// A source whose Restore() does what the test scripts: announce stages, sleep in them, return
// the copy or throw.
struct Script {
  std::vector<std::pair<std::string, double>> stages;  // (drill stage, seconds slept)
  RestoredCopy copy;
  std::optional<Error> throw_after;
  SandboxCapabilities needs;
};

class FakeSource : public BackupSource {
 public:
  explicit FakeSource(Script s) : s_(std::move(s)) {}
  std::string type() const override { return "fake"; }
  BackupCatalogue Catalogue(CancelToken&) override { return {}; }
  BackupInfo Latest(CancelToken&) override {
    BackupInfo b;
    b.id = "b1";
    b.tool = "fake";
    b.started_at = 1000;
    return b;
  }
  RestoredCopy Restore(const BackupInfo&, SandboxHost& host, const RestoreOptions& o,
                       CancelToken&) override {
    RequireCapabilities(host, s_.needs, "the fake source");
    RestoredCopy c = s_.copy;
    for (const auto& [stage, secs] : s_.stages) {
      if (o.begin_stage) o.begin_stage(stage);
      std::this_thread::sleep_for(std::chrono::duration<double>(secs));
      c.stages.push_back({stage, stage + " step", secs, ""});
    }
    if (s_.throw_after) throw *s_.throw_after;
    if (c.usable) c.conninfo = host.LibpqConnInfo("db");
    return c;
  }

 private:
  Script s_;
};

// Records the copy's point the context carried.
class PointCheck : public Check {
 public:
  explicit PointCheck(std::optional<double>* seen) : seen_(seen) {}
  std::string name() const override { return "point"; }
  CheckResult Run(CheckContext& ctx) override {
    *seen_ = ctx.consistent_at;
    CheckResult r;
    r.name = "point";
    r.outcome = Outcome::kPass;
    r.message = "copy point " + std::to_string(ctx.CopyPoint());
    return r;
  }

 private:
  std::optional<double>* seen_;
};

struct Harness {
  Environment env;
  TargetConfig target;
  int starts = 0, cleanups = 0;
  std::optional<double> seen;
  SandboxCapabilities caps;
  Harness() {
    target.name = "t";
    target.source =
        ConnSpec("host=127.0.0.1 port=" + std::to_string(PickFreePort()) + " user=x dbname=x");
    target.connect_timeout = 1s;
    caps.can_create_cluster = true;
    caps.can_start_from_files = true;
  }
  DrillReport Run(Script script) {
    DrillParts parts;
    parts.source = [script](const Environment&, const TargetConfig&) {
      return std::make_unique<FakeSource>(script);
    };
    parts.sandbox = [this](const Environment&, const TargetConfig&, const std::string&,
                           const std::string&) {
      auto s = std::make_unique<FakeSandbox>();
      s->caps = caps;
      s->starts = &starts;
      s->cleanups = &cleanups;
      return s;
    };
    parts.checks = [this](const ChecksConfig&) {
      std::vector<std::unique_ptr<Check>> v;
      v.push_back(std::make_unique<PointCheck>(&seen));
      return v;
    };
    CancelToken cancel;
    return RunDrill(env, target, nullptr, cancel, {}, parts);
  }
};

std::vector<std::string> Names(const std::vector<StageResult>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(s.name);
  return out;
}

const StageResult* Stage(const DrillReport& r, const std::string& name) {
  for (const auto& s : r.stages)
    if (s.name == name) return &s;
  return nullptr;
}

const StageResult* NotRun(const DrillReport& r, const std::string& name) {
  for (const auto& s : r.not_run)
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("contract: a logical copy runs restore only; fetch and recovery are skipped with why",
          "[unit][contract]") {
  Harness h;
  Script s;
  s.stages = {{"restore", 0.05}};
  s.copy.usable = true;
  s.copy.databases = {"db"};
  s.copy.consistent_at = 1234.5;
  s.copy.summary = "fake load";
  s.copy.not_run = {{"fetch", "reads the file in place"}, {"recovery", "logical restore"}};
  DrillReport r = h.Run(s);
  INFO(r.reason);
  CHECK(r.result == DrillResult::kSuccess);
  CHECK(Names(r.stages) ==
        std::vector<std::string>{"discover", "restore", "checks", "cleanup", "total"});
  REQUIRE(NotRun(r, "fetch"));
  CHECK(NotRun(r, "fetch")->outcome == Outcome::kSkipped);
  CHECK(NotRun(r, "fetch")->message == "reads the file in place");
  REQUIRE(NotRun(r, "recovery"));
  CHECK(NotRun(r, "recovery")->message == "logical restore");
  CHECK(r.not_run.size() == 2);
  // The drill did not start the sandbox: only the source may ask for a cluster (it did not).
  CHECK(h.starts == 0);
  CHECK(h.cleanups >= 1);
  // The checks read the copy's point, not the backup's start (1000).
  REQUIRE(h.seen);
  CHECK(*h.seen == Approx(1234.5));
  CHECK(r.copy_consistent_at == Approx(1234.5));
  CHECK(r.copy_lsn.empty());
  CHECK(Stage(r, "restore")->message.find("fake load into fake sandbox") == 0);
}

TEST_CASE("contract: a physical copy's fetch and recovery sub-stages are stages of their own",
          "[unit][contract]") {
  Harness h;
  Script s;
  s.stages = {{"fetch", 0.2}, {"restore", 0.05}, {"recovery", 0.3}};
  s.copy.usable = true;
  s.copy.databases = {"db"};
  s.copy.consistent_at = 2000;
  s.copy.lsn = "0/3000148";
  s.copy.timeline = 2;
  s.needs.can_start_from_files = true;
  DrillReport r = h.Run(s);
  INFO(r.reason);
  CHECK(r.result == DrillResult::kSuccess);
  CHECK(Names(r.stages) == std::vector<std::string>{"discover", "fetch", "restore", "recovery",
                                                    "checks", "cleanup", "total"});
  CHECK(Stage(r, "fetch")->duration_seconds == Approx(0.2));
  CHECK(Stage(r, "recovery")->duration_seconds == Approx(0.3));
  CHECK(Stage(r, "recovery")->message.find("recovery step") != std::string::npos);
  // The restore stage is what is left of the call, not the whole call.
  CHECK(Stage(r, "restore")->duration_seconds < 0.25);
  CHECK(r.not_run.empty());
  CHECK(r.copy_lsn == "0/3000148");
  CHECK(r.copy_timeline == 2);
}

TEST_CASE("contract: an unusable copy is a failure finding in the stage that found it",
          "[unit][contract]") {
  Harness h;
  Script s;
  s.stages = {{"fetch", 0.01}, {"restore", 0.01}, {"recovery", 0.01}};
  s.copy.usable = false;
  s.copy.reason = "WAL segment 000000010000000000000004 is missing from the archive";
  DrillReport r = h.Run(s);
  CHECK(r.result == DrillResult::kFailure);
  CHECK(r.reason == "recovery: WAL segment 000000010000000000000004 is missing from the archive");
  CHECK(Names(r.stages) ==
        std::vector<std::string>{"discover", "fetch", "restore", "recovery", "cleanup", "total"});
  CHECK(Stage(r, "restore")->outcome == Outcome::kPass);
  CHECK(Stage(r, "recovery")->outcome == Outcome::kFail);
  REQUIRE(NotRun(r, "checks"));
  CHECK(NotRun(r, "checks")->message == "not run: recovery did not pass");
  CHECK_FALSE(h.seen);  // no check ran on an unusable copy
  CHECK(h.cleanups >= 1);

  SECTION("found during the restore proper") {
    Script s2;
    s2.stages = {{"restore", 0.01}};
    s2.copy.usable = false;
    s2.copy.reason = "pg_restore failed on x.dump: bad header";
    DrillReport r2 = h.Run(s2);
    CHECK(r2.result == DrillResult::kFailure);
    CHECK(r2.reason == "restore: pg_restore failed on x.dump: bad header");
    CHECK(Stage(r2, "restore")->outcome == Outcome::kFail);
    CHECK(Names(r2.stages) == std::vector<std::string>{"discover", "restore", "cleanup", "total"});
  }
  SECTION("found during fetch: one fetch stage, failed, never also passed") {
    Script s3;
    s3.stages = {{"fetch", 0.01}};
    s3.copy.usable = false;
    s3.copy.reason = "pgbackrest verify: file missing 'B/pg_data/base/5/3456.gz'";
    DrillReport r3 = h.Run(s3);
    CHECK(r3.result == DrillResult::kFailure);
    CHECK(r3.reason == "fetch: pgbackrest verify: file missing 'B/pg_data/base/5/3456.gz'");
    CHECK(Names(r3.stages) == std::vector<std::string>{"discover", "fetch", "cleanup", "total"});
    CHECK(Stage(r3, "fetch")->outcome == Outcome::kFail);
    CHECK(Stage(r3, "fetch")->duration_seconds >= 0.01);
  }
}

TEST_CASE("contract: an error is named by the stage the source was in", "[unit][contract]") {
  Harness h;
  Script s;
  s.stages = {{"fetch", 0.01}};
  s.throw_after = Error(ErrorKind::kIo, "cannot read /backups/base/base.tar: Permission denied");
  DrillReport r = h.Run(s);
  CHECK(r.result == DrillResult::kError);
  CHECK(r.reason == "fetch: cannot read /backups/base/base.tar: Permission denied");
  CHECK(Names(r.stages) == std::vector<std::string>{"discover", "fetch", "cleanup", "total"});
  CHECK(Stage(r, "fetch")->outcome == Outcome::kError);
  for (const char* n : {"restore", "recovery", "checks"}) {
    REQUIRE(NotRun(r, n));
    CHECK(NotRun(r, n)->message == "not run: fetch did not pass");
  }
}

TEST_CASE("contract: a source that needs files gets a clear error from a sandbox without them",
          "[unit][contract]") {
  Harness h;
  h.caps.can_start_from_files = false;
  Script s;
  s.needs.can_start_from_files = true;
  DrillReport r = h.Run(s);
  CHECK(r.result == DrillResult::kError);
  CHECK(r.reason ==
        "restore: the fake source needs a sandbox that can start PostgreSQL from backup files; "
        "the fake sandbox cannot");

  // The real sandboxes declare what they can do.
  TargetConfig t;
  t.name = "t";
  t.drill.sandbox = SandboxKind::kScratch;
  Environment env;
  auto scratch = MakeScratchSandbox(env, t, "run", "1");
  CHECK(scratch->capabilities().can_create_cluster);
  CHECK_FALSE(scratch->capabilities().can_start_from_files);
  CHECK_FALSE(scratch->capabilities().exclusive_server);
  CancelToken cancel;
  try {
    scratch->NewDataDirectory(cancel);
    FAIL("a scratch sandbox handed out a data directory");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(std::string(e.what()) == "the scratch sandbox cannot start PostgreSQL from backup files");
  }

  // pg_dump asks for a cluster, and says so when the host cannot make one.
  FakeSandbox none;
  none.caps = {};
  auto pgdump = MakePgDumpSource(env, t);
  BackupInfo b;
  b.path = "/nonexistent";
  try {
    SandboxHost& host = none;
    pgdump->Restore(b, host, RestoreOptions{}, cancel);
    FAIL("pg_dump restored without a cluster");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(std::string(e.what()) ==
          "the pg_dump source needs a sandbox that can create a database cluster; the fake "
          "sandbox cannot");
  }
}

TEST_CASE("contract: pg_dump's own keys are read by its row of the source table",
          "[unit][contract][config]") {
  REQUIRE(BackupSourceOptionReaders("pg_dump"));
  CHECK(BackupSourceOptionReaders("pg_dump")->backup);
  CHECK(BackupSourceOptionReaders("pg_dump")->drill);
  CHECK_FALSE(BackupSourceOptionReaders("nope"));
  const std::string base =
      "[[target]]\nname = \"t\"\nsource = \"host=h dbname=d\"\n[target.backup]\n";
  ConfigLoad ok = LoadConfigText(base +
                                     "type = \"pg_dump\"\npath = \"/b\"\npattern = \"x-*.dump\"\n"
                                     "globals_pattern = \"g*.sql\"\n[target.drill]\njobs = 3\n"
                                     "allow_restore_errors = [\"must be owner\"]\n",
                                 "/etc/rw.toml");
  INFO([&] {
    std::string s;
    for (const auto& e : ok.errors) s += e.ToString() + "\n";
    return s;
  }());
  REQUIRE(ok.errors.empty());
  REQUIRE(ok.config);
  REQUIRE(ok.config->targets.size() == 1);
  const TargetConfig& t = ok.config->targets[0];
  CHECK(t.backup.pattern == "x-*.dump");
  CHECK(t.backup.globals_pattern == "g*.sql");
  CHECK(t.drill.jobs == 3);
  CHECK(t.drill.allow_restore_errors == std::vector<std::string>{"must be owner"});
  // Another type has none of them: they are unknown keys there, named by file, line and key.
  ConfigLoad other =
      LoadConfigText(base + "type = \"nope\"\npath = \"/b\"\npattern = \"x\"\n", "/etc/rw.toml");
  bool unknown_pattern = false;
  for (const auto& e : other.errors)
    unknown_pattern |= e.ToString() == "/etc/rw.toml:7: target.t.backup.pattern: unknown key";
  CHECK(unknown_pattern);
}

TEST_CASE("contract: one recorder records a finished drill and tells what hangs off it",
          "[unit][contract][history]") {
  char tmpl[] = "/tmp/rwrec-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  const std::string dir = std::string(tmpl) + "/t";
  {
    DrillRecorder rec(dir);
    std::vector<std::string> heard;
    rec.OnRecorded([&](const DrillReport& r, const DrillHistorySummary& h) {
      heard.push_back("first " + r.run_id + " " + std::to_string(h.runs_by_result.at("success")));
      throw Error(ErrorKind::kIo, "a listener that breaks");
    });
    rec.OnRecorded([&](const DrillReport& r, const DrillHistorySummary& h) {
      heard.push_back("second " + r.run_id + (h.last_report ? " has report" : ""));
    });
    rec.Begin(100);
    DrillReport r;
    r.target = "t";
    r.run_id = "run-1";
    r.started_at = 100;
    r.finished_at = 110;
    r.result = DrillResult::kSuccess;
    r.stages.push_back(StageResult{"total", Outcome::kPass, "", 10});
    DrillHistorySummary h = rec.Finish(r);
    CHECK(h.runs_by_result["success"] == 1);
    REQUIRE(h.last_report);
    CHECK(h.last_report->run_id == "run-1");
    // Both listeners ran, the second despite the first throwing.
    CHECK(heard == std::vector<std::string>{"first run-1 1", "second run-1 has report"});
    // drills.jsonl holds it too (what `history` reads).
    auto entries = DrillLog(dir).Read();
    REQUIRE(entries.size() == 1);
  }
  std::string err;
  RemoveTree(tmpl, &err);
}

TEST_CASE("contract: which check numbers are metrics is declared in the check table",
          "[unit][contract][metrics]") {
  CHECK(MetricsOfCheck("checksum").tables);
  CHECK(MetricsOfCheck("checksum").rows_checksummed);
  CHECK(MetricsOfCheck("checksum").coverage);
  CHECK(MetricsOfCheck("row_count").tables);
  CHECK_FALSE(MetricsOfCheck("row_count").coverage);
  CHECK_FALSE(MetricsOfCheck("schema").tables);
  CHECK_FALSE(MetricsOfCheck("sql:anything").tables);
}

TEST_CASE("contract: stages not run and the copy's point survive the history round trip",
          "[unit][contract][history]") {
  DrillReport r;
  r.target = "t";
  r.run_id = "run-2";
  r.result = DrillResult::kSuccess;
  r.stages.push_back(StageResult{"restore", Outcome::kPass, "ok", 2});
  r.not_run.push_back(
      StageResult{"fetch", Outcome::kSkipped, "pg_dump reads the file in place", 0});
  r.copy_consistent_at = 1764000000.5;
  r.copy_lsn = "0/3000148";
  r.copy_timeline = 3;
  auto back = ReportFromToml(ReportToToml(r));
  REQUIRE(back);
  REQUIRE(back->not_run.size() == 1);
  CHECK(back->not_run[0].name == "fetch");
  CHECK(back->not_run[0].outcome == Outcome::kSkipped);
  CHECK(back->not_run[0].message == "pg_dump reads the file in place");
  CHECK(back->copy_consistent_at == Approx(1764000000.5));
  CHECK(back->copy_lsn == "0/3000148");
  CHECK(back->copy_timeline == 3);
  CHECK(ReportToJson(r).find("\"not_run\"") != std::string::npos);
}

TEST_CASE("a physical copy's recovery point is the drill's recovered timestamp",
          "[unit][contract]") {
  rw::TargetConfig t;
  t.name = "phys";
  rw::DrillReport r;
  r.target = "phys";
  r.result = rw::DrillResult::kSuccess;
  r.started_at = 1764700000;
  r.finished_at = 1764700010;
  auto recovered = [&] {
    rw::DrillHistorySummary h;
    h.last_run = r.finished_at;
    h.last_report = r;
    for (const auto& f : rw::DrillFamilies(t, h, false))
      if (f.name == "restorewatch_drill_recovered_timestamp_seconds" && !f.samples.empty())
        return std::optional<double>(f.samples[0].value);
    return std::optional<double>();
  };
  CHECK_FALSE(recovered());  // a logical copy without a freshness check: absent
  r.copy_consistent_at = 1764699000.5;
  r.copy_lsn = "0/3000148";
  REQUIRE(recovered());
  CHECK(*recovered() == 1764699000.5);
}
