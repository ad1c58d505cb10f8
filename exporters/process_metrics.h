#pragma once
// The standard process_* families of the agent's own process, as Prometheus client libraries
// export them (client_golang's process collector): CPU seconds, resident and virtual memory, open
// and maximum file descriptors, start time. Read from /proc/self at scrape time (a few small file
// reads, no waiting on anything). A value that cannot be read is left out, never reported as 0.
// Thread-safe.
#include <vector>

#include "agent/metrics_model.h"

namespace rw {

std::vector<MetricFamilyData> ProcessFamilies();

}  // namespace rw
