#include "agent/runtime/cli.h"

int main(int argc, char** argv) { return rw::RunCli(argc, argv); }
