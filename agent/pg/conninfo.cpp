#include "agent/pg/conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <set>

#include "agent/secrets.h"

namespace rw {
namespace {

// Every keyword this libpq knows (PQconndefaults), to tell a keyword name from a value.
const std::set<std::string>& KnownKeywords() {
  static const std::set<std::string> known = [] {
    std::set<std::string> out;
    if (PQconninfoOption* d = PQconndefaults()) {
      for (PQconninfoOption* o = d; o->keyword != nullptr; ++o) out.insert(o->keyword);
      PQconninfoFree(d);
    }
    return out;
  }();
  return known;
}

// libpq's parse errors cite the input in double quotes ("invalid connection option \"x\"",
// "... in URI: \"postgresql://u:pw@...\""). A citation is kept only when it is a keyword name or
// one of the structural characters libpq names ("=", ":", "/", ...); at the first other one the
// message stops, since the cited text (a value, maybe holding quotes itself) could run on.
std::string SafeParseError(std::string why) {
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ' || why.back() == '.'))
    why.pop_back();
  for (auto& c : why)
    if (c == '\n') c = ' ';
  static const std::set<std::string> kStructural = {"=", ":", "/", "]", "[", "@", "?", "&", ","};
  std::string out;
  std::size_t i = 0;
  while (i < why.size()) {
    const std::size_t open = why.find('"', i);
    if (open == std::string::npos) {
      out += why.substr(i);
      break;
    }
    out += why.substr(i, open - i);
    const std::size_t close = why.find('"', open + 1);
    const std::string cited =
        close == std::string::npos ? "" : why.substr(open + 1, close - open - 1);
    if (close == std::string::npos ||
        (kStructural.count(cited) == 0 && KnownKeywords().count(cited) == 0)) {
      out += "(not shown)";
      break;
    }
    out += "\"" + cited + "\"";
    i = close + 1;
  }
  return RedactPatterns(out);
}

int Rank(const std::string& key) {
  static const char* const kFirst[] = {"host", "hostaddr", "port", "dbname", "user"};
  for (int i = 0; i < 5; ++i)
    if (key == kFirst[i]) return i;
  return 5;
}

}  // namespace

bool IsConnInfoUri(const std::string& text) {
  return text.rfind("postgresql://", 0) == 0 || text.rfind("postgres://", 0) == 0;
}

bool ParseConnInfo(const std::string& text, ConnKeywords* out, std::string* error) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(text.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err != nullptr ? err : "out of memory";
    if (err != nullptr) PQfreemem(err);
    *error = SafeParseError(why);
    return false;
  }
  ConnKeywords kws;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o)
    if (o->val != nullptr) kws.push_back({o->keyword, o->val});
  PQconninfoFree(opts);
  std::stable_sort(kws.begin(), kws.end(), [](const ConnKeyword& a, const ConnKeyword& b) {
    return Rank(a.key) < Rank(b.key);
  });
  *out = std::move(kws);
  return true;
}

std::string ConnInfoValue(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value)
    plain = plain && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
            c != '\'' && c != '\\' && c != '=' && c != '"';
  if (plain) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string FormatConnInfo(const ConnKeywords& keywords) {
  std::string out;
  for (const auto& k : keywords) {
    if (!out.empty()) out += ' ';
    out += k.key + "=" + ConnInfoValue(k.value);
  }
  return out;
}

const std::string* FindKeyword(const ConnKeywords& keywords, const std::string& key) {
  const std::string* found = nullptr;
  for (const auto& k : keywords)
    if (k.key == key) found = &k.value;
  return found;
}

void SetKeyword(ConnKeywords* keywords, const std::string& key, const std::string& value) {
  bool set = false;
  for (auto it = keywords->begin(); it != keywords->end();) {
    if (it->key != key) {
      ++it;
    } else if (!set) {
      it->value = value;
      set = true;
      ++it;
    } else {
      it = keywords->erase(it);
    }
  }
  if (!set) keywords->push_back({key, value});
}

void RemoveKeyword(ConnKeywords* keywords, const std::string& key) {
  keywords->erase(std::remove_if(keywords->begin(), keywords->end(),
                                 [&](const ConnKeyword& k) { return k.key == key; }),
                  keywords->end());
}

bool IsSecretKeyword(const std::string& key) { return key == "password" || key == "sslpassword"; }

}  // namespace rw
