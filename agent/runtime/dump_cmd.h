#pragma once
// `restorewatch dump`: a pg_dump with an exact reference. Opens one REPEATABLE READ READ ONLY
// transaction on the target's source, exports its snapshot, records in it the table inventory's
// fingerprint and every table's row count and content hash exactly as the drill checks compute
// them (checks/drill/table_scan.h), runs `pg_dump --snapshot` while that transaction stays open,
// and writes `<output>.restorewatch.json` (checks/drill/reference.h) with the SHA-256 of the dump's
// file(s).
//
// Files: pg_dump writes `<output>.part` (an in-flight name the pg_dump source skips); after it
// succeeded the dump is hashed, the reference is written (temp file + rename) and only then the
// dump is renamed to `<output>`, so a drill never sees the dump without its reference. On any
// failure the partial dump and temp files are removed.
// Default output: the target's first backup path, `<target>-<UTC YYYYmmddTHHMMSSZ>.dump` (for
// every format; a directory dump is a directory of that name). Exit codes: 0 written, 2 could
// not (one line on stderr). Runs on the main thread.
#include <string>

namespace rw {

struct DumpArgs {
  std::string config_path;
  std::string target;
  std::string format = "custom";  // custom, directory, plain
  std::string output;             // empty: the default above
};

int RunDump(const DumpArgs& args);

}  // namespace rw
