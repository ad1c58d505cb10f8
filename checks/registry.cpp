#include "checks/registry.h"

namespace rw {

// Rows are added as checks land, one per file in checks/.
std::vector<std::unique_ptr<Check>> MakeDrillChecks(const ChecksConfig& config) {
  (void)config;
  std::vector<std::unique_ptr<Check>> out;
  return out;
}

std::vector<std::unique_ptr<Collector>> MakeCollectors(const TargetConfig& target) {
  (void)target;
  std::vector<std::unique_ptr<Collector>> out;
  return out;
}

}  // namespace rw
