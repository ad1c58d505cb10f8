#pragma once
// The command line: run, verify, check-config, demo, --version, --help. Returns the process exit
// code (documented in --help and README).
namespace rw {
int RunCli(int argc, char** argv);
}
