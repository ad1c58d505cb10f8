#pragma once
// Exact references of logical backups: the `<dump>.restorewatch.json` file that `restorewatch
// dump` writes beside a dump (agent/runtime/dump_cmd.h). It holds, for the snapshot the dump was
// taken in, every table's row count and content hash computed exactly as the checks compute them
// (checks/drill/table_scan.h: HashRows), and a SHA-256 of the dump file (or of every file of a
// directory dump). A drill whose backup has one (BackupInfo::reference_path) compares the restored
// copy with the reference instead of the live source: every table exactly, no churn bounds.
//
// The file (format version 4; versions 2 and 3 differ only in how rows were hashed, HashFormat),
// one JSON object:
//   {"format": "restorewatch-reference", "version": 4, "target": "blog",
//    "system_identifier": "7301...", "database": "blog", "snapshot": "00000003-0000001B-1",
//    "snapshot_time": 1764700000.123, "snapshot_time_utc": "2026-12-02T17:00:00Z",
//    "schema_fingerprint": "<sha256 of the table inventory>", "dump_format": "custom",
//    "dump_files": [{"name": "blog.dump", "size": 1234, "sha256": "<hex>"}],
//    "large_objects": {"count": 0, "hash": "0"},               (absent: not readable then)
//    "tables": [{"name": "public.items", "root": "public.items", "rows": 20000,
//                "hash": "1234...", "method": "record"}]}
// dump_files: one entry named after the dump file for a file dump; for a directory dump every
// regular file inside it, by relative path, sorted by name.
// Version 2: row hashes go through the outer, non-linear hash of checks/drill/table_scan.h.
// Version 1 files (linear sums, blind to values swapped between rows) are refused with a message
// saying to re-take them, never compared.
//
// Pure functions plus file reads; thread-safe. ReferenceState is the drill's shared instance
// (through CheckContext::cache) used by row_count and checksum; thread-safe.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/check.h"
#include "checks/drill/table_scan.h"

namespace rw {

// 4: rows hashed per column, mixed by hashint4extended(0, h); timestamptz, date, interval and the
// other built-ins without a hash function callable on them hashed as a one-element array. 3 (read
// still): those as a one-column record. 2 (read still): the whole record hashed, mixed by
// hashtextextended(h::text, 0). HashFormat in checks/drill/table_scan.h.
constexpr int kReferenceVersion = 4;
// The name of the reference of a dump at `dump_path`.
std::string ReferencePathFor(const std::string& dump_path);

struct ReferenceTable {
  std::string name;  // "schema.table" as TableInfo::name
  std::string root;  // partition root, == name for a plain table
  std::int64_t rows = 0;
  std::string hash = "0";  // decimal sum, as TableScan::hash
  HashMethod method = HashMethod::kRecord;
};

struct DumpFileHash {
  std::string name;  // file name (file dump) or path relative to the directory (directory dump)
  std::uint64_t size = 0;
  std::string sha256;  // lowercase hex
};

struct Reference {
  int version = kReferenceVersion;
  // How this reference's rows were hashed: the copy is hashed the same way.
  HashFormat hash_format() const {
    return version == 2 ? HashFormat::kV2 : version == 3 ? HashFormat::kV3 : HashFormat::kV4;
  }
  std::string target;
  std::string system_identifier;  // empty when the role could not read it
  std::string database;
  std::string snapshot;      // the exported snapshot id pg_dump used
  double snapshot_time = 0;  // Unix seconds: now() in the snapshot's transaction
  // pg_current_snapshot() in that transaction ("xmin:xmax:xip,..."; empty in older references):
  // lets a drill name the differing keys by row-level proof against the live source.
  std::string horizon;
  // Live references only (TakeLiveReference, not written to files): the source's WAL insert
  // position read right after the snapshot was taken: every commit the snapshot sees is before it.
  std::string lsn;
  std::string schema_fingerprint;
  std::string dump_format;  // custom, directory, plain
  std::vector<DumpFileHash> dump_files;
  std::optional<LargeObjectScan> large_objects;  // scanned == true when present
  std::vector<ReferenceTable> tables;            // sorted by name
  const ReferenceTable* Find(const std::string& name) const;
};

// The JSON text of a reference (ends with a newline).
std::string ReferenceToJson(const Reference& r);
// Parses and validates a reference. Throws Error(kBadInput) with a one-line reason naming what is
// wrong ("not JSON: ...", "unsupported version 7 (this restorewatch reads versions 2 to 4)",
// "tables[2]: missing \"hash\"").
Reference ParseReference(const std::string& text);
// Reads and parses `path`. Throws Error(kIo) when it cannot be read, Error(kBadInput) as above
// with the path in front.
Reference LoadReference(const std::string& path);

// SHA-256 of the dump at `path`: one entry for a file, every regular file (recursively, sorted by
// relative path) for a directory. Throws Error(kIo) when a file cannot be read.
std::vector<DumpFileHash> HashDumpFiles(const std::string& path);
// "" when `actual` equals `expected`; else one line naming the first difference, e.g.
// "the dump changed after its reference was written: sha256 of x.dump ab12... != cd34...".
std::string CompareDumpFiles(const std::vector<DumpFileHash>& expected,
                             const std::vector<DumpFileHash>& actual);
// SHA-256 (lowercase hex) of the table inventory: names, roots, columns (name, type) and keys.
std::string SchemaFingerprint(const std::vector<TableInfo>& tables);

// A source session about to take a reference: read-only settings as the drill's source sessions
// (hidden rows raise an error rather than vanish), and no idle-in-transaction limit, since the
// snapshot transaction stays open while pg_dump runs or the copy recovers (each statement keeps
// its timeout).
void PrepareReferenceSession(pqxx::connection& conn);
// The source's system identifier read in `tx` (a subtransaction, so a role that may not read
// pg_control_system() leaves `tx` usable); empty when not readable.
std::string ReadSystemIdentifier(pqxx::dbtransaction& tx);

// In an open REPEATABLE READ transaction `tx` on `conn` (the source): fills ref's schema
// fingerprint, every table's count and content hash (ScanTable) and the large objects. Throws
// Error(kQuery) naming a table that cannot be hashed, kCancelled.
void HashReferenceTables(pqxx::connection& conn, pqxx::dbtransaction& tx,
                         const TargetConfig& target, CancelToken& cancel, Reference* ref);

// An exact reference of the live source, taken now for a physical drill recovered to the same
// point (recovery_target = "snapshot"): one REPEATABLE READ READ ONLY transaction on the source
// takes its snapshot (horizon, time, database, system identifier) and the WAL insert position
// right after it (lsn), calls `on_point` with that head (the source then knows where to recover
// to) and hashes every table in the same snapshot. Throws Error: kUnsupported when the source is
// in recovery (a standby has no insert position), kConnect/kQuery/kCancelled; an exception thrown
// by on_point is passed on.
Reference TakeLiveReference(const TargetConfig& target, CancelToken& cancel,
                            const std::function<void(const Reference& head)>& on_point);

// The drill's comparison against a reference, shared by row_count and checksum: loads the
// reference, checks the dump's file hashes (Prepare, during the restore) and scans every table of
// the restored copy with the reference's hash method (Ensure). Only for ctx.backup.reference_path
// non-empty.
class ReferenceState {
 public:
  struct TableResult {
    const ReferenceTable* ref = nullptr;  // null: only in the restored copy
    std::string name;
    bool in_restored = false;
    std::int64_t rows = 0;
    std::string hash = "0";
    std::string error;              // the restored table could not be hashed
    std::optional<TableInfo> info;  // the restored table's inventory (when in_restored)
  };
  static std::shared_ptr<ReferenceState> For(CheckContext& ctx);
  // Whether the drill compares against a reference: the backup's file beside a dump, or a live
  // reference the copy was recovered to (ctx.exact_point).
  static bool InUse(const CheckContext& ctx);
  // A live reference (TakeLiveReference) the copy was recovered to: no file to load or hash, the
  // identity was checked by the source. `label` names it in messages.
  void Adopt(Reference ref, std::string label);
  // The live reference could not be taken: the comparing checks report `error` as their error.
  void AdoptError(std::exception_ptr error);
  // What the copy is compared against, for messages: the reference file, or the live snapshot.
  std::string Label(const CheckContext& ctx) const;
  // Loads the reference, hashes the dump files and checks that the reference is of this source
  // (its system identifier and database, when the source can be read; otherwise a note); never
  // throws (errors are kept for Ensure).
  void Prepare(CheckContext& ctx);
  // Prepare() if needed, then the restored side's scan (once). Throws Error: kBadInput for a
  // reference that cannot be read or parsed, kIo, kConnect/kQuery for the restored copy. A file
  // hash mismatch is not thrown: see file_problem().
  void Ensure(CheckContext& ctx);
  const Reference& reference() const { return ref_; }
  // Non-empty: the dump does not match the reference's file hashes, or the reference was taken of
  // another cluster or database than the target's source (a fail of the drill).
  const std::string& problem() const { return problem_; }
  // Non-empty: why the reference's identity could not be checked against the source.
  const std::string& identity_note() const { return identity_note_; }
  // By table name: every table of the reference (not excluded) and of the restored copy.
  const std::map<std::string, TableResult>& tables() const { return tables_; }
  const LargeObjectScan& restored_large_objects() const { return restored_lo_; }

 private:
  std::mutex mu_;
  bool prepared_ = false, ensured_ = false;
  std::exception_ptr prepare_error_, ensure_error_;
  Reference ref_;
  std::string problem_, identity_note_, label_;
  std::map<std::string, TableResult> tables_;
  LargeObjectScan restored_lo_;
};

}  // namespace rw
