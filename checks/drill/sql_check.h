#pragma once
// sql:<name>: a user assertion. The query runs on the restored copy in a read-only transaction
// and must return one row with one column; its value is compared with `expect` ("= 5", ">= 1",
// "!= 0", "5", "'text'", "null"; operators =, ==, !=, <>, <, <=, >, >=): numerically when both
// sides read as numbers (exactly for plain decimals), else as strings. With compare_source the
// query also runs on the source (read-only session) and both values must be equal.
// pass when every comparison holds; fail when one does not, when the query returns another shape,
// or when it fails on the restored copy (the copy is not what the assertion expects); error when
// the source cannot be queried or the expectation is malformed.
// Runs after the restore only. Threads: as Check. The parsing helpers are pure and thread-safe.
#include <optional>
#include <string>

#include "agent/check.h"
#include "agent/config.h"

namespace rw {

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe };

struct Expectation {
  CompareOp op = CompareOp::kEq;
  std::string value;
  bool quoted = false;   // 'text': always compared as a string
  bool is_null = false;  // null / NULL: the result must be NULL (= null) or not (!= null)
};

// Parses an expect string; nullopt and *error set when malformed (empty, an operator without a
// value, an unterminated quote, an ordering operator against null).
std::optional<Expectation> ParseExpectation(const std::string& text, std::string* error);
// Whether `actual` (nullopt: SQL NULL) satisfies the expectation.
bool Satisfies(const std::optional<std::string>& actual, const Expectation& e);
// Compares two values as the checks do: -1, 0, 1, numerically when both are numbers (exact for
// plain decimals like "-12.50"), else bytewise.
int CompareValues(const std::string& a, const std::string& b, bool force_string = false);
const char* CompareOpText(CompareOp op);

class SqlCheck : public Check {
 public:
  explicit SqlCheck(SqlCheckConfig config) : config_(std::move(config)) {}
  std::string name() const override { return "sql:" + config_.name; }
  CheckResult Run(CheckContext& ctx) override;

 private:
  SqlCheckConfig config_;
};

}  // namespace rw
