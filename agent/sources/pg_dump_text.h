#pragma once
// Text handling for pg_dump restores: reading a (possibly compressed) plain dump line by line,
// finding the roles it names, and reading pg_restore's and psql's error output. Pure functions
// and one streaming reader; thread-safe (each call owns its child process).
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/units.h"

namespace rw::pgdump {

// Calls on_line for each line (without the newline) of `path`, decompressed by the program at
// `decompressor` ("gzip", "zstd" or "lz4" as an absolute path; empty: read the file as is), until
// on_line returns false or the text ends. Returns empty on success or a one-line problem (the file
// cannot be opened, the decompressor failed). Throws Error(kCancelled) or Error(kTimeout).
std::string ForEachLine(const std::string& path, const std::string& decompressor,
                        const std::function<bool(const std::string&)>& on_line,
                        CancelToken* cancel = nullptr, Duration timeout = std::chrono::hours(2));
// The first max_bytes of the (decompressed) text; empty on any problem.
std::string ReadHead(const std::string& path, const std::string& decompressor,
                     std::size_t max_bytes);

// Collects the roles a plain dump's statements name: ALTER ... OWNER TO r, GRANT ... TO r,
// REVOKE ... FROM r, ALTER DEFAULT PRIVILEGES FOR ROLE r, CREATE POLICY ... TO r, CREATE USER
// MAPPING FOR r, ALTER ROLE r, SET SESSION AUTHORIZATION 'r'. COPY data is skipped; PUBLIC,
// CURRENT_USER, SESSION_USER and CURRENT_ROLE are not roles.
class RoleScanner {
 public:
  void Line(const std::string& line);
  const std::set<std::string>& roles() const { return roles_; }

 private:
  bool in_copy_ = false;
  std::set<std::string> roles_;
};
// The roles named in one SQL statement line (helper of RoleScanner, exposed for tests).
std::vector<std::string> RolesInStatement(const std::string& line);

// One error a restore tool reported: its first line, and that line with the lines that follow it
// (server DETAIL/HINT, "Command was: ..."), which an allow-list entry may also match.
struct ToolError {
  std::string line;
  std::string context;
};
// pg_restore's stderr: "pg_restore: error: ..." blocks. ignored_count is set from
// "pg_restore: warning: errors ignored on restore: N" (-1 when absent: the run did not get to the
// end, or had no errors).
std::vector<ToolError> ParsePgRestoreErrors(const std::string& err, int* ignored_count);
// psql's stderr: "psql:FILE:LINE: ERROR: ..." (also FATAL, PANIC, and psql's own "error:") and
// "psql: error: ..." blocks,
// plus a decompressor's own complaints ("gzip: ...").
std::vector<ToolError> ParsePsqlErrors(const std::string& err);
// True when an allow-list entry is a substring of the error's context.
bool Allowed(const ToolError& e, const std::vector<std::string>& allow);
// Splits errors by the allow-list: allowed ones' lines are appended to *accepted, the rest are
// returned in order.
std::vector<ToolError> RejectedErrors(const std::vector<ToolError>& errors,
                                      const std::vector<std::string>& allow,
                                      std::vector<std::string>* accepted);
// Up to n error lines joined with " | ".
std::string JoinFirst(const std::vector<ToolError>& errors, std::size_t n);

}  // namespace rw::pgdump
