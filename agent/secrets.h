#pragma once
// The process-wide secret registry: every password the config loader meets (inline in a
// conninfo, from ${ENV} inside a password keyword, from a password_file) is registered here, and
// Redact() is applied wherever text that may quote a conninfo leaves the process: the logging
// layer (agent/log.cpp) and the conversion of libpq/libpqxx messages into rw::Error
// (agent/pg/pg_conn.cpp). Thread-safe; secrets are never removed (a password rotated by a reload
// must not appear either).
#include <string>

namespace rw {

// Remembers `secret` (and its conninfo-quoted and JSON-escaped spellings). Secrets shorter than
// 4 characters are not registered (masking every "ab" would garble every line); for them only the
// patterns of Redact() apply. Registering the same secret again is a no-op.
void RegisterSecret(const std::string& secret);

// `text` with every registered secret replaced by "***", and also, as a safety net for secrets
// the registry never saw: the value of any `password=` / `sslpassword=` / `PGPASSWORD=` (quoted or
// not, case-insensitive) and the password in a URI's userinfo (`scheme://user:PASSWORD@host`).
std::string Redact(const std::string& text);

// Only the pattern part of Redact() (no registry), for tests.
std::string RedactPatterns(const std::string& text);

}  // namespace rw
