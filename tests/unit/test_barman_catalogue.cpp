// agent/sources/barman_catalogue.h on output saved from barman 3.4 (`barman -f json
// list-backups` / `show-backup` of a real PostgreSQL 15 server, and its error document): which
// backups are complete, their times, sizes, WAL and LSN bounds, and the errors barman reports;
// the barman keys of a target; barman missing from PATH. The real thing is in
// tests/integration/test_barman.cpp.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "agent/config.h"
#include "agent/environment.h"
#include "agent/errors.h"
#include "agent/sources/barman_catalogue.h"
#include "agent/sources/barman_source.h"
#include "agent/units.h"

using namespace rw;
using namespace rw::barman;

namespace {

// barman -c barman.conf -f json list-backups pg (one DONE backup), saved verbatim.
const char* kListOne =
    R"({"pg": [{"backup_id": "20261204T143317", "end_time": "Fri Dec  4 14:33:30 2026", )"
    R"("end_time_timestamp": "1796394810", "retention_status": "-", "size": "38.7 MiB", )"
    R"("size_bytes": 40555184, "status": "DONE", "tablespaces": [], "wal_size": "16.0 MiB", )"
    R"("wal_size_bytes": 16777216}]})";

// barman -c barman.conf -f json show-backup pg 20261204T143317, saved verbatim.
const char* kShow =
    R"({"pg": {"backup_id": "20261204T143317", "base_backup_information": {"analysis_time": )"
    R"("less than one second", "analysis_time_seconds": 0, "begin_lsn": "0/4000028", )"
    R"("begin_offset": 40, "begin_time": "2026-12-04 14:33:17.778224+00:00", )"
    R"("begin_time_timestamp": "1796394797", "begin_wal": "000000010000000000000004", )"
    R"("copy_time": "13 seconds", "copy_time_seconds": 13.051339, "disk_usage": "22.7 MiB", )"
    R"("disk_usage_bytes": 23777968, "disk_usage_with_wals": "38.7 MiB", )"
    R"("disk_usage_with_wals_bytes": 40555184, "end_lsn": "0/5000000", "end_offset": 0, )"
    R"("end_time": "2026-12-04 14:33:30.860565+00:00", "end_time_timestamp": "1796394810", )"
    R"("end_wal": "000000010000000000000004", "incremental_size": "22.7 MiB", )"
    R"("incremental_size_bytes": 23777968, "incremental_size_ratio": "-0.00%", )"
    R"("number_of_workers": 1, "throughput": "1.7 MiB/s", "throughput_bytes": )"
    R"(1821879.5787926433, "timeline": 1}, "catalog_information": {"next_backup": )"
    R"j("- (this is the latest base backup)", "previous_backup": )j"
    R"j("- (this is the oldest base backup)", )j"
    R"("retention_policy": "not enforced"}, "pgdata_directory": "/tmp/bexp/pg", )"
    R"("postgresql_version": 150018, "status": "DONE", "tablespaces": [], "wal_information": )"
    R"({"compression_ratio": 0, "disk_usage": "16.0 MiB", "disk_usage_bytes": 16777216, )"
    R"("last_available": "000000010000000000000005", "no_of_files": 1, "timelines": [], )"
    R"("wal_rate": "1896.73/hour", "wal_rate_per_second": 0.5268704224462187}}})";

// barman -f json list-backups nosuch (exit code 1), saved verbatim.
const char* kUnknownServer = R"({"_ERROR": ["Unknown server 'nosuch'"]})";

}  // namespace

TEST_CASE("barman list-backups JSON: ids, status, end time and size", "[unit][barman]") {
  std::vector<BarmanBackup> list;
  std::string error;
  REQUIRE(ParseListBackups(kListOne, "pg", &list, &error));
  CHECK(error.empty());
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == "20261204T143317");
  CHECK(list[0].status == "DONE");
  CHECK(list[0].complete());
  CHECK(list[0].end_time == Approx(1796394810));
  CHECK(list[0].size_bytes == 40555184u);
  REQUIRE(NewestComplete(list) == &list[0]);
}

TEST_CASE("barman list-backups JSON: only DONE backups are complete, newest by end time",
          "[unit][barman]") {
  // Newest first, as barman lists them: a backup still waiting for its WAL, a failed one (no
  // end time), then two DONE ones out of order.
  const std::string text =
      R"({"pg": [{"backup_id": "20261204T150000", "end_time_timestamp": "1796400000", )"
      R"("size_bytes": 100, "status": "WAITING_FOR_WALS"}, )"
      R"({"backup_id": "20261204T140000", "status": "FAILED"}, )"
      R"({"backup_id": "20261203T120000", "end_time_timestamp": "1796300000", )"
      R"("size_bytes": 300, "status": "DONE"}, )"
      R"({"backup_id": "20261204T120000", "end_time_timestamp": "1796390000", )"
      R"("size_bytes": 200, "status": "DONE"}]})";
  std::vector<BarmanBackup> list;
  std::string error;
  REQUIRE(ParseListBackups(text, "pg", &list, &error));
  REQUIRE(list.size() == 4);
  CHECK_FALSE(list[0].complete());
  CHECK_FALSE(list[1].complete());
  CHECK(list[1].end_time == 0);
  const BarmanBackup* newest = NewestComplete(list);
  REQUIRE(newest != nullptr);
  CHECK(newest->id == "20261204T120000");
  CHECK(newest->size_bytes == 200u);

  // None complete: nothing to drill.
  REQUIRE(ParseListBackups(R"({"pg": [{"backup_id": "x", "status": "STARTED"}]})", "pg", &list,
                           &error));
  CHECK(NewestComplete(list) == nullptr);
  REQUIRE(ParseListBackups(R"({"pg": []})", "pg", &list, &error));
  CHECK(list.empty());
}

TEST_CASE("barman show-backup JSON: begin/end time, WAL, LSN, timeline, version",
          "[unit][barman]") {
  BarmanBackup b;
  b.id = "20261204T143317";
  std::string error;
  REQUIRE(ParseShowBackup(kShow, "pg", &b, &error));
  CHECK(b.status == "DONE");
  CHECK(b.begin_time == Approx(*ParseTimestamp("2026-12-04 14:33:17.778224+00")));
  CHECK(b.end_time == Approx(*ParseTimestamp("2026-12-04 14:33:30.860565+00")));
  CHECK(b.begin_time < b.end_time);
  CHECK(b.begin_wal == "000000010000000000000004");
  CHECK(b.end_wal == "000000010000000000000004");
  CHECK(b.begin_lsn == "0/4000028");
  CHECK(b.end_lsn == "0/5000000");
  CHECK(b.timeline == 1);
  CHECK(b.server_major == 15);
  CHECK(b.size_bytes == 40555184u);
}

TEST_CASE("barman JSON: errors and malformed output are named", "[unit][barman]") {
  CHECK(JsonErrors(kUnknownServer) == "Unknown server 'nosuch'");
  CHECK(JsonErrors(R"({"_ERROR": ["a", "b"], "_INFO": ["c"]})") == "a; b");
  CHECK(JsonErrors(kListOne).empty());
  CHECK(JsonErrors("not json").empty());

  std::vector<BarmanBackup> list;
  std::string error;
  CHECK_FALSE(ParseListBackups(kUnknownServer, "nosuch", &list, &error));
  CHECK(error == "Unknown server 'nosuch'");
  CHECK_FALSE(ParseListBackups("pg 20261204T143317 - Fri Dec  4", "pg", &list, &error));
  CHECK(error.find("not JSON") != std::string::npos);
  CHECK_FALSE(ParseListBackups(kListOne, "other", &list, &error));
  CHECK(error.find("no entry for server 'other'") != std::string::npos);
  CHECK_FALSE(ParseListBackups(R"({"pg": [{"status": "DONE"}]})", "pg", &list, &error));
  CHECK(error.find("backup_id") != std::string::npos);
  BarmanBackup b;
  CHECK_FALSE(ParseShowBackup(R"({"pg": {"status": "DONE"}})", "pg", &b, &error));
  CHECK(error.find("backup_id") != std::string::npos);
}

namespace {
std::string Errors(const std::string& toml) {
  ConfigLoad load = LoadConfigText(toml, "/etc/restorewatch/t.toml");
  std::string out;
  for (const auto& e : load.errors) out += e.ToString() + "\n";
  return out;
}
const char* kTarget = R"([[target]]
name = "bar"
source = "host=db1 dbname=app user=rw"
)";
}  // namespace

TEST_CASE("barman config: keys, required ones, root and unsupported targets refused",
          "[unit][barman]") {
  const std::string good = std::string(kTarget) +
                           "[target.backup]\ntype = \"barman\"\nserver = \"pg\"\n"
                           "config = \"/etc/barman.conf\"\nrun_as = \"barman\"\n"
                           "[target.drill]\nrecovery_target = \"2026-11-24 03:00:00+00\"\n";
  ConfigLoad load = LoadConfigText(good, "/etc/restorewatch/t.toml");
  INFO(Errors(good));
  REQUIRE(load.config.has_value());
  const auto& b = load.config->targets[0].backup;
  CHECK(b.type == "barman");
  CHECK(b.barman.server == "pg");
  CHECK(b.barman.config == "/etc/barman.conf");
  CHECK(b.barman.run_as == "barman");
  CHECK(load.config->targets[0].drill.recovery_target == "2026-11-24 03:00:00+00");

  std::string e = Errors(std::string(kTarget) + "[target.backup]\ntype = \"barman\"\n");
  CHECK(e.find("target.bar.backup.server: is required") != std::string::npos);
  CHECK(e.find("target.bar.backup.config: is required") != std::string::npos);

  e = Errors(std::string(kTarget) +
             "[target.backup]\ntype = \"barman\"\nserver = \"pg\"\nconfig = \"barman.conf\"\n"
             "run_as = \"root\"\n");
  CHECK(e.find("config: must be an absolute path") != std::string::npos);
  CHECK(e.find("run_as: must not be root") != std::string::npos);

  for (const char* t : {"random", "-1h"}) {
    e = Errors(std::string(kTarget) +
               "[target.backup]\ntype = \"barman\"\nserver = \"pg\"\nconfig = \"/b.conf\"\n"
               "[target.drill]\nrecovery_target = \"" +
               t + "\"\n");
    INFO(t);
    CHECK(e.find("is not supported with backup type \"barman\"") != std::string::npos);
  }
  // The keys belong to the barman type only.
  e = Errors(std::string(kTarget) + "[target.backup]\npath = \"/b\"\nserver = \"pg\"\n");
  CHECK(e.find("backup.server: unknown key") != std::string::npos);
}

TEST_CASE("barman source: barman missing from PATH is an error naming it", "[unit][barman]") {
  Environment env;  // not root-resolved: barman would run as the test's own user
  TargetConfig target;
  target.name = "bar";
  target.backup.type = "barman";
  target.backup.barman.server = "pg";
  target.backup.barman.config = "/etc/barman.conf";
  auto source = MakeBarmanSource(env, target);
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", "/nonexistent-rw-path", 1);
  CancelToken cancel;
  std::string what;
  try {
    source->Latest(cancel);
  } catch (const Error& e) {
    what = e.what();
  }
  ::setenv("PATH", saved.c_str(), 1);
  CHECK(what == "barman is not installed (no barman in PATH)");
}
