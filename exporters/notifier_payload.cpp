#include "exporters/notifier_payload.h"

#include <unistd.h>

#include "agent/json.h"
#include "agent/units.h"

namespace rw {

namespace {

using json::PutKey;
using json::PutString;

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

bool IsDrill(const Notification& n) { return n.condition == kConditionDrill; }

// The alert name the agent's own alerts carry in Alertmanager (apart from the Prometheus rules'
// RestorewatchDrillFailing / RestorewatchBackupTooOld, so the two never merge into one).
const char* AlertName(const Notification& n) {
  return IsDrill(n) ? "RestorewatchAgentDrillFailed" : "RestorewatchAgentBackupStale";
}

std::string Title(const Notification& n) {
  if (IsDrill(n)) {
    if (!n.firing) return "restore drill passed again";
    std::string t = "restore drill failed";
    if (!n.kind.empty()) t += " (" + n.kind + " in the " + n.stage + " stage)";
    return t;
  }
  return n.firing ? "backup freshness objective missed" : "backup freshness objective met again";
}

void Field(std::string& out, const char* key, const std::string& v, bool first = false) {
  PutKey(out, key, first);
  PutString(out, v);
}

}  // namespace

std::string DedupKey(const Notification& n) {
  return "restorewatch/" + n.target + "/" + n.condition;
}

std::string SummaryLine(const Notification& n) {
  std::string s = std::string(n.firing ? "[FIRING] " : "[RESOLVED] ") + n.target + ": " + Title(n);
  if (!n.reason.empty()) s += ": " + n.reason;
  return s;
}

NotifierRequest BuildNotifierRequest(const NotifierConfig& cfg, const Notification& n) {
  NotifierRequest req;
  std::string& b = req.body;
  const std::string summary = n.target + ": " + Title(n);
  switch (cfg.type) {
    case NotifierType::kAlertmanager: {
      req.path = "/api/v2/alerts";
      b = "[{\"labels\":{";
      Field(b, "alertname", AlertName(n), true);
      Field(b, "target", n.target);
      Field(b, "condition", n.condition);
      Field(b, "severity", "ticket");
      Field(b, "source", "restorewatch");
      b += "},\"annotations\":{";
      Field(b, "summary", summary, true);
      Field(b, "description", SummaryLine(n));
      Field(b, "reason", n.reason);
      if (IsDrill(n)) {
        Field(b, "stage", n.stage);
        Field(b, "kind", n.kind);
        Field(b, "run_id", n.run_id);
      }
      b += "}";
      Field(b, "startsAt", FormatTimestamp(n.since));
      // A resolve ends the alert now; a firing alert is left open (Alertmanager then keeps it for
      // resolve_timeout after each re-send).
      if (!n.firing) Field(b, "endsAt", FormatTimestamp(n.at));
      b += "}]";
      break;
    }
    case NotifierType::kSlack:
      b = "{";
      Field(b, "text", SummaryLine(n), true);
      b += "}";
      break;
    case NotifierType::kPagerDuty: {
      b = "{";
      Field(b, "routing_key", cfg.routing_key, true);
      Field(b, "event_action", n.firing ? "trigger" : "resolve");
      Field(b, "dedup_key", DedupKey(n));
      if (n.firing) {
        b += ",\"payload\":{";
        // Events API v2: summary at most 1024 characters.
        std::string s = SummaryLine(n);
        if (s.size() > 1024) s = s.substr(0, 1021) + "...";
        Field(b, "summary", s, true);
        Field(b, "source", "restorewatch/" + n.target);
        Field(b, "severity", IsDrill(n) ? "error" : "warning");
        Field(b, "component", n.target);
        Field(b, "group", "restorewatch");
        Field(b, "class", IsDrill(n) ? n.kind : n.condition);
        b += ",\"custom_details\":{";
        Field(b, "reason", n.reason, true);
        Field(b, "condition", n.condition);
        if (IsDrill(n)) {
          Field(b, "stage", n.stage);
          Field(b, "kind", n.kind);
          Field(b, "run_id", n.run_id);
        }
        Field(b, "since", FormatTimestamp(n.since));
        b += "}}";
      }
      b += "}";
      break;
    }
    case NotifierType::kWebhook:
      b = "{";
      Field(b, "version", "1", true);
      Field(b, "source", "restorewatch");
      Field(b, "status", n.firing ? "firing" : "resolved");
      Field(b, "target", n.target);
      Field(b, "condition", n.condition);
      Field(b, "dedup_key", DedupKey(n));
      Field(b, "summary", SummaryLine(n));
      Field(b, "reason", n.reason);
      if (IsDrill(n)) {
        Field(b, "stage", n.stage);
        Field(b, "kind", n.kind);
        Field(b, "run_id", n.run_id);
      }
      Field(b, "since", FormatTimestamp(n.since));
      Field(b, "at", FormatTimestamp(n.at));
      Field(b, "agent", HostName());
      b += "}";
      break;
  }
  return req;
}

}  // namespace rw
