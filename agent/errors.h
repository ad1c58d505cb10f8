#pragma once
// The closed set of operational failures. A finding (a mismatch, a lag) is never an Error: it is
// data in a CheckResult. An Error means a stage could not run; it is converted from library
// exceptions (libpqxx, toml++, the OS) only in the file that wraps that library.
#include <stdexcept>
#include <string>

namespace rw {

enum class ErrorKind {
  kConfig,       // bad configuration or arguments
  kConnect,      // cannot reach a server
  kQuery,        // a statement failed
  kProcess,      // a child process could not start or exited non-zero
  kIo,           // a file system operation failed (missing file, full disk, permissions)
  kTimeout,      // a bounded wait ran out
  kCancelled,    // shutdown or drill timeout asked the work to stop
  kUnsupported,  // input the agent cannot handle (a dump newer than the binaries, a format)
  kBadInput,     // corrupt or unusable backup
};

const char* ErrorKindName(ErrorKind k);

// Message convention (pgBackRest): lowercase, no final period, one line; an optional hint.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, std::string hint = {})
      : std::runtime_error(message), kind_(kind), hint_(std::move(hint)) {}
  ErrorKind kind() const { return kind_; }
  const std::string& hint() const { return hint_; }

 private:
  ErrorKind kind_;
  std::string hint_;
};

}  // namespace rw
