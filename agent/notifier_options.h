#pragma once
// [[notifier]] tables (top level, beside [agent]): where the agent itself sends notifications when
// a drill fails or recovers and when a backup freshness objective is missed or met again. The
// struct is declared here, in agent/, because the config owns it; the notifiers themselves are in
// exporters/notifier.h. Secrets (bearer token, password, PagerDuty routing key) are read from
// files or ${ENV}, registered for redaction (agent/secrets.h) and never logged.
#include <string>
#include <vector>

#include "agent/units.h"

namespace rw {
namespace config {
class Reader;
}

enum class NotifierType {
  kAlertmanager,  // POST <url>/api/v2/alerts; firing alerts re-sent every repeat_interval
  kWebhook,       // POST <url>, a JSON document of ours (README "Notifications")
  kSlack,         // POST <url> (an incoming webhook), {"text": "..."}
  kPagerDuty,     // POST <url> (Events API v2), trigger/resolve with a stable dedup_key
};
const char* NotifierTypeName(NotifierType t);

struct NotifierConfig {
  std::string name;  // [a-z0-9_-], unique; the `notifier` label of the notifier metrics
  NotifierType type = NotifierType::kWebhook;
  // http:// or https:// URL. alertmanager: its base URL (/api/v2/alerts is appended); pagerduty:
  // default https://events.pagerduty.com/v2/enqueue; required for the others.
  std::string url;
  std::string bearer_token;  // from bearer_token_file: "Authorization: Bearer ..." (secret)
  std::string username;      // basic auth user, with password_file
  std::string password;      // from password_file (secret)
  // https: a PEM file of the CA(s) the receiver's certificate must chain to; empty = the
  // system's trust store. A relative path is relative to the config file's directory.
  std::string ca_file;
  std::string routing_key;  // pagerduty only, required: routing_key (${ENV}) or routing_key_file
  Duration timeout = std::chrono::seconds(10);       // per attempt: connect, write and read each
  std::vector<std::string> targets;                  // only these targets; empty = every target
  int max_attempts = 5;                              // attempts per notification (1..20)
  Duration retry_backoff = std::chrono::seconds(1);  // wait after the first failed attempt;
                                                     // doubles after each one (at most 5 min)
  // alertmanager: a firing alert is re-sent this often (Alertmanager resolves an alert it has not
  // heard of for resolve_timeout, 5m by default, so keep this well below it).
  Duration repeat_interval = std::chrono::minutes(1);
  int queue_size =
      100;  // notifications waiting at most (1..10000); when full the oldest is dropped

  bool operator==(const NotifierConfig& o) const;
  bool operator!=(const NotifierConfig& o) const { return !(*this == o); }
};

// Reads the [[notifier]] array of the root table into *out: names unique, types known, URLs
// well-formed, every name in `targets` one of `target_names`. Errors go to the Reader's loader.
void ReadNotifiers(config::Reader& root, const std::vector<std::string>& target_names,
                   std::vector<NotifierConfig>* out);

}  // namespace rw
