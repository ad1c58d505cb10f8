// The harness itself: a cluster starts, answers, and leaves nothing behind.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

TEST_CASE("a local cluster starts, answers and is removed", "[integration][harness]") {
  test::TestDir dir;
  std::string cluster_dir;
  {
    auto c = test::StartCluster(dir);
    cluster_dir = c->dir();
    auto conn = ConnectSandbox(c->ConnInfo());
    pqxx::nontransaction tx(*conn);
    CHECK(tx.exec1("select current_setting('server_version_num')::int / 10000")[0].as<int>() == 15);
    CHECK(c->Psql("select 40 + 2").find("42") != std::string::npos);
  }
  struct stat st {};
  CHECK(stat(cluster_dir.c_str(), &st) != 0);
  CHECK(test::ListDir(dir.path()).empty());
}

TEST_CASE("source sessions are read-only", "[integration][harness]") {
  test::TestDir dir;
  auto c = test::StartCluster(dir);
  c->Psql("create table t(i int)");
  ConnSpec spec{c->ConnInfo(), ""};
  auto conn = Connect(spec, SessionLimits{});
  pqxx::work tx(*conn);
  CHECK_THROWS_WITH(tx.exec0("insert into t values (1)"), Catch::Contains("read-only"));
}

TEST_CASE("a cluster that cannot start reports the server's reason", "[integration][harness]") {
  test::TestDir dir;
  ClusterOptions o;
  o.tools = test::Tools();
  o.parent_dir = dir.path();
  o.run_as = test::ServerUser();
  o.settings = {{"shared_buffers", "'nonsense'"}};
  try {
    LocalCluster::Create(o);
    FAIL("started with a broken setting");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("shared_buffers") != std::string::npos);
  }
  CHECK(test::ListDir(dir.path()).empty());
}
