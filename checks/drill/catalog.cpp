#include "checks/drill/catalog.h"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/live/table_activity_collector.h"

namespace rw {

std::unique_ptr<pqxx::connection> ConnectDrillSource(const CheckContext& ctx) {
  SessionLimits limits = DrillSourceLimits(ctx.target);
  limits.application_name = "restorewatch_drill";
  auto c = Connect(ctx.target.source, limits);
  // As pg_dump does: a table whose row-level security would hide rows from this role raises an
  // error instead of silently returning fewer rows (a false count or checksum mismatch).
  WithPgErrors("cannot set up the source session",
               [&] { pqxx::nontransaction(*c).exec0("set row_security = off"); });
  return c;
}

std::unique_ptr<pqxx::connection> ConnectRestored(const CheckContext& ctx) {
  if (ctx.restored_conninfo.empty())
    throw Error(ErrorKind::kQuery, "the restored copy is not available yet");
  return ConnectSandbox(ctx.restored_conninfo);
}

bool MatchesAny(const std::string& name, const std::vector<std::string>& globs) {
  for (const auto& g : globs)
    if (fnmatch(g.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

std::string TableInfo::Sql() const { return QuoteIdent(schema) + "." + QuoteIdent(table); }

const ColumnInfo* TableInfo::Column(const std::string& n) const {
  for (const auto& c : columns)
    if (c.name == n) return &c;
  return nullptr;
}

std::vector<TableInfo> ListTables(pqxx::transaction_base& tx,
                                  const std::vector<std::string>& exclude) {
  std::map<std::string, TableInfo> by_oid;
  WithPgErrors("cannot list tables", [&] {
    // Plain tables and leaf partitions of user schemas, not temporary, not an extension's own.
    const std::string kRels =
        "select c.oid::text, n.nspname, c.relname, rn.nspname, r.relname,"
        " pg_relation_size(c.oid)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " left join pg_class r"
        "   on r.oid = (case when c.relispartition then pg_partition_root(c.oid)::oid end)"
        " left join pg_namespace rn on rn.oid = r.relnamespace"
        " where c.relkind = 'r' and c.relpersistence <> 't'"
        " and n.nspname not in ('pg_catalog', 'information_schema')"
        " and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
        " and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass"
        "   and d.objid = c.oid and d.deptype = 'e')";
    for (const auto& row : tx.exec(kRels)) {
      TableInfo t;
      t.schema = row[1].as<std::string>();
      t.table = row[2].as<std::string>();
      t.name = ActivityTableKey(t.schema, t.table);
      t.root = row[4].is_null()
                   ? t.name
                   : ActivityTableKey(row[3].as<std::string>(), row[4].as<std::string>());
      t.bytes = row[5].as<std::int64_t>(0);
      if (MatchesAny(t.name, exclude) || MatchesAny(t.root, exclude)) continue;
      by_oid.emplace(row[0].as<std::string>(), std::move(t));
    }
    if (by_oid.empty()) return;
    for (const auto& row :
         tx.exec("select a.attrelid::text, a.attname, format_type(a.atttypid, a.atttypmod),"
                 " a.attcollation <> 0, exists (select 1 from pg_type t join pg_type b"
                 "   on b.oid in (t.oid, t.typelem, t.typbasetype) where t.oid = a.atttypid"
                 "   and (b.typtype = 'e' or (b.typnamespace = 'pg_catalog'::regnamespace"
                 "   and b.typname ~ '^reg'))),"
                 " a.atttypid::int8, (select t.typcategory = 'A' from pg_type t"
                 "   where t.oid = a.atttypid)"
                 " from pg_attribute a join pg_class c on c.oid = a.attrelid"
                 " where c.relkind = 'r' and a.attnum > 0 and not a.attisdropped"
                 " and c.relnamespace <> 'pg_catalog'::regnamespace")) {
      auto it = by_oid.find(row[0].as<std::string>());
      if (it != by_oid.end())
        it->second.columns.push_back({row[1].as<std::string>(), row[2].as<std::string>(),
                                      row[3].as<bool>(), row[4].as<bool>(),
                                      static_cast<std::uint32_t>(row[5].as<std::int64_t>()),
                                      row[6].as<bool>(false)});
    }
    for (const auto& row :
         tx.exec("select con.conrelid::text, a.attname, format_type(a.atttypid, a.atttypmod),"
                 " a.attcollation <> 0 from pg_constraint con"
                 " cross join lateral unnest(con.conkey) with ordinality as k(attnum, ord)"
                 " join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum"
                 " where con.contype = 'p' order by con.conrelid, k.ord")) {
      auto it = by_oid.find(row[0].as<std::string>());
      if (it != by_oid.end()) {
        it->second.key.push_back(
            {row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<bool>()});
        it->second.key_is_primary = true;
      }
    }
    // Without a primary key: a unique, valid, immediate index over NOT NULL columns identifies
    // rows as well (rows of such a table are never NULL in those columns).
    std::string current;
    std::string chosen_index;
    for (const auto& row :
         tx.exec("with u as (select i.indrelid, i.indexrelid, i.indkey::int2[] as cols"
                 "  from pg_index i join pg_class c on c.oid = i.indrelid"
                 "  where c.relkind = 'r' and i.indisunique and i.indisvalid and i.indimmediate"
                 "  and i.indpred is null and i.indexprs is null and not i.indisprimary"
                 "  and c.relnamespace <> 'pg_catalog'::regnamespace"
                 "  and not exists (select 1 from pg_constraint p where p.conrelid = i.indrelid"
                 "    and p.contype = 'p')"
                 "  and not exists (select 1 from pg_attribute a where a.attrelid = i.indrelid"
                 "    and a.attnum = any (i.indkey::int2[]) and not a.attnotnull)),"
                 " best as (select distinct on (indrelid) indrelid, indexrelid, cols from u"
                 "  order by indrelid, cardinality(cols), indexrelid)"
                 " select b.indrelid::text, a.attname, format_type(a.atttypid, a.atttypmod),"
                 " a.attcollation <> 0 from best b"
                 " cross join lateral unnest(b.cols) with ordinality as k(attnum, ord)"
                 " join pg_attribute a on a.attrelid = b.indrelid and a.attnum = k.attnum"
                 " order by b.indrelid, k.ord")) {
      auto it = by_oid.find(row[0].as<std::string>());
      if (it != by_oid.end() && !it->second.key_is_primary)
        it->second.key.push_back(
            {row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<bool>()});
    }
  });
  std::vector<TableInfo> out;
  out.reserve(by_oid.size());
  for (auto& [oid, t] : by_oid) {
    std::sort(t.columns.begin(), t.columns.end(),
              [](const ColumnInfo& a, const ColumnInfo& b) { return a.name < b.name; });
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const TableInfo& a, const TableInfo& b) { return a.name < b.name; });
  return out;
}

CancelWatch::CancelWatch(CancelToken& cancel, pqxx::connection& conn) {
  thread_ = std::thread([this, &cancel, &conn] {
    std::unique_lock<std::mutex> lk(mu_);
    while (!done_) {
      if (cancel.cancelled()) {
        lk.unlock();
        try {
          conn.cancel_query();
        } catch (...) {
          // Best effort: the statement ends anyway by its statement_timeout.
        }
        return;
      }
      cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return done_; });
    }
  });
}

CancelWatch::~CancelWatch() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string FormatAge(double seconds) {
  return FormatDuration(std::chrono::seconds(static_cast<std::int64_t>(std::llround(seconds))));
}

}  // namespace rw
