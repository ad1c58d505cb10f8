#include "checks/registry.h"

#include "checks/drill/amcheck_check.h"
#include "checks/drill/checksum_check.h"
#include "checks/drill/freshness_check.h"
#include "checks/drill/row_count_check.h"
#include "checks/drill/schema_check.h"
#include "checks/drill/sql_check.h"

namespace rw {
namespace {

struct CheckRow {
  const char* name;
  bool (*enabled)(const ChecksConfig&);
  std::unique_ptr<Check> (*make)();
  CheckMetrics metrics;  // which of its numbers are metrics
};

template <typename T>
std::unique_ptr<Check> Make() {
  return std::make_unique<T>();
}

// The table of drill checks, in run order; one row per file in checks/. sql:<name> checks follow,
// one per [[target.checks.sql]] entry.
const CheckRow kChecks[] = {
    {"schema", [](const ChecksConfig& c) { return c.schema; }, &Make<SchemaCheck>, {}},
    {"row_count",
     [](const ChecksConfig& c) { return c.row_count.enabled; },
     &Make<RowCountCheck>,
     {/*tables=*/true, /*rows_checksummed=*/false, /*coverage=*/false}},
    {"checksum",
     [](const ChecksConfig& c) { return c.checksum.enabled; },
     &Make<ChecksumCheck>,
     {/*tables=*/true, /*rows_checksummed=*/true, /*coverage=*/true}},
    {"freshness",
     [](const ChecksConfig& c) { return !c.freshness.empty(); },
     &Make<FreshnessCheck>,
     {}},
    // Last of the table: it creates (and drops) an extension in the copy.
    {"amcheck",
     [](const ChecksConfig& c) { return c.amcheck; },
     &Make<AmcheckCheck>,
     {/*tables=*/true, /*rows_checksummed=*/false, /*coverage=*/false, /*indexes=*/true}},
};

}  // namespace

CheckMetrics MetricsOfCheck(const std::string& name) {
  for (const auto& row : kChecks)
    if (name == row.name) return row.metrics;
  return {};
}

std::vector<std::unique_ptr<Check>> MakeDrillChecks(const ChecksConfig& config) {
  std::vector<std::unique_ptr<Check>> out;
  for (const auto& row : kChecks)
    if (row.enabled(config)) out.push_back(row.make());
  for (const auto& q : config.sql) out.push_back(std::make_unique<SqlCheck>(q));
  return out;
}

}  // namespace rw
