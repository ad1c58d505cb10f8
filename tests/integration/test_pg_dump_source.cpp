// The pg_dump source against real PostgreSQL 15: every pg_dump format is found (the newer of two
// dumps by its own header time), restored into an ephemeral sandbox with the source's row counts,
// and bad dumps end in an error that names the file and quotes the restore tool.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <thread>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"
#include "agent/sandboxes/ephemeral.h"
#include "agent/sources/pg_dump_source.h"
#include "tests/support/pg_fixture.h"

using namespace rw;

namespace {

// Several schemas and types: text, numeric, jsonb, bytea, arrays, timestamptz, NULLs, a table
// without a primary key, a partitioned table, a large object, tables owned by a role.
const char* kSourceSql = R"sql(
create role app_owner nologin;
create role app_reader nologin;
create schema shop authorization app_owner;
create schema audit;
create table shop.customers(id int primary key, name text not null, balance numeric(12,2),
  meta jsonb, photo bytea, tags text[], created timestamptz);
insert into shop.customers select g, 'name ' || g, g * 1.5, jsonb_build_object('g', g),
  decode(md5(g::text), 'hex'), array['a' || g, 'b'], now() - g * interval '1 minute'
  from generate_series(1, 500) g;
update shop.customers set meta = null, photo = null, tags = null where id % 7 = 0;
alter table shop.customers owner to app_owner;
grant select on shop.customers to app_reader;
create table audit.log(at timestamptz, msg text);
insert into audit.log select now(), 'msg ' || g from generate_series(1, 300) g;
insert into audit.log values (null, null), (null, null);
create table shop.orders(id bigint, placed date not null, amount numeric) partition by range (placed);
create table shop.orders_2025 partition of shop.orders for values from ('2025-01-01') to ('2026-01-01');
create table shop.orders_2026 partition of shop.orders for values from ('2026-01-01') to ('2027-01-01');
insert into shop.orders select g, date '2025-06-01' + (g % 400), g from generate_series(1, 800) g;
select lo_from_bytea(0, 'a large object');
create table public.marker(n int);
)sql";

// Rows per table (leaf and partitioned) and the number of large objects of a database.
std::map<std::string, long> Counts(const std::string& conninfo) {
  std::map<std::string, long> out;
  auto c = ConnectSandbox(conninfo);
  pqxx::nontransaction tx(*c);
  auto tables = tx.exec(
      "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on "
      "n.oid = c.relnamespace where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', "
      "'information_schema') and n.nspname not like 'pg_toast%'");
  for (const auto& t : tables) {
    std::string name = t[0].c_str();
    out[name] = tx.exec1("select count(*) from " + name)[0].as<long>();
  }
  out["(large objects)"] = tx.exec1("select count(*) from pg_largeobject_metadata")[0].as<long>();
  return out;
}

std::string OwnerOf(const std::string& conninfo, const std::string& table) {
  auto c = ConnectSandbox(conninfo);
  pqxx::nontransaction tx(*c);
  return tx
      .exec1("select pg_get_userbyid(relowner) from pg_class where oid = '" + table +
             "'::regclass")[0]
      .c_str();
}

void Dump(const LocalCluster& src, const std::vector<std::string>& args, const std::string& out) {
  std::vector<std::string> a = {"-d", src.ConnInfo("blog"), "-f", out};
  a.insert(a.end(), args.begin(), args.end());
  ProcessResult r = test::RunPgTool("pg_dump", a);
  REQUIRE(r.ok());
}

void SetMtime(const std::string& path, double offset_seconds) {
  timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec += static_cast<time_t>(offset_seconds);
  ts[1] = ts[0];
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

// Sources here need no durability: fsync off keeps CREATE DATABASE and loading quick.
test::ClusterSpec Fast() {
  test::ClusterSpec s;
  s.throwaway = true;
  return s;
}

Environment TestEnv(const test::TestDir& work) {
  Environment env;
  env.pg = test::Tools();
  env.run_as = test::ServerUser();
  env.work_dir = work.path();
  return env;
}

TargetConfig Target(const std::string& dir, const std::string& pattern) {
  TargetConfig t;
  t.name = "blog";
  t.backup.paths = {dir};
  t.backup.pattern = pattern;
  t.backup.settle = std::chrono::milliseconds(50);  // every dump here is complete
  return t;
}

// Runs a restore expected to fail; returns the error.
Error FailedRestore(BackupSource& src, Sandbox& sb, const std::string& db,
                    const std::vector<std::string>& allow = {}) {
  CancelToken cancel;
  BackupInfo b = src.Latest(cancel);
  RestoreOptions o;
  o.database = db;
  o.allow_errors = allow;
  try {
    src.Restore(b, sb, o, cancel);
  } catch (const Error& e) {
    return e;
  }
  FAIL("restore of " << b.path << " succeeded");
  return Error(ErrorKind::kConfig, "unreachable");
}

void ReplaceFirst(std::string& s, const std::string& from, const std::string& to, std::size_t n) {
  std::size_t pos = 0;
  for (std::size_t i = 0; i < n; ++i) {
    pos = s.find(from, i ? pos + 1 : 0);
    REQUIRE(pos != std::string::npos);
  }
  s.replace(pos, from.size(), to);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

}  // namespace

TEST_CASE("every pg_dump format is found and restored with the source's rows",
          "[integration][pg_dump]") {
  test::TestDir dir("rwdump-");
  test::TestDir work("rwwork-");
  auto src = test::StartCluster(dir, Fast());
  src->Psql("create database blog");
  src->Psql(kSourceSql, "blog");

  struct Format {
    std::string name;  // BackupInfo::format
    std::vector<std::string> args;
    std::string ext;
    bool header_time;      // the newer dump is told by its header, whatever the mtimes say
    std::string compress;  // compress the plain dump afterwards with this tool
  };
  const std::vector<Format> formats = {
      {"custom", {"-Fc"}, ".dump", true, ""},
      {"directory", {"-Fd"}, ".dir", true, ""},
      {"tar", {"-Ft"}, ".tar", true, ""},
      {"plain", {"-Fp", "--verbose"}, ".sql", true, ""},
      {"plain.gz", {"-Fp", "-Z", "6"}, ".sql.gz", false, ""},
      {"plain.zst", {"-Fp", "--verbose"}, ".sql.zst", true, "zstd"},
      {"plain.lz4", {"-Fp", "--verbose"}, ".sql.lz4", true, "lz4"},
  };
  auto dump = [&](const Format& f, const std::string& path) {
    if (f.compress.empty()) return Dump(*src, f.args, path);
    std::string plain = path.substr(0, path.rfind('.'));
    Dump(*src, f.args, plain);
    ProcessSpec z;
    z.argv = {f.compress, "-q", "--rm", plain, f.compress == "zstd" ? "-o" : "", path};
    z.argv.erase(std::remove(z.argv.begin(), z.argv.end(), ""), z.argv.end());
    REQUIRE(RunProcess(z).ok());
  };
  for (const auto& f : formats) {
    REQUIRE(mkdir((dir / f.name).c_str(), 0755) == 0);
    // The older dump gets the name that sorts last.
    dump(f, dir / f.name + "/blog-z-old" + f.ext);
  }
  // pg_dump's header times have one-second resolution.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  src->Psql("insert into public.marker values (1), (2)", "blog");
  for (const auto& f : formats) {
    dump(f, dir / f.name + "/blog-a-new" + f.ext);
    // The older dump looks newer by mtime: only the header time can tell.
    if (f.header_time) SetMtime(dir / f.name + "/blog-z-old" + f.ext, 5);
  }
  // A globals file beside a custom dump: owners and grants are then restored too.
  REQUIRE(mkdir((dir / "globals").c_str(), 0755) == 0);
  REQUIRE(test::RunPgTool("pg_dumpall", {"--globals-only", "-d", src->ConnInfo("postgres"), "-f",
                                         dir / "globals/globals.sql"})
              .ok());
  Dump(*src, {"-Fc"}, dir / "globals/blog.dump");

  const auto want = Counts(src->ConnInfo("blog"));
  REQUIRE(want.at("public.marker") == 2);
  REQUIRE(want.at("shop.customers") == 500);
  REQUIRE(want.at("(large objects)") == 1);

  Environment env = TestEnv(work);
  TargetConfig tc = Target("", "*");
  auto sandbox = MakeEphemeralSandbox(env, tc, "20261125T000000Z-test", "");
  CancelToken cancel;
  sandbox->Start(15, cancel);

  for (const auto& f : formats) {
    INFO("format " << f.name);
    auto source = MakePgDumpSource(env, Target(dir / f.name, "blog-*"));
    BackupInfo b = source->Latest(cancel);
    CHECK(b.id == "blog-a-new" + f.ext);
    CHECK(b.format == f.name);
    CHECK(b.started_exact == f.header_time);
    CHECK(b.server_major == 15);
    CHECK(b.dump_tool_major == 15);
    CHECK(b.size_bytes > 0);
    if (f.name.find("plain") != 0) CHECK(b.database == "blog");
    BackupCatalogue cat = source->Catalogue(cancel);
    CHECK(cat.by_kind["logical"].count == 2);

    RestoreOptions o;
    o.database = "r_" + f.name;  // dots and all: names are quoted
    RestoreOutcome out = source->Restore(b, *sandbox, o, cancel);
    CHECK(out.database == o.database);
    CHECK(out.accepted_errors.empty());
    CHECK(out.tool_summary.find("(" + f.name + " format)") != std::string::npos);
    CHECK(Counts(sandbox->ConnInfo(out.database)) == want);
    if (f.name == "plain") {
      // psql cannot skip owners: the roles were created first, and ownership is as in the source.
      CHECK(OwnerOf(sandbox->ConnInfo(out.database), "shop.customers") == "app_owner");
    }
  }

  {
    INFO("custom with a globals file");
    auto t = Target(dir / "globals", "*");
    t.backup.globals_pattern = "globals*.sql";
    auto source = MakePgDumpSource(env, t);
    BackupInfo b = source->Latest(cancel);
    CHECK(b.id == "blog.dump");
    CHECK(b.globals_path == dir / "globals/globals.sql");
    RestoreOptions o;  // no database given: the dump's own name
    RestoreOutcome out = source->Restore(b, *sandbox, o, cancel);
    CHECK(out.database == "blog");
    CHECK(out.tool_summary.find("after globals") != std::string::npos);
    CHECK(out.tool_summary.find("--no-owner") == std::string::npos);
    CHECK(Counts(sandbox->ConnInfo("blog")) == want);
    CHECK(OwnerOf(sandbox->ConnInfo("blog"), "shop.customers") == "app_owner");
  }

  CHECK(sandbox->Cleanup().empty());
  CHECK(test::ListDir(work.path()).empty());
}

TEST_CASE("a bad dump fails the restore naming the file and quoting the tool",
          "[integration][pg_dump]") {
  test::TestDir dir("rwdump-");
  test::TestDir work("rwwork-");
  auto src = test::StartCluster(dir, Fast());
  src->Psql("create database blog");
  // Enough table data that the middle of a custom dump lies inside it.
  src->Psql(
      "create table big as select g, md5(g::text) m from generate_series(1, 100000) g;"
      "create table small(i int primary key)",
      "blog");
  for (const char* d : {"good", "trunc", "corrupt", "newer", "newer-tool", "newer-server", "syntax",
                        "allowed", "create"})
    REQUIRE(mkdir((dir / d).c_str(), 0755) == 0);
  Dump(*src, {"-Fc"}, dir / "good/blog.dump");
  src->Psql("insert into small values (1), (2), (3)", "blog");
  Dump(*src, {"-Fp", "-t", "small"}, dir / "syntax/blog.sql");
  Dump(*src, {"-Fp", "--create", "-t", "small"}, dir / "create/blog.sql");
  const std::string dump = ReadAll(dir / "good/blog.dump");
  REQUIRE(dump.size() > 1000000);

  WriteAll(dir / "trunc/blog.dump", dump.substr(0, dump.size() * 6 / 10));
  std::string corrupt = dump;
  for (std::size_t i = 0; i < 8; ++i) corrupt[dump.size() / 2 + i] ^= 0x5a;
  WriteAll(dir / "corrupt/blog.dump", corrupt);
  // Archive version 1.16 (PostgreSQL 16's pg_dump): bytes 5-7 of the header are major/minor/rev.
  std::string newer = dump;
  newer[6] = 16;
  WriteAll(dir / "newer/blog.dump", newer);
  // The dump tool's (second) and the server's (first) version strings in the header.
  std::string tool16 = dump, server16 = dump;
  ReplaceFirst(tool16, "15.18 (", "16.18 (", 2);
  ReplaceFirst(server16, "15.18 (", "16.18 (", 1);
  WriteAll(dir / "newer-tool/blog.dump", tool16);
  WriteAll(dir / "newer-server/blog.dump", server16);
  std::string sql = ReadAll(dir / "syntax/blog.sql");
  std::string broken = sql;
  ReplaceFirst(broken, "CREATE TABLE public.small", "SELEC broken;\nCREATE TABLE public.small", 1);
  WriteAll(dir / "syntax/blog.sql", broken);
  WriteAll(dir / "allowed/blog.sql", sql + "\nselect no_such_function();\n");
  // A gzip file cut short: gzip's own complaint fails the restore.
  ProcessSpec gz;
  gz.stdout_path = dir / "gz/full.gz";
  REQUIRE(mkdir((dir / "gz").c_str(), 0755) == 0);
  WriteAll(dir / "gz/full.sql", sql);
  gz.argv = {"gzip", "-c", dir / "gz/full.sql"};
  REQUIRE(RunProcess(gz).ok());
  const std::string gzipped = ReadAll(dir / "gz/full.gz");
  REQUIRE(unlink((dir / "gz/full.gz").c_str()) == 0);
  REQUIRE(unlink((dir / "gz/full.sql").c_str()) == 0);
  WriteAll(dir / "gz/blog.sql.gz", gzipped.substr(0, gzipped.size() - 20));

  Environment env = TestEnv(work);
  auto sandbox = MakeEphemeralSandbox(env, Target("", "*"), "run-bad", "");
  CancelToken cancel;
  sandbox->Start(15, cancel);

  {
    auto s = MakePgDumpSource(env, Target(dir / "trunc", "*"));
    Error e = FailedRestore(*s, *sandbox, "t_trunc");
    CHECK(e.kind() == ErrorKind::kBadInput);
    CHECK_THAT(e.what(), Catch::StartsWith("pg_restore failed on " + dir / "trunc/blog.dump: "));
    CHECK_THAT(e.what(), Catch::Contains("pg_restore: error: "));
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "corrupt", "*"));
    Error e = FailedRestore(*s, *sandbox, "t_corrupt");
    CHECK(e.kind() == ErrorKind::kBadInput);
    CHECK_THAT(e.what(), Catch::StartsWith("pg_restore failed on " + dir / "corrupt/blog.dump: "));
    CHECK_THAT(e.what(), Catch::Contains("pg_restore: error: could not uncompress data"));
    // An allow-list cannot accept a restore that never reached the end of the archive.
    Error again = FailedRestore(*s, *sandbox, "t_corrupt2", {"could not", "worker"});
    CHECK(again.kind() == ErrorKind::kBadInput);
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "newer", "*"));
    BackupInfo b = s->Latest(cancel);  // still the latest: the drill must fail on it
    CHECK(b.id == "blog.dump");
    Error e = FailedRestore(*s, *sandbox, "t_newer");
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains(dir / "newer/blog.dump"));
    CHECK_THAT(e.what(), Catch::Contains("unsupported version (1.16) in file header"));
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "newer-tool", "*"));
    CHECK(s->Latest(cancel).dump_tool_major == 16);
    Error e = FailedRestore(*s, *sandbox, "t_tool");
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::StartsWith("dump made by pg_dump 16 needs PostgreSQL 16 binaries; "
                                           "have 15 in " +
                                           test::Tools().bin_dir));
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "newer-server", "*"));
    BackupInfo b = s->Latest(cancel);
    CHECK(b.server_major == 16);
    auto fresh = MakeEphemeralSandbox(env, Target("", "*"), "run-16", "");
    try {
      fresh->Start(b.server_major, cancel);
      FAIL("a PostgreSQL 15 sandbox started for a PostgreSQL 16 dump");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUnsupported);
      CHECK_THAT(e.what(), Catch::Contains("PostgreSQL 16") && Catch::Contains("PostgreSQL 15"));
    }
    Error e = FailedRestore(*s, *sandbox, "t_server");
    CHECK(e.kind() == ErrorKind::kUnsupported);
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "syntax", "*"));
    Error e = FailedRestore(*s, *sandbox, "t_syntax");
    CHECK(e.kind() == ErrorKind::kBadInput);
    CHECK_THAT(e.what(), Catch::StartsWith("psql failed on " + dir / "syntax/blog.sql: psql:" +
                                           dir / "syntax/blog.sql:"));
    CHECK_THAT(e.what(), Catch::Contains("ERROR:  syntax error at or near"));
  }
  {
    auto s = MakePgDumpSource(env, Target(dir / "allowed", "*"));
    Error e = FailedRestore(*s, *sandbox, "t_not_allowed");
    CHECK_THAT(e.what(), Catch::Contains("function no_such_function() does not exist"));
    BackupInfo b = s->Latest(cancel);
    RestoreOptions o;
    o.database = "t_allowed";
    o.allow_errors = {"no_such_function"};
    RestoreOutcome out = s->Restore(b, *sandbox, o, cancel);
    REQUIRE(out.accepted_errors.size() == 1);
    CHECK_THAT(out.accepted_errors[0], Catch::Contains("no_such_function"));
  }

  {
    auto s = MakePgDumpSource(env, Target(dir / "gz", "*"));
    Error e = FailedRestore(*s, *sandbox, "t_gz");
    CHECK(e.kind() == ErrorKind::kBadInput);
    CHECK_THAT(e.what(),
               Catch::StartsWith("psql failed on " + dir / "gz/blog.sql.gz: ") &&
                   Catch::Contains("gzip: " + dir / "gz/blog.sql.gz: unexpected end of file"));
  }
  {
    // pg_dump --create: the script makes its own database (ours alone in an ephemeral sandbox).
    auto s = MakePgDumpSource(env, Target(dir / "create", "*"));
    BackupInfo b = s->Latest(cancel);
    CHECK(b.database == "blog");
    RestoreOptions o;
    o.database = "t_create";
    RestoreOutcome out = s->Restore(b, *sandbox, o, cancel);
    CHECK(out.database == "blog");
    auto c = ConnectSandbox(sandbox->ConnInfo("blog"));
    pqxx::nontransaction tx(*c);
    CHECK(tx.exec1("select count(*) from small")[0].as<int>() == 3);
  }

  CHECK(sandbox->Cleanup().empty());
  CHECK(test::ListDir(work.path()).empty());
}
