// work_dir guards, the disk-space estimate and the cause line picked from a tool's output.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "agent/config.h"
#include "agent/path_guard.h"
#include "agent/pg/process.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

// A directory that looks like a PostgreSQL data directory to the guard.
void FakeDataDir(const std::string& dir) {
  MakeDirs(dir + "/global");
  std::ofstream(dir + "/PG_VERSION") << "15\n";
  std::ofstream(dir + "/global/pg_control") << "x";
}

std::vector<ConfigError> LoadErrors(const std::string& agent_toml) {
  return LoadConfigText("[agent]\n" + agent_toml, "t.toml").errors;
}

}  // namespace

TEST_CASE("work_dir: root, system dirs, PGDATA and the state dir are refused at load",
          "[unit][config]") {
  test::TestDir dir;
  const std::string state = dir / "state";
  CHECK(UnsafeWorkDir("/", state));
  CHECK(UnsafeWorkDir("/var/lib", state));
  CHECK(UnsafeWorkDir("/tmp/../etc/", state));
  CHECK_FALSE(UnsafeWorkDir(dir / "work", state));
  CHECK_FALSE(UnsafeWorkDir(dir / "not/yet/there", state));

  // A data directory, anything under it, and a symlink into it.
  FakeDataDir(dir / "pgdata");
  auto in_data = UnsafeWorkDir(dir / "pgdata", state);
  REQUIRE(in_data);
  CHECK_THAT(*in_data, Catch::Contains("data directory"));
  auto below = UnsafeWorkDir(dir / "pgdata/base/restorewatch", state);
  REQUIRE(below);
  CHECK_THAT(*below, Catch::Contains("inside the PostgreSQL data directory"));
  REQUIRE(symlink((dir / "pgdata").c_str(), (dir / "link").c_str()) == 0);
  CHECK(UnsafeWorkDir(dir / "link/sub", state));

  // The state dir itself, or one inside the other.
  CHECK(UnsafeWorkDir(state, state));
  CHECK(UnsafeWorkDir(state + "/work", state));
  CHECK(UnsafeWorkDir(dir.path(), state));

  // check-config names the key and the line.
  auto errors = LoadErrors("state_dir = \"" + state + "\"\nwork_dir = \"/\"\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key == "agent.work_dir");
  CHECK(errors[0].line == 3);
  errors = LoadErrors("state_dir = \"" + state + "\"\nwork_dir = \"" + (dir / "pgdata/x") + "\"\n");
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].message, Catch::Contains(dir / "pgdata"));
  CHECK(LoadErrors("state_dir = \"" + state + "\"\nwork_dir = \"" + (dir / "w") + "\"\n").empty());
}

TEST_CASE("restore space: from the last drill, else from the backup, both numbers in the reason",
          "[unit][drill]") {
  SpaceNeed from_history = RestoreSpaceNeed(10 << 20, "custom", 100 << 20);
  CHECK(from_history.bytes == (200u << 20) + (64u << 20));
  CHECK_THAT(from_history.basis, Catch::Contains("last drill"));
  SpaceNeed compressed = RestoreSpaceNeed(10 << 20, "custom", 0);
  CHECK(compressed.bytes == (40u << 20) + (64u << 20));
  SpaceNeed plain = RestoreSpaceNeed(10 << 20, "plain", 0);
  CHECK(plain.bytes == (20u << 20) + (64u << 20));

  CHECK_FALSE(ShortOfSpace("/w", 1ull << 30, compressed));
  auto why = ShortOfSpace("/w", 50u << 20, compressed);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("50.0 MiB free") || Catch::Contains("50 MiB free"));
  CHECK_THAT(*why, Catch::Contains("104"));
  CHECK_THAT(*why, Catch::Contains("/w"));
  CHECK(FreeBytes("/tmp/surely/not/there").value_or(0) > 0);
}

TEST_CASE("a tool's failure is summarised by the line that names the cause", "[unit][process]") {
  ProcessResult r;
  r.exit_code = 1;
  r.err =
      "The files belonging to this database system will be owned by user \"postgres\".\n"
      "creating directory /w/data ... ok\n"
      "initdb: error: could not write to file \"/w/data/base/1/1249\": No space left on device\n"
      "child process exited with exit code 1\n"
      "initdb: removing data directory \"/w/data\"\n";
  CHECK(r.Summary() ==
        "exit code 1: initdb: error: could not write to file \"/w/data/base/1/1249\": No space "
        "left on device");
  r.err = "pg_restore: error: could not open input file \"x\": Permission denied\n";
  CHECK_THAT(r.Summary(), Catch::EndsWith("Permission denied"));
  r.err = "warming up\npg_restore: error: input file appears to be a text format dump\nbye\n";
  CHECK_THAT(r.Summary(), Catch::EndsWith("text format dump"));
  r.err = "just one line\n";
  CHECK(r.Summary() == "exit code 1: just one line");
}
