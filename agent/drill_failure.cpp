#include "agent/drill_failure.h"

namespace rw {

namespace {

bool Contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

bool Bad(Outcome o) { return o == Outcome::kFail || o == Outcome::kError; }

}  // namespace

std::optional<DrillFailure> ClassifyDrillFailure(const DrillReport& r) {
  if (r.result == DrillResult::kSuccess) return std::nullopt;
  DrillFailure f{"unknown", "environment"};
  const StageResult* bad = nullptr;
  for (const auto& s : r.stages)
    if (s.name != "total" && Bad(s.outcome)) {
      bad = &s;
      break;
    }
  if (bad != nullptr) f.stage = bad->name;
  // The bounds and shutdown first: the runner names them in the reason whatever the cut-short
  // stage reported (drill_runner.cpp: timeout_reason, "drill cancelled"; drill_history.cpp:
  // "interrupted: ...").
  if (Contains(r.reason, "timed out after")) {
    f.kind = "timeout";
    if (bad == nullptr) {
      const auto during = r.reason.rfind(" during ");
      if (during != std::string::npos) f.stage = r.reason.substr(during + 8);
    }
    return f;
  }
  if (r.reason == "drill cancelled" || r.reason.rfind("interrupted:", 0) == 0) {
    f.kind = "cancelled";
    return f;
  }
  if (bad == nullptr) return f;  // not a stage's doing: environment
  const bool finding = bad->outcome == Outcome::kFail;
  if (bad->name == "discover") {
    f.kind = !finding ? "environment" : r.backup ? "backup_unusable" : "no_backup";
  } else if (bad->name == "fetch" || bad->name == "restore") {
    f.kind = finding ? "backup_unusable" : "restore_failed";
  } else if (bad->name == "recovery") {
    f.kind = "recovery_failed";
  } else if (bad->name == "checks") {
    bool failed = false;
    for (const auto& c : r.checks) failed = failed || c.outcome == Outcome::kFail;
    f.kind = failed ? "check_failed" : "unverified";
  }
  return f;
}

}  // namespace rw
