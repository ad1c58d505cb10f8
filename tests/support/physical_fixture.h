#pragma once
// Test harness for physical drills (base backups plus a WAL archive), shared by the physical
// integration tests: a primary archiving WAL with `cp`, pg_basebackup, a pgbench workload, WAL
// switches waited for until archived, and the agent config of a `type = "basebackup"` target.
// Every wait is bounded; everything lives in the caller's TestDir.
#include <memory>
#include <string>
#include <vector>

#include "agent/pg/pg_cluster.h"
#include "tests/support/pg_fixture.h"

namespace rw::test {

// Strips trailing newlines and spaces (psql output).
std::string Trim(std::string s);

// A primary archiving its WAL into `archive` (created, owned by the server user). The extra
// settings are appended.
std::unique_ptr<LocalCluster> StartArchivingPrimary(
    const TestDir& dir, const std::string& archive,
    const std::vector<std::pair<std::string, std::string>>& extra = {});

// pg_basebackup of `c` into `out` (as the server user), with `extra` arguments (-Fp, -Ft, -X
// none, ...); REQUIREs success.
void BaseBackup(const LocalCluster& c, const std::string& out,
                const std::vector<std::string>& extra);

// pg_switch_wal() and waits (30 s) until the finished segment is archived whole; returns its name.
std::string SwitchAndWait(const LocalCluster& c, const std::string& archive);

// pgbench against `dbname` of `c` (as the current user, over the unix socket), e.g. {"-i", "-s",
// "1"} or {"-t", "200", "-c", "2"}; REQUIREs success.
void Pgbench(const LocalCluster& c, const std::string& dbname,
             const std::vector<std::string>& args);

// Enables data checksums on `c` (stop, pg_checksums --enable, start).
void EnableDataChecksums(LocalCluster& c);

// The agent config of one `type = "basebackup"` target named "phys": state and work dirs in
// `dir`, drill.recovery_target = `target`, drill.timeout = `timeout`; `checks` is appended to
// [target.checks] (e.g. "amcheck = true\n").
std::string PhysicalConfig(const TestDir& dir, const std::string& source,
                           const std::string& backups, const std::string& archive,
                           const std::string& target, const std::string& timeout = "5m",
                           const std::string& checks = "");

}  // namespace rw::test
