#include "plane/service_plane.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace anychain::plane {

std::vector<ServiceRoute> service_routes(const Topology& topo, const SpfResult& spf, const WcmpConfig& wcmp,
                                         std::size_t* unreachable) {
  std::map<ServiceKey, std::vector<Candidate>> by_service;
  std::size_t lost = 0;
  for (const auto& inst : topo.instances) {
    auto it = topo.router_index.find(inst.router);
    if (it == topo.router_index.end() || spf.dist[it->second] == kUnreachable) {
      ++lost;
      continue;
    }
    Candidate c;
    c.router = inst.router;
    c.info = inst.info;
    c.network_cost = spf.dist[it->second];
    c.path_cost = c.network_cost + inst.info.cost;
    c.link_bottleneck = spf.bottleneck[it->second];
    c.local = it->second == spf.root;
    c.held = inst.held;
    // Mask host bits so that all announcements of one prefix meet in one service.
    std::uint32_t mask = inst.info.service_len == 0 ? 0 : ~std::uint32_t{0} << (32 - inst.info.service_len);
    by_service[ServiceKey{inst.info.service_addr & mask, inst.info.service_len}].push_back(c);
  }
  std::vector<ServiceRoute> out;
  out.reserve(by_service.size());
  for (auto& [key, cands] : by_service) {
    std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.path_cost, a.router, a.info.instance_id) < std::tie(b.path_cost, b.router, b.info.instance_id);
    });
    ServiceRoute r{key, std::move(cands), {}};
    r.weights = wcmp_weights(r.candidates, wcmp);
    out.push_back(std::move(r));
  }
  if (unreachable) *unreachable = lost;
  return out;
}

Result<PlaneView> compute_plane(const ospf::Lsdb& lsdb, const PlaneConfig& cfg, VnfHoldDown* hold,
                                VnfHoldDown::Clock::time_point now) {
  Topology topo = build_topology(lsdb, cfg.area, cfg.vnf_opaque_type);
  std::size_t down = std::count_if(topo.instances.begin(), topo.instances.end(),
                                   [](const Instance& i) { return i.info.down(); });
  if (hold)
    topo.instances = hold->apply(std::move(topo.instances), now);
  else
    std::erase_if(topo.instances, [](const Instance& i) { return i.info.down(); });
  auto s = spf(topo, cfg.self_router);
  if (!s) return unexpected(s.error());
  PlaneView v;
  v.services = service_routes(topo, *s, cfg.wcmp, &v.unreachable_instances);
  v.stats = topo.stats;
  v.routers = topo.router_index.size();
  v.down_instances = down;
  for (std::size_t n = 0; n < topo.nodes.size(); ++n)
    if (topo.nodes[n].kind == NodeKind::Router) v.router_dist.push_back({topo.nodes[n].id, s->dist[n]});
  return v;
}

}  // namespace anychain::plane
