// agent/sources/pgbackrest_info.h on real pgBackRest 2.45 output (saved from a stanza with a full
// and an incr backup, an unknown stanza, and verify runs on a whole and a damaged repository),
// and the [target.backup]/[target.drill] keys of type = "pgbackrest".
#include <catch2/catch.hpp>

#include "agent/config.h"
#include "agent/sources/pgbackrest_info.h"

using namespace rw;
using namespace rw::pgbackrest;

namespace {

// `pgbackrest --stanza=demo info --output=json` after stanza-create, backup --type=full, writes,
// backup --type=incr, writes, pg_switch_wal().
const char* kInfo =
    R"([{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000005","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":31856841,"repository":{"delta":4262575,"size":4262575},"size":31856841},"label":"20261204-143211F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1796394731,"stop":1796394743},"type":"full"},{"archive":{"start":"000000010000000000000004","stop":"000000010000000000000004"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":2646282,"repository":{"delta":364661,"size":4364309},"size":32520393},"label":"20261204-143211F_20261204-143224I","lsn":{"start":"0/4000028","stop":"0/4000100"},"prior":"20261204-143211F","reference":["20261204-143211F"],"timestamp":{"start":1796394744,"stop":1796394747},"type":"incr"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7715456595175752849,"version":"15"}],"name":"demo","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}])";

// The same for a stanza that does not exist: exit code 0, the status says it.
const char* kUnknownStanza =
    R"([{"archive":[],"backup":[],"cipher":"none","db":[],"name":"nope","repo":[{"cipher":"none","key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,"lock":{"backup":{"held":false}},"message":"missing stanza path"}}])";

// `verify --set=... --output=text --log-level-console=info --log-timestamp=n` after a file of
// the full backup was deleted from the repository: exit code 0.
const char* kVerifyDamaged =
    R"(P00   INFO: verify command begin 2.45: --config=/tmp/x/pgbackrest.conf --exec-id=10087-50ad3903 --log-level-console=info --no-log-timestamp --output=text --set=20261204-143211F_20261204-143224I --stanza=demo
P01   INFO: file missing '20261204-143211F/pg_data/base/5/3456.gz'
P00   INFO: stanza: demo
            status: error
              backup: 20261204-143211F, status: invalid, total files checked: 1267, total valid files: 1266
                missing: 1
stanza: demo
status: error
  backup: 20261204-143211F, status: invalid, total files checked: 1267, total valid files: 1266
    missing: 1
  backup: 20261204-143211F_20261204-143224I, status: invalid, total files checked: 1267, total valid files: 1266
    missing: 1
P00   INFO: verify command end: completed successfully
)";

const char* kVerifyOk = R"(P00   INFO: verify command begin 2.45: --output=text --stanza=demo
stanza: demo
status: ok
  backup: 20261204-143211F_20261204-143224I, status: valid, total files checked: 1267, total valid files: 1267
P00   INFO: verify command end: completed successfully
)";

}  // namespace

TEST_CASE("pgbackrest info: backups by kind, times, sizes, LSNs and the archive range",
          "[unit][pgbackrest]") {
  std::string why;
  auto info = ParseInfo(kInfo, "demo", &why);
  INFO(why);
  REQUIRE(info.has_value());
  CHECK(info->status_code == 0);
  CHECK(info->Problem().empty());
  CHECK_FALSE(info->backup_running);
  REQUIRE(info->backups.size() == 2);
  const Backup& full = info->backups[0];
  CHECK(full.label == "20261204-143211F");
  CHECK(full.type == "full");
  CHECK(full.prior.empty());
  CHECK(full.start == 1796394731);
  CHECK(full.stop == 1796394743);
  CHECK(full.size == 31856841);
  CHECK(full.repo_size == 4262575);
  CHECK(full.start_lsn == "0/2000028");
  CHECK(full.stop_lsn == "0/2000100");
  CHECK(full.wal_start == "000000010000000000000002");
  const Backup& incr = info->backups[1];
  CHECK(incr.type == "incr");
  CHECK(incr.prior == "20261204-143211F");
  CHECK(incr.repo_delta == 364661);
  CHECK(incr.repo_key == 1);
  REQUIRE(info->Newest() != nullptr);
  CHECK(info->Newest()->label == "20261204-143211F_20261204-143224I");
  CHECK(info->VersionOf(incr) == "15");
  REQUIRE(info->ArchiveOf(incr) != nullptr);
  CHECK(info->ArchiveOf(incr)->max == "000000010000000000000005");
  CHECK(info->ArchiveOf(incr)->min == "000000010000000000000001");
  REQUIRE(info->databases.size() == 1);
  CHECK(info->databases[0].system_id == "7715456595175752849");  // beyond a double's 53 bits
  CHECK(info->Find("20261204-143211F") == &info->backups[0]);
  CHECK(info->Find("nope") == nullptr);
}

TEST_CASE("pgbackrest info: an unknown stanza is a problem in pgBackRest's words",
          "[unit][pgbackrest]") {
  auto info = ParseInfo(kUnknownStanza, "nope");
  REQUIRE(info.has_value());
  CHECK(info->backups.empty());
  CHECK(info->Newest() == nullptr);
  CHECK(info->Problem() == "missing stanza path");

  // An unreachable repository: the stanza says "other", the repository says why.
  auto down = ParseInfo(
      R"([{"archive":[],"backup":[],"cipher":"none","db":[],"name":"demo","repo":[{"cipher":"none","key":1,"status":{"code":99,"message":"[HostConnectError] unable to connect to '127.0.0.1:45678': [111] Connection refused"}}],"status":{"code":99,"lock":{"backup":{"held":false}},"message":"other"}}])",
      "demo");
  REQUIRE(down.has_value());
  CHECK(down->Problem() ==
        "repo1: [HostConnectError] unable to connect to '127.0.0.1:45678': [111] Connection "
        "refused");

  std::string why;
  CHECK_FALSE(ParseInfo(kInfo, "other", &why));
  CHECK(why == "no stanza 'other' in the output");
  CHECK_FALSE(ParseInfo("ERROR: [055]: unable to open missing file", "demo", &why));
  CHECK(why.rfind("not JSON", 0) == 0);
}

TEST_CASE("pgbackrest verify: judged from its output, not its exit code", "[unit][pgbackrest]") {
  CHECK(VerifyProblem(kVerifyOk).empty());
  CHECK(VerifyProblem(kVerifyDamaged) == "file missing '20261204-143211F/pg_data/base/5/3456.gz'");
  // Newer pgBackRest logs the file as an ERROR.
  CHECK(VerifyProblem("P01  ERROR: [028]: invalid checksum '20261204-143211F/pg_data/PG_VERSION.gz'"
                      "\nstatus: error\n") ==
        "invalid checksum '20261204-143211F/pg_data/PG_VERSION.gz'");
  CHECK(VerifyProblem("stanza: demo\nstatus: error\n  backup: B, status: invalid, total files "
                      "checked: 3\n") == "backup: B, status: invalid, total files checked: 3");
  // A missing archived segment is a warning only (expire may have removed it).
  CHECK(
      VerifyProblem("P01   WARN: file missing '15-1/0000000100000000/x.gz'\nstatus: ok\n").empty());
  CHECK(VerifyProblem("").rfind("verify printed no status", 0) == 0);
  CHECK(VerifyProblem("ERROR: [103]: unable to find a valid repository") ==
        "ERROR: [103]: unable to find a valid repository");
}

namespace {
std::string Errors(const ConfigLoad& l) {
  std::string s;
  for (const auto& e : l.errors) s += e.ToString() + "\n";
  return s;
}
ConfigLoad Load(const std::string& backup, const std::string& drill = "") {
  return LoadConfigText(
      "[[target]]\nname = \"pg\"\nsource = \"host=db1 dbname=app\"\n"
      "[target.backup]\ntype = \"pgbackrest\"\n" +
          backup + "\n[target.drill]\n" + drill + "\n",
      "/etc/restorewatch/t.toml");
}
}  // namespace

TEST_CASE("config: the keys of backup type pgbackrest", "[unit][pgbackrest][config]") {
  auto ok = Load(
      "stanza = \"main\"\nconfig = \"/etc/pgbackrest/pgbackrest.conf\"\nrepo = 2\n"
      "run_as = \"postgres\"",
      "recovery_target = \"2026-11-24 03:00:00+00\"");
  INFO(Errors(ok));
  REQUIRE(ok.config.has_value());
  const auto& t = ok.config->targets[0];
  CHECK(t.backup.pgbackrest.stanza == "main");
  CHECK(t.backup.pgbackrest.config == "/etc/pgbackrest/pgbackrest.conf");
  CHECK(t.backup.pgbackrest.repo == 2);
  CHECK(t.backup.pgbackrest.run_as == "postgres");
  CHECK(t.drill.recovery_target == "2026-11-24 03:00:00+00");

  auto missing = Load("");
  CHECK(Errors(missing).find("backup.stanza: is required") != std::string::npos);
  CHECK(Errors(missing).find("backup.config: is required") != std::string::npos);

  auto root = Load("stanza = \"main\"\nconfig = \"/etc/pgbackrest.conf\"\nrun_as = \"root\"");
  CHECK(Errors(root).find("run_as: must not be root") != std::string::npos);

  auto relative = Load("stanza = \"main\"\nconfig = \"pgbackrest.conf\"\nrepo = 0");
  CHECK(Errors(relative).find("config: must be an absolute path") != std::string::npos);
  CHECK(Errors(relative).find("repo: must be between 1 and 256") != std::string::npos);

  for (const char* t : {"random", "-1h"}) {
    auto r = Load("stanza = \"main\"\nconfig = \"/etc/pgbackrest.conf\"",
                  std::string("recovery_target = \"") + t + "\"");
    INFO(t);
    CHECK(Errors(r).find("is not supported with backup type \"pgbackrest\"") != std::string::npos);
  }
  // pg_dump's keys are not pgbackrest's.
  auto other = Load("stanza = \"main\"\nconfig = \"/etc/pgbackrest.conf\"\npattern = \"*.dump\"");
  CHECK(Errors(other).find("backup.pattern: unknown key") != std::string::npos);
}
