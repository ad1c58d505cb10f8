// Sandboxes against real PostgreSQL 15: the ephemeral cluster starts, serves and leaves nothing;
// a scratch server that is (or may be) the source, or older than the dump, is refused; a scratch
// server gets marked databases (and roles) and loses only those.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "agent/errors.h"
#include "agent/orphans.h"
#include "agent/pg/pg_cluster.h"
#include "agent/pg/pg_conn.h"
#include "agent/sandboxes/ephemeral.h"
#include "agent/sandboxes/scratch.h"
#include "agent/sources/pg_dump_source.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

Environment TestEnv(const test::TestDir& work) {
  Environment env;
  env.pg = test::Tools();
  env.run_as = test::ServerUser();
  env.work_dir = work.path();
  return env;
}

std::string One(const LocalCluster& c, const std::string& sql, const std::string& db = "postgres") {
  std::string out = c.Psql(sql, db);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("an ephemeral sandbox starts, serves databases and leaves nothing behind",
          "[integration][sandbox]") {
  test::TestDir work("rwwork-");
  Environment env = TestEnv(work);
  TargetConfig t;
  t.name = "blog";
  CancelToken cancel;
  {
    auto sb = MakeEphemeralSandbox(env, t, "20261125T031504Z-3f2a", "");
    CHECK(sb->kind() == "ephemeral");
    sb->Start(15, cancel);
    CHECK(sb->ServerMajor() == 15);
    auto dirs = test::ListDir(work.path());
    REQUIRE(dirs.size() == 1);
    CHECK_THAT(dirs[0], Catch::StartsWith("sandbox-blog-"));
    std::string marker = ReadAll(work / dirs[0] + "/.restorewatch");
    CHECK_THAT(marker, Catch::Contains("target=blog") && Catch::Contains("20261125T031504Z-3f2a"));

    CHECK(sb->CreateDatabase("blog") == "blog");
    CHECK(sb->CreateDatabase("with space") == "with space");
    CHECK(sb->ClientEnv().empty());
    for (const char* db : {"blog", "with space"}) {
      auto c = ConnectSandbox(sb->LibpqConnInfo(db));
      pqxx::nontransaction tx(*c);
      CHECK(tx.exec1("select current_database()")[0].c_str() == std::string(db));
      // Unix socket only: no TCP listener.
      CHECK(tx.exec1("select current_setting('listen_addresses')")[0].c_str() == std::string());
      CHECK(tx.exec1("select current_setting('fsync')")[0].c_str() == std::string("off"));
    }
    auto created = sb->CreateRoles({"app_owner", "postgres", "Mixed Case"});
    CHECK(created == std::vector<std::string>{"app_owner", "Mixed Case"});

    CHECK(sb->Cleanup().empty());
    CHECK(test::ListDir(work.path()).empty());
    CHECK(sb->Cleanup().empty());  // idempotent
  }
  {
    // The destructor cleans up too (a drill that threw before Cleanup()).
    auto sb = MakeEphemeralSandbox(env, t, "run-2", "");
    sb->Start(15, cancel);
    CHECK(test::ListDir(work.path()).size() == 1);
  }
  CHECK(test::ListDir(work.path()).empty());

  // A dump newer than the binaries: refused before anything is created.
  auto sb = MakeEphemeralSandbox(env, t, "run-3", "");
  try {
    sb->Start(16, cancel);
    FAIL("started for a newer dump");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains("PostgreSQL 16") && Catch::Contains("PostgreSQL 15") &&
                             Catch::Contains(test::Tools().bin_dir));
  }
  CHECK(test::ListDir(work.path()).empty());
  CHECK(sb->Cleanup().empty());
}

namespace {

// The cached initdb template's dir in work_dir (there is at most one), or empty.
std::string TemplateDir(const std::string& work_dir) {
  std::string found;
  if (DIR* d = opendir(work_dir.c_str())) {
    while (struct dirent* e = readdir(d))
      if (std::string(e->d_name).rfind(".initdb-template-", 0) == 0) {
        CHECK(found.empty());
        found = work_dir + "/" + e->d_name;
      }
    closedir(d);
  }
  return found;
}

// Free space map and visibility map forks under a data dir's base/ and global/.
int OptionalForkFiles(const std::string& data_dir) {
  int n = 0;
  std::vector<std::string> dirs = {data_dir + "/global"};
  for (const auto& db : test::ListDir(data_dir + "/base")) dirs.push_back(data_dir + "/base/" + db);
  for (const auto& d : dirs)
    for (const auto& f : test::ListDir(d))
      if (f.find("_fsm") != std::string::npos || f.find("_vm") != std::string::npos) ++n;
  return n;
}

std::string SandboxSystemId(Sandbox& sb) {
  auto c = ConnectSandbox(sb.LibpqConnInfo("postgres"));
  pqxx::nontransaction tx(*c);
  return tx.exec1("select system_identifier::text from pg_control_system()")[0].c_str();
}

}  // namespace

TEST_CASE("ephemeral sandboxes are copies of one cached initdb template, never the source's twin",
          "[integration][sandbox]") {
  test::TestDir work("rwwork-");
  Environment env = TestEnv(work);
  TargetConfig t;
  t.name = "shop";
  CancelToken cancel;
  CHECK(TemplateDir(work.path()).empty());
  std::string tpl, tpl_id;
  struct stat first {};
  {
    auto a = MakeEphemeralSandbox(env, t, "run-a", "");
    a->Start(15, cancel);
    tpl = TemplateDir(work.path());
    REQUIRE_FALSE(tpl.empty());
    REQUIRE(stat(tpl.c_str(), &first) == 0);
    tpl_id = ReadSystemIdentifier(tpl + "/data");
    REQUIRE_FALSE(tpl_id.empty());
    CHECK(SandboxSystemId(*a) == tpl_id);
    // The template carries no free space map or visibility map forks (fewer files to copy per
    // sandbox); PostgreSQL makes them again when first needed, catalogs included.
    CHECK(OptionalForkFiles(tpl + "/data") == 0);
    CHECK(test::ListDir(tpl + "/data/base").size() == 4);  // template0/1, postgres, the spare
    // The restore's database is the template's spare, renamed; a second one is created.
    CHECK(a->CreateDatabase("shop") == "shop");
    CHECK(a->CreateDatabase("other") == "other");
    auto c = ConnectSandbox(a->LibpqConnInfo("postgres"));
    pqxx::nontransaction tx(*c);
    CHECK(tx.exec("select 1 from pg_database where datname = 'restorewatch_spare'").empty());
    CHECK(tx.exec1("select count(*) from pg_database where datname in ('shop', 'other')")[0]
              .as<int>() == 2);
    // Copies are independent clusters: a table in one is not in the next.
    auto s = ConnectSandbox(a->LibpqConnInfo("shop"));
    pqxx::nontransaction(*s).exec0("create table only_in_a (x int)");
    {
      pqxx::nontransaction st(*s);
      st.exec0("insert into only_in_a select generate_series(1, 1000)");
      st.exec0("vacuum pg_class");
      st.exec0("vacuum only_in_a");
      for (const char* rel : {"pg_class", "only_in_a"})
        for (const char* fork : {"fsm", "vm"})
          CHECK(st.exec1(std::string("select pg_relation_size('") + rel + "', '" + fork + "')")[0]
                    .as<std::int64_t>() > 0);
      CHECK(st.exec1("select count(*) from only_in_a")[0].as<int>() == 1000);
    }
    c.reset();
    s.reset();
    CHECK(a->Cleanup().empty());
  }
  // Work_dir holds the template only; the orphan sweep leaves it.
  CHECK(test::ListDir(work.path()).empty());
  CHECK(RemoveOrphanedWorkDirs(work.path()).empty());
  CHECK(TemplateDir(work.path()) == tpl);
  {
    auto b = MakeEphemeralSandbox(env, t, "run-b", "");
    b->Start(15, cancel);
    struct stat again {};
    REQUIRE(stat(tpl.c_str(), &again) == 0);
    CHECK(again.st_ino == first.st_ino);  // reused, not rebuilt
    CHECK(b->CreateDatabase("shop") == "shop");
    auto s = ConnectSandbox(b->LibpqConnInfo("shop"));
    CHECK(pqxx::nontransaction(*s)
              .exec("select 1 from pg_class where relname = 'only_in_a'")
              .empty());
  }
  {
    // A source that shares the template's system identifier (a cluster copied from it, say):
    // the template is rebuilt, so the sandbox's identity differs from the source's.
    auto c = MakeEphemeralSandbox(env, t, "run-c", tpl_id);
    c->Start(15, cancel);
    CHECK(SandboxSystemId(*c) != tpl_id);
    CHECK(ReadSystemIdentifier(TemplateDir(work.path()) + "/data") != tpl_id);
  }
  {
    // A template whose stamp names other binaries (or was never finished) is rebuilt.
    const std::string now = TemplateDir(work.path());
    test::WriteFile(now + "/.restorewatch-template", "key=initdb of another version\n");
    const std::string old_id = ReadSystemIdentifier(now + "/data");
    auto d = MakeEphemeralSandbox(env, t, "run-d", "");
    d->Start(15, cancel);
    CHECK(SandboxSystemId(*d) != old_id);
    CHECK(ReadSystemIdentifier(TemplateDir(work.path()) + "/data") == SandboxSystemId(*d));
  }
  CHECK(test::ListDir(work.path()).empty());
}

TEST_CASE("sandboxes started at once share one new template", "[integration][sandbox]") {
  test::TestDir work("rwwork-");
  Environment env = TestEnv(work);
  TargetConfig t;
  t.name = "many";
  std::vector<std::string> ids(3);
  std::vector<std::string> errors(3);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i)
      threads.emplace_back([&, i] {
        try {
          CancelToken cancel;
          auto sb = MakeEphemeralSandbox(env, t, "run-" + std::to_string(i), "");
          sb->Start(15, cancel);
          ids[i] = SandboxSystemId(*sb);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& th : threads) th.join();
  }
  for (const auto& e : errors) CHECK(e.empty());
  const std::string tpl = TemplateDir(work.path());
  REQUIRE_FALSE(tpl.empty());
  for (const auto& id : ids) CHECK(id == ReadSystemIdentifier(tpl + "/data"));
  CHECK(test::ListDir(work.path()).empty());
}

TEST_CASE("a scratch sandbox keeps its password off the command line", "[unit][sandbox]") {
  Environment env;
  TargetConfig t;
  t.name = "blog";
  t.drill.scratch = ConnSpec{"host=db2 port=5433 user=rw dbname=maint sslmode=prefer", "s3 'cret"};
  auto sb = MakeScratchSandbox(env, t, "run1", "123");
  std::string ci = sb->ConnInfo("restorewatch_blog_run1");
  CHECK(ci.find("s3") == std::string::npos);
  CHECK(ci.find("maint") == std::string::npos);
  CHECK_THAT(ci, Catch::Contains("host=db2") && Catch::Contains("port=5433") &&
                     Catch::Contains("sslmode=prefer") &&
                     Catch::EndsWith("dbname=restorewatch_blog_run1"));
  CHECK(sb->ClientEnv() == std::map<std::string, std::string>{{"PGPASSWORD", "s3 'cret"}});
  CHECK_THAT(sb->LibpqConnInfo("x"), Catch::EndsWith("dbname=x password='s3 \\'cret'"));

  t.drill.scratch = ConnSpec{"postgresql://rw@db2:5433/maint?sslmode=require", ""};
  auto uri = MakeScratchSandbox(env, t, "run1", "123");
  CHECK_THAT(uri->ConnInfo("d"), Catch::Contains("host=db2") && Catch::Contains("user=rw") &&
                                     Catch::EndsWith("dbname=d"));
  CHECK(uri->ClientEnv().empty());

  CHECK_THAT(ScratchMark("blog", "20261125T031504Z-3f2a"),
             Catch::StartsWith("restorewatch:blog:20261125T031504Z-3f2a host=") &&
                 Catch::Contains(" pid=" + std::to_string(getpid()) + " start="));
  CHECK(ScratchDatabaseName("blog", "20261125T031504Z-3f2a") ==
        "restorewatch_blog_20261125t031504z_3f2a");
  std::string long_name = ScratchDatabaseName(std::string(80, 'x'), "20261125T031504Z-3f2a");
  CHECK(long_name.size() == 63);
  CHECK_THAT(long_name, Catch::EndsWith("_20261125t031504z_3f2a"));
}

TEST_CASE("a scratch sandbox refuses the source and drops only what it created and marked",
          "[integration][sandbox]") {
  test::TestDir dir("rwscratch-");
  // A scratch server without fsync: CREATE/DROP DATABASE would otherwise dominate the test time.
  test::ClusterSpec spec;
  spec.throwaway = true;
  auto server = test::StartCluster(dir, spec);
  const std::string run = "20261125T031504Z-3f2a";
  const std::string ours = ScratchDatabaseName("blog", run);
  Environment env = TestEnv(dir);
  TargetConfig t;
  t.name = "blog";
  t.drill.scratch = ConnSpec{server->ConnInfo("postgres"), ""};
  CancelToken cancel;

  // Decoys: a similar name without the mark, and the very mark on a database someone else made.
  server->Psql("create database restorewatch_blog_decoy");
  server->Psql("create database " + ours + "_x");
  server->Psql("comment on database " + ours + "_x is '" + ScratchMark("blog", run) + "'");
  server->Psql("create role keeper nologin");
  // A plain dump whose owner role the scratch server does not have.
  server->Psql("create role app_owner nologin");
  server->Psql("create database blog owner app_owner");
  server->Psql("create table t(i int); alter table t owner to app_owner; insert into t values (1)",
               "blog");
  REQUIRE(mkdir((dir / "dumps").c_str(), 0755) == 0);
  REQUIRE(test::RunPgTool("pg_dump",
                          {"-Fp", "-d", server->ConnInfo("blog"), "-f", dir / "dumps/blog.sql"})
              .ok());
  server->Psql("drop database blog");
  server->Psql("drop role app_owner");

  const std::string system_id = One(*server, "select system_identifier from pg_control_system()");
  auto count_dbs = [&] { return One(*server, "select count(*) from pg_database"); };
  const std::string before = count_dbs();

  auto is_source = MakeScratchSandbox(env, t, "r1", system_id);
  try {
    is_source->Start(15, cancel);
    FAIL("used the source as scratch");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kConfig);
    CHECK_THAT(e.what(), Catch::StartsWith("the scratch server is the source"));
  }
  CHECK_THROWS_AS(is_source->CreateDatabase("x"), Error);

  auto unknown = MakeScratchSandbox(env, t, "r2", "");
  try {
    unknown->Start(15, cancel);
    FAIL("used a scratch server that may be the source");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kConfig);
    CHECK_THAT(e.what(), Catch::Contains("cannot prove the scratch server is not the source"));
  }

  auto older = MakeScratchSandbox(env, t, "r3", "1234");
  try {
    older->Start(16, cancel);
    FAIL("used a PostgreSQL 15 scratch server for a PostgreSQL 16 dump");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains("PostgreSQL 16") && Catch::Contains("PostgreSQL 15"));
  }

  // A role that may not create databases.
  server->Psql("create role plain_user login");
  TargetConfig weak = t;
  weak.drill.scratch =
      ConnSpec("host=" + server->socket_dir() + " port=" + std::to_string(server->port()) +
               " user=plain_user dbname=postgres");
  auto no_createdb = MakeScratchSandbox(env, weak, "r4", "1234");
  try {
    no_createdb->Start(15, cancel);
    FAIL("started without CREATEDB");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kConfig);
    CHECK_THAT(e.what(), Catch::Contains("may not create databases"));
  }
  CHECK(count_dbs() == before);

  {
    auto sb = MakeScratchSandbox(env, t, run, "1234");
    CHECK(sb->kind() == "scratch");
    sb->Start(15, cancel);
    CHECK(sb->ServerMajor() == 15);
    CHECK(sb->CreateDatabase("blog") == ours);
    CHECK(sb->CreateDatabase("blog") == ours + "_2");
    CHECK(One(*server,
              "select shobj_description(oid, 'pg_database') from pg_database where "
              "datname = '" +
                  ours + "'") == ScratchMark("blog", run));

    // A restore into it: the missing owner role is created, marked, and later dropped.
    TargetConfig st = t;
    st.backup.paths = {dir / "dumps"};
    st.backup.settle = std::chrono::milliseconds(100);
    auto source = MakePgDumpSource(env, st);
    BackupInfo b = source->Latest(cancel);
    RestoreOptions o;
    RestoreOutcome out = source->Restore(b, *sb, o, cancel);
    CHECK(out.database == ours + "_3");
    CHECK(One(*server, "select count(*) from t", out.database) == "1");
    CHECK(One(*server, "select pg_get_userbyid(relowner) from pg_class where relname = 't'",
              out.database) == "app_owner");
    CHECK(One(*server,
              "select shobj_description(oid, 'pg_authid') from pg_roles where rolname = "
              "'app_owner'") == ScratchMark("blog", run));
    CHECK(sb->CreateRoles({"keeper"}).empty());

    // Someone took a database over and changed its comment: it is no longer ours to drop.
    CHECK(sb->CreateDatabase("blog") == ours + "_4");
    server->Psql("comment on database " + ours + "_4 is 'mine now'");

    std::string problem = sb->Cleanup();
    CHECK(problem == "left database " + ours + "_4 on the scratch server: its mark is gone");
    CHECK(sb->Cleanup().empty());  // idempotent: nothing left to try
  }
  std::string left = One(*server,
                         "select string_agg(datname, ',' order by datname) from "
                         "pg_database where datname like 'restorewatch%'");
  CHECK(left == ours + "_4," + ours + "_x,restorewatch_blog_decoy");
  CHECK(One(*server, "select count(*) from pg_roles where rolname = 'app_owner'") == "0");
  CHECK(One(*server, "select count(*) from pg_roles where rolname = 'keeper'") == "1");
}
