#pragma once
// The HTTP endpoint's security settings, from a web config file in the format of Prometheus'
// exporter-toolkit (agent.web_config_file), so a file written for node_exporter works here:
//
//   tls_server_config:
//     cert_file: /etc/restorewatch/tls.crt     # PEM; relative paths are relative to this file
//     key_file: /etc/restorewatch/tls.key
//   basic_auth_users:
//     prometheus: $2y$10$...                    # bcrypt (htpasswd -nbBC 10 USER PASS)
//
// The parser reads only the YAML this format needs: block mappings two levels deep, indented
// with spaces; plain, 'single' or "double" quoted scalars; # comments; an optional leading
// "---". Flow collections ({...}, [...]), anchors, tags, multi-line scalars and tabs are errors,
// as is any key restorewatch does not implement (client_auth_type, http_server_config, ...): a
// security setting that is silently ignored would be worse than a refusal.
//
// BasicAuth checks an Authorization header against the users' bcrypt hashes with libcrypt
// (crypt_r); successful checks are cached by SHA-256 of the credentials so a scrape does not pay
// the bcrypt cost each time. Thread-safe.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rw {

struct Config;

struct WebConfig {
  std::string path;       // the file it came from; empty when no web config is used
  std::string cert_file;  // PEM certificate (chain); set together with key_file
  std::string key_file;   // PEM private key
  std::map<std::string, std::string> users;  // user name -> bcrypt hash ($2a$, $2b$, $2y$)
  bool tls() const { return !cert_file.empty(); }
  bool auth() const { return !users.empty(); }
};

struct WebConfigLoad {
  std::optional<WebConfig> config;  // set only when errors is empty
  std::vector<std::string> errors;  // "FILE:LINE: KEY: MESSAGE"
};

// Parses a web config; `file` names it in messages and anchors relative paths. Never throws.
// Checks that cert/key files are readable and every hash is a bcrypt hash libcrypt accepts.
WebConfigLoad ParseWebConfig(const std::string& text, const std::string& file);
// Reads and parses `path` (an unreadable file is an error in the result).
WebConfigLoad LoadWebConfig(const std::string& path);

// The web config of a loaded restorewatch config: agent.web_config_file (relative to the config
// file's directory) parsed, plus the rule that agent.enable_drill_api needs basic_auth_users.
// No web_config_file: an empty WebConfig (plain HTTP, no auth). Never throws.
WebConfigLoad LoadAgentWebConfig(const Config& config);
// The same, throwing Error(kConfig) with every error when there is one (Agent::Start).
WebConfig AgentWebConfig(const Config& config);

// True when `password` matches the bcrypt `hash` (crypt_r; constant-time comparison).
bool BcryptMatches(const std::string& hash, const std::string& password);

class BasicAuth {
 public:
  explicit BasicAuth(std::map<std::string, std::string> users);
  // `authorization` is the request's Authorization header value ("Basic base64(user:pass)").
  // Unknown users still cost one bcrypt check, so timing does not reveal which names exist.
  bool Allows(const std::string& authorization);

 private:
  std::map<std::string, std::string> users_;
  std::mutex mu_;
  std::set<std::string> ok_cache_;  // SHA-256 of "user\0password\0hash" that matched
};

// Whether `host` (as in agent.listen) only accepts local connections: 127.0.0.0/8, ::1,
// localhost. "0.0.0.0", "::", "" and every other name count as non-loopback.
bool IsLoopbackHost(const std::string& host);

}  // namespace rw
