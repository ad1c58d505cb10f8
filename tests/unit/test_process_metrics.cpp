// exporters/process_metrics: the process_* families, read from this very process.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "agent/units.h"
#include "exporters/metrics_exporter.h"
#include "exporters/process_metrics.h"

using namespace rw;

TEST_CASE("process_* families describe this process", "[unit][metrics]") {
  std::map<std::string, MetricFamilyData> by_name;
  for (auto& f : ProcessFamilies()) by_name[f.name] = f;
  for (const char* n :
       {"process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_open_fds", "process_start_time_seconds"}) {
    INFO(n);
    REQUIRE(by_name.count(n) == 1);
    REQUIRE(by_name[n].samples.size() == 1);
    CHECK(by_name[n].samples[0].labels.empty());
  }
  CHECK(by_name["process_cpu_seconds_total"].type == MetricType::kCounter);
  CHECK(by_name["process_resident_memory_bytes"].samples[0].value > 1e6);
  CHECK(by_name["process_virtual_memory_bytes"].samples[0].value >=
        by_name["process_resident_memory_bytes"].samples[0].value);
  // Opening a descriptor is seen.
  const double before = by_name["process_open_fds"].samples[0].value;
  int fd = dup(0);
  REQUIRE(fd >= 0);
  double after = 0;
  for (auto& f : ProcessFamilies())
    if (f.name == "process_open_fds") after = f.samples[0].value;
  close(fd);
  CHECK(after == before + 1);
  // Started before now, not long ago (the test binary runs for minutes at most).
  const double start = by_name["process_start_time_seconds"].samples[0].value;
  CHECK(start <= NowUnix() + 1);
  CHECK(start > NowUnix() - 6 * 3600);
}

TEST_CASE("/metrics carries the process_* families", "[unit][metrics]") {
  MetricsBoard board;
  MetricsExporter exporter(board);
  const std::string text = exporter.Render();
  CHECK(text.find("# TYPE process_cpu_seconds_total counter") != std::string::npos);
  CHECK(text.find("\nprocess_resident_memory_bytes ") != std::string::npos);
}
