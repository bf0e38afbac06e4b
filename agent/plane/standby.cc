#include "plane/standby.h"

#include <algorithm>
#include <map>
#include <set>

namespace anychain::plane {

std::vector<FailedInstance> failed_ftc_instances(const PlaneView& v) {
  std::set<std::uint32_t> live;
  std::map<std::uint32_t, FailedInstance> frozen;
  for (const auto& s : v.services)
    for (const auto& c : s.candidates) {
      if (!c.recovering) {
        live.insert(c.info.instance_id);
        continue;
      }
      if (!c.info.ftc()) continue;
      frozen.try_emplace(c.info.instance_id,
                         FailedInstance{c.info.instance_id, c.router, c.info, !v.router_usable(c.router)});
    }
  std::vector<FailedInstance> out;
  for (auto& [id, f] : frozen)
    if (!live.contains(id)) out.push_back(std::move(f));
  return out;
}

std::optional<std::uint32_t> acting_standby(const PlaneView& v, const FailedInstance& f) {
  std::optional<std::uint32_t> best;
  for (const auto& s : v.standbys)
    if (s.instance_id == f.id && s.reachable && s.router != f.router && (!best || s.router < *best)) best = s.router;
  return best;
}

}  // namespace anychain::plane
