#include "agent/model.h"

namespace rw {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kWarn:
      return "warn";
    case Outcome::kFail:
      return "fail";
    case Outcome::kSkipped:
      return "skipped";
    case Outcome::kError:
      return "error";
  }
  return "error";
}

std::optional<Outcome> ParseOutcome(const std::string& s) {
  for (Outcome o :
       {Outcome::kPass, Outcome::kWarn, Outcome::kFail, Outcome::kSkipped, Outcome::kError})
    if (s == OutcomeName(o)) return o;
  return std::nullopt;
}

static int Rank(Outcome o) {
  switch (o) {
    case Outcome::kPass:
    case Outcome::kSkipped:
      return 0;
    case Outcome::kWarn:
      return 1;
    case Outcome::kFail:
      return 2;
    case Outcome::kError:
      return 3;
  }
  return 3;
}

Outcome Worse(Outcome a, Outcome b) { return Rank(b) > Rank(a) ? b : a; }

const char* DrillResultName(DrillResult r) {
  switch (r) {
    case DrillResult::kSuccess:
      return "success";
    case DrillResult::kFailure:
      return "failure";
    case DrillResult::kError:
      return "error";
  }
  return "error";
}

}  // namespace rw
