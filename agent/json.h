#pragma once
// A small JSON writer and reader for the agent's own files (drills.jsonl, dump references) and
// the few JSON documents it reads. Numbers are kept as their text, so 64-bit counts and exact
// decimal hashes survive a round trip; Num() converts when a double is wanted. The reader takes
// any valid JSON (RFC 8259: UTF-16 surrogate pairs, nesting up to 32 levels) and names what is
// wrong and where when the text is not. Pure functions, thread-safe.
#include <string>
#include <utility>
#include <vector>

namespace rw::json {

// Appends `s` as a JSON string (quotes included; control bytes escaped, UTF-8 passed through).
void PutString(std::string& out, const std::string& s);
// Appends `v` so that it reads back as the same double (0.1 stays "0.1"); null if not finite.
void PutNumber(std::string& out, double v);
// Appends `,"key":` (no comma when first).
void PutKey(std::string& out, const char* key, bool first = false);

struct Value {
  enum class T { kNull, kBool, kNum, kStr, kArr, kObj } t = T::kNull;
  bool b = false;
  std::string s;  // a string's value, or a number's text
  std::vector<Value> a;
  std::vector<std::pair<std::string, Value>> o;  // in document order
  // The member `key` of an object, or null.
  const Value* Get(const char* key) const;
  // Member `key` as a string / number, or "" / 0 when absent or of another type.
  std::string Str(const char* key) const;
  double Num(const char* key) const;
  double AsDouble() const;  // a number's value (0 when not a number)
};

// Parses exactly one JSON value (surrounding whitespace allowed). False when the text is not,
// with *error (when given) saying what and at which byte, e.g. "expected ',' or '}' at byte 17".
// *truncated (when given) tells whether it failed because the text ended early (a file cut short).
bool Parse(const std::string& text, Value* out, std::string* error = nullptr,
           bool* truncated = nullptr);

}  // namespace rw::json
