#include "agent/pg/pg_conn.h"

#include <sstream>

#include "agent/pg/conninfo.h"
#include "agent/secrets.h"

namespace rw {
namespace {

// Settings every session pins, so values render (and hash) alike on source and restored copy.
const char* kPinned =
    " -c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3"
    " -c bytea_output=hex -c lc_monetary=C";

// A libpq/libpqxx message made fit for an Error: one line, and redacted (libpq may quote the
// conninfo it was given, password included).
std::string OneLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return Redact(s);
}

// The session settings go in as keywords (replacing any the user gave), never as text appended
// to a conninfo: a URI cannot take key=value text. The user's own options come first, so ours
// win where both set the same parameter.
std::string SessionConnInfo(ConnKeywords kw, long connect_timeout_s,
                            const std::string& application_name, const std::string& options) {
  const std::string* user_options = FindKeyword(kw, "options");
  const std::string merged =
      user_options != nullptr && !user_options->empty() ? *user_options + " " + options : options;
  SetKeyword(&kw, "connect_timeout", std::to_string(connect_timeout_s));
  SetKeyword(&kw, "application_name", application_name);
  SetKeyword(&kw, "options", merged);
  return FormatConnInfo(kw);
}

long Ms(Duration d) { return static_cast<long>(d.count()); }

}  // namespace

SessionLimits MonitorLimits(const TargetConfig& t) {
  SessionLimits l;
  l.connect_timeout = t.connect_timeout;
  l.statement_timeout = t.statement_timeout;
  l.lock_timeout = t.lock_timeout;
  return l;
}

SessionLimits DrillSourceLimits(const TargetConfig& t) {
  SessionLimits l = MonitorLimits(t);
  l.statement_timeout = t.drill_statement_timeout;
  return l;
}

std::unique_ptr<pqxx::connection> Connect(const ConnSpec& spec, const SessionLimits& limits) {
  std::ostringstream opts;
  opts << kPinned << " -c statement_timeout=" << Ms(limits.statement_timeout)
       << " -c lock_timeout=" << Ms(limits.lock_timeout)
       << " -c idle_in_transaction_session_timeout="
       << std::max<long>(Ms(limits.statement_timeout), 60000);
  if (limits.read_only) opts << " -c default_transaction_read_only=on";
  long ct = std::max<long>(1, static_cast<long>((limits.connect_timeout.count() + 999) / 1000));
  const std::string ci =
      SessionConnInfo(spec.ForLibpq(), ct, limits.application_name, opts.str().substr(1));
  try {
    auto c = std::make_unique<pqxx::connection>(ci);
    return c;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kConnect,
                "cannot connect to " + spec.Redacted() + ": " + OneLine(e.what()));
  }
}

std::unique_ptr<pqxx::connection> ConnectSandbox(const std::string& conninfo,
                                                 Duration statement_timeout) {
  std::string opts = kPinned + 1;  // without the leading space
  if (statement_timeout.count() > 0)
    opts += " -c statement_timeout=" + std::to_string(Ms(statement_timeout));
  ConnKeywords kw;
  std::string why;
  if (!ParseConnInfo(conninfo, &kw, &why))
    throw Error(ErrorKind::kConnect, "cannot connect to the sandbox: malformed conninfo: " + why);
  const std::string ci = SessionConnInfo(std::move(kw), 10, "restorewatch", opts);
  try {
    return std::make_unique<pqxx::connection>(ci);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kConnect, "cannot connect to the sandbox: " + OneLine(e.what()));
  }
}

void RethrowAsError(const std::string& what) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw Error(ErrorKind::kConnect, what + ": connection lost: " + OneLine(e.what()));
  } catch (const pqxx::sql_error& e) {
    // 57014 query_canceled: statement_timeout (or a cancel request) fired.
    ErrorKind kind = e.sqlstate() == "57014" ? ErrorKind::kTimeout : ErrorKind::kQuery;
    throw Error(kind, what + ": " + OneLine(e.what()));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kQuery, what + ": " + OneLine(e.what()));
  }
}

void WithPgErrors(const std::string& what, const std::function<void()>& f) {
  try {
    f();
  } catch (...) {
    RethrowAsError(what);
  }
}

std::string QuoteIdent(const std::string& ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QualifiedName(const std::string& dotted) {
  // Split at the first dot outside double quotes.
  bool in_q = false;
  for (size_t i = 0; i < dotted.size(); ++i) {
    if (dotted[i] == '"') in_q = !in_q;
    if (dotted[i] == '.' && !in_q) {
      auto unq = [](std::string s) {
        if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
          std::string r;
          for (size_t j = 1; j + 1 < s.size(); ++j) {
            r += s[j];
            if (s[j] == '"' && j + 2 < s.size() && s[j + 1] == '"') ++j;
          }
          return r;
        }
        return s;
      };
      return QuoteIdent(unq(dotted.substr(0, i))) + "." + QuoteIdent(unq(dotted.substr(i + 1)));
    }
  }
  return QuoteIdent(dotted);
}

int ServerMajor(pqxx::connection& c) { return c.server_version() / 10000; }

}  // namespace rw
