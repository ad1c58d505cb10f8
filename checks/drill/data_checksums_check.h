#pragma once
// data_checksums: for a physical copy whose cluster has data checksums (`show data_checksums`),
// after the other checks: a clean shutdown of the copy (SandboxHost::StopDataDirectory), then
// `pg_checksums --check -D <data dir>` of the copy's own major version, as the server's user.
// Every block of every relation file is read once (about the cost of the copy itself).
// pass with the files and blocks scanned; fail naming the file and block pg_checksums reports
// (and how many blocks are bad); skipped when the cluster has no data checksums; error when the
// copy cannot be asked, shut down or read (pg_checksums' own line quoted). Not in the table of
// checks/registry.cpp: the drill runner runs it for physical copies only, last, since it stops the
// copy. Threads: the drill thread.
#include <optional>
#include <string>

#include "agent/cancel.h"
#include "agent/model.h"
#include "agent/pg/process.h"
#include "agent/sandbox.h"

namespace rw {

CheckResult CheckDataChecksums(SandboxHost& host, const std::string& restored_conninfo,
                               const std::optional<RunAs>& run_as, Duration timeout,
                               CancelToken& cancel);

// The one-line verdict from pg_checksums' output (stdout and stderr) for a run that ended with
// `exit_code`; `data_dir` is cut from the file paths it names. Pure; exposed for unit tests.
CheckResult DataChecksumsVerdict(int exit_code, const std::string& out, const std::string& err,
                                 const std::string& data_dir);

}  // namespace rw
