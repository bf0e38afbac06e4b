#include "plane/wcmp_policy.h"

#include <algorithm>
#include <string>

namespace anychain::plane {

std::vector<std::uint32_t> wcmp_weights(std::span<const Candidate> cands, const WcmpConfig& cfg) {
  std::vector<std::uint32_t> w(cands.size(), 0);
  switch (cfg.mode) {
    case WcmpMode::BottleneckResidual:
      for (std::size_t i = 0; i < cands.size(); ++i) {
        std::uint32_t x = cands[i].info.cost;
        if (cfg.include_links && !cands[i].local) x = std::min(x, cands[i].link_bottleneck);
        w[i] = x;
      }
      break;
    case WcmpMode::InverseCost:
      for (std::size_t i = 0; i < cands.size(); ++i) {
        std::uint64_t c = std::max<std::uint64_t>(cands[i].path_cost, 1);
        w[i] = static_cast<std::uint32_t>(std::max<std::uint64_t>(cfg.inverse_scale / c, 1));
      }
      break;
    case WcmpMode::EqualCostMultipath: {
      std::uint64_t best = ~std::uint64_t{0};
      for (const auto& c : cands) best = std::min(best, c.path_cost);
      for (std::size_t i = 0; i < cands.size(); ++i) w[i] = cands[i].path_cost == best ? 1 : 0;
      break;
    }
  }
  for (auto& x : w) x = std::max(x, cfg.floor);
  if (!cands.empty() && std::all_of(w.begin(), w.end(), [](auto x) { return x == 0; }))
    std::fill(w.begin(), w.end(), 1u);
  return w;
}

}  // namespace anychain::plane
