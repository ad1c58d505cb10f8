#pragma once
// libpq connection strings, parsed by libpq itself (PQconninfoParse), so that the key=value form
// and postgresql:// URIs (percent-encoding, multiple hosts, query parameters) mean exactly what
// they mean to libpq. A parsed conninfo is a list of keywords; connections are made from keywords
// (rebuilt into key=value text with libpq's quoting), never by appending text to what the user
// wrote. Pure functions; thread-safe.
#include <string>
#include <vector>

namespace rw {

struct ConnKeyword {
  std::string key;    // a libpq keyword: "host", "port", "dbname", "sslmode", ...
  std::string value;  // decoded (URI percent-encoding undone), unquoted
  bool operator==(const ConnKeyword& o) const { return key == o.key && value == o.value; }
};
using ConnKeywords = std::vector<ConnKeyword>;

// True for "postgresql://..." and "postgres://...".
bool IsConnInfoUri(const std::string& text);

// Parses a conninfo (key=value or URI) with PQconninfoParse. On success fills `out` with the
// keywords that were given (host, hostaddr, port, dbname, user first, then libpq's order) and
// returns true. On failure returns false and sets `error` to libpq's reason with every quoted
// fragment of the input removed (only keyword names survive), so it never carries a value.
bool ParseConnInfo(const std::string& text, ConnKeywords* out, std::string* error);

// key=value text that PQconninfoParse reads back into the same keywords (values quoted where
// needed, see ConnInfoValue).
std::string FormatConnInfo(const ConnKeywords& keywords);

// A libpq conninfo value: single-quoted (with \ and ' backslash-escaped) when it is empty or holds
// whitespace, quotes, backslashes or '='; as is otherwise.
std::string ConnInfoValue(const std::string& value);

// The value of `key` (the last one wins, as in libpq), or nullptr.
const std::string* FindKeyword(const ConnKeywords& keywords, const std::string& key);
// Replaces the value of `key` (every occurrence), or appends it.
void SetKeyword(ConnKeywords* keywords, const std::string& key, const std::string& value);
// Removes every occurrence of `key`.
void RemoveKeyword(ConnKeywords* keywords, const std::string& key);
// Keywords that hold secrets: password, sslpassword.
bool IsSecretKeyword(const std::string& key);

}  // namespace rw
