#include "tests/support/physical_fixture.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "agent/pg/process.h"
#include "agent/wal_archive.h"

namespace rw::test {

using namespace std::chrono_literals;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::unique_ptr<LocalCluster> StartArchivingPrimary(
    const TestDir& dir, const std::string& archive,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  MakeDirs(archive, 0700, ServerUser());
  ClusterSpec ps;
  ps.settings = {{"wal_level", "'replica'"},
                 {"archive_mode", "'on'"},
                 {"archive_command", "'test ! -f " + archive + "/%f && cp %p " + archive + "/%f'"},
                 {"max_wal_senders", "10"}};
  ps.settings.insert(ps.settings.end(), extra.begin(), extra.end());
  return StartCluster(dir, ps);
}

void BaseBackup(const LocalCluster& c, const std::string& out,
                const std::vector<std::string>& extra) {
  ProcessSpec spec;
  spec.argv = {Tools().Path("pg_basebackup"),
               "-h",
               c.socket_dir(),
               "-p",
               std::to_string(c.port()),
               "-U",
               "postgres",
               "-D",
               out,
               "-c",
               "fast"};
  spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
  spec.run_as = ServerUser();
  spec.timeout = 3min;
  ProcessResult r = RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.ok());
}

std::string SwitchAndWait(const LocalCluster& c, const std::string& archive) {
  std::string seg = Trim(c.Psql("select pg_walfile_name(pg_switch_wal())"));
  REQUIRE(seg.size() == 24);
  REQUIRE(Eventually(
      [&] {
        struct stat st {};
        return ::stat((archive + "/" + seg).c_str(), &st) == 0 &&
               st.st_size == static_cast<off_t>(wal::kDefaultSegmentSize);
      },
      30));
  return seg;
}

void Pgbench(const LocalCluster& c, const std::string& dbname,
             const std::vector<std::string>& args) {
  std::vector<std::string> a = {"-h", c.socket_dir(), "-p", std::to_string(c.port()),
                                "-U", "postgres"};
  a.insert(a.end(), args.begin(), args.end());
  a.push_back(dbname);
  ProcessResult r = RunPgTool("pgbench", a, 3min);
  INFO("pgbench " << r.Summary() << "\n" << r.err);
  REQUIRE(r.ok());
}

void EnableDataChecksums(LocalCluster& c) {
  c.Stop();
  ProcessSpec spec;
  spec.argv = {Tools().Path("pg_checksums"), "--enable", "-D", c.data_dir()};
  spec.run_as = ServerUser();
  spec.timeout = 3min;
  ProcessResult r = RunProcess(spec);
  INFO(r.Summary() << "\n" << r.out << r.err);
  REQUIRE(r.ok());
  c.Start();
}

std::string PhysicalConfig(const TestDir& dir, const std::string& source,
                           const std::string& backups, const std::string& archive,
                           const std::string& target, const std::string& timeout,
                           const std::string& checks) {
  return "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + (dir / "state") +
         "\"\nwork_dir = \"" + (dir / "work") + "\"\n\n[[target]]\nname = \"phys\"\nsource = \"" +
         source + "\"\n\n[target.backup]\ntype = \"basebackup\"\npath = \"" + backups +
         "\"\nwal_archive = \"" + archive + "\"\n\n[target.drill]\nrecovery_target = \"" + target +
         "\"\ntimeout = \"" + timeout + "\"\n\n[target.checks]\nstats_settle = \"1s\"\n" + checks;
}

}  // namespace rw::test
