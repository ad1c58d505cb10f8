#include "agent/json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rw::json {
namespace {

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  bool Parse(Value* out) {
    if (!ParseValue(out, 0)) return false;
    Ws();
    if (i_ != s_.size()) return Fail("unexpected text after the JSON value");
    return true;
  }
  const std::string& error() const { return error_; }
  bool truncated() const { return truncated_; }

 private:
  bool Fail(const std::string& why) {
    if (error_.empty()) {
      error_ = why + " at byte " + std::to_string(i_);
      truncated_ = i_ >= s_.size();
    }
    return false;
  }
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool Lit(const char* w) {
    const std::size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool Digits() {
    const std::size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool Number(Value* v) {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (!Digits()) {
      i_ = start;
      return Fail("unexpected character");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!Digits()) return Fail("bad number");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!Digits()) return Fail("bad number");
    }
    v->t = Value::T::kNum;
    v->s = s_.substr(start, i_ - start);
    return true;
  }
  bool ParseValue(Value* v, int depth) {
    if (depth > 32) return Fail("nested too deeply");
    Ws();
    if (i_ >= s_.size()) return Fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') {
      v->t = Value::T::kObj;
      ++i_;
      Ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      for (;;) {
        Ws();
        std::string k;
        if (!String(&k)) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_] != ':') return Fail("expected ':'");
        ++i_;
        Value x;
        if (!ParseValue(&x, depth + 1)) return false;
        v->o.emplace_back(std::move(k), std::move(x));
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
        return Fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v->t = Value::T::kArr;
      ++i_;
      Ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      for (;;) {
        Value x;
        if (!ParseValue(&x, depth + 1)) return false;
        v->a.push_back(std::move(x));
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        return Fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v->t = Value::T::kStr;
      return String(&v->s);
    }
    if (Lit("true")) return v->t = Value::T::kBool, v->b = true, true;
    if (Lit("false")) return v->t = Value::T::kBool, v->b = false, true;
    if (Lit("null")) return v->t = Value::T::kNull, true;
    return Number(v);
  }
  static void Utf8(std::string* o, unsigned cp) {
    if (cp < 0x80) {
      *o += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *o += static_cast<char>(0xC0 | (cp >> 6));
      *o += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *o += static_cast<char>(0xE0 | (cp >> 12));
      *o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *o += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *o += static_cast<char>(0xF0 | (cp >> 18));
      *o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *o += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool Hex4(unsigned* cp) {
    if (i_ + 4 > s_.size()) return Fail("bad \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<unsigned>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<unsigned>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<unsigned>(h - 'A' + 10);
      } else {
        return Fail("bad \\u escape");
      }
    }
    *cp = v;
    return true;
  }
  bool String(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return Fail("expected a string");
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in a string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          *out += e;
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(i_, 2, "\\u") == 0) {
            i_ += 2;
            unsigned lo = 0;
            if (!Hex4(&lo)) return false;
            if (lo < 0xDC00 || lo >= 0xE000) return Fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          Utf8(out, cp);
          break;
        }
        default:
          return Fail("bad escape");
      }
    }
    return Fail("unterminated string");
  }

  const std::string& s_;
  std::size_t i_ = 0;
  std::string error_;
  bool truncated_ = false;
};

}  // namespace

void PutString(std::string& o, const std::string& s) {
  o += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  o += '"';
}

void PutNumber(std::string& o, double v) {
  if (!std::isfinite(v)) {
    o += "null";
    return;
  }
  // The shortest of 15, 16 or 17 significant digits that reads back as the same double.
  char buf[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  o += buf;
}

void PutKey(std::string& o, const char* k, bool first) {
  if (!first) o += ',';
  PutString(o, k);
  o += ':';
}

const Value* Value::Get(const char* k) const {
  for (const auto& [key, v] : o)
    if (key == k) return &v;
  return nullptr;
}

std::string Value::Str(const char* k) const {
  const Value* v = Get(k);
  return v && v->t == T::kStr ? v->s : std::string();
}

double Value::AsDouble() const { return t == T::kNum ? std::strtod(s.c_str(), nullptr) : 0; }

double Value::Num(const char* k) const {
  const Value* v = Get(k);
  return v ? v->AsDouble() : 0;
}

bool Parse(const std::string& text, Value* out, std::string* error, bool* truncated) {
  Reader r(text);
  *out = Value{};
  const bool ok = r.Parse(out);
  if (!ok && error) *error = r.error();
  if (truncated) *truncated = !ok && r.truncated();
  return ok;
}

}  // namespace rw::json
