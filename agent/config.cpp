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
#include "agent/errors.h"
#include "agent/path_guard.h"
#include "agent/secrets.h"

namespace rw {
namespace {

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

  // Remembers a secret so that Finish() can scrub it from every message, and registers it for
  // redaction everywhere else (logs, errors from libpq).
  void AddSecret(const std::string& s) {
    if (s.empty()) return;
    secrets_.push_back(s);
    RegisterSecret(s);
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
    for (auto& e : errors_) {
      for (const auto& s : secrets_)
        for (std::size_t p; (p = e.message.find(s)) != std::string::npos;)
          e.message.replace(p, s.size(), "***");
      e.message = Redact(e.message);
    }
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

// True when `text`, trimmed, is exactly one ${NAME} reference: the whole conninfo comes from the
// environment (e.g. a DATABASE_URL), so it is expanded before it is parsed.
bool IsWholeReference(const std::string& text) {
  const std::size_t b = text.find_first_not_of(" \t");
  const std::size_t e = text.find_last_not_of(" \t");
  if (b == std::string::npos || text.compare(b, 2, "${") != 0 || text[e] != '}') return false;
  return text.find('}', b) == e;
}

// A conninfo node, parsed by libpq before any ${VAR} is expanded: each parsed value is expanded
// on its own, so a value from the environment can hold spaces, quotes or backslashes without
// changing how the conninfo parses. The password, if any, moves into spec->password; every
// password and sslpassword is registered as a secret. Messages never quote the conninfo.
bool ConnNode(Loader& l, const toml::node& n, const std::string& key, ConnSpec* spec) {
  const auto* s = n.as_string();
  if (s == nullptr) {
    l.Error(LineOf(n), key, std::string("expected a conninfo string, got ") + TypeName(n));
    return false;
  }
  // libpq recognises a URI only at the very start: surrounding blanks are dropped.
  std::string text = s->get();
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    l.Error(LineOf(n), key, "must not be empty");
    return false;
  }
  text = text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
  const bool whole = IsWholeReference(text);
  if (whole) {
    std::string expanded;
    bool exp = false;
    if (!l.Expand(text, LineOf(n), key, &expanded, &exp)) return false;
    const std::size_t b = expanded.find_first_not_of(" \t\r\n");
    text = b == std::string::npos
               ? std::string()
               : expanded.substr(b, expanded.find_last_not_of(" \t\r\n") - b + 1);
    if (text.empty()) {
      l.Error(LineOf(n), key, "is empty (its environment variable is set but empty)");
      return false;
    }
  }
  ConnKeywords parsed;
  std::string why;
  if (!ParseConnInfo(text, &parsed, &why)) {
    l.Error(LineOf(n), key,
            std::string(whole ? "malformed conninfo (from the environment): "
                              : "malformed conninfo: ") +
                why +
                (IsConnInfoUri(text) ? " (in a URI, percent-encode reserved characters)"
                                     : " (quote values with spaces as 'a b')"));
    return false;
  }
  ConnSpec out;
  bool ok = true;
  for (auto& kw : parsed) {
    std::string value = kw.value;
    if (!whole) {
      bool exp = false;
      if (!l.Expand(kw.value, LineOf(n), key, &value, &exp)) {
        ok = false;
        continue;
      }
    }
    if (IsSecretKeyword(kw.key)) l.AddSecret(value);
    if (kw.key == "password")
      out.password = std::move(value);
    else
      out.keywords.push_back({kw.key, std::move(value)});
  }
  if (!ok) return false;
  *spec = std::move(out);
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
  if (auto why = UnsafeWorkDir(a->work_dir, a->state_dir)) r.Error("work_dir", *why);
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
  r.Str("web_config_file", &a->web_config_file);
  r.Bool("enable_drill_api", &a->enable_drill_api);
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
    // Removed: a relative tolerance let a broken backup pass. Say so instead of "unknown key".
    if (t.Take("fallback_tolerance") != nullptr)
      t.Error("fallback_tolerance",
              "was removed: a difference that no activity sample explains is now reported as "
              "unverified (an error), never absorbed by a tolerance; delete this key, and run the "
              "daemon so that its samples cover your backups");
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
      if (name.empty()) name = spec.Get("application_name").value_or("");
      if (name.empty()) {
        // Only the first host of a list (and its port) names the standby.
        auto first = [](const std::optional<std::string>& v, const char* fallback) {
          const std::string s = v.value_or("").substr(0, v.value_or("").find(','));
          return s.empty() ? std::string(fallback) : s;
        };
        name = first(spec.Get("host"), "localhost") + ":" + first(spec.Get("port"), "5432");
      }
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

ConnSpec::ConnSpec(const std::string& conninfo, std::string pw) {
  std::string why;
  std::optional<ConnSpec> parsed = Parse(conninfo, &why);
  if (!parsed) throw Error(ErrorKind::kConfig, "malformed conninfo: " + why);
  *this = std::move(*parsed);
  if (!pw.empty()) password = std::move(pw);
}

std::optional<ConnSpec> ConnSpec::Parse(const std::string& conninfo, std::string* error) {
  ConnKeywords parsed;
  if (!ParseConnInfo(conninfo, &parsed, error)) return std::nullopt;
  ConnSpec spec;
  for (auto& kw : parsed) {
    if (IsSecretKeyword(kw.key)) RegisterSecret(kw.value);
    if (kw.key == "password")
      spec.password = std::move(kw.value);
    else
      spec.keywords.push_back(std::move(kw));
  }
  return spec;
}

std::optional<std::string> ConnSpec::Get(const std::string& key) const {
  if (key == "password") return password.empty() ? std::nullopt : std::optional(password);
  const std::string* v = FindKeyword(keywords, key);
  return v != nullptr ? std::optional(*v) : std::nullopt;
}

ConnKeywords ConnSpec::ForLibpq() const {
  ConnKeywords out = keywords;
  RemoveKeyword(&out, "password");
  if (!password.empty()) out.push_back({"password", password});
  return out;
}

std::string ConnSpec::Redacted() const {
  ConnKeywords shown = keywords;
  RemoveKeyword(&shown, "password");
  RemoveKeyword(&shown, "sslpassword");
  return FormatConnInfo(shown);
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
