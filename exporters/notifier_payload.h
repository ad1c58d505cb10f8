#pragma once
// What a notification says, and how each receiver type wants it said: pure functions from a
// Notification to the HTTP request body (exporters/notifier.h sends them). Thread-safe.
//
// The webhook body (type = "webhook"), one JSON object per notification:
//   {"version": "1", "source": "restorewatch", "status": "firing" | "resolved",
//    "target": "blog", "condition": "drill_failed" | "backup_stale",
//    "dedup_key": "restorewatch/blog/drill_failed", "summary": "...", "reason": "...",
//    "stage": "restore", "kind": "backup_unusable", "run_id": "...",   (drill_failed only)
//    "since": "RFC 3339", "at": "RFC 3339", "agent": "hostname"}
#include <string>

#include "agent/notifier_options.h"

namespace rw {

// One event of one condition of one target: the condition started (firing) or cleared (resolved).
struct Notification {
  std::string target;
  std::string condition;  // kConditionDrill or kConditionFreshness
  bool firing = true;
  std::string reason;  // the full one-line reason (firing); what cleared it (resolved)
  std::string stage;   // drill_failed: the stage that ended the drill (drill_failure.h)
  std::string kind;    // drill_failed: the kind of failure (drill_failure.h)
  std::string run_id;  // drill_failed: the drill that failed (resolved: the one that passed)
  double since = 0;    // when the condition started (Unix seconds)
  double at = 0;       // when this event happened (resolved: when it cleared)
};

inline constexpr const char* kConditionDrill = "drill_failed";
inline constexpr const char* kConditionFreshness = "backup_stale";

// "restorewatch/<target>/<condition>": stable per target and condition, so a resolve closes
// what the trigger opened (PagerDuty dedup_key).
std::string DedupKey(const Notification& n);
// One line: "[FIRING] blog: restore drill failed (backup_unusable in the restore stage): REASON".
std::string SummaryLine(const Notification& n);

struct NotifierRequest {
  std::string path;  // appended to the URL's own path (alertmanager: /api/v2/alerts)
  std::string body;  // JSON
};
// The request of `n` for a notifier of `cfg`'s type (routing key for PagerDuty from cfg).
NotifierRequest BuildNotifierRequest(const NotifierConfig& cfg, const Notification& n);

}  // namespace rw
