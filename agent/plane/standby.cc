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
                                           std::optional<std::uint8_t> own_live, std::optional<std::uint8_t> own_next) {
  // the reference a held copy is measured against: this router's live incarnation, else the one
  // it would announce (none known: any held copy elsewhere runs the instance, this router never did)
  const std::optional<std::uint8_t> own = own_live ? own_live : own_next;
  std::optional<Candidate> winner;
  auto consider = [&](std::uint32_t router, const ospf::VnfInfo& info, bool held, bool recovering) {
    if (info.instance_id != id || router == self_router || recovering || !info.ftc() || !v.router_usable(router))
      return;
    const auto inc = static_cast<std::uint8_t>(info.incarnation & 0xff);
    if (held && own) {
      // a held copy (its agent restarting, the instance running on) wins over this router's
      // own only with a newer incarnation; over a planned one (not live) also with the same
      // (the planned one is this router's last + 1: the held one replaced it)
      const auto d = static_cast<std::int8_t>(static_cast<std::uint8_t>(inc - *own));
      if (d < 0 || (d == 0 && own_live)) return;
    }
    Candidate c{.router = router, .info = info, .held = held};
    if (!winner || keeps_instance(c, *winner)) winner = c;
  };
  // the candidate, and the announcements the plane passed over for it (this router's own
  // announcement may be the candidate while this router does not run the instance live: an old
  // LSA of it re-flooded after a restart, whose incarnation the others' may not exceed)
  for (const auto& s : v.services)
    for (const auto& c : s.candidates) consider(c.router, c.info, c.held, c.recovering);
  for (const auto& x : v.superseded) consider(x.router, x.info, x.held, x.recovering);
  if (!winner) return std::nullopt;
  if (own_live && !winner->held && !claim_wins(winner->info.incarnation & 0xff, winner->router, *own_live, self_router))
    return std::nullopt;
  return winner->router;
}

}  // namespace anychain::plane
