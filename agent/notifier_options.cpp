#include "agent/notifier_options.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "agent/config_reader.h"

namespace rw {

const char* NotifierTypeName(NotifierType t) {
  switch (t) {
    case NotifierType::kAlertmanager:
      return "alertmanager";
    case NotifierType::kWebhook:
      return "webhook";
    case NotifierType::kSlack:
      return "slack";
    case NotifierType::kPagerDuty:
      return "pagerduty";
  }
  return "webhook";
}

bool NotifierConfig::operator==(const NotifierConfig& o) const {
  return name == o.name && type == o.type && url == o.url && bearer_token == o.bearer_token &&
         username == o.username && password == o.password && ca_file == o.ca_file &&
         routing_key == o.routing_key && timeout == o.timeout && targets == o.targets &&
         max_attempts == o.max_attempts && retry_backoff == o.retry_backoff &&
         repeat_interval == o.repeat_interval && queue_size == o.queue_size;
}

namespace {

using config::Reader;

bool ValidName(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// http(s)://host[:port][/path], no user info (credentials belong in the *_file keys).
bool ValidUrl(const std::string& u, std::string* why) {
  std::size_t rest;
  if (u.rfind("http://", 0) == 0) {
    rest = 7;
  } else if (u.rfind("https://", 0) == 0) {
    rest = 8;
  } else {
    *why = "must start with http:// or https://";
    return false;
  }
  const std::string hostport = u.substr(rest, u.find('/', rest) - rest);
  if (hostport.empty()) {
    *why = "has no host";
    return false;
  }
  if (hostport.find('@') != std::string::npos) {
    *why = "must not carry credentials: use username and password_file, or bearer_token_file";
    return false;
  }
  return true;
}

// A secret from `key_file` (a file) into *out; true when the key was given.
bool SecretFile(Reader& r, const char* key, std::string* out) {
  std::string path;
  if (!r.Str(key, &path)) return false;
  const toml::node* n = r.Take(key);
  r.loader().ReadPasswordFile(path, config::LineOf(*n), r.Key(key), out);
  return true;
}

void ReadOne(Reader& r, NotifierConfig* n) {
  if (r.Require("name") && r.Name("name", &n->name) && !ValidName(n->name))
    r.Error("name", "must be lowercase letters, digits, '_' or '-'");
  if (r.Require("type"))
    r.Choice("type", &n->type,
             {{"alertmanager", NotifierType::kAlertmanager},
              {"webhook", NotifierType::kWebhook},
              {"slack", NotifierType::kSlack},
              {"pagerduty", NotifierType::kPagerDuty}});
  if (n->type == NotifierType::kPagerDuty) n->url = "https://events.pagerduty.com/v2/enqueue";
  bool has_url = r.Name("url", &n->url);
  std::string why;
  if (has_url && !ValidUrl(n->url, &why)) r.Error("url", why);
  if (!has_url && n->type != NotifierType::kPagerDuty) r.Require("url");
  if (r.Name("ca_file", &n->ca_file)) {
    const std::string& dir = r.loader().dir();
    if (n->ca_file[0] != '/' && !dir.empty()) n->ca_file = dir + "/" + n->ca_file;
    if (access(n->ca_file.c_str(), R_OK) != 0)
      r.Error("ca_file", "cannot read " + n->ca_file + ": " + std::strerror(errno));
    else if (n->url.rfind("https://", 0) != 0)
      r.Error("ca_file", "is only used with an https:// url");
  }
  SecretFile(r, "bearer_token_file", &n->bearer_token);
  const bool user = r.Name("username", &n->username);
  const bool pass = SecretFile(r, "password_file", &n->password);
  if (user != pass)
    r.Error(user ? "username" : "password_file", "username and password_file go together");
  if (!n->bearer_token.empty() && user)
    r.Error("bearer_token_file", "choose bearer_token_file or username/password_file, not both");
  bool key = false;
  if (r.Str("routing_key", &n->routing_key)) {
    key = true;
    r.loader().AddSecret(n->routing_key);
  }
  if (SecretFile(r, "routing_key_file", &n->routing_key)) {
    if (key) r.Error("routing_key_file", "choose routing_key or routing_key_file, not both");
    key = true;
  }
  if (n->type == NotifierType::kPagerDuty && !key)
    r.Error("routing_key", "is required for type = \"pagerduty\" (or routing_key_file)");
  if (n->type != NotifierType::kPagerDuty && key)
    r.Error(r.Take("routing_key") ? "routing_key" : "routing_key_file",
            "is only used with type = \"pagerduty\"");
  r.Dur("timeout", &n->timeout, Reader::Zero::kRefused);
  r.StrList("targets", &n->targets);
  r.Int("max_attempts", &n->max_attempts, 1, 20);
  r.Dur("retry_backoff", &n->retry_backoff, Reader::Zero::kRefused);
  if (r.Dur("repeat_interval", &n->repeat_interval, Reader::Zero::kRefused) &&
      n->type != NotifierType::kAlertmanager)
    r.Error("repeat_interval", "is only used with type = \"alertmanager\"");
  r.Int("queue_size", &n->queue_size, 1, 10000);
}

}  // namespace

void ReadNotifiers(Reader& root, const std::vector<std::string>& target_names,
                   std::vector<NotifierConfig>* out) {
  std::set<std::string> names;
  const toml::node* node = root.Take("notifier");
  if (node != nullptr && node->is_table()) {
    root.Error("notifier", "notifiers are an array of tables: write [[notifier]], not [notifier]");
    return;
  }
  root.TableArray("notifier", [&](Reader& r, std::size_t) {
    NotifierConfig n;
    ReadOne(r, &n);
    if (!n.name.empty() && !names.insert(n.name).second)
      r.Error("name", "duplicate notifier name \"" + n.name + "\"");
    for (const auto& t : n.targets)
      if (std::find(target_names.begin(), target_names.end(), t) == target_names.end())
        r.Error("targets", "no [[target]] named \"" + t + "\"");
    out->push_back(std::move(n));
  });
}

}  // namespace rw
