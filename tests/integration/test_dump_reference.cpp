// Exact references for logical backups: `restorewatch dump` writes a pg_dump taken in an exported
// snapshot and <dump>.restorewatch.json beside it; a drill of that dump compares every table
// exactly against the reference (not the live source), and fails when the dump changed since.
// Unit tests of the reference file: tests/unit/test_reference.cpp.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/errors.h"
#include "agent/pg/pg_cluster.h"
#include "agent/sources/pg_dump_discovery.h"
#include "agent/state.h"
#include "checks/drill/reference.h"
#include "tests/support/agent_process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// Replaces the first `from` in the file by `to`; REQUIREs that it was there.
void EditFile(const std::string& path, const std::string& from, const std::string& to) {
  std::string s = ReadFile(path);
  auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  WriteFile(path, s);
}

// sha256sum of a file, independent of the product's own hashing.
std::string Sha256Sum(const std::string& path) {
  auto prog = FindProgram("sha256sum");
  REQUIRE(prog);
  ProcessSpec spec;
  spec.argv = {*prog, path};
  auto r = RunProcess(spec);
  REQUIRE(r.ok());
  return r.out.substr(0, 64);
}

// A source with a keyed table, a table without a key and a dir for backups; a config whose
// pattern "*" would list the reference file too if discovery did not exclude it.
struct Source {
  test::TestDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::string backups, cfg;
  Source() {
    cluster = test::StartCluster(dir);
    cluster->Psql("create database app");
    cluster->Psql(
        "create table items(id int primary key, name text, price numeric);"
        "insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 5000) g;"
        "create table events(at timestamptz, what text);"
        "insert into events select '2026-01-01'::timestamptz + g * interval '1 minute', 'e' || g"
        " from generate_series(1, 700) g;"
        "select lo_from_bytea(0, 'a large object');",
        "app");
    backups = dir / "backups";
    MakeDirs(backups);
    cfg = dir / "agent.toml";
    WriteFile(cfg, "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
                       "\"\nwork_dir = \"" + (dir / "work") +
                       "\"\nlog_format = \"json\"\n\n[[target]]\nname = \"t1\"\nsource = \"" +
                       cluster->ConnInfo("app") + "\"\n\n[target.backup]\npath = \"" + backups +
                       "\"\npattern = \"*\"\nsettle = \"100ms\"\n\n[target.checks]\nstats_settle "
                       "= \"1s\"\n");
  }
  // The source keeps changing after the dump: without the reference, these make both tables
  // differ from the backup with no activity history to explain it.
  void Churn() const {
    cluster->Psql(
        "insert into items select g, 'new ' || g, 1 from generate_series(5001, 5300) g;"
        "update items set price = price + 1 where id % 10 = 0;"
        "delete from items where id between 100 and 120;"
        "insert into events select now(), 'later' from generate_series(1, 50);"
        "select lo_from_bytea(0, 'a later large object');",
        "app");
  }
  ProcessResult Dump(const std::vector<std::string>& extra) const {
    std::vector<std::string> args = {"dump", "-c", cfg, "--target", "t1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::RunAgent(args);
  }
  std::optional<DrillReport> LastReport() const {
    return DrillHistory(dir / "state/t1").Load().last_report;
  }
};

const CheckResult* FindCheck(const DrillReport& r, const std::string& name) {
  for (const auto& c : r.checks)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

TEST_CASE(
    "dump then verify compares every table exactly against the reference while the source "
    "keeps changing",
    "[integration][dump]") {
  Source src;
  const std::string out = src.backups + "/app.dump";
  auto d = src.Dump({"--output", out});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  REQUIRE(FileExists(out));
  REQUIRE(FileExists(out + ".restorewatch.json"));
  CHECK_FALSE(FileExists(out + ".part"));
  CHECK_FALSE(FileExists(out + ".restorewatch.json.tmp"));

  Reference ref = LoadReference(out + ".restorewatch.json");
  CHECK(ref.target == "t1");
  CHECK(ref.database == "app");
  CHECK(ref.dump_format == "custom");
  CHECK_FALSE(ref.snapshot.empty());
  CHECK(ref.snapshot_time > 0);
  CHECK_FALSE(ref.system_identifier.empty());  // the test source role is a superuser
  REQUIRE(ref.tables.size() == 2);
  REQUIRE(ref.Find("public.items"));
  CHECK(ref.Find("public.items")->rows == 5000);
  CHECK(ref.Find("public.events")->rows == 700);
  REQUIRE(ref.dump_files.size() == 1);
  CHECK(ref.dump_files[0].name == "app.dump");
  CHECK(ref.dump_files[0].sha256 == Sha256Sum(out));
  REQUIRE(ref.large_objects);
  CHECK(ref.large_objects->count == 1);

  src.Churn();

  auto v = test::RunAgent({"verify", "-c", src.cfg, "--json"});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("\"success\"") != std::string::npos);
  auto rep = src.LastReport();
  REQUIRE(rep);
  REQUIRE(rep->backup);
  CHECK(rep->backup->path == out);  // not the reference file, though "*" matches it
  const CheckResult* cs = FindCheck(*rep, "checksum");
  const CheckResult* rc = FindCheck(*rep, "row_count");
  REQUIRE(cs);
  REQUIRE(rc);
  INFO(cs->message);
  CHECK(cs->outcome == Outcome::kPass);
  CHECK(cs->message.find("compared exactly against the reference") != std::string::npos);
  CHECK(cs->tables_compared == 2);
  CHECK(cs->rows_verified == 5700);  // every row of the dump's snapshot
  CHECK(cs->rows_unverified == 0);
  CHECK(cs->tables_unverified == 0);
  CHECK(cs->message.find("large objects") == std::string::npos);  // compared, and equal
  CHECK(rc->outcome == Outcome::kPass);
  CHECK(rc->message.find("reference") != std::string::npos);
  CHECK(test::ListDir(src.dir / "work").empty());

  // The same dump without its reference: the live source moved on and nothing explains it, so
  // the tables are unverified (error, exit 2), not passed. This is what the reference fixes.
  REQUIRE(std::rename((out + ".restorewatch.json").c_str(), (src.dir / "saved.json").c_str()) == 0);
  auto without = test::RunAgent({"verify", "-c", src.cfg});
  INFO(without.out << without.err);
  CHECK(without.exit_code == 2);
  auto rep2 = src.LastReport();
  REQUIRE(rep2);
  const CheckResult* cs2 = FindCheck(*rep2, "checksum");
  REQUIRE(cs2);
  CHECK(cs2->rows_verified < 5700);
}

TEST_CASE("references of versions 2 and 3 (rows hashed the older ways) still verify their dump",
          "[integration][dump]") {
  // 2 mixed each row's hash through its text form; 3 hashed timestamptz (events.at) through a
  // one-column record. Items' and the large objects' hashes are the same in 3 as in 4.
  for (int old : {2, 3}) DYNAMIC_SECTION("version " << old) {
      const HashFormat format = old == 2 ? HashFormat::kV2 : HashFormat::kV3;
      const int differing_tables = old == 2 ? 2 : 1;
      Source src;
      const std::string out = src.backups + "/app.dump";
      auto d = src.Dump({"--output", out});
      INFO(d.out << d.err);
      REQUIRE(d.exit_code == 0);
      const std::string path = out + ".restorewatch.json";
      const Reference now = LoadReference(path);
      REQUIRE(now.version == 4);
      // What restorewatch of the old format wrote for this dump: the source has not changed
      // since, so its rows hashed the old way are the dump's.
      Reference ref = now;
      ref.version = old;
      int differing = 0;
      {
        pqxx::connection c(src.cluster->ConnInfo("app"));
        {
          pqxx::nontransaction nt(c);
          for (const auto& t : ListTables(nt, {})) {
            auto* rt = const_cast<ReferenceTable*>(ref.Find(t.name));
            REQUIRE(rt);
            RangeHash h = HashRows(nt, t, rt->method, "", format);
            CHECK(h.rows == rt->rows);
            if (h.hash != rt->hash) ++differing;
            rt->hash = h.hash;
          }
        }
        REQUIRE(ref.large_objects);
        LargeObjectScan lo = ScanLargeObjects(c, nullptr, format);
        CHECK((lo.hash != ref.large_objects->hash) == (old == 2));
        ref.large_objects = lo;
      }
      CHECK(differing == differing_tables);  // the formats differ where this test says
      WriteFile(path, ReferenceToJson(ref));
      src.Churn();
      auto v = test::RunAgent({"verify", "-c", src.cfg});
      INFO(v.out << v.err);
      CHECK(v.exit_code == 0);
      auto rep = src.LastReport();
      REQUIRE(rep);
      const CheckResult* cs = FindCheck(*rep, "checksum");
      REQUIRE(cs);
      INFO(cs->message);
      CHECK(cs->outcome == Outcome::kPass);
      CHECK(cs->message.find("compared exactly against the reference") != std::string::npos);
      CHECK(cs->rows_verified == 5700);
      CHECK(cs->message.find("large objects") == std::string::npos);  // compared, and equal

      // Version 4's hashes under the old version's label: the copy is hashed the old way and
      // differs, so the hash really follows the version.
      Reference mislabelled = now;
      mislabelled.version = old;
      WriteFile(path, ReferenceToJson(mislabelled));
      auto bad = test::RunAgent({"verify", "-c", src.cfg});
      INFO(bad.out << bad.err);
      CHECK(bad.exit_code == 1);
      rep = src.LastReport();
      REQUIRE(rep);
      cs = FindCheck(*rep, "checksum");
      REQUIRE(cs);
      CHECK(cs->outcome == Outcome::kFail);
      CHECK(cs->tables_mismatched == differing_tables);
      CHECK(test::ListDir(src.dir / "work").empty());
    }
}

TEST_CASE("one byte changed in a dump after its reference was written fails on the file hash",
          "[integration][dump]") {
  Source src;
  const std::string out = src.backups + "/app.sql";
  auto d = src.Dump({"--format", "plain", "--output", out});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  // A byte of a comment: the dump still restores to the same content, only its hash tells.
  EditFile(out, "-- Name: items; Type: TABLE", "-- Name: itemz; Type: TABLE");
  auto v = test::RunAgent({"verify", "-c", src.cfg});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 1);
  auto rep = src.LastReport();
  REQUIRE(rep);
  const CheckResult* cs = FindCheck(*rep, "checksum");
  REQUIRE(cs);
  CHECK(cs->outcome == Outcome::kFail);
  CHECK(cs->message.find("the dump changed after its reference was written: sha256 of app.sql") !=
        std::string::npos);
  CHECK(cs->message.find(Sha256Sum(out)) != std::string::npos);
  CHECK(cs->rows_verified == 0);
  CHECK(test::ListDir(src.dir / "work").empty());
}

TEST_CASE("a dump that was wrong when written fails on content, naming the table and key",
          "[integration][dump]") {
  Source src;
  const std::string out = src.backups + "/app.sql";
  auto d = src.Dump({"--format", "plain", "--output", out});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  // One value of one row changed, and the reference's file hash written anew to match, so the
  // file hash cannot catch it: only the content comparison can.
  const std::string ref_path = out + ".restorewatch.json";
  const std::string old_sha = LoadReference(ref_path).dump_files.at(0).sha256;
  EditFile(out, "\n7\titem 7\t10.5\n", "\n7\titem 7\t10.6\n");
  EditFile(ref_path, old_sha, Sha256Sum(out));
  // The source does not change: against the live source this would fail too; against the
  // reference it must, and exactly for this table.
  auto v = test::RunAgent({"verify", "-c", src.cfg});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 1);
  auto rep = src.LastReport();
  REQUIRE(rep);
  const CheckResult* cs = FindCheck(*rep, "checksum");
  const CheckResult* rc = FindCheck(*rep, "row_count");
  REQUIRE(cs);
  REQUIRE(rc);
  INFO(cs->message);
  CHECK(cs->outcome == Outcome::kFail);
  CHECK(cs->message.find("content differs from the reference: public.items") != std::string::npos);
  CHECK(cs->message.find("sha256") == std::string::npos);
  CHECK(cs->tables_mismatched == 1);
  CHECK(cs->rows_verified == 700);  // events matched
  REQUIRE(cs->details.size() == 1);
  CHECK(cs->details[0].table == "public.items");
  // The key is named, by comparing the copy with the live source's rows unchanged since the
  // dump's own snapshot (the reference records its horizon).
  CHECK(cs->details[0].sample_keys == std::vector<std::string>{"id=7"});
  CHECK(cs->details[0].message.find("id=7 (changed)") != std::string::npos);
  CHECK(rc->outcome == Outcome::kPass);  // same number of rows
}

TEST_CASE("dump refuses what it cannot do with exit 2 and leaves nothing behind",
          "[integration][dump]") {
  Source src;
  auto bad_format = src.Dump({"--format", "tar"});
  CHECK(bad_format.exit_code == 2);
  CHECK(bad_format.err.find("--format") != std::string::npos);
  CHECK(src.Dump({"--target", "nope"}).exit_code == 2);
  // The default output: the first backup path, t1-<UTC time>.dump.
  auto d = src.Dump({"--format", "directory"});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  auto names = test::ListDir(src.backups);
  REQUIRE(names.size() == 2);
  std::string dump = names[0].size() < names[1].size() ? names[0] : names[1];
  CHECK(dump.rfind("t1-", 0) == 0);
  CHECK(dump.size() == std::string("t1-20261202T170000Z.dump").size());
  Reference ref = LoadReference(src.backups + "/" + dump + ".restorewatch.json");
  CHECK(ref.dump_format == "directory");
  CHECK(ref.dump_files.size() >= 3);  // toc.dat and one file per table's data
  CHECK(ref.dump_files[0].name < ref.dump_files[1].name);
  // A directory dump is checked file by file and compared exactly too.
  auto v = test::RunAgent({"verify", "-c", src.cfg});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  auto rep = src.LastReport();
  REQUIRE(rep);
  REQUIRE(rep->backup);
  CHECK(rep->backup->format == "directory");
  const CheckResult* cs = FindCheck(*rep, "checksum");
  REQUIRE(cs);
  CHECK(cs->message.find("compared exactly against the reference") != std::string::npos);
  CHECK(cs->rows_verified == 5700);
  // The source is gone: exit 2 with one line, no partial dump, no reference.
  src.cluster->Stop();
  auto gone = src.Dump({"--output", src.backups + "/x.dump"});
  CHECK(gone.exit_code == 2);
  CHECK(gone.err.find('\n') == gone.err.size() - 1);  // one line
  CHECK_FALSE(FileExists(src.backups + "/x.dump"));
  CHECK_FALSE(FileExists(src.backups + "/x.dump.part"));
  CHECK_FALSE(FileExists(src.backups + "/x.dump.restorewatch.json"));
}

TEST_CASE("a reference of another cluster fails, an unreadable one cannot be used",
          "[integration][dump]") {
  Source src;
  const std::string out = src.backups + "/app.dump";
  auto d = src.Dump({"--output", out});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  const std::string ref_path = out + ".restorewatch.json";
  const std::string good = ReadFile(ref_path);
  const std::string sysid = LoadReference(ref_path).system_identifier;
  REQUIRE_FALSE(sysid.empty());

  // Dump and reference agree with each other, but not with this target's source.
  EditFile(ref_path, "\"system_identifier\": \"" + sysid + "\"",
           "\"system_identifier\": \"1234567890\"");
  auto v = test::RunAgent({"verify", "-c", src.cfg});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 1);
  auto rep = src.LastReport();
  REQUIRE(rep);
  const CheckResult* cs = FindCheck(*rep, "checksum");
  REQUIRE(cs);
  CHECK(cs->outcome == Outcome::kFail);
  CHECK(cs->message ==
        "the reference was taken of another cluster: system identifier "
        "1234567890, the source's is " +
            sysid);

  // A reference that does not parse: the drill cannot use it and says why (error, exit 2).
  WriteFile(ref_path, good.substr(0, good.size() / 2));
  auto broken = test::RunAgent({"verify", "-c", src.cfg});
  INFO(broken.out << broken.err);
  CHECK(broken.exit_code == 2);
  rep = src.LastReport();
  REQUIRE(rep);
  cs = FindCheck(*rep, "checksum");
  REQUIRE(cs);
  CHECK(cs->outcome == Outcome::kError);
  CHECK(cs->message.find("the reference " + ref_path + " is invalid: not JSON") !=
        std::string::npos);
}

TEST_CASE("dump passes the password to pg_dump through its environment only",
          "[integration][dump]") {
  test::TestDir dir("rwdumppw-");
  test::ClusterSpec spec;
  spec.tcp = true;
  spec.settings = {{"password_encryption", "'scram-sha-256'"}};
  auto pg = test::StartCluster(dir, spec);
  // SCRAM over TCP: without the password, neither the session nor pg_dump gets in.
  WriteFile(pg->data_dir() + "/pg_hba.conf",
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
  pg->Psql("select pg_reload_conf()");
  pg->Psql("create database app");
  pg->Psql("create role rw_dump login password 'DumpTok1q'; grant pg_read_all_data to rw_dump");
  pg->Psql("create table items(id int primary key); insert into items values (1), (2), (3);",
           "app");
  const std::string backups = dir / "backups";
  MakeDirs(backups);
  WriteFile(dir / "pw", "DumpTok1q\n");
  const std::string cfg = dir / "agent.toml";
  WriteFile(cfg,
            "[agent]\nstate_dir = \"" + (dir / "state") + "\"\nwork_dir = \"" + (dir / "work") +
                "\"\n\n[[target]]\nname = \"t1\"\nsource = \"host=127.0.0.1 port=" +
                std::to_string(pg->port()) +
                " dbname=app user=rw_dump\"\npassword_file = \"pw\"\n\n[target.backup]\npath = \"" +
                backups + "\"\n");
  auto d = test::RunAgent({"dump", "-c", cfg, "--target", "t1", "--output", backups + "/a.dump"});
  INFO(d.out << d.err);
  REQUIRE(d.exit_code == 0);
  const std::string json = ReadFile(backups + "/a.dump.restorewatch.json");
  CHECK(json.find("DumpTok1q") == std::string::npos);
  CHECK(d.out.find("DumpTok1q") == std::string::npos);
  Reference ref = LoadReference(backups + "/a.dump.restorewatch.json");
  REQUIRE(ref.Find("public.items"));
  CHECK(ref.Find("public.items")->rows == 3);

  // A wrong password: exit 2 with one line that does not quote it.
  WriteFile(dir / "pw", "WrongTok2q\n");
  auto bad = test::RunAgent({"dump", "-c", cfg, "--target", "t1", "--output", backups + "/b.dump"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("WrongTok2q") == std::string::npos);
  CHECK_FALSE(FileExists(backups + "/b.dump"));
  CHECK_FALSE(FileExists(backups + "/b.dump.part"));
}
