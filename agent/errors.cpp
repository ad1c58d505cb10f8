#include "agent/errors.h"

namespace rw {

const char* ErrorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kConnect:
      return "connect";
    case ErrorKind::kQuery:
      return "query";
    case ErrorKind::kProcess:
      return "process";
    case ErrorKind::kIo:
      return "io";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kCancelled:
      return "cancelled";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kBadInput:
      return "bad_input";
  }
  return "unknown";
}

}  // namespace rw
