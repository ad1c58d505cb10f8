#include "agent/sandbox.h"

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

std::unique_ptr<Sandbox> MakeSandbox(const Environment& env, const TargetConfig& target,
                                     const std::string& run_id,
                                     const std::string& source_system_id) {
  for (const auto& s : kSandboxes)
    if (s.kind == target.drill.sandbox) return s.make(env, target, run_id, source_system_id);
  return MakeEphemeralSandbox(env, target, run_id, source_system_id);
}

}  // namespace rw
