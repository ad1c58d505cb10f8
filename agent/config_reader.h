#pragma once
// The TOML reading machinery of agent/config.cpp, shared with the option readers that live beside
// their implementations (a backup source's keys in agent/sources/, registered in the source's
// table row). A Reader reads one TOML table: each getter names a key, marks it as known and, when
// the key is present and valid, stores its value; keys nobody asked for are reported as unknown
// (with a close match suggested) when the Reader goes out of scope. Every error names file, line
// and dotted key. Used only while a config loads, on one thread.
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "agent/config.h"
#include "agent/pg/conninfo.h"
#include "agent/secrets.h"
#include "agent/units.h"

namespace rw::config {

// ---------------------------------------------------------------------------------------------
// The loader: one per file. Collects every error and the secrets it met, so that no message can
// carry one.

inline int LineOf(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

inline const char* TypeName(const toml::node& n) {
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

inline std::size_t EditDistance(const std::string& a, const std::string& b) {
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
  // The config file's directory ("" when the file name has none): relative paths start there.
  const std::string& dir() const { return dir_; }

 private:
  std::string file_;
  std::string dir_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> secrets_;
};

// A string node, expanded. `expanded` tells whether ${...} took part (then the value is not
// quoted in messages: it may be a secret).
inline bool StringNode(Loader& l, const toml::node& n, const std::string& key, std::string* out,
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

inline std::string Shown(const std::string& value, bool expanded) {
  return expanded ? "(a value from the environment)" : "\"" + value + "\"";
}

// True when `text`, trimmed, is exactly one ${NAME} reference: the whole conninfo comes from the
// environment (e.g. a DATABASE_URL), so it is expanded before it is parsed.
inline bool IsWholeReference(const std::string& text) {
  const std::size_t b = text.find_first_not_of(" \t");
  const std::size_t e = text.find_last_not_of(" \t");
  if (b == std::string::npos || text.compare(b, 2, "${") != 0 || text[e] != '}') return false;
  return text.find('}', b) == e;
}

// A conninfo node, parsed by libpq before any ${VAR} is expanded: each parsed value is expanded
// on its own, so a value from the environment can hold spaces, quotes or backslashes without
// changing how the conninfo parses. The password, if any, moves into spec->password; every
// password and sslpassword is registered as a secret. Messages never quote the conninfo.
inline bool ConnNode(Loader& l, const toml::node& n, const std::string& key, ConnSpec* spec) {
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

}  // namespace rw::config
