// pg_dump discovery without a server: formats by their first bytes, header parsing, temp names,
// files still being written, the newest pick, and the roles and errors found in tool output.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "agent/errors.h"
#include "agent/sources/pg_dump_discovery.h"
#include "agent/sources/pg_dump_source.h"
#include "agent/sources/pg_dump_text.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace rw::pgdump;

namespace {

using test::WriteFile;

// A plain dump head as pg_dump 15 writes it (with --verbose when started is given).
std::string PlainDump(const std::string& started = "") {
  std::string s =
      "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n"
      "-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)\n"
      "-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)\n\n";
  if (!started.empty()) s += "-- Started on " + started + "\n\n";
  return s + "SET statement_timeout = 0;\nCREATE TABLE public.t (i integer);\n";
}

// Sets a file's mtime to now + offset seconds.
void Touch(const std::string& path, double offset) {
  timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec += static_cast<time_t>(offset);
  ts[1] = ts[0];
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

struct Source {
  Environment env;
  TargetConfig target;
  std::unique_ptr<BackupSource> source;
  Source(const std::vector<std::string>& dirs, const std::string& pattern,
         Duration settle = std::chrono::milliseconds(300)) {
    env.pg = test::Tools();
    env.run_as = test::ServerUser();
    env.work_dir = dirs.empty() ? "/tmp" : dirs[0];
    target.name = "blog";
    target.backup.paths = dirs;
    target.backup.pattern = pattern;
    target.backup.settle = settle;
    source = MakePgDumpSource(env, target);
  }
};

}  // namespace

TEST_CASE("pg_dump formats are told apart by their first bytes", "[unit][pg_dump]") {
  CHECK(SniffBytes("PGDMP\x01\x0e\x00").format == DumpFormat::kCustom);
  std::string tar(512, '\0');
  tar.replace(0, 7, "toc.dat");
  tar.replace(257, 5, "ustar");
  CHECK(SniffBytes(tar).format == DumpFormat::kTar);
  std::string other_tar = tar;
  other_tar.replace(0, 7, "foo.txt");
  CHECK(SniffBytes(other_tar).format == DumpFormat::kUnknown);
  CHECK(SniffBytes("\x1f\x8b\x08\x00").format == DumpFormat::kPlainGzip);
  CHECK(SniffBytes("\x28\xb5\x2f\xfd\x00").format == DumpFormat::kPlainZstd);
  CHECK(SniffBytes("\x04\x22\x4d\x18\x00").format == DumpFormat::kPlainLz4);
  CHECK(SniffBytes(PlainDump()).format == DumpFormat::kPlain);
  CHECK(SniffBytes("--\n-- PostgreSQL database cluster dump\n--\n").problem.find("pg_dumpall") !=
        std::string::npos);
  CHECK(SniffBytes("").problem == "empty file");
  CHECK(SniffBytes("select 1;\n").format == DumpFormat::kUnknown);
  CHECK(SniffBytes(std::string("\x00\x01\x02garbage", 10)).format == DumpFormat::kUnknown);
  CHECK(std::string(FormatName(DumpFormat::kPlainGzip)) == "plain.gz");
  CHECK(Decompressor(DumpFormat::kPlainZstd) == "zstd");
  CHECK(IsArchive(DumpFormat::kTar));
  CHECK_FALSE(IsArchive(DumpFormat::kPlainGzip));

  test::TestDir dir;
  REQUIRE(mkdir((dir / "d.dir").c_str(), 0755) == 0);
  CHECK(SniffPath(dir / "d.dir").format == DumpFormat::kUnknown);
  WriteFile(dir / "d.dir/toc.dat", "PGDMP");
  CHECK(SniffPath(dir / "d.dir").format == DumpFormat::kDirectory);
}

TEST_CASE("dump headers give time, database and versions", "[unit][pg_dump]") {
  const std::string listing =
      ";\n; Archive created at 2026-11-25 03:29:45 UTC\n;     dbname: blog\n"
      ";     TOC Entries: 10\n;     Format: CUSTOM\n"
      ";     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)\n"
      ";     Dumped by pg_dump version: 16.4 (Debian 16.4-1)\n;\n;\n; Selected TOC Entries:\n;\n"
      "214; 1259 16387 TABLE public t owner1\n";
  DumpHeader h = ParseArchiveList(listing);
  REQUIRE(h.started_at);
  CHECK(*h.started_at == Approx(*ParseTimestamp("2026-11-25T03:29:45Z")));
  CHECK(h.database == "blog");
  CHECK(h.server_major == 15);
  CHECK(h.dump_tool_major == 16);

  DumpHeader p = ParsePlainHeader(PlainDump("2026-11-25 03:29:52 UTC"));
  REQUIRE(p.started_at);
  CHECK(*p.started_at == Approx(*ParseTimestamp("2026-11-25T03:29:52Z")));
  CHECK(p.server_major == 15);
  CHECK(p.dump_tool_major == 15);
  CHECK_FALSE(p.creates_database);
  CHECK_FALSE(ParsePlainHeader(PlainDump()).started_at);

  DumpHeader c = ParsePlainHeader(
      "--\n-- PostgreSQL database dump\n--\n\nSET x = 0;\n"
      "CREATE DATABASE \"My \"\"Blog\" WITH TEMPLATE = template0 ENCODING = 'UTF8';\n"
      "\\connect -reuse-previous=on \"dbname='My \"\"Blog'\"\n");
  CHECK(c.creates_database);
  CHECK(c.database == "My \"Blog");

  CHECK(MajorOf("15.18 (Debian 15.18-0+deb12u1)") == 15);
  CHECK(MajorOf("9.6.24") == 9);
  CHECK(MajorOf("17beta1") == 17);
  CHECK(MajorOf("") == 0);
  CHECK(ParseDumpTime("2026-11-25 03:29:45 +02") ==
        Approx(*ParseTimestamp("2026-11-25T01:29:45Z")));
  CHECK_FALSE(ParseDumpTime("yesterday"));
}

TEST_CASE("temporary names are in flight", "[unit][pg_dump]") {
  for (const char* n :
       {"blog.dump.tmp", "blog.dump.part", "blog.partial", "x.inprogress", ".blog.dump", "."})
    CHECK(IsInFlightName(n));
  for (const char* n : {"blog.dump", "blog-2026-11-25.sql.gz", "blog.tmpl", "part.dump"})
    CHECK_FALSE(IsInFlightName(n));
}

TEST_CASE("the newest backup is the one that started last", "[unit][pg_dump]") {
  std::vector<BackupInfo> v(3);
  v[0].path = "a";
  v[0].started_at = 100;
  v[0].completed_at = 500;
  v[1].path = "b";
  v[1].started_at = 200;
  v[1].completed_at = 300;
  v[2].path = "c";
  v[2].started_at = 200;
  v[2].completed_at = 250;
  CHECK(SelectNewest(v)->path == "b");
  v[2].completed_at = 300;
  CHECK(SelectNewest(v)->path == "c");  // full tie: by path, so the pick is stable
  CHECK(SelectNewest({}) == nullptr);
}

TEST_CASE("roles named by a plain dump are found outside COPY data", "[unit][pg_dump]") {
  RoleScanner s;
  for (const char* line : {
           "ALTER TABLE public.t OWNER TO owner1;",
           "ALTER SCHEMA \"Shop\" OWNER TO \"Mixed Case\";",
           "GRANT SELECT,INSERT ON TABLE public.t TO reader, \"writer\" WITH GRANT OPTION;",
           "GRANT SELECT(a) ON TABLE public.t TO PUBLIC;",
           "REVOKE ALL ON SCHEMA public FROM old_owner;",
           "ALTER DEFAULT PRIVILEGES FOR ROLE definer IN SCHEMA public GRANT SELECT ON TABLES TO "
           "viewer;",
           "CREATE POLICY p ON public.t TO policy_role USING ((a > 1));",
           "SET SESSION AUTHORIZATION 'session_role';",
           "COPY public.t (a, b) FROM stdin;",
           "ALTER TABLE x OWNER TO in_copy_data;",
           "\\.",
           "GRANT ALL ON FUNCTION public.f() TO CURRENT_USER;",
           "CREATE TABLE public.grant (i int);",
       })
    s.Line(line);
  std::set<std::string> want = {"owner1",  "Mixed Case", "reader",      "writer",      "old_owner",
                                "definer", "viewer",     "policy_role", "session_role"};
  CHECK(s.roles() == want);
}

TEST_CASE("restore tool errors are read from their own output", "[unit][pg_dump]") {
  int ignored = 0;
  auto errs = ParsePgRestoreErrors(
      "pg_restore: error: could not execute query: ERROR:  role \"owner1\" does not exist\n"
      "Command was: ALTER TABLE public.t OWNER TO owner1;\n\n"
      "pg_restore: error: could not execute query: ERROR:  extension \"x\" is not available\n"
      "pg_restore: warning: errors ignored on restore: 2\n",
      &ignored);
  REQUIRE(errs.size() == 2);
  CHECK(ignored == 2);
  CHECK(errs[0].line ==
        "pg_restore: error: could not execute query: ERROR:  role \"owner1\" does not exist");
  CHECK(errs[0].context.find("Command was: ALTER TABLE") != std::string::npos);
  CHECK(Allowed(errs[0], {"ALTER TABLE public.t OWNER"}));
  CHECK_FALSE(Allowed(errs[1], {"ALTER TABLE public.t OWNER", ""}));
  CHECK(
      JoinFirst(errs, 3).find(" | pg_restore: error: could not execute query: ERROR:  extension") !=
      std::string::npos);

  ParsePgRestoreErrors("pg_restore: error: could not read from input file: end of file\n",
                       &ignored);
  CHECK(ignored == -1);

  auto perrs = ParsePsqlErrors(
      "psql:/b/x.sql:40: NOTICE:  table \"t\" does not exist, skipping\n"
      "psql:/b/x.sql:41: ERROR:  syntax error at or near \"SELEC\"\nLINE 1: SELEC 1;\n        ^\n"
      "gzip: /b/x.sql.gz: unexpected end of file\n"
      "psql:/b/x.sql:99: error: backslash commands are restricted; only \\unrestrict is allowed\n");
  REQUIRE(perrs.size() == 3);
  CHECK(perrs[2].line.find("backslash commands are restricted") != std::string::npos);
  CHECK(perrs[0].line == "psql:/b/x.sql:41: ERROR:  syntax error at or near \"SELEC\"");
  CHECK(perrs[0].context.find("LINE 1") != std::string::npos);
  CHECK(perrs[1].line.find("gzip:") == 0);
}

TEST_CASE("discovery finds the newest complete dump and says what it skipped", "[unit][pg_dump]") {
  test::TestDir dir;
  CancelToken cancel;
  // Header time decides, not the name nor the mtime.
  WriteFile(dir / "blog-b.sql", PlainDump("2026-01-01 00:00:00 UTC"));
  WriteFile(dir / "blog-a.sql", PlainDump("2026-01-02 00:00:00 UTC"));
  Touch(dir / "blog-b.sql", -10);
  Touch(dir / "blog-a.sql", -20);
  WriteFile(dir / "blog-z.sql.part", PlainDump("2026-01-03 00:00:00 UTC"));
  WriteFile(dir / ".blog-y.sql", PlainDump("2026-01-03 00:00:00 UTC"));
  WriteFile(dir / "notes.txt", "not a dump");
  REQUIRE(symlink("blog-a.sql", (dir / "blog-latest.sql").c_str()) == 0);  // counted once
  REQUIRE(mkdir((dir / "blog-c.sql").c_str(), 0755) == 0);  // a directory without toc.dat

  Source s({dir.path()}, "*blog-*");
  BackupInfo b = s.source->Latest(cancel);
  CHECK(b.id == "blog-a.sql");
  CHECK(b.format == "plain");
  CHECK(b.kind == "logical");
  CHECK(b.tool == "pg_dump");
  CHECK(b.started_exact);
  CHECK(b.started_at == Approx(*ParseTimestamp("2026-01-02T00:00:00Z")));
  CHECK(b.completed_at < NowUnix() - 15);
  CHECK(b.server_major == 15);
  CHECK(b.size_bytes == PlainDump("x").size() + 23 - 1);

  BackupCatalogue c = s.source->Catalogue(cancel);
  REQUIRE(c.by_kind.count("logical"));
  CHECK(c.by_kind["logical"].count == 2);
  REQUIRE(c.by_kind["logical"].newest);
  CHECK(c.by_kind["logical"].newest->id == "blog-a.sql");
  std::string notes;
  for (auto& n : c.notes) notes += n + "\n";
  CHECK(notes.find("blog-z.sql.part: skipped, a temporary name") != std::string::npos);
  CHECK(notes.find(".blog-y.sql: skipped") != std::string::npos);
  CHECK(notes.find("blog-c.sql: skipped, a directory without toc.dat") != std::string::npos);
  CHECK(notes.find("notes.txt") == std::string::npos);  // not matching the pattern: not looked at

  // Without a header time: the file's own time; a garbage file matching the pattern is still a
  // backup (so the drill fails on it rather than silently verifying an older one).
  WriteFile(dir / "blog-d.dump", "PGDMP garbage");
  BackupInfo g = s.source->Latest(cancel);
  CHECK(g.id == "blog-d.dump");
  CHECK(g.format == "custom");
  CHECK_FALSE(g.started_exact);
  c = s.source->Catalogue(cancel);
  notes.clear();
  for (auto& n : c.notes) notes += n + "\n";
  CHECK(notes.find("pg_restore cannot read " + dir / "blog-d.dump") != std::string::npos);
}

TEST_CASE("a dump still being written is never the latest", "[unit][pg_dump]") {
  test::TestDir dir;
  CancelToken cancel;
  WriteFile(dir / "blog-1.sql", PlainDump("2026-01-01 00:00:00 UTC"));
  WriteFile(dir / "blog-2.sql", PlainDump("2026-01-02 00:00:00 UTC"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::ofstream out(dir / "blog-2.sql", std::ios::app);
    while (!stop) {
      out << "INSERT INTO t VALUES (1);\n" << std::flush;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Source s({dir.path()}, "*.sql");
  BackupInfo b;
  try {
    b = s.source->Latest(cancel);
  } catch (...) {
    stop = true;
    writer.join();
    throw;
  }
  BackupCatalogue c = s.source->Catalogue(cancel);
  stop = true;
  writer.join();
  CHECK(b.id == "blog-1.sql");
  CHECK(c.by_kind["logical"].count == 1);
  REQUIRE(c.notes.size() == 1);
  CHECK(c.notes[0].find("blog-2.sql: skipped, still being written (size changed") !=
        std::string::npos);
  // Once the writer is done and the file has settled, it wins.
  CHECK(s.source->Latest(cancel).id == "blog-2.sql");
}

TEST_CASE("no match, a missing dir and the globals file", "[unit][pg_dump]") {
  test::TestDir dir;
  CancelToken cancel;
  Source empty({dir.path()}, "*.dump");
  try {
    empty.source->Latest(cancel);
    FAIL("found a backup in an empty dir");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kBadInput);
    CHECK(std::string(e.what()) == "no backup matches '*.dump' in " + dir.path());
  }
  BackupCatalogue c = empty.source->Catalogue(cancel);
  CHECK(c.by_kind["logical"].count == 0);
  CHECK_FALSE(c.by_kind["logical"].newest);

  WriteFile(dir / ".blog.dump", "PGDMP");
  try {
    empty.source->Latest(cancel);
    FAIL("picked a temp file");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("no backup matches") == 0);
    CHECK(std::string(e.what()).find(".blog.dump: skipped") != std::string::npos);
  }

  Source missing({dir / "nope"}, "*");
  try {
    missing.source->Catalogue(cancel);
    FAIL("read a missing dir");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kIo);
    CHECK(std::string(e.what()).find("cannot read backup dir " + dir / "nope") == 0);
  }

  WriteFile(dir / "blog.sql", PlainDump());
  WriteFile(dir / "globals-1.sql", "--\n-- PostgreSQL database cluster dump\n--\n");
  WriteFile(dir / "globals-2.sql", "--\n-- PostgreSQL database cluster dump\n--\n");
  Touch(dir / "globals-1.sql", -100);
  Touch(dir / "globals-2.sql", -50);
  Source g({dir.path()}, "*.sql");
  g.target.backup.globals_pattern = "globals-*.sql";
  g.source = MakePgDumpSource(g.env, g.target);
  BackupInfo b = g.source->Latest(cancel);
  CHECK(b.id == "blog.sql");
  CHECK(b.globals_path == dir / "globals-2.sql");
}

TEST_CASE("a compressed dump without its decompressor is reported, not guessed at",
          "[unit][pg_dump]") {
  test::TestDir dir;
  CancelToken cancel;
  WriteFile(dir / "blog.sql.zst", std::string("\x28\xb5\x2f\xfd", 4) + "frame");
  Source s({dir.path()}, "*");
  const char* old_path = getenv("PATH");
  std::string saved = old_path ? old_path : "";
  setenv("PATH", dir.path().c_str(), 1);  // no zstd in there
  BackupCatalogue c;
  BackupInfo b;
  try {
    c = s.source->Catalogue(cancel);
    b = s.source->Latest(cancel);
  } catch (...) {
    setenv("PATH", saved.c_str(), 1);
    throw;
  }
  setenv("PATH", saved.c_str(), 1);
  CHECK(b.format == "plain.zst");
  REQUIRE(c.notes.size() == 1);
  CHECK(c.notes[0] == dir / "blog.sql.zst is zstd-compressed but zstd is not installed");
}
