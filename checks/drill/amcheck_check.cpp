#include "checks/drill/amcheck_check.h"

#include <algorithm>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "checks/drill/catalog.h"
#include "checks/live/table_activity_collector.h"

namespace rw {
namespace {

// Findings quoted in the message; every one goes to the details (up to kMaxDetails).
constexpr std::size_t kMaxDetails = 50;
constexpr std::size_t kQuoted = 3;  // corrupt relations quoted in the one-line message

// A server instance: its postmaster's start time (microseconds) and port. Two sessions that
// agree on both reach the same running server.
const char* const kServerInstance =
    "select pg_postmaster_start_time()::text || ' port ' || current_setting('port')";

// Refuses (Error kConfig) when the restored session reaches the source server itself: the check
// is about to create an extension, and the source is never written to. When the source cannot be
// reached the sandbox's own guarantee stands (its server is the agent's, or was refused for having
// the source's system identifier).
void RequireNotTheSource(CheckContext& ctx, pqxx::connection& restored) {
  std::string copy_id;
  WithPgErrors("cannot identify the restored copy's server",
               [&] { copy_id = pqxx::nontransaction(restored).exec1(kServerInstance)[0].c_str(); });
  std::string source_id;
  try {
    auto src = ConnectDrillSource(ctx);
    WithPgErrors("cannot identify the source server", [&] {
      pqxx::read_transaction tx(*src);
      source_id = tx.exec1(kServerInstance)[0].c_str();
    });
  } catch (const Error& e) {
    LogDebug("amcheck: source not reachable to compare server identities",
             {{"target", ctx.target.name}, {"error", e.what()}});
    return;
  }
  if (source_id == copy_id)
    throw Error(ErrorKind::kConfig,
                "refusing to create extension amcheck: the restored copy's session reaches the "
                "source server itself (started " +
                    copy_id + ")");
}

// One line from a server error: "ERROR:  msg\nDETAIL:  more" -> "msg (more)".
std::string OneLine(const std::string& what) {
  std::string s = what;
  for (const char* p : {"ERROR:  ", "FATAL:  "})
    if (s.rfind(p, 0) == 0) s = s.substr(std::string(p).size());
  std::string out;
  std::size_t start = 0;
  bool first = true;
  while (start < s.size()) {
    std::size_t nl = s.find('\n', start);
    std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? s.size() : nl + 1;
    if (line.empty() || line.rfind("CONTEXT:", 0) == 0 || line.rfind("HINT:", 0) == 0) continue;
    if (line.rfind("DETAIL:  ", 0) == 0) line = line.substr(9);
    out += first ? line : " (" + line + ")";
    first = false;
  }
  return out;
}

struct Relation {
  std::string oid;
  std::string name;  // "schema.rel" for messages
  bool index = false;
};

struct Inventory {
  std::vector<Relation> relations;  // tables first, then indexes
  std::int64_t unlogged = 0, invalid = 0, excluded = 0;
};

Inventory ListRelations(pqxx::connection& c, const std::vector<std::string>& exclude) {
  Inventory inv;
  // Tables and materialized views (TOAST is checked through its owner), and B-tree indexes
  // (TOAST indexes too); t is the table a relation belongs to, r its partition root.
  const char* const kSql =
      "select c.oid::text, n.nspname, c.relname, c.relkind = 'i', c.relpersistence::text,"
      " coalesce(i.indisvalid and i.indisready, true), tn.nspname, t.relname, rn.nspname,"
      " r.relname"
      " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
      " left join pg_am am on am.oid = c.relam"
      " left join pg_index i on i.indexrelid = c.oid"
      " join pg_class t on t.oid = coalesce(i.indrelid, c.oid)"
      " join pg_namespace tn on tn.oid = t.relnamespace"
      " left join pg_class r"
      "   on r.oid = (case when t.relispartition then pg_partition_root(t.oid)::oid end)"
      " left join pg_namespace rn on rn.oid = r.relnamespace"
      " where c.relkind in ('r', 'm') or (c.relkind = 'i' and am.amname = 'btree')"
      " order by c.relkind = 'i', n.nspname, c.relname";
  WithPgErrors("cannot list the relations of the restored copy", [&] {
    pqxx::nontransaction tx(c);
    for (const auto& row : tx.exec(kSql)) {
      Relation rel;
      rel.oid = row[0].as<std::string>();
      rel.name = ActivityTableKey(row[1].as<std::string>(), row[2].as<std::string>());
      rel.index = row[3].as<bool>();
      const std::string persistence = row[4].as<std::string>();
      const std::string table =
          ActivityTableKey(row[6].as<std::string>(), row[7].as<std::string>());
      const std::string root =
          row[9].is_null() ? table
                           : ActivityTableKey(row[8].as<std::string>(), row[9].as<std::string>());
      if (persistence == "t") continue;  // another session's temporary relation
      if (MatchesAny(table, exclude) || MatchesAny(root, exclude)) {
        ++inv.excluded;
        continue;
      }
      if (persistence == "u") {
        ++inv.unlogged;
        continue;
      }
      if (!row[5].as<bool>()) {  // bt_index_check refuses an invalid index
        ++inv.invalid;
        continue;
      }
      inv.relations.push_back(std::move(rel));
    }
  });
  return inv;
}

std::string Plural(std::int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

CheckResult AmcheckCheck::Run(CheckContext& ctx) {
  CheckResult res;
  res.name = name();
  ctx.cancel.ThrowIfCancelled();
  auto conn = ConnectRestored(ctx);
  RequireNotTheSource(ctx, *conn);

  // The extension, in the copy only; the check drops it again when it created it.
  std::string schema;
  bool created = false;
  auto find = [&] {
    pqxx::nontransaction tx(*conn);
    auto r = tx.exec(
        "select n.nspname, e.extversion from pg_extension e"
        " join pg_namespace n on n.oid = e.extnamespace where e.extname = 'amcheck'");
    if (r.empty()) return std::string();
    schema = r[0][0].as<std::string>();
    return r[0][1].as<std::string>();
  };
  std::string version;
  WithPgErrors("cannot read the restored copy's extensions", [&] { version = find(); });
  if (version.empty()) {
    try {
      pqxx::nontransaction(*conn).exec0("create extension if not exists amcheck");
    } catch (const pqxx::sql_error& e) {
      throw Error(ErrorKind::kQuery,
                  "cannot create extension amcheck in the restored copy: " + OneLine(e.what()),
                  "install PostgreSQL's contrib modules (amcheck) for the sandbox's server and "
                  "let the sandbox's user create extensions");
    }
    created = true;
    WithPgErrors("cannot read the restored copy's extensions", [&] { version = find(); });
  } else if (version < "1.3") {  // verify_heapam came with 1.3 (PostgreSQL 14)
    WithPgErrors("cannot update extension amcheck " + version + " in the restored copy",
                 [&] { pqxx::nontransaction(*conn).exec0("alter extension amcheck update"); });
  }
  const std::string fn = QuoteIdent(schema) + ".";

  Inventory inv = ListRelations(*conn, ctx.target.checks.exclude_tables);
  std::vector<std::string> corrupt, unchecked;  // "index x: message"
  auto note = [&](Outcome o, const Relation& rel, const std::string& msg) {
    (o == Outcome::kFail ? corrupt : unchecked)
        .push_back((rel.index ? "index " : "table ") + rel.name + ": " + msg);
    if (res.details.size() < kMaxDetails) {
      TableFinding f;
      f.table = rel.name;
      f.outcome = o;
      f.message = msg;
      res.details.push_back(std::move(f));
    }
  };
  {
    CancelWatch watch(ctx.cancel, *conn);
    for (const auto& rel : inv.relations) {
      ctx.cancel.ThrowIfCancelled();
      try {
        pqxx::nontransaction tx(*conn);
        if (rel.index) {
          tx.exec_params(
              "select " + fn + "bt_index_check(index => $1::oid::regclass, heapallindexed => true)",
              rel.oid);
          ++res.indexes_checked;
        } else {
          // Corruption comes back as rows (block, offset, attribute, message).
          auto rows = tx.exec_params(
              "select count(*) over (), blkno, offnum, attnum, msg from " + fn +
                  "verify_heapam($1::oid::regclass, on_error_stop => false, check_toast => true,"
                  " skip => 'none') limit 1",
              rel.oid);
          ++res.tables_compared;
          if (!rows.empty()) {
            const auto& r = rows[0];
            std::string where = "block " + r[1].as<std::string>("?");
            if (!r[2].is_null()) where += ", offset " + r[2].as<std::string>();
            if (!r[3].is_null()) where += ", attribute " + r[3].as<std::string>();
            const std::int64_t n = r[0].as<std::int64_t>();
            note(Outcome::kFail, rel,
                 where + ": " + r[4].as<std::string>("") +
                     (n > 1 ? " (" + Plural(n, "problem", "problems") + " in all)" : ""));
          }
        }
      } catch (const pqxx::sql_error& e) {
        if (ctx.cancel.cancelled()) throw Error(ErrorKind::kCancelled, "amcheck cancelled");
        // XX001 data_corrupted, XX002 index_corrupted: amcheck's (and the server's) findings.
        const std::string state = e.sqlstate();
        const bool corruption = state == "XX001" || state == "XX002";
        if (corruption) (rel.index ? res.indexes_checked : res.tables_compared) += 1;
        note(corruption ? Outcome::kFail : Outcome::kError, rel, OneLine(e.what()));
      } catch (const pqxx::broken_connection& e) {
        if (ctx.cancel.cancelled()) throw Error(ErrorKind::kCancelled, "amcheck cancelled");
        throw Error(ErrorKind::kConnect,
                    "lost the restored copy while checking " + rel.name + ": " + OneLine(e.what()));
      }
    }
  }
  if (created && !ctx.cancel.cancelled()) {
    try {
      pqxx::nontransaction(*conn).exec0("drop extension if exists amcheck");
    } catch (const std::exception& e) {
      LogWarn("amcheck: cannot drop the extension it created in the restored copy",
              {{"target", ctx.target.name}, {"error", e.what()}});
    }
  }

  res.tables_mismatched = static_cast<std::int64_t>(corrupt.size());
  std::string counts = Plural(res.tables_compared, "table", "tables") + " and " +
                       Plural(res.indexes_checked, "B-tree index", "B-tree indexes") +
                       " verified (catalogs included)";
  std::string skipped;
  if (inv.unlogged)
    skipped += ", " + Plural(inv.unlogged, "unlogged relation", "unlogged relations");
  if (inv.invalid) skipped += ", " + Plural(inv.invalid, "invalid index", "invalid indexes");
  if (inv.excluded) skipped += ", " + std::to_string(inv.excluded) + " excluded";
  if (!skipped.empty()) counts += "; skipped " + skipped.substr(2);
  if (!corrupt.empty()) {
    res.outcome = Outcome::kFail;
    res.message = corrupt[0];
    for (std::size_t i = 1; i < corrupt.size() && i < kQuoted; ++i)
      res.message += "; " + corrupt[i];
    if (corrupt.size() > 1)
      res.message = Plural(static_cast<std::int64_t>(corrupt.size()), "relation", "relations") +
                    " corrupt: " + res.message;
    if (!unchecked.empty())
      res.message += "; " +
                     Plural(static_cast<std::int64_t>(unchecked.size()), "relation", "relations") +
                     " could not be checked";
    res.message += " (" + counts + ")";
  } else if (!unchecked.empty()) {
    res.outcome = Outcome::kError;
    res.message = Plural(static_cast<std::int64_t>(unchecked.size()), "relation", "relations") +
                  " could not be checked, first " + unchecked[0] + " (" + counts + ")";
  } else if (inv.relations.empty()) {
    res.outcome = Outcome::kError;  // nothing proven
    res.message = "no relation to check in the restored copy";
  } else {
    res.outcome = Outcome::kPass;
    res.message = counts + ": no corruption";
  }
  return res;
}

}  // namespace rw
