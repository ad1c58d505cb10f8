// The command line of restorewatch_bench (bench/drill_bench_args.h).
#include <catch2/catch.hpp>

#include "bench/drill_bench_args.h"

using rw::bench::DrillBenchArgs;
using rw::bench::ParseDrillBenchArgs;

TEST_CASE("drill bench: defaults, presets and flags", "[unit][bench_usage]") {
  DrillBenchArgs a;
  REQUIRE(ParseDrillBenchArgs({}, &a) == "");
  CHECK(a.scale == 20);
  CHECK(a.WideRows() == 500000);
  CHECK(a.runs == 3);
  CHECK(a.baseline);
  CHECK(a.physical);
  CHECK(a.dir == "/var/tmp");
  CHECK_FALSE(a.all);

  REQUIRE(ParseDrillBenchArgs(
              {"--quick", "--runs", "1", "--no-baseline", "--no-physical", "--dir", "/tmp/b"},
              &a) == "");
  CHECK(a.quick);
  CHECK(a.scale == 2);
  CHECK(a.WideRows() == 50000);
  CHECK(a.runs == 1);
  CHECK_FALSE(a.baseline);
  CHECK_FALSE(a.physical);
  CHECK(a.dir == "/tmp/b");

  REQUIRE(ParseDrillBenchArgs({"--all", "--no-physical"}, &a) == "");
  CHECK(a.all);
  CHECK_FALSE(a.physical);
  CHECK(a.scale == 20);

  REQUIRE(ParseDrillBenchArgs({"--large"}, &a) == "");
  CHECK_FALSE(a.all);
  CHECK(a.scale == 250);
  CHECK(a.WideRows() == 6250000);

  // An explicit scale or row count wins over a preset.
  REQUIRE(ParseDrillBenchArgs({"--quick", "--scale", "5", "--wide-rows", "1000"}, &a) == "");
  CHECK(a.scale == 5);
  CHECK(a.WideRows() == 1000);
}

TEST_CASE("drill bench: bad arguments are one-line errors naming them", "[unit][bench_usage]") {
  DrillBenchArgs a;
  a.runs = 9;
  CHECK(ParseDrillBenchArgs({"--runs"}, &a) == "--runs needs a value");
  CHECK(ParseDrillBenchArgs({"--runs", "0"}, &a) ==
        "--runs must be a whole number from 1 to 100, not \"0\"");
  CHECK(ParseDrillBenchArgs({"--scale", "2x"}, &a) ==
        "--scale must be a whole number from 1 to 100000, not \"2x\"");
  CHECK(ParseDrillBenchArgs({"--fast"}, &a) == "unknown argument \"--fast\"");
  CHECK(ParseDrillBenchArgs({"--dir"}, &a) == "--dir needs a directory");
  CHECK(ParseDrillBenchArgs({"--quick", "--large"}, &a) ==
        "--quick and --large exclude each other");
  CHECK(a.runs == 9);  // untouched on error
}
