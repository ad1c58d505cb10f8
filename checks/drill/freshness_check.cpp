#include "checks/drill/freshness_check.h"

#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/drill/catalog.h"

namespace rw {
namespace {

enum class Presence { kOk, kNoTable, kNoColumn };

Presence Find(pqxx::connection& c, const std::string& table, const std::string& column) {
  Presence p = Presence::kOk;
  WithPgErrors("cannot look up " + table, [&] {
    pqxx::nontransaction tx(c);
    pqxx::row r = tx.exec_params1(
        "select to_regclass($1) is not null, exists (select 1 from pg_attribute a"
        " where a.attrelid = to_regclass($1) and a.attname = $2 and a.attnum > 0"
        " and not a.attisdropped)",
        QualifiedName(table), column);
    if (!r[0].as<bool>())
      p = Presence::kNoTable;
    else if (!r[1].as<bool>())
      p = Presence::kNoColumn;
  });
  return p;
}

// Newest value of the column as Unix seconds, nullopt when the table has no non-null value.
std::optional<double> Newest(pqxx::connection& c, const std::string& table,
                             const std::string& column, const std::string& side) {
  std::optional<double> out;
  WithPgErrors("cannot read the newest " + table + "." + column + " " + side, [&] {
    pqxx::nontransaction tx(c);
    pqxx::row r = tx.exec1("select extract(epoch from max(t." + QuoteIdent(column) +
                           ")::timestamptz)::float8 from " + QualifiedName(table) + " t");
    if (!r[0].is_null()) out = r[0].as<double>();
  });
  return out;
}

std::string Relative(double seconds, const char* later, const char* earlier) {
  return FormatAge(seconds >= 0 ? seconds : -seconds) + " " + (seconds >= 0 ? later : earlier);
}

}  // namespace

CheckResult FreshnessCheck::Run(CheckContext& ctx) {
  CheckResult r;
  r.name = name();
  const auto& tables = ctx.target.checks.freshness;
  if (tables.empty()) {
    r.outcome = Outcome::kSkipped;
    r.message = "no freshness columns configured";
    return r;
  }
  auto rst = ConnectRestored(ctx);
  CancelWatch w1(ctx.cancel, *rst);
  std::unique_ptr<pqxx::connection> src;
  Outcome outcome = Outcome::kPass;
  std::string msg;
  for (const auto& [table, column] : tables) {
    ctx.cancel.ThrowIfCancelled();
    TableFinding f;
    f.table = table;
    const std::string what = table + "." + column;
    Presence p = Find(*rst, table, column);
    std::optional<double> newest;
    if (p == Presence::kNoTable) {
      f.outcome = Outcome::kFail;
      f.message = "table missing from the restored copy";
    } else if (p == Presence::kNoColumn) {
      f.outcome = Outcome::kFail;
      f.message = "column " + column + " missing from the restored copy";
    } else {
      newest = Newest(*rst, table, column, "in the restored copy");
      if (!newest) {
        f.outcome = Outcome::kWarn;
        f.message = "no rows with a " + column + " in the restored copy";
      } else {
        if (!src) src = ConnectDrillSource(ctx);
        CancelWatch w2(ctx.cancel, *src);
        std::optional<double> source_newest;
        if (Find(*src, table, column) == Presence::kOk)
          source_newest = Newest(*src, table, column, "on the source");
        f.message =
            "newest " + FormatTimestamp(*newest) + ", " +
            Relative(ctx.CopyPoint() - *newest, "before the backup", "after the backup started");
        if (source_newest)
          f.message +=
              ", " + Relative(*source_newest - *newest, "behind the source", "ahead of the source");
        else
          f.message += ", not on the source";
        if (!r.recovered_timestamp || *newest > *r.recovered_timestamp)
          r.recovered_timestamp = *newest;
      }
    }
    outcome = Worse(outcome, f.outcome);
    msg += (msg.empty() ? "" : "; ") + what + ": " + f.message;
    r.details.push_back(f);
  }
  r.outcome = outcome;
  r.message = msg;
  return r;
}

}  // namespace rw
