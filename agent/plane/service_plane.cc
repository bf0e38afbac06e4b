#include "plane/service_plane.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace anychain::plane {

bool claim_wins(std::uint32_t inc_a, std::uint32_t router_a, std::uint32_t inc_b, std::uint32_t router_b) {
  const auto d = static_cast<std::int8_t>(static_cast<std::uint8_t>(inc_a - inc_b));
  return d > 0 || (d == 0 && router_a < router_b);
}

bool keeps_instance(const Candidate& a, const Candidate& b) {
  if (a.recovering != b.recovering) return b.recovering;
  const std::uint32_t ia = a.info.incarnation & 0xff;
  const std::uint32_t ib = b.info.incarnation & 0xff;
  if (ia != ib) return claim_wins(ia, a.router, ib, b.router);
  if (a.held != b.held) return b.held;
  return a.router < b.router;
}

std::vector<ServiceRoute> service_routes(const Topology& topo, const SpfResult& spf, const WcmpConfig& wcmp,
                                         std::size_t* unreachable, std::vector<SupersededAd>* superseded) {
  // one candidate per instance id: the fast path has one entry per id (ac_instances), and two
  // routers that each kept a different one would send the instance's packets to each other
  std::map<std::uint32_t, Candidate> by_id;
  std::vector<SupersededAd> losers;
  std::size_t lost = 0;
  for (const auto& inst : topo.instances) {
    auto it = topo.router_index.find(inst.router);
    const bool reach = it != topo.router_index.end() && spf.dist[it->second] != kUnreachable;
    if (!reach && !inst.recovering) {
      ++lost;
      continue;
    }
    Candidate c;
    c.router = inst.router;
    c.info = inst.info;
    // a recovering instance of a dead router keeps its buckets (no route to it is needed: its
    // packets are dropped until the replacement is live)
    c.network_cost = reach ? spf.dist[it->second] : kUnreachable;
    c.path_cost = reach ? c.network_cost + inst.info.cost : kUnreachable;
    c.link_bottleneck = reach ? spf.bottleneck[it->second] : 0;
    c.local = reach && it->second == spf.root;
    c.held = inst.held;
    c.recovering = inst.recovering;
    auto [it2, fresh] = by_id.try_emplace(c.info.instance_id, c);
    if (fresh) continue;
    Candidate& kept = it2->second;
    if (keeps_instance(c, kept)) std::swap(c, kept);
    losers.push_back({c.router, c.info, c.held, c.recovering, 0});
  }
  std::map<ServiceKey, std::vector<Candidate>> by_service;
  for (auto& [id, c] : by_id) {
    // Mask host bits so that all announcements of one prefix meet in one service.
    std::uint32_t mask = c.info.service_len == 0 ? 0 : ~std::uint32_t{0} << (32 - c.info.service_len);
    by_service[ServiceKey{c.info.service_addr & mask, c.info.service_len}].push_back(c);
  }
  for (auto& l : losers) l.by = by_id.at(l.info.instance_id).router;
  std::sort(losers.begin(), losers.end(), [](const SupersededAd& a, const SupersededAd& b) {
    return std::tie(a.info.instance_id, a.router) < std::tie(b.info.instance_id, b.router);
  });
  std::vector<ServiceRoute> out;
  out.reserve(by_service.size());
  for (auto& [key, cands] : by_service) {
    std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.path_cost, a.router, a.info.instance_id) < std::tie(b.path_cost, b.router, b.info.instance_id);
    });
    ServiceRoute r{key, std::move(cands), {}};
    // WCMP over the instances that can take flows; a recovering one gets weight 0 here (the
    // dataplane keeps the buckets it had: daemon/plane_sync)
    std::vector<Candidate> usable;
    for (const auto& c : r.candidates)
      if (!c.recovering) usable.push_back(c);
    auto w = wcmp_weights(usable, wcmp);
    r.weights.reserve(r.candidates.size());
    std::size_t k = 0;
    for (const auto& c : r.candidates) r.weights.push_back(c.recovering ? 0 : w[k++]);
    out.push_back(std::move(r));
  }
  if (unreachable) *unreachable = lost;
  if (superseded) *superseded = std::move(losers);
  return out;
}

Result<PlaneView> compute_plane(const ospf::Lsdb& lsdb, const PlaneConfig& cfg, VnfHoldDown* hold,
                                VnfHoldDown::Clock::time_point now) {
  Topology topo = build_topology(lsdb, cfg.area, cfg.vnf_opaque_type);
  std::size_t down = std::count_if(topo.instances.begin(), topo.instances.end(),
                                   [](const Instance& i) { return i.info.down(); });
  auto s = spf(topo, cfg.self_router);  // routers and networks only: the instances do not change it
  if (!s) return unexpected(s.error());
  std::set<std::uint32_t> detected;  // routers whose endpoint the detector declared down
  if (!cfg.failed_endpoints.empty()) {
    const std::set<std::uint32_t> eps(cfg.failed_endpoints.begin(), cfg.failed_endpoints.end());
    for (const auto* list : {&topo.instances, &topo.standbys})
      for (const auto& i : *list)
        if (eps.contains(i.info.nsh_endpoint) && i.router != cfg.self_router) detected.insert(i.router);
  }
  auto reachable = [&](std::uint32_t router) {
    auto it = topo.router_index.find(router);
    return it != topo.router_index.end() && s->dist[it->second] != kUnreachable && !detected.contains(router);
  };
  if (hold) {
    topo.instances = hold->apply(std::move(topo.instances), now, reachable);
  } else {
    std::erase_if(topo.instances, [](const Instance& i) { return i.info.down(); });
  }
  PlaneView v;
  v.services = service_routes(topo, *s, cfg.wcmp, &v.unreachable_instances, &v.superseded);
  v.stats = topo.stats;
  v.routers = topo.router_index.size();
  v.down_instances = down;
  for (std::size_t n = 0; n < topo.nodes.size(); ++n)
    if (topo.nodes[n].kind == NodeKind::Router) v.router_dist.push_back({topo.nodes[n].id, s->dist[n]});
  for (const auto& sb : topo.standbys) v.standbys.push_back({sb.router, sb.info.instance_id, reachable(sb.router)});
  std::sort(v.standbys.begin(), v.standbys.end());
  v.detected_down.assign(detected.begin(), detected.end());
  return v;
}

bool PlaneView::router_usable(std::uint32_t router) const {
  if (std::binary_search(detected_down.begin(), detected_down.end(), router)) return false;
  for (const auto& r : router_dist)
    if (r.router_id == router) return r.dist != kUnreachable;
  return false;
}

}  // namespace anychain::plane
