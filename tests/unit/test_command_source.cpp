// The command source's list contract (ParseCommandList, agent/sources/command_source.h) and its
// config keys. The real thing, with scripts as the user's tools, is in
// tests/integration/test_command_source.cpp.
#include <catch2/catch.hpp>

#include "agent/config.h"
#include "agent/sources/command_source.h"
#include "agent/units.h"

using namespace rw;

TEST_CASE("command list: the JSON contract", "[unit][command_source]") {
  std::vector<BackupInfo> list;
  std::string error;
  REQUIRE(ParseCommandList(
      R"([{"id": "nightly-1", "time": "2026-11-24T02:00:03Z", "size": 81234567, "kind": "logical"},
          {"id": "base_000000010000000000000004", "time": "2026-11-25T02:00:02.5+01:00",
           "extra": true}])",
      "full", &list, &error));
  INFO(error);
  REQUIRE(list.size() == 2);
  CHECK(list[0].id == "nightly-1");
  CHECK(list[0].started_at == Approx(*ParseTimestamp("2026-11-24T02:00:03Z")));
  CHECK(list[0].completed_at == list[0].started_at);
  CHECK(list[0].started_exact);
  CHECK(list[0].size_bytes == 81234567u);
  CHECK(list[0].kind == "logical");
  CHECK(list[0].tool == "command");
  CHECK(list[1].kind == "full");  // the default
  CHECK(list[1].size_bytes == 0u);
  CHECK(list[1].started_at == Approx(*ParseTimestamp("2026-11-25T01:00:02.5Z")));
  REQUIRE(ParseCommandList(" [] \n", "full", &list, &error));
  CHECK(list.empty());
}

TEST_CASE("command list: what breaks the contract is named", "[unit][command_source]") {
  std::vector<BackupInfo> list;
  std::string error;
  auto fails = [&](const std::string& text, const std::string& expected) {
    INFO(text);
    CHECK_FALSE(ParseCommandList(text, "full", &list, &error));
    INFO(error);
    CHECK(error.find(expected) != std::string::npos);
  };
  fails(R"([{"id": "a", "time": )", "not JSON");
  fails(R"({"id": "a"})", "expected a JSON array");
  fails(R"(["a"])", "entry 0: expected an object");
  fails(R"([{"time": "2026-11-24T02:00:03Z"}])", "entry 0: \"id\" (a string) is missing");
  fails(R"([{"id": 7, "time": "2026-11-24T02:00:03Z"}])", "\"id\" (a string) is missing");
  fails(R"([{"id": "a"}])", "\"time\" (an RFC 3339 string) is missing");
  fails(R"([{"id": "a", "time": "yesterday"}])", "entry 0: time \"yesterday\" is not RFC 3339");
  fails(R"([{"id": "a; rm -rf /", "time": "2026-11-24T02:00:03Z"}])", "has characters other than");
  fails(R"([{"id": "../x", "time": "2026-11-24T02:00:03Z"}])", "has characters other than");
  fails(
      R"([{"id": "a", "time": "2026-11-24T02:00:03Z"}, {"id": "a", "time": "2026-11-25T02:00:03Z"}])",
      "entry 1: id \"a\" is listed twice");
  fails(R"([{"id": "a", "time": "2026-11-24T02:00:03Z", "size": "1 GB"}])",
        "\"size\" must be a number of bytes");
  fails(R"([{"id": "a", "time": "2026-11-24T02:00:03Z", "kind": ""}])",
        "\"kind\" must be a non-empty string");
}

TEST_CASE("command config: keys, placeholders, format", "[unit][command_source]") {
  const std::string head =
      "[[target]]\nname = \"c\"\nsource = \"host=db1 dbname=app user=rw\"\n[target.backup]\n"
      "type = \"command\"\n";
  auto errors = [](const std::string& toml) {
    ConfigLoad load = LoadConfigText(toml, "/etc/restorewatch/t.toml");
    std::string out;
    for (const auto& e : load.errors) out += e.ToString() + "\n";
    return out;
  };
  const std::string good = head +
                           "list = [\"/bin/list\", \"--json\"]\nfetch = [\"/bin/fetch\", \"{id}\", "
                           "\"--into={dir}\"]\nformat = \"basebackup\"\nshell = true\n"
                           "timeout = \"90s\"\nwal_archive = \"/srv/wal\"\n"
                           "[target.drill]\nrecovery_target = \"immediate\"\njobs = 4\n";
  ConfigLoad load = LoadConfigText(good, "/etc/restorewatch/t.toml");
  INFO(errors(good));
  REQUIRE(load.config.has_value());
  const auto& c = load.config->targets[0].backup.command;
  CHECK(c.list == std::vector<std::string>{"/bin/list", "--json"});
  CHECK(c.fetch.size() == 3);
  CHECK(c.format == CommandFormat::kBasebackup);
  CHECK(c.shell);
  CHECK(c.timeout == std::chrono::seconds(90));
  CHECK(load.config->targets[0].drill.recovery_target == "immediate");
  CHECK(load.config->targets[0].drill.jobs == 4);

  std::string e = errors(head);
  CHECK(e.find("backup.list: is required") != std::string::npos);
  CHECK(e.find("backup.fetch: is required") != std::string::npos);
  e = errors(head + "list = []\nfetch = [\"/bin/fetch\", \"{id}\"]\nformat = \"wal-g\"\n");
  CHECK(e.find("backup.list: must name a program") != std::string::npos);
  CHECK(e.find("backup.fetch: must contain {dir}") != std::string::npos);
  CHECK(e.find("backup.format: must be one of pg_dump, basebackup") != std::string::npos);
  e = errors(head +
             "list = \"/bin/list\"\nfetch = [\"/bin/fetch\", \"{id}\", \"{dir}\"]\n"
             "timeout = \"0s\"\n");
  CHECK(e.find("backup.list: expected an array of strings") != std::string::npos);
  CHECK(e.find("backup.timeout: must be greater than zero") != std::string::npos);
}
