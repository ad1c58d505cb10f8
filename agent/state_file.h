#pragma once
// Helpers for the files of state_dir/<target>/ (defined in agent/drill_history.cpp), shared by
// DrillHistory and the verification ledger (agent/ledger.h). A state file starts with a header
// line and ends with an end marker, so a file cut short anywhere is told from a complete one; it
// is replaced atomically, so a reader never sees a torn one. Thread-safe (no shared state).
#include <toml++/toml.h>

#include <optional>
#include <string>

namespace rw {

// Writes `content` to a temp file beside `path`, fsyncs it and renames it over `path`. Throws
// Error(kIo); a failed write never replaces a good file.
void WriteAtomically(const std::string& path, const std::string& content);
// `body` between the header and the end marker.
std::string Framed(const std::string& body);
// The file's text; nullopt when it does not exist. Throws Error(kIo) when it cannot be read.
std::optional<std::string> ReadState(const std::string& path);
// The TOML of a state file, or nullopt with *problem (one line) when it is empty, truncated (a
// header without the end marker) or does not parse.
std::optional<toml::table> ParseState(const std::string& text, std::string* problem);
// Renames a damaged file to <path>.corrupt-<UTC time> and logs a warning naming the problem and
// what was rebuilt in its place.
void MoveAside(const std::string& path, const std::string& problem, const std::string& rebuilt);

}  // namespace rw
