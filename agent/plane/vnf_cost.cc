#include "plane/vnf_cost.h"

#include <algorithm>
#include <cmath>

namespace anychain::plane {

std::uint32_t vnf_cost(double load, const CostParams& p) {
  const double range = p.range_max;
  bool bad = !(p.capacity > 0) || std::isnan(load);
  double used = bad ? 1.0 : std::clamp(load / p.capacity, 0.0, 1.0);
  double v = p.mode == CostMode::RemainingCapacity ? range * (1.0 - used) : range * used;
  v = std::clamp(std::round(v), 0.0, range);
  return static_cast<std::uint32_t>(v);
}

std::uint32_t damp_cost(std::uint32_t announced, std::uint32_t fresh, std::uint32_t min_change) {
  std::uint32_t diff = announced > fresh ? announced - fresh : fresh - announced;
  return diff >= min_change ? fresh : announced;
}

}  // namespace anychain::plane
