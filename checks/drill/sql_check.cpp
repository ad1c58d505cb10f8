#include "checks/drill/sql_check.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "agent/pg/pg_conn.h"
#include "checks/drill/catalog.h"

namespace rw {
namespace {

std::string Trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A plain decimal: [+-]digits[.digits] or [+-].digits, split into sign, integer and fraction
// digits without insignificant zeros.
struct Decimal {
  bool negative = false;
  std::string whole;  // no leading zeros
  std::string frac;   // no trailing zeros
};

std::optional<Decimal> ParseDecimal(const std::string& s) {
  std::size_t i = 0;
  Decimal d;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) d.negative = s[i++] == '-';
  std::size_t w = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  std::string whole = s.substr(w, i - w);
  std::string frac;
  if (i < s.size() && s[i] == '.') {
    std::size_t f = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    frac = s.substr(f, i - f);
  }
  if (i != s.size() || (whole.empty() && frac.empty())) return std::nullopt;
  whole.erase(0, std::min(whole.find_first_not_of('0'), whole.size()));
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  d.whole = whole;
  d.frac = frac;
  if (d.whole.empty() && d.frac.empty()) d.negative = false;  // -0 == 0
  return d;
}

int CompareMagnitude(const Decimal& a, const Decimal& b) {
  if (a.whole.size() != b.whole.size()) return a.whole.size() < b.whole.size() ? -1 : 1;
  if (int c = a.whole.compare(b.whole)) return c < 0 ? -1 : 1;
  if (int c = a.frac.compare(b.frac)) return c < 0 ? -1 : 1;  // no trailing zeros: lexical works
  return 0;
}

std::optional<long double> ParseFloat(const std::string& s) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  char* end = nullptr;
  long double v = std::strtold(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

std::string Show(const std::optional<std::string>& v) { return v ? *v : "NULL"; }

struct QueryValue {
  std::optional<std::string> value;
  std::string problem;  // non-empty: no usable value
};

QueryValue Single(const pqxx::result& res) {
  QueryValue q;
  if (res.size() != 1)
    q.problem = "the query returned " + std::to_string(res.size()) + " rows, expected one";
  else if (res.columns() != 1)
    q.problem = "the query returned " + std::to_string(res.columns()) + " columns, expected one";
  else if (!res[0][0].is_null())
    q.value = res[0][0].as<std::string>();
  return q;
}

}  // namespace

const char* CompareOpText(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "=";
    case CompareOp::kNe:
      return "!=";
    case CompareOp::kLt:
      return "<";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kGe:
      return ">=";
  }
  return "=";
}

std::optional<Expectation> ParseExpectation(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& m) -> std::optional<Expectation> {
    if (error) *error = m;
    return std::nullopt;
  };
  std::string s = Trim(text);
  if (s.empty()) return fail("empty expectation");
  static const struct {
    const char* text;
    CompareOp op;
  } kOps[] = {{"==", CompareOp::kEq}, {"!=", CompareOp::kNe}, {"<>", CompareOp::kNe},
              {"<=", CompareOp::kLe}, {">=", CompareOp::kGe}, {"=", CompareOp::kEq},
              {"<", CompareOp::kLt},  {">", CompareOp::kGt}};
  Expectation e;
  for (const auto& o : kOps) {
    std::string t = o.text;
    if (s.compare(0, t.size(), t) == 0) {
      e.op = o.op;
      s = Trim(s.substr(t.size()));
      if (s.empty()) return fail(std::string("operator ") + o.text + " without a value");
      break;
    }
  }
  if (s.front() == '\'') {
    if (s.size() < 2 || s.back() != '\'') return fail("unterminated quoted value");
    std::string inner = s.substr(1, s.size() - 2);
    for (std::size_t i = 0; i < inner.size(); ++i) {
      if (inner[i] != '\'') {
        e.value += inner[i];
      } else if (i + 1 < inner.size() && inner[i + 1] == '\'') {
        e.value += '\'';
        ++i;
      } else {
        return fail("a quote inside a quoted value must be doubled");
      }
    }
    e.quoted = true;
    return e;
  }
  if (Lower(s) == "null") {
    if (e.op != CompareOp::kEq && e.op != CompareOp::kNe)
      return fail("null can only be compared with = or !=");
    e.is_null = true;
    return e;
  }
  e.value = s;
  return e;
}

int CompareValues(const std::string& a, const std::string& b, bool force_string) {
  if (!force_string) {
    auto da = ParseDecimal(a), db = ParseDecimal(b);
    if (da && db) {
      if (da->negative != db->negative) return da->negative ? -1 : 1;
      int m = CompareMagnitude(*da, *db);
      return da->negative ? -m : m;
    }
    auto fa = ParseFloat(a), fb = ParseFloat(b);
    if (fa && fb) {
      // PostgreSQL orders NaN above every number and equal to itself.
      bool na = std::isnan(*fa), nb = std::isnan(*fb);
      if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
      return *fa < *fb ? -1 : (*fa > *fb ? 1 : 0);
    }
  }
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

bool Satisfies(const std::optional<std::string>& actual, const Expectation& e) {
  if (e.is_null) return (e.op == CompareOp::kEq) == !actual.has_value();
  if (!actual) return false;
  int c = CompareValues(*actual, e.value, e.quoted);
  switch (e.op) {
    case CompareOp::kEq:
      return c == 0;
    case CompareOp::kNe:
      return c != 0;
    case CompareOp::kLt:
      return c < 0;
    case CompareOp::kLe:
      return c <= 0;
    case CompareOp::kGt:
      return c > 0;
    case CompareOp::kGe:
      return c >= 0;
  }
  return false;
}

CheckResult SqlCheck::Run(CheckContext& ctx) {
  CheckResult r;
  r.name = name();
  std::optional<Expectation> expect;
  if (!config_.expect.empty()) {
    std::string perr;
    expect = ParseExpectation(config_.expect, &perr);
    if (!expect)
      throw Error(ErrorKind::kConfig,
                  "sql check " + config_.name + ": expect \"" + config_.expect + "\": " + perr);
  } else if (!config_.compare_source) {
    throw Error(ErrorKind::kConfig,
                "sql check " + config_.name + " has neither expect nor compare_source");
  }

  QueryValue restored;
  {
    auto conn = ConnectRestored(ctx);
    CancelWatch watch(ctx.cancel, *conn);
    try {
      pqxx::read_transaction tx(*conn);
      restored = Single(tx.exec(config_.query));
    } catch (const pqxx::broken_connection&) {
      RethrowAsError("sql check " + config_.name);
    } catch (const pqxx::sql_error& e) {
      if (ctx.cancel.cancelled()) throw Error(ErrorKind::kCancelled, "sql check cancelled");
      std::string m = e.what();
      while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
      restored.problem = "the query failed on the restored copy: " + m.substr(0, m.find('\n'));
    }
  }
  if (!restored.problem.empty()) {
    r.outcome = Outcome::kFail;
    r.message = restored.problem;
    return r;
  }

  std::string msg = "restored value " + Show(restored.value);
  if (expect) {
    std::string want =
        std::string(CompareOpText(expect->op)) + " " +
        (expect->is_null ? "NULL" : (expect->quoted ? "'" + expect->value + "'" : expect->value));
    if (!Satisfies(restored.value, *expect)) {
      r.outcome = Outcome::kFail;
      r.message = msg + ", expected " + want;
      return r;
    }
    msg += " (" + want + ")";
  }
  if (config_.compare_source) {
    QueryValue source;
    auto conn = ConnectDrillSource(ctx);
    CancelWatch watch(ctx.cancel, *conn);
    WithPgErrors("sql check " + config_.name + " on the source", [&] {
      pqxx::read_transaction tx(*conn);
      source = Single(tx.exec(config_.query));
    });
    if (!source.problem.empty())
      throw Error(ErrorKind::kQuery,
                  "sql check " + config_.name + " on the source: " + source.problem);
    bool same = source.value.has_value() == restored.value.has_value() &&
                (!source.value || CompareValues(*source.value, *restored.value) == 0);
    if (!same) {
      r.outcome = Outcome::kFail;
      r.message = msg + ", source value " + Show(source.value);
      return r;
    }
    msg += ", same on the source";
  }
  r.outcome = Outcome::kPass;
  r.message = msg;
  return r;
}

}  // namespace rw
