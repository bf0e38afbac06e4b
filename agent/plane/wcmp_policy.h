// WCMP weights for the candidate instances of one service (docs/wcmp-policy.md).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "ospf/lsa.h"

namespace anychain::plane {

// One instance of a service as seen from this router.
struct Candidate {
  std::uint32_t router = 0;       // router hosting the instance
  ospf::VnfInfo info;             // as announced (info.cost is the VNF cost)
  std::uint64_t network_cost = 0; // SPF distance from this router to `router`
  std::uint64_t path_cost = 0;    // network_cost + info.cost
  std::uint32_t link_bottleneck = 0xFFFFFFFFu;  // smallest link metric on the path (max if local)
  bool local = false;
  bool held = false;  // its LSA was withdrawn; kept during the hold-down (plane/hold_down.h)
  bool recovering = false;  // FTC instance frozen for recovery: keeps its buckets, takes nothing new
};

enum class WcmpMode : std::uint8_t {
  // Default. weight = min(VNF cost, smallest link metric on the path): the path's bottleneck
  // residual capacity, with the VNF cost read as remaining capacity (the paper's metric) and
  // link metrics read in the same normalised unit.
  BottleneckResidual,
  // weight = scale / path_cost: for VNF costs that grow with load (additive metric).
  InverseCost,
  // Equal weights over the candidates whose path cost is minimal (plain anycast ECMP).
  EqualCostMultipath,
};

// The policy's names and parameter ranges are the config's (config::Wcmp, checked when the
// file is parsed); daemon/from_config maps them onto this.
struct WcmpConfig {
  WcmpMode mode = WcmpMode::BottleneckResidual;
  bool include_links = true;       // BottleneckResidual: let link metrics bound the weight
  std::uint32_t floor = 0;         // minimum weight given to every candidate
  std::uint32_t inverse_scale = 1'000'000;  // InverseCost numerator
};

// Weights (same order as the candidates). If every weight would be 0 (all instances
// saturated), all candidates get weight 1 so traffic is spread rather than dropped.
std::vector<std::uint32_t> wcmp_weights(std::span<const Candidate> candidates, const WcmpConfig& cfg);

}  // namespace anychain::plane
