#include "agent/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "agent/backup_source.h"

namespace rw {
namespace {

// ---------------------------------------------------------------------------------------------
// libpq connection strings: "key=value key='quoted value'" or postgresql:// URIs. Only what the
// loader needs: find a parameter, and take the password out. Messages never quote the text.

struct KvParam {
  std::string key;
  std::string value;
};

bool IsSpaceChar(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsUri(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

// Parses the key=value form with libpq's rules: values may be single-quoted, and a backslash
// escapes the next character (quoted or not).
bool ParseKv(const std::string& s, std::vector<KvParam>* out, std::string* error) {
  std::size_t i = 0;
  while (true) {
    while (i < s.size() && IsSpaceChar(s[i])) ++i;
    if (i >= s.size()) return true;
    KvParam p;
    while (i < s.size() && s[i] != '=' && !IsSpaceChar(s[i])) p.key += s[i++];
    while (i < s.size() && IsSpaceChar(s[i])) ++i;
    if (i >= s.size() || s[i] != '=' || p.key.empty()) {
      *error = p.key.empty() ? "malformed conninfo: expected key=value"
                             : "malformed conninfo: missing \"=\" after \"" + p.key + "\"";
      return false;
    }
    ++i;
    while (i < s.size() && IsSpaceChar(s[i])) ++i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          p.value += s[i + 1];
          i += 2;
        } else if (s[i] == '\'') {
          closed = true;
          ++i;
          break;
        } else {
          p.value += s[i++];
        }
      }
      if (!closed) {
        *error = "malformed conninfo: unterminated quoted value for \"" + p.key + "\"";
        return false;
      }
    } else {
      while (i < s.size() && !IsSpaceChar(s[i])) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        p.value += s[i++];
      }
    }
    out->push_back(std::move(p));
  }
}

// libpq quoting: single quotes, with \ and ' escaped by a backslash.
std::string QuoteKvValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string JoinKv(const std::vector<KvParam>& params) {
  std::string out;
  for (const auto& p : params) {
    if (!out.empty()) out += ' ';
    out += p.key + "=" + ConnInfoValue(p.value);
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// postgresql://[user[:password]@][hosts][/dbname][?param=value&...]
struct Uri {
  std::string scheme;  // "postgresql://"
  std::string user;    // raw (percent-encoded)
  bool has_userinfo = false;
  std::optional<std::string> password;                     // decoded
  std::string hosts;                                       // raw "h1:5432,h2"
  std::string path;                                        // raw "/dbname" or empty
  std::vector<std::pair<std::string, std::string>> query;  // raw key, raw value

  static Uri Parse(const std::string& s) {
    Uri u;
    const std::size_t colon = s.find("://");
    u.scheme = s.substr(0, colon + 3);
    std::string rest = s.substr(colon + 3);
    std::string query;
    const std::size_t q = rest.find('?');
    if (q != std::string::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    const std::size_t slash = rest.find('/');
    if (slash != std::string::npos) {
      u.path = rest.substr(slash);
      rest = rest.substr(0, slash);
    }
    const std::size_t at = rest.rfind('@');
    if (at != std::string::npos) {
      u.has_userinfo = true;
      const std::string userinfo = rest.substr(0, at);
      rest = rest.substr(at + 1);
      const std::size_t pc = userinfo.find(':');
      u.user = userinfo.substr(0, pc);
      if (pc != std::string::npos) u.password = PercentDecode(userinfo.substr(pc + 1));
    }
    u.hosts = rest;
    if (!query.empty()) {
      std::stringstream in(query);
      for (std::string item; std::getline(in, item, '&');) {
        if (item.empty()) continue;
        const std::size_t eq = item.find('=');
        u.query.emplace_back(item.substr(0, eq),
                             eq == std::string::npos ? "" : item.substr(eq + 1));
      }
    }
    return u;
  }

  std::string ToString() const {
    std::string out = scheme;
    if (!user.empty()) out += user + "@";
    out += hosts + path;
    for (std::size_t i = 0; i < query.size(); ++i)
      out += (i == 0 ? "?" : "&") + query[i].first + "=" + query[i].second;
    return out;
  }
};

// Parameters hiding secrets: taken out of what is logged.
bool IsSecretParam(const std::string& key) { return key == "password" || key == "sslpassword"; }

// Removes password= (and, from the redacted text, sslpassword=). Returns false on malformed
// key=value text.
bool SplitPassword(const std::string& conninfo, bool drop_all_secrets, std::string* without,
                   std::optional<std::string>* password, std::string* error) {
  if (IsUri(conninfo)) {
    Uri u = Uri::Parse(conninfo);
    if (u.password) *password = u.password;
    std::vector<std::pair<std::string, std::string>> kept;
    for (auto& kv : u.query) {
      const std::string key = PercentDecode(kv.first);
      if (key == "password") *password = PercentDecode(kv.second);
      if (key == "password" || (drop_all_secrets && IsSecretParam(key))) continue;
      kept.push_back(kv);
    }
    u.query = std::move(kept);
    *without = u.ToString();
    return true;
  }
  std::vector<KvParam> params;
  if (!ParseKv(conninfo, &params, error)) return false;
  std::vector<KvParam> kept;
  for (auto& p : params) {
    if (p.key == "password") *password = p.value;
    if (p.key == "password" || (drop_all_secrets && IsSecretParam(p.key))) continue;
    kept.push_back(std::move(p));
  }
  *without = JoinKv(kept);
  return true;
}

// The value of one connection parameter, for either form.
std::optional<std::string> ConnParam(const std::string& conninfo, const std::string& key) {
  if (IsUri(conninfo)) {
    const Uri u = Uri::Parse(conninfo);
    for (const auto& kv : u.query)
      if (PercentDecode(kv.first) == key) return PercentDecode(kv.second);
    if (key == "user" && !u.user.empty()) return PercentDecode(u.user);
    if (key == "dbname" && u.path.size() > 1) return PercentDecode(u.path.substr(1));
    // Only the first host of a list is used for naming.
    const std::string first = u.hosts.substr(0, u.hosts.find(','));
    std::string host = first, port;
    const std::size_t close = first.find(']');
    const std::size_t colon = first.find(':', close == std::string::npos ? 0 : close);
    if (colon != std::string::npos) {
      host = first.substr(0, colon);
      port = first.substr(colon + 1);
    }
    if (key == "host" && !host.empty()) return PercentDecode(host);
    if (key == "port" && !port.empty()) return port;
    return std::nullopt;
  }
  std::vector<KvParam> params;
  std::string error;
  if (!ParseKv(conninfo, &params, &error)) return std::nullopt;
  std::optional<std::string> found;
  for (const auto& p : params)
    if (p.key == key) found = p.value;  // libpq: the last one wins
  return found;
}

// ---------------------------------------------------------------------------------------------
// The loader: one per file. Collects every error and the secrets it met, so that no message can
// carry one.

int LineOf(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

const char* TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {
    const std::size_t slash = file_.rfind('/');
    if (slash != std::string::npos) dir_ = slash == 0 ? "/" : file_.substr(0, slash);
  }

  void Error(int line, const std::string& key, const std::string& message) {
    errors_.push_back(ConfigError{file_, line, key, message});
  }

  // Remembers a secret so that Finish() can scrub it from every message.
  void AddSecret(const std::string& s) {
    if (!s.empty()) secrets_.push_back(s);
  }

  // Replaces every ${NAME} by the environment variable NAME; "$${" is a literal "${". Anything
  // else (including "$$" dollar quoting in SQL) is left alone. An unset variable is an error
  // naming the variable.
  bool Expand(const std::string& in, int line, const std::string& key, std::string* out,
              bool* expanded) {
    out->clear();
    bool ok = true;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in.compare(i, 3, "$${") == 0) {
        *out += "${";
        i += 2;
        continue;
      }
      if (in.compare(i, 2, "${") == 0) {
        const std::size_t close = in.find('}', i + 2);
        const std::string name = close == std::string::npos ? "" : in.substr(i + 2, close - i - 2);
        bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
        for (char c : name)
          valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        if (valid) {
          const char* value = std::getenv(name.c_str());
          if (value == nullptr) {
            Error(line, key, "environment variable " + name + " is not set");
            ok = false;
          } else {
            *out += value;
          }
          *expanded = true;
          i = close;
          continue;
        }
      }
      *out += in[i];
    }
    return ok;
  }

  // Reads a password file: relative to the config file's directory, trailing newlines removed.
  bool ReadPasswordFile(const std::string& path, int line, const std::string& key,
                        std::string* out) {
    const std::string full =
        !path.empty() && path[0] != '/' && !dir_.empty() ? dir_ + "/" + path : path;
    std::FILE* f = std::fopen(full.c_str(), "rb");
    if (f == nullptr) {
      Error(line, key, "cannot read password file " + full + ": " + std::strerror(errno));
      return false;
    }
    std::string data;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) {
      Error(line, key, "cannot read password file " + full + ": " + std::strerror(err));
      return false;
    }
    while (!data.empty() && (data.back() == '\n' || data.back() == '\r')) data.pop_back();
    if (data.empty()) {
      Error(line, key, "password file " + full + " is empty");
      return false;
    }
    AddSecret(data);
    *out = std::move(data);
    return true;
  }

  std::vector<ConfigError> Finish() {
    for (auto& e : errors_)
      for (const auto& s : secrets_)
        for (std::size_t p; (p = e.message.find(s)) != std::string::npos;)
          e.message.replace(p, s.size(), "***");
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::move(errors_);
  }

  bool ok() const { return errors_.empty(); }

 private:
  std::string file_;
  std::string dir_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> secrets_;
};

// A string node, expanded. `expanded` tells whether ${...} took part (then the value is not
// quoted in messages: it may be a secret).
bool StringNode(Loader& l, const toml::node& n, const std::string& key, std::string* out,
                bool* expanded = nullptr) {
  const auto* s = n.as_string();
  if (s == nullptr) {
    l.Error(LineOf(n), key, std::string("expected a string, got ") + TypeName(n));
    return false;
  }
  bool exp = false;
  std::string value;
  if (!l.Expand(s->get(), LineOf(n), key, &value, &exp)) return false;
  if (expanded != nullptr) *expanded = exp;
  *out = std::move(value);
  return true;
}

std::string Shown(const std::string& value, bool expanded) {
  return expanded ? "(a value from the environment)" : "\"" + value + "\"";
}

// A conninfo node: the password, if any, moves into spec->password.
bool ConnNode(Loader& l, const toml::node& n, const std::string& key, ConnSpec* spec) {
  std::string text;
  if (!StringNode(l, n, key, &text)) return false;
  if (text.find_first_not_of(" \t") == std::string::npos) {
    l.Error(LineOf(n), key, "must not be empty");
    return false;
  }
  std::optional<std::string> password;
  std::string without, error;
  if (!SplitPassword(text, false, &without, &password, &error)) {
    l.Error(LineOf(n), key, error);
    return false;
  }
  spec->conninfo = without;
  if (password) {
    l.AddSecret(*password);
    spec->password = *password;
  }
  return true;
}

// Reads one TOML table. Each getter names a key, marks it as known and, when the key is present
// and valid, stores its value (so struct initializers stay the only defaults). Keys nobody asked
// for are reported as unknown when the Reader goes out of scope.
class Reader {
 public:
  Reader(Loader& l, const toml::table& t, std::string path)
      : l_(l), t_(t), path_(std::move(path)) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { ReportUnknown(); }

  Loader& loader() { return l_; }
  const toml::table& table() const { return t_; }
  int line() const { return LineOf(t_); }
  void set_path(std::string p) { path_ = std::move(p); }
  std::string Key(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // The raw node (or nullptr), marked as known.
  const toml::node* Take(const char* key) {
    known_.insert(key);
    return t_.get(key);
  }

  void Error(const char* key, const std::string& message) {
    const toml::node* n = t_.get(key);
    l_.Error(n != nullptr ? LineOf(*n) : line(), Key(key), message);
  }
  void TypeError(const char* key, const toml::node& n, const std::string& wanted) {
    l_.Error(LineOf(n), Key(key), std::string("expected ") + wanted + ", got " + TypeName(n));
  }

  bool Require(const char* key) {
    known_.insert(key);
    if (t_.get(key) != nullptr) return true;
    l_.Error(line(), Key(key), "is required");
    return false;
  }

  bool Str(const char* key, std::string* out, bool* expanded = nullptr) {
    const toml::node* n = Take(key);
    return n != nullptr && StringNode(l_, *n, Key(key), out, expanded);
  }

  // A string that must not be empty when given.
  bool Name(const char* key, std::string* out) {
    std::string v;
    if (!Str(key, &v)) return false;
    if (v.empty()) {
      Error(key, "must not be empty");
      return false;
    }
    *out = v;
    return true;
  }

  bool Bool(const char* key, bool* out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return false;
    if (const auto* b = n->as_boolean()) {
      *out = b->get();
      return true;
    }
    TypeError(key, *n, "a boolean");
    return false;
  }

  template <typename T>
  bool Int(const char* key, T* out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = Take(key);
    if (n == nullptr) return false;
    const auto* i = n->as_integer();
    if (i == nullptr) {
      TypeError(key, *n, "an integer");
      return false;
    }
    if (i->get() < lo || i->get() > hi) {
      l_.Error(LineOf(*n), Key(key), RangeText(lo, hi) + ", got " + std::to_string(i->get()));
      return false;
    }
    *out = static_cast<T>(i->get());
    return true;
  }

  bool Real(const char* key, double* out, double lo, double hi) {
    const toml::node* n = Take(key);
    if (n == nullptr) return false;
    double v;
    if (const auto* f = n->as_floating_point()) {
      v = f->get();
    } else if (const auto* i = n->as_integer()) {
      v = static_cast<double>(i->get());
    } else {
      TypeError(key, *n, "a number");
      return false;
    }
    if (!(v >= lo && v <= hi)) {
      std::ostringstream msg;
      msg << "must be between " << lo << " and " << hi << ", got " << v;
      l_.Error(LineOf(*n), Key(key), msg.str());
      return false;
    }
    *out = v;
    return true;
  }

  enum class Zero { kAllowed, kRefused };
  // A duration: "90s", "1h30m", "500ms" or integer seconds.
  bool Dur(const char* key, Duration* out, Zero zero = Zero::kAllowed) {
    const toml::node* n = Take(key);
    if (n == nullptr) return false;
    std::optional<Duration> d;
    if (const auto* i = n->as_integer()) {
      const std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1000;
      if (i->get() < 0) {
        l_.Error(LineOf(*n), Key(key), "must not be negative");
        return false;
      }
      if (i->get() > kMaxSeconds) {
        l_.Error(LineOf(*n), Key(key), "is too large");
        return false;
      }
      d = std::chrono::seconds(i->get());
    } else if (n->is_string()) {
      std::string text;
      bool expanded = false;
      if (!StringNode(l_, *n, Key(key), &text, &expanded)) return false;
      d = ParseDuration(text);
      if (!d) {
        l_.Error(LineOf(*n), Key(key),
                 "invalid duration " + Shown(text, expanded) +
                     " (use a number with a unit: ms, s, m, h, d, e.g. \"90s\", \"1h30m\")");
        return false;
      }
    } else {
      TypeError(key, *n, "a duration string like \"90s\" or integer seconds");
      return false;
    }
    if (zero == Zero::kRefused && d->count() == 0) {
      l_.Error(LineOf(*n), Key(key), "must be greater than zero");
      return false;
    }
    *out = *d;
    return true;
  }

  // One of a closed set of strings.
  template <typename E>
  bool Choice(const char* key, E* out, std::initializer_list<std::pair<const char*, E>> choices) {
    std::string v;
    bool expanded = false;
    if (!Str(key, &v, &expanded)) return false;
    std::string names;
    for (const auto& c : choices) {
      if (v == c.first) {
        *out = c.second;
        return true;
      }
      names += std::string(names.empty() ? "" : ", ") + c.first;
    }
    Error(key, "must be one of " + names + ", got " + Shown(v, expanded));
    return false;
  }

  // An array of strings (or, with accept_single, one string).
  bool StrList(const char* key, std::vector<std::string>* out, bool accept_single = false) {
    const toml::node* n = Take(key);
    if (n == nullptr) return false;
    std::vector<std::string> values;
    if (accept_single && n->is_string()) {
      std::string v;
      if (!StringNode(l_, *n, Key(key), &v)) return false;
      values.push_back(v);
    } else if (const auto* a = n->as_array()) {
      bool ok = true;
      for (std::size_t i = 0; i < a->size(); ++i) {
        std::string v;
        if (StringNode(l_, *a->get(i), Key(key) + "[" + std::to_string(i) + "]", &v))
          values.push_back(v);
        else
          ok = false;
      }
      if (!ok) return false;
    } else {
      TypeError(key, *n, accept_single ? "a string or an array of strings" : "an array of strings");
      return false;
    }
    *out = std::move(values);
    return true;
  }

  bool Conn(const char* key, ConnSpec* out) {
    const toml::node* n = Take(key);
    return n != nullptr && ConnNode(l_, *n, Key(key), out);
  }

  // A sub-table, read by `read`.
  void Table(const char* key, const std::function<void(Reader&)>& read) {
    const toml::node* n = Take(key);
    if (n == nullptr) return;
    if (const auto* t = n->as_table()) {
      Reader sub(l_, *t, Key(key));
      read(sub);
    } else {
      TypeError(key, *n, "a table");
    }
  }

  // An array of tables ([[key]] or key = [{...}, ...]); `read` gets each with its index.
  void TableArray(const char* key, const std::function<void(Reader&, std::size_t)>& read) {
    const toml::node* n = Take(key);
    if (n == nullptr) return;
    const auto* a = n->as_array();
    if (a == nullptr) {
      TypeError(key, *n, "an array of tables ([[" + Key(key) + "]])");
      return;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const std::string path = Key(key) + "[" + std::to_string(i) + "]";
      if (const auto* t = e.as_table()) {
        Reader sub(l_, *t, path);
        read(sub, i);
      } else {
        l_.Error(LineOf(e), path, std::string("expected a table, got ") + TypeName(e));
      }
    }
  }

  // Either a boolean (turning a feature on or off) or a table of settings with "enabled".
  void BoolOrTable(const char* key, bool* enabled, const std::function<void(Reader&)>& read) {
    const toml::node* n = Take(key);
    if (n == nullptr) return;
    if (const auto* b = n->as_boolean()) {
      *enabled = b->get();
    } else if (const auto* t = n->as_table()) {
      Reader sub(l_, *t, Key(key));
      sub.Bool("enabled", enabled);
      read(sub);
    } else {
      TypeError(key, *n, "a boolean or a table");
    }
  }

 private:
  static std::string RangeText(std::int64_t lo, std::int64_t hi) {
    if (hi == std::numeric_limits<std::int64_t>::max())
      return "must be at least " + std::to_string(lo);
    return "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
  }

  void ReportUnknown() {
    for (auto&& [k, v] : t_) {
      const std::string key(k.str());
      if (known_.count(key) != 0) continue;
      std::string message = "unknown key";
      std::string best;
      std::size_t best_distance = 3;  // suggest only close matches
      for (const auto& cand : known_) {
        const std::size_t d = EditDistance(key, cand);
        if (d < best_distance) {
          best_distance = d;
          best = cand;
        }
      }
      if (!best.empty()) message += " (did you mean \"" + best + "\"?)";
      l_.Error(static_cast<int>(k.source().begin.line), Key(key), message);
    }
  }

  Loader& l_;
  const toml::table& t_;
  std::string path_;
  std::set<std::string> known_;
};

// ---------------------------------------------------------------------------------------------
// Validation helpers.

bool ValidTargetName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

bool ValidListen(const std::string& s) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  const std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  if (std::stoi(port) > 65535) return false;
  if (host.find(':') != std::string::npos)  // IPv6 needs brackets: [::1]:9847
    return host.size() > 2 && host.front() == '[' && host.back() == ']';
  return true;
}

bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  (void)v;
  return end == s.c_str() + s.size() && errno == 0 && s.find_first_of("xXnN") == std::string::npos;
}

// A SQL-style literal: single quotes, a quote inside doubled ('it''s').
bool IsQuoted(const std::string& s) {
  if (s.size() < 2 || s.front() != '\'' || s.back() != '\'') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] != '\'') continue;
    if (i + 2 < s.size() && s[i + 1] == '\'') {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

// expect: an optional operator (=, ==, !=, <>, <, <=, >, >=) and a number, a single-quoted string
// or null (null only with equality). The same grammar as checks/sql_check.cpp, which evaluates it.
bool ValidExpect(const std::string& raw, std::string* why) {
  std::string s = raw;
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  static const char* const kOps[] = {"==", "!=", "<>", "<=", ">=", "=", "<", ">"};
  std::string op;
  for (const char* o : kOps) {
    if (s.rfind(o, 0) == 0) {
      op = o;
      break;
    }
  }
  std::string value = s.substr(op.size());
  value.erase(0, value.find_first_not_of(" \t"));
  if (value.empty()) {
    *why = "expect needs a value, e.g. \">= 1\", \"= 0\" or \"'ok'\"";
    return false;
  }
  if (IsNumber(value) || IsQuoted(value)) return true;
  std::string lower = value;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "null") {
    if (op.empty() || op == "=" || op == "==" || op == "!=" || op == "<>") return true;
    *why = "null can only be compared with = or !=";
    return false;
  }
  *why =
      "expect must be an operator (=, !=, <>, <, <=, >, >=) followed by a number, a quoted "
      "string or null, e.g. \">= 1\" or \"= 'ok'\" (inside quotes, write '' for ')";
  return false;
}

// "schema.table:keycol"
bool ParseAppendOnly(const std::string& s, AppendOnlyTable* out) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  out->table = s.substr(0, colon);
  out->key = s.substr(colon + 1);
  const std::size_t dot = out->table.find('.');
  return !out->key.empty() && dot != std::string::npos && dot > 0 && dot + 1 < out->table.size();
}

bool IsQualifiedTable(const std::string& s) {
  const std::size_t dot = s.find('.');
  return dot != std::string::npos && dot > 0 && dot + 1 < s.size();
}

// ---------------------------------------------------------------------------------------------
// The schema. Each key is one line; defaults are those of the structs in config.h.

void ReadAgent(Reader& r, AgentConfig* a) {
  if (r.Name("listen", &a->listen) && !ValidListen(a->listen))
    r.Error("listen", "must be host:port with a port 0-65535, e.g. \"127.0.0.1:9847\"");
  r.Name("state_dir", &a->state_dir);
  r.Name("work_dir", &a->work_dir);
  r.Name("pg_bin_dir", &a->pg_bin_dir);
  r.Name("run_as", &a->run_as);
  r.Choice("log_format", &a->log_format, {{"text", LogFormat::kText}, {"json", LogFormat::kJson}});
  r.Choice("log_level", &a->log_level,
           {{"trace", std::string("trace")},
            {"debug", std::string("debug")},
            {"info", std::string("info")},
            {"warn", std::string("warn")},
            {"error", std::string("error")}});
  r.Dur("shutdown_timeout", &a->shutdown_timeout);
  r.Int("max_concurrent_drills", &a->max_concurrent_drills, 1, 64);
}

void ReadBackup(Reader& r, BackupConfig* b) {
  bool expanded = false;
  if (r.Str("type", &b->type, &expanded)) {
    const std::vector<std::string> types = BackupSourceTypes();
    if (std::find(types.begin(), types.end(), b->type) == types.end()) {
      std::string known;
      for (const auto& t : types) known += (known.empty() ? "" : ", ") + t;
      r.Error("type",
              "unknown backup type " + Shown(b->type, expanded) + " (known: " + known + ")");
    }
  }
  if (r.StrList("path", &b->paths, /*accept_single=*/true)) {
    for (const auto& p : b->paths)
      if (p.empty()) r.Error("path", "must not contain an empty path");
  }
  r.Name("pattern", &b->pattern);
  r.Str("globals_pattern", &b->globals_pattern);
  r.Dur("max_age", &b->max_age);
  r.Dur("settle", &b->settle);
  r.Dur("catalogue_interval", &b->catalogue_interval, Reader::Zero::kRefused);
  if (b->type == "pg_dump" && b->paths.empty() && r.Take("path") == nullptr)
    r.Error("path", "is required for backup type \"pg_dump\" (the directory holding the dumps)");
}

void ReadDrill(Reader& r, DrillConfig* d) {
  std::string schedule;
  if (r.Str("schedule", &schedule)) {
    std::string why;
    d->schedule = CronSchedule::Parse(schedule, &why);
    if (!d->schedule) r.Error("schedule", "invalid cron schedule: " + why);
  }
  r.Dur("jitter", &d->jitter);
  r.Dur("timeout", &d->timeout, Reader::Zero::kRefused);
  r.Table("stage_timeouts", [&](Reader& s) {
    s.Dur("discover", &d->stage_timeouts.discover, Reader::Zero::kRefused);
    s.Dur("restore", &d->stage_timeouts.restore, Reader::Zero::kRefused);
    s.Dur("checks", &d->stage_timeouts.checks, Reader::Zero::kRefused);
  });
  r.Dur("rto", &d->rto);
  r.Choice("sandbox", &d->sandbox,
           {{"ephemeral", SandboxKind::kEphemeral}, {"scratch", SandboxKind::kScratch}});
  const bool has_dsn = r.Take("scratch_dsn") != nullptr;
  r.Conn("scratch_dsn", &d->scratch);
  std::string password_file;
  if (r.Str("scratch_password_file", &password_file)) {
    const toml::node* n = r.Take("scratch_password_file");
    std::string password;
    if (r.loader().ReadPasswordFile(password_file, LineOf(*n), r.Key("scratch_password_file"),
                                    &password)) {
      if (!d->scratch.password.empty())
        r.Error("scratch_password_file",
                "scratch_dsn already has a password; give it in one place");
      else
        d->scratch.password = password;
    }
  }
  if (d->sandbox == SandboxKind::kScratch && !has_dsn)
    r.Error("scratch_dsn", "is required when sandbox = \"scratch\"");
  if (d->sandbox != SandboxKind::kScratch) {
    if (has_dsn) r.Error("scratch_dsn", "is only used with sandbox = \"scratch\"");
    if (r.Take("scratch_password_file") != nullptr)
      r.Error("scratch_password_file", "is only used with sandbox = \"scratch\"");
  }
  r.Int("jobs", &d->jobs, 1, 64);
  r.StrList("allow_restore_errors", &d->allow_restore_errors);
  r.Name("database", &d->database);
}

void ReadFreshness(Reader& t, const std::string& table, const toml::node& v, ChecksConfig* c) {
  const std::string key = t.Key(table);
  std::string column;
  if (!StringNode(t.loader(), v, key, &column)) return;
  if (!IsQualifiedTable(table))
    t.loader().Error(LineOf(v), key, "table must be written \"schema.table\"");
  else if (column.empty())
    t.loader().Error(LineOf(v), key, "column must not be empty");
  else
    c->freshness[table] = column;
}

void ReadChecks(Reader& r, ChecksConfig* c) {
  r.Choice("compare", &c->compare,
           {{"churn", CompareMode::kChurn}, {"exact", CompareMode::kExact}});
  r.Bool("schema", &c->schema);
  r.BoolOrTable("row_count", &c->row_count.enabled, [&](Reader& t) {
    t.Int("slack_rows", &c->row_count.slack_rows, 0, std::numeric_limits<std::int64_t>::max());
    t.Real("fallback_tolerance", &c->row_count.fallback_tolerance, 0.0, 1.0);
  });
  r.BoolOrTable("checksum", &c->checksum.enabled, [&](Reader& t) {
    std::vector<std::string> specs;
    if (t.StrList("append_only", &specs)) {
      for (const auto& s : specs) {
        AppendOnlyTable a;
        if (ParseAppendOnly(s, &a))
          c->checksum.append_only.push_back(a);
        else
          t.Error("append_only",
                  "entries must look like \"schema.table:key_column\", got \"" + s + "\"");
      }
    }
    t.Int("sample_keys", &c->checksum.sample_keys, 0, 1000);
  });
  r.Table("freshness", [&](Reader& t) {
    // "schema.table" = "column"; an unquoted schema.table is a dotted key, i.e. a table of
    // tables, and is accepted as well.
    for (auto&& [k, v] : t.table()) {
      const std::string top(k.str());
      t.Take(top.c_str());
      if (const auto* schema = v.as_table()) {
        for (auto&& [k2, v2] : *schema) ReadFreshness(t, top + "." + std::string(k2.str()), v2, c);
      } else {
        ReadFreshness(t, top, v, c);
      }
    }
  });
  r.StrList("exclude_tables", &c->exclude_tables);
  r.Dur("stats_settle", &c->stats_settle);
  std::set<std::string> sql_names;
  r.TableArray("sql", [&](Reader& t, std::size_t) {
    SqlCheckConfig s;
    if (t.Require("name") && t.Name("name", &s.name) && !sql_names.insert(s.name).second)
      t.Error("name", "duplicate sql check name \"" + s.name + "\"");
    if (t.Require("query")) t.Name("query", &s.query);
    t.Bool("compare_source", &s.compare_source);
    if (t.Str("expect", &s.expect)) {
      std::string why;
      if (!ValidExpect(s.expect, &why)) t.Error("expect", why);
    } else if (!s.compare_source && t.Take("expect") == nullptr) {
      t.Error("expect", "is required unless compare_source = true");
    }
    c->sql.push_back(s);
  });
}

void ReadTarget(Reader& r, std::map<std::string, int>* names, TargetConfig* t) {
  if (r.Require("name") && r.Str("name", &t->name)) {
    if (!ValidTargetName(t->name)) {
      r.Error("name", "must be lowercase letters, digits, '_' or '-', got \"" + t->name + "\"");
    } else {
      const int line = LineOf(*r.Take("name"));
      const auto [it, inserted] = names->emplace(t->name, line);
      // Keys read the target's name from here on, except in a duplicate, where the index is
      // the only unambiguous name.
      if (inserted)
        r.set_path("target." + t->name);
      else
        r.Error("name", "duplicate target name \"" + t->name + "\" (first at line " +
                            std::to_string(it->second) + ")");
    }
  }
  if (r.Require("source")) r.Conn("source", &t->source);
  std::string password_file;
  if (r.Str("password_file", &password_file)) {
    std::string password;
    if (r.loader().ReadPasswordFile(password_file, LineOf(*r.Take("password_file")),
                                    r.Key("password_file"), &password)) {
      if (!t->source.password.empty())
        r.Error("password_file",
                "the source conninfo already has a password; give it in one place");
      else
        t->source.password = password;
    }
  }

  if (const toml::node* n = r.Take("standbys")) {
    const auto* a = n->as_array();
    if (a == nullptr) r.TypeError("standbys", *n, "an array of conninfo strings or tables");
    for (std::size_t i = 0; a != nullptr && i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const std::string key = r.Key("standbys") + "[" + std::to_string(i) + "]";
      ConnSpec spec;
      std::string name;
      if (const auto* tbl = e.as_table()) {
        Reader s(r.loader(), *tbl, key);
        s.Name("name", &name);
        if (!s.Require("dsn") || !s.Conn("dsn", &spec)) continue;
      } else if (!ConnNode(r.loader(), e, key, &spec)) {
        continue;
      }
      // A standby is a copy of the source: it shares the source's roles, hence its password.
      if (spec.password.empty()) spec.password = t->source.password;
      if (name.empty()) name = ConnParam(spec.conninfo, "application_name").value_or("");
      if (name.empty())
        name = ConnParam(spec.conninfo, "host").value_or("localhost") + ":" +
               ConnParam(spec.conninfo, "port").value_or("5432");
      // "source" labels the primary's own restorewatch_pg_in_recovery{server} series.
      if (name == "source")
        r.loader().Error(LineOf(e), key,
                         "a standby cannot be named \"source\" (it labels the primary)");
      else if (std::find(t->standby_names.begin(), t->standby_names.end(), name) !=
               t->standby_names.end())
        r.loader().Error(LineOf(e), key,
                         "duplicate standby name \"" + name + "\" (give each a name = \"...\")");
      t->standbys.push_back(spec);
      t->standby_names.push_back(name);
    }
  }

  r.Dur("monitor_interval", &t->monitor_interval, Reader::Zero::kRefused);
  r.Dur("connect_timeout", &t->connect_timeout, Reader::Zero::kRefused);
  r.Dur("statement_timeout", &t->statement_timeout);
  r.Dur("drill_statement_timeout", &t->drill_statement_timeout);
  r.Dur("lock_timeout", &t->lock_timeout);

  bool has_backup = false;
  r.Table("backup", [&](Reader& b) {
    has_backup = true;
    ReadBackup(b, &t->backup);
  });
  if (!has_backup && r.Take("backup") == nullptr)
    r.Error("backup", "a [target.backup] table with path is required");
  r.Table("drill", [&](Reader& d) { ReadDrill(d, &t->drill); });
  r.Table("checks", [&](Reader& c) { ReadChecks(c, &t->checks); });
}

}  // namespace

std::string ConnInfoValue(const std::string& value) {
  bool plain = !value.empty();
  for (char ch : value) plain = plain && !IsSpaceChar(ch) && ch != '\'' && ch != '\\' && ch != '=';
  return plain ? value : QuoteKvValue(value);
}

std::string ConnSpec::ForLibpq() const {
  if (password.empty()) return conninfo;
  if (IsUri(conninfo)) {
    const bool has_query = conninfo.find('?') != std::string::npos;
    return conninfo + (has_query ? "&" : "?") + "password=" + PercentEncode(password);
  }
  return conninfo + (conninfo.empty() ? "" : " ") + "password=" + QuoteKvValue(password);
}

std::string ConnSpec::Redacted() const {
  std::string without, error;
  std::optional<std::string> found;
  if (!SplitPassword(conninfo, /*drop_all_secrets=*/true, &without, &found, &error))
    return "(unparsable conninfo)";  // could hide a password anywhere: show nothing
  return without;
}

const TargetConfig* Config::FindTarget(const std::string& name) const {
  for (const auto& t : targets)
    if (t.name == name) return &t;
  return nullptr;
}

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

ConfigLoad LoadConfigText(const std::string& text, const std::string& file) {
  ConfigLoad result;
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(file));
  } catch (const toml::parse_error& e) {
    result.errors.push_back(ConfigError{file, static_cast<int>(e.source().begin.line), "",
                                        "syntax error: " + std::string(e.description())});
    return result;
  }

  Loader loader(file);
  Config config;
  config.path = file;
  {
    Reader r(loader, root, "");
    r.Table("agent", [&](Reader& a) { ReadAgent(a, &config.agent); });
    // Zero targets is valid: the agent then serves its HTTP endpoint and nothing else, which
    // the daemon logs as a warning.
    std::map<std::string, int> names;
    const toml::node* targets = r.Take("target");
    if (targets != nullptr && targets->is_table()) {
      r.Error("target", "targets are an array of tables: write [[target]], not [target]");
    } else {
      r.TableArray("target", [&](Reader& t, std::size_t) {
        TargetConfig target;
        ReadTarget(t, &names, &target);
        config.targets.push_back(std::move(target));
      });
    }
  }
  result.errors = loader.Finish();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

ConfigLoad LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoad result;
    result.errors.push_back(
        ConfigError{path, 0, "", std::string("cannot read config file: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return LoadConfigText(text.str(), path);
}

}  // namespace rw
