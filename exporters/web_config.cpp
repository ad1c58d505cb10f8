#include "exporters/web_config.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/config.h"
#include "agent/errors.h"

namespace rw {
namespace {

// One parsed "key: value" line of the YAML subset.
struct YamlLine {
  int line = 0;
  int indent = 0;
  std::string key;
  std::optional<std::string> value;  // nullopt: nothing after the colon (a mapping or null)
};

class SubsetParser {
 public:
  SubsetParser(const std::string& file, std::vector<std::string>* errors)
      : file_(file), errors_(errors) {}

  void Error(int line, const std::string& key, const std::string& message) {
    errors_->push_back(file_ + ":" + std::to_string(line) + ": " + (key.empty() ? "-" : key) +
                       ": " + message);
  }

  // Splits one non-blank, non-comment line. Returns false (after an error) when it is outside
  // the subset.
  bool ParseLine(const std::string& raw, int line, YamlLine* out) {
    out->line = line;
    std::size_t i = 0;
    while (i < raw.size() && raw[i] == ' ') ++i;
    if (i < raw.size() && raw[i] == '\t') {
      Error(line, "", "tabs are not allowed in YAML indentation");
      return false;
    }
    out->indent = static_cast<int>(i);
    std::string rest = raw.substr(i);
    std::size_t after_key = 0;
    if (!rest.empty() && (rest[0] == '"' || rest[0] == '\'')) {
      std::size_t end = 0;
      if (!Quoted(rest, 0, &out->key, &end, line)) return false;
      after_key = end;
      while (after_key < rest.size() && rest[after_key] == ' ') ++after_key;
      if (after_key >= rest.size() || rest[after_key] != ':') {
        Error(line, out->key, "expected ':' after the key");
        return false;
      }
    } else {
      if (!rest.empty() && std::strchr("-{[&*!|>%@`?", rest[0]) != nullptr) {
        Error(line, "",
              "only block mappings are supported (no lists, flow collections, anchors or tags)");
        return false;
      }
      std::size_t colon = std::string::npos;
      for (std::size_t k = 0; k < rest.size(); ++k) {
        if (rest[k] == ':' && (k + 1 == rest.size() || rest[k + 1] == ' ')) {
          colon = k;
          break;
        }
        if (rest[k] == '#' && k > 0 && rest[k - 1] == ' ') break;
      }
      if (colon == std::string::npos) {
        Error(line, "", "expected 'key: value'");
        return false;
      }
      out->key = rest.substr(0, colon);
      while (!out->key.empty() && out->key.back() == ' ') out->key.pop_back();
      after_key = colon;
    }
    std::string v = rest.substr(after_key + 1);
    std::size_t s = v.find_first_not_of(' ');
    if (s == std::string::npos || v[s] == '#') {
      out->value.reset();
      return true;
    }
    v = v.substr(s);
    if (v[0] == '"' || v[0] == '\'') {
      std::string val;
      std::size_t end = 0;
      if (!Quoted(v, 0, &val, &end, line)) return false;
      std::size_t tail = v.find_first_not_of(' ', end);
      if (tail != std::string::npos && v[tail] != '#') {
        Error(line, out->key, "unexpected text after the quoted value");
        return false;
      }
      out->value = val;
      return true;
    }
    if (std::strchr("{[&*!|>%@`", v[0]) != nullptr) {
      Error(line, out->key,
            "flow collections, anchors, tags and block scalars are not supported; write a plain "
            "or quoted value");
      return false;
    }
    std::size_t hash = v.find(" #");
    if (hash != std::string::npos) v = v.substr(0, hash);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    if (v == "~" || v == "null" || v == "Null" || v == "NULL") {
      out->value.reset();
    } else {
      out->value = v;
    }
    return true;
  }

 private:
  // A quoted scalar starting at s[pos]: '...' ('' is a quote) or "..." (\\ \" \n \t \/).
  bool Quoted(const std::string& s, std::size_t pos, std::string* out, std::size_t* end, int line) {
    const char q = s[pos];
    out->clear();
    for (std::size_t i = pos + 1; i < s.size(); ++i) {
      char c = s[i];
      if (q == '\'' && c == '\'') {
        if (i + 1 < s.size() && s[i + 1] == '\'') {
          *out += '\'';
          ++i;
          continue;
        }
        *end = i + 1;
        return true;
      }
      if (q == '"' && c == '"') {
        *end = i + 1;
        return true;
      }
      if (q == '"' && c == '\\' && i + 1 < s.size()) {
        char e = s[++i];
        switch (e) {
          case '\\':
          case '"':
          case '/':
            *out += e;
            break;
          case 'n':
            *out += '\n';
            break;
          case 't':
            *out += '\t';
            break;
          default:
            Error(line, "", std::string("unsupported escape \\") + e + " in a quoted value");
            return false;
        }
        continue;
      }
      *out += c;
    }
    Error(line, "", "unterminated quoted value (multi-line values are not supported)");
    return false;
  }

  std::string file_;
  std::vector<std::string>* errors_;
};

std::string DirOf(const std::string& file) {
  auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

std::string Resolve(const std::string& file, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return DirOf(file) + "/" + p;
}

bool Readable(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

bool IsBcrypt(const std::string& hash) {
  if (hash.rfind("$2a$", 0) != 0 && hash.rfind("$2b$", 0) != 0 && hash.rfind("$2y$", 0) != 0)
    return false;
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r("", hash.c_str(), data.get());
  return out != nullptr && out[0] != '*' && std::strlen(out) == hash.size();
}

std::string Sha256(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr) != 1) return {};
  return std::string(reinterpret_cast<char*>(md), n);
}

// RFC 4648 base64 through OpenSSL; nullopt when the input is not valid base64.
std::optional<std::string> Base64Decode(const std::string& in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 4096) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (in[in.size() - 1] == '=') ++pad;
  if (in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace

WebConfigLoad ParseWebConfig(const std::string& text, const std::string& file) {
  WebConfigLoad load;
  WebConfig cfg;
  cfg.path = file;
  SubsetParser p(file, &load.errors);
  std::istringstream in(text);
  std::string section;  // current top-level key
  int child_indent = -1;
  int line_no = 0;
  bool seen_content = false;
  std::set<std::string> seen_top, seen_child;
  int cert_line = 0, key_line = 0;
  for (std::string raw; std::getline(in, raw);) {
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    std::size_t first = raw.find_first_not_of(' ');
    if (first == std::string::npos || raw[first] == '#') continue;
    if (!seen_content && raw == "---") {
      seen_content = true;
      continue;
    }
    seen_content = true;
    YamlLine l;
    if (!p.ParseLine(raw, line_no, &l)) continue;
    if (l.indent == 0) {
      section = l.key;
      child_indent = -1;
      seen_child.clear();
      if (!seen_top.insert(l.key).second) {
        p.Error(l.line, l.key, "duplicate key");
        continue;
      }
      if (l.key != "tls_server_config" && l.key != "basic_auth_users") {
        p.Error(l.line, l.key,
                "not supported by restorewatch (supported: tls_server_config with cert_file and "
                "key_file, basic_auth_users)");
        section = "?";
        continue;
      }
      if (l.value)
        p.Error(l.line, l.key, "must be a mapping (indented 'key: value' lines below it)");
      continue;
    }
    if (section.empty()) {
      p.Error(l.line, l.key, "indented line outside a section");
      continue;
    }
    if (section == "?") continue;  // children of a rejected section
    if (child_indent < 0) child_indent = l.indent;
    const std::string dotted = section + "." + l.key;
    if (l.indent != child_indent) {
      p.Error(l.line, dotted,
              "inconsistent indentation (only two levels of mappings are supported)");
      continue;
    }
    if (!seen_child.insert(l.key).second) {
      p.Error(l.line, dotted, "duplicate key");
      continue;
    }
    if (section == "tls_server_config") {
      if (l.key != "cert_file" && l.key != "key_file") {
        p.Error(l.line, dotted,
                "not supported by restorewatch (supported: cert_file, key_file); client "
                "certificates, TLS versions and cipher settings use OpenSSL's defaults");
        continue;
      }
      if (!l.value || l.value->empty()) {
        p.Error(l.line, dotted, "must be a file path");
        continue;
      }
      if (l.key == "cert_file") {
        cfg.cert_file = Resolve(file, *l.value);
        cert_line = l.line;
      } else {
        cfg.key_file = Resolve(file, *l.value);
        key_line = l.line;
      }
      continue;
    }
    // basic_auth_users
    if (l.key.empty() || l.key.find(':') != std::string::npos) {
      p.Error(l.line, dotted, "a user name must be non-empty and must not contain ':'");
      continue;
    }
    if (!l.value || !IsBcrypt(*l.value)) {
      p.Error(l.line, dotted,
              "must be a bcrypt hash ($2y$/$2b$/$2a$), e.g. from htpasswd -nbBC 10 USER PASSWORD");
      continue;
    }
    cfg.users[l.key] = *l.value;
  }
  if (seen_top.count("tls_server_config")) {
    if (cfg.cert_file.empty() || cfg.key_file.empty()) {
      p.Error(cert_line ? cert_line : key_line, "tls_server_config",
              "needs both cert_file and key_file");
    } else {
      if (!Readable(cfg.cert_file))
        p.Error(cert_line, "tls_server_config.cert_file", "cannot read " + cfg.cert_file);
      if (!Readable(cfg.key_file))
        p.Error(key_line, "tls_server_config.key_file", "cannot read " + cfg.key_file);
    }
  }
  if (load.errors.empty()) load.config = std::move(cfg);
  return load;
}

WebConfigLoad LoadWebConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    WebConfigLoad load;
    load.errors.push_back(path +
                          ":0: web_config_file: cannot read the file: " + std::strerror(errno));
    return load;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseWebConfig(text.str(), path);
}

WebConfigLoad LoadAgentWebConfig(const Config& config) {
  const AgentConfig& a = config.agent;
  WebConfigLoad load;
  if (a.web_config_file.empty()) {
    load.config = WebConfig{};
  } else {
    std::string path = a.web_config_file;
    if (path[0] != '/') {
      const auto slash = config.path.rfind('/');
      if (slash != std::string::npos) path = config.path.substr(0, slash + 1) + path;
    }
    load = LoadWebConfig(path);
  }
  if (a.enable_drill_api && load.config && !load.config->auth()) {
    load.errors.push_back(config.path +
                          ":0: agent.enable_drill_api: the drill API needs basic auth: set "
                          "agent.web_config_file to a file with basic_auth_users");
    load.config.reset();
  }
  return load;
}

WebConfig AgentWebConfig(const Config& config) {
  WebConfigLoad load = LoadAgentWebConfig(config);
  if (load.config) return *load.config;
  std::string all;
  for (const auto& e : load.errors) all += (all.empty() ? "" : "; ") + e;
  throw Error(ErrorKind::kConfig, "invalid web config: " + all);
}

bool BcryptMatches(const std::string& hash, const std::string& password) {
  if (password.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();  // zeroed, as crypt_r requires
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (out == nullptr || out[0] == '*') return false;
  const std::size_t n = std::strlen(out);
  return n == hash.size() && CRYPTO_memcmp(out, hash.data(), n) == 0;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}

bool BasicAuth::Allows(const std::string& authorization) {
  if (users_.empty()) return true;
  if (authorization.size() < 6 || strncasecmp(authorization.c_str(), "basic ", 6) != 0)
    return false;
  std::string encoded = authorization.substr(6);
  encoded.erase(0, encoded.find_first_not_of(' '));
  while (!encoded.empty() && encoded.back() == ' ') encoded.pop_back();
  auto decoded = Base64Decode(encoded);
  if (!decoded) return false;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded->substr(0, colon), password = decoded->substr(colon + 1);
  auto it = users_.find(user);
  if (it == users_.end()) {
    // Same cost as a real check, against a hash of the same cost.
    BcryptMatches(users_.begin()->second, password + "\x01unknown-user");
    return false;
  }
  std::string key;
  key.append(user).push_back('\0');
  key.append(password).push_back('\0');
  key.append(it->second);
  const std::string digest = Sha256(key);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!digest.empty() && ok_cache_.count(digest)) return true;
  }
  if (!BcryptMatches(it->second, password)) return false;
  std::lock_guard<std::mutex> lk(mu_);
  if (ok_cache_.size() > 1024) ok_cache_.clear();
  if (!digest.empty()) ok_cache_.insert(digest);
  return true;
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace rw
