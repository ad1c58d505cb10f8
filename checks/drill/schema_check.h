#pragma once
// schema: the restored copy's catalog against the source's: schemas, tables (kind, partitioning),
// columns (type, not null, default, identity, generated), constraints (primary, unique, foreign
// key, check, exclusion: by pg_get_constraintdef), valid indexes (pg_get_indexdef), triggers,
// sequences (type and parameters, not their current value), views and materialized views
// (pg_get_viewdef), functions and procedures (signature, result, language, volatility, md5 of the
// body), enum/domain/composite types and extensions (name, schema, version). System schemas,
// objects that belong to an extension and relations matching exclude_tables are left out.
// Missing from the restored copy or different: fail (an extension's version differing: warn, a
// restore may install a newer default version); present only in the restored copy: warn. A
// missing table's columns, constraints, indexes and triggers are folded into its finding. A table
// missing from the copy but absent from the activity sample before the backup (created after it,
// e.g. a new partition) is a warning.
// Runs after the restore only. Threads: as Check.
#include <map>
#include <set>
#include <string>

#include "agent/check.h"

namespace rw {

class SchemaCheck : public Check {
 public:
  std::string name() const override { return "schema"; }
  CheckResult Run(CheckContext& ctx) override;
};

// One catalog object: "kind schema.name" -> definition and owning table (for folding).
struct SchemaObject {
  std::string definition;
  std::string owner;  // "table schema.name" for columns, constraints, indexes, triggers; else ""
};
using SchemaCatalog = std::map<std::string, SchemaObject>;

// Compares two catalogs into a CheckResult (details per object). A missing table named in
// created_since ("schema.table": absent from the activity sample before the backup) is only a
// warning. With majors_differ (source and sandbox run different PostgreSQL majors, which may
// deparse views differently) a view definition that differs is only a warning. Pure; exposed for
// tests.
CheckResult CompareSchemas(const SchemaCatalog& source, const SchemaCatalog& restored,
                           const std::set<std::string>& created_since = {},
                           bool majors_differ = false);

}  // namespace rw
