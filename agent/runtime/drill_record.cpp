#include "agent/runtime/drill_record.h"

#include "agent/drill_log.h"
#include "agent/errors.h"
#include "agent/ledger.h"
#include "agent/log.h"

namespace rw {

DrillRecorder::DrillRecorder(const std::string& dir) : dir_(dir), history_(dir) {}

void DrillRecorder::Begin(double started_at) { history_.BeginDrill(started_at); }

DrillHistorySummary DrillRecorder::Finish(const DrillReport& report) {
  DrillLog(dir_).Append(report);  // the per-drill history (never throws)
  try {
    VerificationLedger(dir_).Record(report);  // which backups are verified (drill.pick)
  } catch (const std::exception& e) {
    LogError("cannot record the drill in the verification ledger",
             {{"target", report.target}, {"error", e.what()}});
  }
  try {
    history_.Record(report);
  } catch (const std::exception& e) {
    LogError("cannot record drill", {{"target", report.target}, {"error", e.what()}});
  }
  DrillHistorySummary h;
  try {
    h = history_.Load();
  } catch (const std::exception& e) {
    LogError("cannot read the drill history", {{"target", report.target}, {"error", e.what()}});
  }
  for (const auto& l : listeners_) {
    try {
      l(report, h);
    } catch (const std::exception& e) {
      LogError("a drill listener failed", {{"target", report.target}, {"error", e.what()}});
    }
  }
  return h;
}

}  // namespace rw
