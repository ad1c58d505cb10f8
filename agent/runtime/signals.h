#pragma once
// The signals the agent's verbs handle themselves (SIGINT, SIGTERM, SIGHUP). BlockShutdownSignals()
// must run on the main thread before any other thread starts, so that only sigwait()/sigtimedwait()
// on ShutdownSignals() sees them; it also ignores SIGPIPE (a closed HTTP client).
#include <signal.h>

namespace rw {

sigset_t ShutdownSignals();
void BlockShutdownSignals();

}  // namespace rw
