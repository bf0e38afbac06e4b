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

std::optional<std::uint32_t> superseded_by(const PlaneView& v, std::uint32_t self_router, std::uint32_t id,
                                           std::optional<std::uint8_t> own_live) {
  std::optional<std::uint32_t> winner;
  std::uint8_t winner_inc = 0;
  auto wins = [](std::uint8_t inc, std::uint32_t router, std::uint8_t than_inc, std::uint32_t than_router) {
    const auto d = static_cast<std::int8_t>(static_cast<std::uint8_t>(inc - than_inc));
    return d > 0 || (d == 0 && router < than_router);
  };
  for (const auto& s : v.services)
    for (const auto& c : s.candidates) {
      if (c.info.instance_id != id || c.router == self_router || c.recovering || c.held || !c.info.ftc() ||
          !v.router_usable(c.router))
        continue;
      const auto inc = static_cast<std::uint8_t>(c.info.incarnation);
      if (!winner || wins(inc, c.router, winner_inc, *winner)) {
        winner = c.router;
        winner_inc = inc;
      }
    }
  if (!winner || (own_live && !wins(winner_inc, *winner, *own_live, self_router))) return std::nullopt;
  return winner;
}

}  // namespace anychain::plane
