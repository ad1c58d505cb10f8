#include "agent/sandbox.h"

#include "agent/errors.h"
#include "agent/sandboxes/ephemeral.h"
#include "agent/sandboxes/scratch.h"

namespace rw {
namespace {

using Factory = std::unique_ptr<Sandbox> (*)(const Environment&, const TargetConfig&,
                                             const std::string&, const std::string&);
struct SandboxEntry {
  SandboxKind kind;
  Factory make;
};

// The one table of sandboxes, selected by [target.drill] sandbox = "...".
const SandboxEntry kSandboxes[] = {
    {SandboxKind::kEphemeral, &MakeEphemeralSandbox},
    {SandboxKind::kScratch, &MakeScratchSandbox},
};

}  // namespace

std::string SandboxHost::NewDataDirectory(CancelToken& cancel) {
  (void)cancel;
  throw Error(ErrorKind::kUnsupported,
              "the " + kind() + " sandbox cannot start PostgreSQL from backup files",
              "use sandbox = \"ephemeral\"");
}

void SandboxHost::StartDataDirectory(const std::string& data_dir, const DataDirStart& how,
                                     CancelToken& cancel) {
  (void)data_dir;
  (void)how;
  (void)cancel;
  throw Error(ErrorKind::kUnsupported,
              "the " + kind() + " sandbox cannot start PostgreSQL from backup files",
              "use sandbox = \"ephemeral\"");
}

StoppedDataDir SandboxHost::StopDataDirectory() {
  throw Error(ErrorKind::kUnsupported,
              "the " + kind() + " sandbox cannot stop a data directory for offline checks",
              "use sandbox = \"ephemeral\"");
}

void RequireCapabilities(const SandboxHost& host, const SandboxCapabilities& needed,
                         const std::string& who) {
  const SandboxCapabilities have = host.capabilities();
  std::string missing;
  auto need = [&](bool wanted, bool has, const char* what) {
    if (wanted && !has) missing += std::string(missing.empty() ? "" : " and ") + what;
  };
  need(needed.can_create_cluster, have.can_create_cluster, "can create a database cluster");
  need(needed.can_start_from_files, have.can_start_from_files,
       "can start PostgreSQL from backup files");
  need(needed.exclusive_server, have.exclusive_server, "is the agent's own server");
  need(needed.uses_work_dir, have.uses_work_dir, "keeps its data in work_dir");
  if (missing.empty()) return;
  throw Error(ErrorKind::kUnsupported,
              who + " needs a sandbox that " + missing + "; the " + host.kind() + " sandbox cannot",
              "use sandbox = \"ephemeral\"");
}

std::unique_ptr<Sandbox> MakeSandbox(const Environment& env, const TargetConfig& target,
                                     const std::string& run_id,
                                     const std::string& source_system_id) {
  for (const auto& s : kSandboxes)
    if (s.kind == target.drill.sandbox) return s.make(env, target, run_id, source_system_id);
  return MakeEphemeralSandbox(env, target, run_id, source_system_id);
}

}  // namespace rw
