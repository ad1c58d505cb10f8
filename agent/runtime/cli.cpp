#include "agent/runtime/cli.h"

#include <cstdio>

#include "version.h"

namespace rw {

int RunCli(int argc, char** argv) {
  (void)argc;
  (void)argv;
  std::printf("restorewatch %s (%s)\n", kVersion, kRevision);
  return 0;
}

}  // namespace rw
