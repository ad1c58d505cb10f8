#include "checks/drill/data_checksums_check.h"

#include <sstream>

#include "agent/errors.h"
#include "agent/pg/pg_conn.h"

namespace rw {
namespace {

// The value after "<label>:" on a line of pg_checksums' summary, or "".
std::string SummaryValue(const std::string& out, const std::string& label) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(label + ":", 0) != 0) continue;
    std::string v = line.substr(label.size() + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    return v;
  }
  return "";
}

}  // namespace

CheckResult DataChecksumsVerdict(int exit_code, const std::string& out, const std::string& err,
                                 const std::string& data_dir) {
  CheckResult res;
  res.name = "data_checksums";
  // Its failures: `pg_checksums: error: checksum verification failed in file "<path>", block N:
  // calculated checksum X but block contains Y`.
  std::vector<std::string> bad;
  std::istringstream in(err + "\n" + out);
  for (std::string line; std::getline(in, line);) {
    const auto p = line.find("checksum verification failed in file");
    if (p == std::string::npos) continue;
    std::string what = line.substr(p);
    const std::string prefix = "\"" + data_dir + "/";
    if (auto q = what.find(prefix); !data_dir.empty() && q != std::string::npos)
      what.replace(q, prefix.size(), "\"");
    bad.push_back(what);
  }
  const std::string files = SummaryValue(out, "Files scanned");
  const std::string blocks = SummaryValue(out, "Blocks scanned");
  const std::string scanned =
      files.empty() ? std::string() : files + " files, " + blocks + " blocks scanned";
  if (!bad.empty()) {
    std::string count = SummaryValue(out, "Bad checksums");
    if (count.empty()) count = std::to_string(bad.size());
    res.outcome = Outcome::kFail;
    res.message = "pg_checksums: " + count + " bad block(s), first: " + bad.front() +
                  (scanned.empty() ? "" : " (" + scanned + ")");
    for (const auto& b : bad) {
      TableFinding f;
      f.table = b.substr(b.find('"') + 1, b.find('"', b.find('"') + 1) - b.find('"') - 1);
      f.outcome = Outcome::kFail;
      f.message = b;
      res.details.push_back(std::move(f));
      if (res.details.size() >= 50) break;
    }
  } else if (exit_code == 0 && !scanned.empty()) {
    res.outcome = Outcome::kPass;
    res.message = "pg_checksums --check: no bad block (" + scanned + ")";
  } else {
    res.outcome = Outcome::kError;
    ProcessResult r;
    r.exit_code = exit_code;
    r.err = err.empty() ? out : err;
    res.message = "pg_checksums --check could not verify the copy: " + r.Summary();
  }
  return res;
}

CheckResult CheckDataChecksums(SandboxHost& host, const std::string& restored_conninfo,
                               const std::optional<RunAs>& run_as, Duration timeout,
                               CancelToken& cancel) {
  std::string enabled;
  WithPgErrors("cannot ask the restored copy whether it has data checksums", [&] {
    auto c = ConnectSandbox(restored_conninfo);
    enabled = pqxx::nontransaction(*c).exec1("show data_checksums")[0].as<std::string>();
  });
  if (enabled != "on") {
    CheckResult res;
    res.name = "data_checksums";
    res.outcome = Outcome::kSkipped;
    res.message = "the cluster has no data checksums (data_checksums = " + enabled +
                  "; initdb --data-checksums or pg_checksums --enable adds them)";
    return res;
  }
  cancel.ThrowIfCancelled();
  const StoppedDataDir stopped = host.StopDataDirectory();
  ProcessSpec spec;
  spec.argv = {stopped.tools.Path("pg_checksums"), "--check", "-D", stopped.data_dir};
  spec.run_as = run_as;
  spec.timeout = timeout;
  ProcessResult r = RunProcess(spec, &cancel);
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "pg_checksums cancelled");
  if (r.timed_out)
    throw Error(ErrorKind::kTimeout, "pg_checksums --check did not end within the drill's timeout");
  if (r.term_signal != 0) throw Error(ErrorKind::kProcess, "pg_checksums --check: " + r.Summary());
  return DataChecksumsVerdict(r.exit_code, r.out, r.err, stopped.data_dir);
}

}  // namespace rw
