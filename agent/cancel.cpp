#include "agent/cancel.h"

#include "agent/errors.h"

namespace rw {

void CancelToken::ThrowIfCancelled() const {
  if (cancelled()) throw Error(ErrorKind::kCancelled, "cancelled");
}

}  // namespace rw
