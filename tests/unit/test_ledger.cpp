// The verification ledger (agent/ledger.h), drill.pick and the per-kind freshness config, the
// catalogue's "running" families and the command list's "running" field. The real thing (a
// daemon drilling real dumps in turn, a base backup being written) is in
// tests/integration/test_ledger.cpp.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "agent/json.h"
#include "agent/ledger.h"
#include "agent/sources/command_source.h"
#include "agent/sources/pgbackrest_info.h"
#include "agent/units.h"
#include "checks/live/backup_catalogue_collector.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
namespace fs = std::filesystem;

namespace {

std::string Errors(const ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}

ConfigLoad Load(const std::string& backup, const std::string& drill = "") {
  return LoadConfigText(R"(
[[target]]
name = "shop"
source = "host=db1 dbname=shop user=rw"
[target.backup]
)" + backup + "\n[target.drill]\n" +
                            drill + "\n",
                        "/etc/restorewatch/t.toml");
}

const std::string kPgbackrest =
    "type = \"pgbackrest\"\nstanza = \"main\"\nconfig = \"/etc/pgbackrest/pgbackrest.conf\"\n";

BackupInfo Backup(const std::string& id, double completed, const std::string& kind = "logical") {
  BackupInfo b;
  b.id = id;
  b.kind = kind;
  b.started_at = completed - 60;
  b.completed_at = completed;
  return b;
}

DrillReport Drilled(const BackupInfo& b, DrillResult result, double at) {
  DrillReport r;
  r.target = "shop";
  r.run_id = "run-" + b.id;
  r.started_at = at - 10;
  r.finished_at = at;
  r.result = result;
  r.reason = result == DrillResult::kSuccess ? "" : "restore: it broke";
  r.backup = b;
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const MetricFamilyData* FindFamily(const std::vector<MetricFamilyData>& fams,
                                   const std::string& name) {
  for (const auto& f : fams)
    if (f.name == name) return &f;
  return nullptr;
}

std::optional<double> Sample(const std::vector<MetricFamilyData>& fams, const std::string& name,
                             const std::string& kind = "") {
  const MetricFamilyData* f = FindFamily(fams, name);
  if (!f) return std::nullopt;
  for (const auto& s : f->samples) {
    if (kind.empty() && s.labels.empty()) return s.value;
    for (const auto& [k, v] : s.labels)
      if (k == "kind" && v == kind) return s.value;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("ledger config: max_age_by_kind and pick", "[unit][ledger]") {
  {
    ConfigLoad load = Load(kPgbackrest + "max_age_by_kind = { full = \"8d\", incr = \"26h\" }\n",
                           "pick = \"random\"\n");
    INFO(Errors(load));
    REQUIRE(load.config);
    const TargetConfig& t = load.config->targets.at(0);
    CHECK(t.backup.max_age_by_kind.at("full") == std::chrono::hours(24 * 8));
    CHECK(t.backup.max_age_by_kind.at("incr") == std::chrono::hours(26));
    CHECK(t.backup.max_age == std::chrono::hours(26));  // the any-kind objective stays
    CHECK(t.drill.pick == DrillPick::kRandom);
    CHECK_FALSE(t.drill.recovery_target_given);
  }
  {
    ConfigLoad load = Load(kPgbackrest, "recovery_target = \"immediate\"\n");
    REQUIRE(load.config);
    CHECK(load.config->targets.at(0).drill.pick == DrillPick::kLatest);  // the default
    CHECK(load.config->targets.at(0).drill.recovery_target_given);
    CHECK(load.config->targets.at(0).backup.max_age_by_kind.empty());
  }
  auto error = [](const ConfigLoad& load, const std::string& key, const std::string& text) {
    INFO(Errors(load));
    CHECK_FALSE(load.config);
    bool found = false;
    for (const auto& e : load.errors)
      found |= e.key == key && e.message.find(text) != std::string::npos;
    CHECK(found);
  };
  // A kind the source never makes would never be satisfied.
  error(Load(kPgbackrest + "max_age_by_kind = { logical = \"1d\" }\n"),
        "target.shop.backup.max_age_by_kind.logical",
        "backup type \"pgbackrest\" makes no backups of kind \"logical\"");
  error(Load("path = \"/backups\"\nmax_age_by_kind = { full = \"1d\" }\n"),
        "target.shop.backup.max_age_by_kind.full", "its kinds: \"logical\"");
  error(Load(kPgbackrest + "max_age_by_kind = { full = \"0s\" }\n"),
        "target.shop.backup.max_age_by_kind.full", "greater than zero");
  error(Load(kPgbackrest + "max_age_by_kind = { full = \"a week\" }\n"),
        "target.shop.backup.max_age_by_kind.full", "invalid duration");
  error(Load(kPgbackrest + "max_age_by_kind = \"8d\"\n"), "target.shop.backup.max_age_by_kind",
        "expected a table");
  error(Load(kPgbackrest, "pick = \"oldest\"\n"), "target.shop.drill.pick",
        "must be one of latest, random");
  // What no older backup could prove is refused.
  error(Load(kPgbackrest, "pick = \"random\"\nrecovery_target = \"2026-11-24 03:00:00+00\"\n"),
        "target.shop.drill.pick", "cannot be combined with a fixed recovery_target time");
  error(Load("type = \"basebackup\"\npath = \"/b\"\nwal_archive = \"/a\"\n",
             "pick = \"random\"\nrecovery_target = \"-1h\"\n"),
        "target.shop.drill.pick", "has no commit that old after it");
  // The command source's kinds are its own.
  ConfigLoad command = Load(
      "type = \"command\"\nlist = [\"list\"]\nfetch = [\"fetch\", \"{id}\", \"{dir}\"]\n"
      "max_age_by_kind = { weekly = \"8d\" }\n",
      "pick = \"random\"\n");
  INFO(Errors(command));
  REQUIRE(command.config);
  CHECK(command.config->targets.at(0).backup.max_age_by_kind.count("weekly") == 1);
  // A physical target with pick = "random" and a target that holds for any backup loads.
  for (const char* t : {"latest", "immediate", "random", "snapshot"}) {
    ConfigLoad ok = Load("type = \"basebackup\"\npath = \"/b\"\nwal_archive = \"/a\"\n",
                         std::string("pick = \"random\"\nrecovery_target = \"") + t + "\"\n");
    INFO(t << ": " << Errors(ok));
    CHECK(ok.config);
  }
}

TEST_CASE("ledger: drills round-trip through the file and survive a new instance",
          "[unit][ledger]") {
  test::TestDir dir("rw-ledger-");
  const BackupInfo a = Backup("a.dump", 1000), b = Backup("b.dump", 2000);
  {
    VerificationLedger l(dir.path());
    CHECK(l.Load().empty());  // no file: a fresh start
    l.Record(Drilled(a, DrillResult::kFailure, 5000));
    DrillReport rb = Drilled(b, DrillResult::kSuccess, 6000);
    rb.copy_lsn = "0/3000028";
    rb.copy_timeline = 1;
    l.Record(rb);
    l.Record(Drilled(a, DrillResult::kSuccess, 7000));
    DrillReport none;  // a drill that found no backup names none: nothing to record
    none.finished_at = 8000;
    l.Record(none);
  }
  Ledger got = VerificationLedger(dir.path()).Load();
  REQUIRE(got.size() == 2);
  const LedgerEntry& ea = got.at("a.dump");
  CHECK(ea.verdict == "success");
  CHECK(ea.verified());
  CHECK(ea.drills == 2);
  CHECK(ea.last_drilled == 7000);
  REQUIRE(ea.last_passed);
  CHECK(*ea.last_passed == 7000);
  CHECK(ea.reason.empty());  // cleared by the pass
  CHECK(ea.kind == "logical");
  CHECK(ea.completed_at == 1000);
  const LedgerEntry& eb = got.at("b.dump");
  CHECK(eb.wal_verified_to == "0/3000028");
  CHECK(eb.wal_timeline == 1);
  CHECK(eb.run_id == "run-b.dump");
  // A later failure makes it unverified again, keeping when it last passed.
  VerificationLedger(dir.path()).Record(Drilled(b, DrillResult::kError, 9000));
  got = VerificationLedger(dir.path()).Load();
  CHECK_FALSE(got.at("b.dump").verified());
  CHECK(got.at("b.dump").reason == "restore: it broke");
  CHECK(*got.at("b.dump").last_passed == 6000);

  const VerifiedCounts c = CountVerified({a, b, Backup("c.dump", 3000)}, got);
  CHECK(c.verified == 1);    // a
  CHECK(c.unverified == 2);  // b failed last, c never drilled

  // The API's JSON parses and names what the catalogue still needs.
  BackupCatalogue cat;
  cat.Add("logical", a);
  cat.Add("logical", b);
  json::Value v;
  std::string why;
  REQUIRE(json::Parse(LedgerToJson("shop", got, &cat), &v, &why));
  CHECK(v.Str("target") == "shop");
  CHECK(v.Num("verified") == 1);
  CHECK(v.Num("unverified") == 1);
  REQUIRE(v.Get("unverified_backups")->a.size() == 1);
  CHECK(v.Get("unverified_backups")->a[0].Str("id") == "b.dump");
  REQUIRE(v.Get("backups")->a.size() == 2);
  CHECK(v.Get("backups")->a[0].Str("id") == "b.dump");  // most recently drilled first
}

TEST_CASE("ledger: a damaged file is moved aside and the agent goes on", "[unit][ledger]") {
  test::TestDir dir("rw-ledger-");
  const std::string path = dir / "ledger.toml";
  VerificationLedger l(dir.path());
  l.Record(Drilled(Backup("a.dump", 1000), DrillResult::kSuccess, 5000));
  const std::string good = ReadFile(path);
  REQUIRE(good.find("a.dump") != std::string::npos);
  auto aside = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir.path()))
      n += e.path().filename().string().rfind("ledger.toml.corrupt-", 0) == 0;
    return n;
  };
  const std::vector<std::string> damaged = {
      good.substr(0, good.size() / 2),  // cut short: no end marker
      "# restorewatch state v1\n[[backup]\n# end of restorewatch state\n",  // does not parse
      "# restorewatch state v1\n[[backup]]\nid = \"x\"\nverdict = \"maybe\"\nlast_drilled = 1.0\n"
      "drills = 1\n# end of restorewatch state\n",  // impossible verdict
      "# restorewatch state v1\n[[backup]]\nid = \"x\"\nverdict = \"success\"\nlast_drilled = "
      "-5.0\ndrills = 1\n# end of restorewatch state\n",  // impossible time
      "",                                                 // empty
  };
  std::size_t expected_aside = 0;
  for (const auto& text : damaged) {
    INFO(text);
    std::ofstream(path, std::ios::trunc) << text;
    CHECK(l.Load().empty());  // read as empty, never throws
    CHECK(aside() == ++expected_aside);
    CHECK_FALSE(fs::exists(path));
    // Recording goes on from an empty ledger.
    l.Record(Drilled(Backup("b.dump", 2000), DrillResult::kSuccess, 6000));
    CHECK(l.Load().size() == 1);
  }
  // A file that cannot be read (a directory in its place) is logged and read as empty.
  fs::remove(path);
  fs::create_directory(path);
  CHECK(l.Load().empty());
}

TEST_CASE("ledger: pick = random drills never verified first, then the least recently verified",
          "[unit][ledger]") {
  const std::vector<BackupInfo> backups = {Backup("c.dump", 3000), Backup("a.dump", 1000),
                                           Backup("b.dump", 2000)};
  Ledger ledger;
  CHECK_FALSE(PickBackup({}, ledger, 1));
  // The same seed picks the same backup whatever order the listing has.
  auto first = PickBackup(backups, ledger, 42);
  REQUIRE(first);
  std::vector<BackupInfo> reversed(backups.rbegin(), backups.rend());
  CHECK(PickBackup(reversed, ledger, 42)->backup.id == first->backup.id);
  CHECK(first->reason == "never drilled (3 of 3 backups), chosen at random");
  // Different seeds reach every backup.
  std::set<std::string> reached;
  for (std::uint64_t seed = 0; seed < 64; ++seed)
    reached.insert(PickBackup(backups, ledger, seed)->backup.id);
  CHECK(reached.size() == 3);

  // Drilled in turn with a fixed seed: each pick is one not yet verified, until all are.
  std::vector<std::string> order;
  double now = 10000;
  for (int i = 0; i < 3; ++i) {
    auto p = PickBackup(backups, ledger, 7);
    REQUIRE(p);
    INFO(p->reason);
    CHECK(ledger.count(p->backup.id) == 0);
    order.push_back(p->backup.id);
    LedgerEntry e;
    e.id = p->backup.id;
    e.verdict = "success";
    e.last_drilled = now;
    e.last_passed = now;
    e.drills = 1;
    ledger[e.id] = e;
    now += 100;
  }
  CHECK(std::set<std::string>(order.begin(), order.end()).size() == 3);
  CHECK(CountVerified(backups, ledger).unverified == 0);
  // All verified: the least recently verified comes back first.
  auto again = PickBackup(backups, ledger, 7);
  CHECK(again->backup.id == order[0]);
  CHECK(again->reason.find("all 3 backups verified; the least recently verified") == 0);
  // A failed one goes before the verified ones; a never drilled one before both.
  ledger[order[1]].verdict = "failure";
  CHECK(PickBackup(backups, ledger, 7)->backup.id == order[1]);
  CHECK(PickBackup(backups, ledger, 7)->reason.find("its last drill did not pass (1 of 3") == 0);
  std::vector<BackupInfo> more = backups;
  more.push_back(Backup("d.dump", 500));
  auto d = PickBackup(more, ledger, 7);
  CHECK(d->backup.id == "d.dump");
  CHECK_FALSE(d->newest);  // the oldest: a physical one recovers to its own end
  CHECK(PickBackup({Backup("c.dump", 3000)}, {}, 1)->newest);
  // Two backups completed within the same second (whole-second catalogue times, as two base
  // backups taken back to back): only the later one (by id when all times tie) is the newest, so
  // the older one still recovers to its own end. Whichever the seed picks, exactly one is newest.
  int newest = 0;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    auto tie = PickBackup({Backup("b1", 3000), Backup("b2", 3000)}, {}, seed);
    CHECK(tie->newest == (tie->backup.id == "b2"));
    newest += tie->newest;
  }
  CHECK(newest > 0);
  CHECK(newest < 16);
}

TEST_CASE("ledger: catalogue families say what runs, the objectives and what is verified",
          "[unit][ledger]") {
  BackupCatalogue cat;
  cat.Add("full", Backup("f1", 1000, "full"));
  cat.Add("incr", Backup("i1", 2000, "incr"));
  cat.Add("incr", Backup("i2", 3000, "incr"));
  cat.running["full"] = 1;
  cat.running["diff"] = 1;  // running, none complete yet
  CHECK(cat.backups.size() == 3);
  auto fams = BackupCatalogueFamilies(cat, std::chrono::hours(26), Duration::zero());
  CHECK(Sample(fams, "restorewatch_backup_running", "full") == 1.0);
  CHECK(Sample(fams, "restorewatch_backup_running", "incr") == 0.0);
  CHECK(Sample(fams, "restorewatch_backup_running", "diff") == 1.0);
  CHECK(Sample(fams, "restorewatch_backup_last_completion_timestamp_seconds", "incr") == 3000.0);
  CHECK_FALSE(Sample(fams, "restorewatch_backup_last_completion_timestamp_seconds", "diff"));

  BackupConfig bc;
  CHECK(BackupObjectiveFamilies(bc).empty());  // none configured: no family
  bc.max_age_by_kind["full"] = std::chrono::hours(24 * 8);
  bc.max_age_by_kind["incr"] = std::chrono::hours(26);
  auto obj = BackupObjectiveFamilies(bc);
  CHECK(Sample(obj, "restorewatch_backup_kind_max_age_seconds", "full") == 8 * 86400.0);
  CHECK(Sample(obj, "restorewatch_backup_kind_max_age_seconds", "incr") == 26 * 3600.0);

  Ledger ledger;
  ledger["i2"] = LedgerEntry{"i2", "incr", 3000, "success", 4000, 4000.0, 1, "r", "", "", 0};
  ledger["f1"] = LedgerEntry{"f1", "full", 1000, "failure", 4100, std::nullopt, 1, "r", "x", "", 0};
  ledger["gone"] = LedgerEntry{"gone", "full", 1, "success", 10, 10.0, 1, "r", "", "", 0};
  auto v = VerifiedFamilies(cat, ledger);
  CHECK(Sample(v, "restorewatch_backups_verified") == 1.0);    // i2
  CHECK(Sample(v, "restorewatch_backups_unverified") == 2.0);  // f1 failed, i1 never drilled
}

TEST_CASE("ledger: the command list's \"running\" entries are in progress", "[unit][ledger]") {
  std::vector<BackupInfo> list;
  std::string error;
  REQUIRE(ParseCommandList(R"([{"id": "a", "time": "2026-11-24T02:00:03Z"},
      {"id": "b", "time": "2026-11-25T02:00:03Z", "running": true, "kind": "full"},
      {"id": "c", "time": "2026-11-25T02:00:03Z", "running": false}])",
                           "logical", &list, &error));
  REQUIRE(list.size() == 3);
  CHECK_FALSE(list[0].running);
  CHECK(list[1].running);
  CHECK_FALSE(list[2].running);
  CHECK_FALSE(ParseCommandList(R"([{"id": "a", "time": "2026-11-24T02:00:03Z", "running": 1}])",
                               "logical", &list, &error));
  CHECK(error == "entry 0: \"running\" must be true or false");
}

TEST_CASE("ledger: pgBackRest's held backup lock reads as a backup running", "[unit][ledger]") {
  // What pgBackRest 2.45 prints while a backup holds the stanza's lock (status.lock.backup).
  auto info = pgbackrest::ParseInfo(
      R"([{"archive":[],"backup":[],"cipher":"none","db":[],"name":"main","repo":[{"cipher":"none","key":1,"status":{"code":2,"message":"no valid backups"}}],"status":{"code":2,"lock":{"backup":{"held":true,"size":31856841,"size-cp":1048576}},"message":"no valid backups"}}])",
      "main");
  REQUIRE(info);
  CHECK(info->backup_running);
  CHECK(info->Problem().empty());  // no valid backups yet is not a problem of the stanza
}
