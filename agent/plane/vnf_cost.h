// VNF cost from measured load (pure functions). The default metric is the paper's:
// remaining processing capacity, normalised to the link-cost range.
#pragma once

#include <cstdint>

namespace anychain::plane {

enum class CostMode : std::uint8_t {
  RemainingCapacity,  // default: range_max * (capacity - load) / capacity; higher is better
  Load,               // range_max * load / capacity; additive "cost" (lower is better)
};

struct CostParams {
  CostMode mode = CostMode::RemainingCapacity;
  double capacity = 0;          // what the instance can process (e.g. packets/s)
  std::uint32_t range_max = 0;  // value at zero load (RemainingCapacity) / at saturation (Load)
};

// Rounded to nearest, clamped to [0, range_max]. capacity <= 0 or NaN load gives 0
// (RemainingCapacity: nothing left) or range_max (Load: saturated).
std::uint32_t vnf_cost(double load, const CostParams& p);

// Damping: returns the cost to announce. The previously announced cost is kept unless the
// fresh one differs by at least `min_change` (absolute), so small oscillations do not flap.
std::uint32_t damp_cost(std::uint32_t announced, std::uint32_t fresh, std::uint32_t min_change);

}  // namespace anychain::plane
