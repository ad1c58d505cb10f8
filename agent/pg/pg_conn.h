#pragma once
// Connections to PostgreSQL through libpqxx 6.4, and the only place libpqxx exceptions become
// rw::Error. Source sessions are read-only (default_transaction_read_only=on) with
// statement_timeout and lock_timeout, and pin the settings that text and hashing depend on
// (TimeZone=UTC, DateStyle=ISO, extra_float_digits=3, bytea_output=hex, IntervalStyle=postgres,
// lc_monetary=C) so source and restored copy render values alike. A connection is used by one
// thread at a time.
#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "agent/config.h"
#include "agent/errors.h"

namespace rw {

struct SessionLimits {
  Duration connect_timeout = std::chrono::seconds(5);
  Duration statement_timeout = std::chrono::seconds(30);
  Duration lock_timeout = std::chrono::seconds(5);
  bool read_only = true;
  std::string application_name = "restorewatch";
};

// Limits for monitoring sessions and for drill sessions on the source, from a target's config.
SessionLimits MonitorLimits(const TargetConfig& t);
SessionLimits DrillSourceLimits(const TargetConfig& t);

// Opens a connection from the spec's keywords with connect_timeout, application_name and options
// (the pinned settings and limits) set as keywords. Throws Error(kConnect) with libpq's one-line
// reason, redacted (agent/secrets.h): never the password.
std::unique_ptr<pqxx::connection> Connect(const ConnSpec& spec, const SessionLimits& limits);
// A connection to a sandbox (read-write, no statement timeout unless given); `conninfo` is parsed
// by libpq and the session keywords are set the same way.
std::unique_ptr<pqxx::connection> ConnectSandbox(const std::string& conninfo,
                                                 Duration statement_timeout = Duration::zero());

// Runs f, converting pqxx/std exceptions into Error(kQuery or kConnect) prefixed by `what`; the
// message is redacted like Connect()'s.
void WithPgErrors(const std::string& what, const std::function<void()>& f);
// Converts the current exception (inside a catch) into an Error. Rethrows rw::Error unchanged.
[[noreturn]] void RethrowAsError(const std::string& what);

// Quotes an identifier ("schema"."table" from "schema.table" is QualifiedName()).
std::string QuoteIdent(const std::string& ident);
// "schema.table" -> "\"schema\".\"table\"" (splits at the first unquoted dot).
std::string QualifiedName(const std::string& dotted);
// Server major version (e.g. 15) of an open connection.
int ServerMajor(pqxx::connection& c);

}  // namespace rw
