#include "agent/secrets.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>
#include <vector>

namespace rw {
namespace {

const char kMask[] = "***";
const std::size_t kMinLength = 4;

struct Registry {
  std::mutex mu;
  std::set<std::string> seen;        // every spelling registered
  std::vector<std::string> ordered;  // the same, longest first (a secret inside another)
};

Registry& Secrets() {
  static Registry* r = new Registry;  // never destroyed: logging may run during exit
  return *r;
}

// The spellings under which a secret may show up in text the agent produces: as is, inside a
// single-quoted conninfo value (\ and ' escaped) and inside a JSON string (\ and " escaped).
std::vector<std::string> Spellings(const std::string& s) {
  std::string kv, json;
  for (char c : s) {
    if (c == '\\' || c == '\'') kv += '\\';
    kv += c;
    if (c == '\\' || c == '"') json += '\\';
    json += c;
  }
  return {s, kv, json};
}

void ReplaceAll(std::string* text, const std::string& what) {
  if (what.empty()) return;
  for (std::size_t p = 0; (p = text->find(what, p)) != std::string::npos;) {
    text->replace(p, what.size(), kMask);
    p += sizeof kMask - 1;
  }
}

bool IEquals(const std::string& text, std::size_t at, const char* word) {
  for (std::size_t i = 0; word[i] != '\0'; ++i) {
    if (at + i >= text.size()) return false;
    if (std::tolower(static_cast<unsigned char>(text[at + i])) != word[i]) return false;
  }
  return true;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// password=VALUE (also sslpassword=, PGPASSWORD=): VALUE is '...' with backslash escapes, or
// runs to whitespace, '&' (URI query), '"' (libpq quotes what it cites) or the end.
void RedactKeyValues(std::string* text) {
  static const char kWord[] = "password";
  const std::size_t n = sizeof kWord - 1;
  for (std::size_t p = 0; p + n <= text->size();) {
    std::size_t hit = p;
    while (hit + n <= text->size() && !IEquals(*text, hit, kWord)) ++hit;
    if (hit + n > text->size()) return;
    std::size_t v = hit + n;
    while (v < text->size() && IsSpace((*text)[v])) ++v;
    if (v >= text->size() || (*text)[v] != '=') {
      p = hit + n;
      continue;
    }
    ++v;
    while (v < text->size() && IsSpace((*text)[v])) ++v;
    std::size_t end = v;
    if (end < text->size() && (*text)[end] == '\'') {
      ++end;
      while (end < text->size() && (*text)[end] != '\'') {
        if ((*text)[end] == '\\') ++end;
        ++end;
      }
      end = std::min(end + 1, text->size());
    } else {
      while (end < text->size() && !IsSpace((*text)[end]) && (*text)[end] != '&' &&
             (*text)[end] != '"')
        ++end;
    }
    if (end > v && text->compare(v, end - v, kMask) != 0) {
      text->replace(v, end - v, kMask);
      end = v + sizeof kMask - 1;
    }
    p = std::max(end, hit + n);
  }
}

// scheme://user:PASSWORD@host: the authority runs to '/', '?', '#', whitespace or a quote; the
// userinfo is what precedes its last '@'.
void RedactUriUserinfo(std::string* text) {
  for (std::size_t p = 0; (p = text->find("://", p)) != std::string::npos;) {
    const std::size_t start = p + 3;
    std::size_t end = start;
    while (end < text->size() && std::string("/?#\"'").find((*text)[end]) == std::string::npos &&
           !IsSpace((*text)[end]))
      ++end;
    const std::size_t at = text->rfind('@', end == start ? start : end - 1);
    p = start;
    if (at == std::string::npos || at < start || at >= end) continue;
    const std::size_t colon = text->find(':', start);
    if (colon == std::string::npos || colon > at) continue;
    if (text->compare(colon + 1, at - colon - 1, kMask) != 0)
      text->replace(colon + 1, at - colon - 1, kMask);
  }
}

}  // namespace

void RegisterSecret(const std::string& secret) {
  // Masking every occurrence of a one-to-three character string would garble every line; such
  // passwords are left to the patterns below.
  if (secret.size() < kMinLength) return;
  Registry& r = Secrets();
  std::lock_guard<std::mutex> lock(r.mu);
  bool added = false;
  for (auto& s : Spellings(secret)) added |= r.seen.insert(std::move(s)).second;
  if (!added) return;
  r.ordered.assign(r.seen.begin(), r.seen.end());
  std::stable_sort(r.ordered.begin(), r.ordered.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string RedactPatterns(const std::string& text) {
  std::string out = text;
  RedactKeyValues(&out);
  RedactUriUserinfo(&out);
  return out;
}

std::string Redact(const std::string& text) {
  std::string out = text;
  {
    Registry& r = Secrets();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& s : r.ordered) ReplaceAll(&out, s);
  }
  return RedactPatterns(out);
}

}  // namespace rw
