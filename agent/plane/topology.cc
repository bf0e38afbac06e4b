#include "plane/topology.h"

#include <algorithm>
#include <queue>
#include <tuple>
#include <unordered_set>

#include <fmt/format.h>

namespace anychain::plane {
namespace {

struct ParsedRouter {
  std::uint32_t id;
  ospf::RouterLsa lsa;
};

std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) { return (std::uint64_t{a} << 32) | b; }

}  // namespace

std::size_t Topology::edge_count() const {
  std::size_t n = 0;
  for (const auto& a : adj) n += a.size();
  return n;
}

Topology build_topology(const ospf::Lsdb& lsdb, std::uint32_t area, std::uint8_t vnf_opaque_type) {
  Topology t;
  std::vector<ParsedRouter> routers;
  std::vector<std::pair<std::uint32_t, ospf::NetworkLsa>> networks;
  std::vector<Instance> vnfs;
  const auto& entries = lsdb.entries();
  for (auto it = entries.lower_bound(ospf::LsaKey{area, 0, 0, 0});
       it != entries.end() && it->first.area == area; ++it) {
    const auto& [key, e] = *it;
    ospf::ByteView body = ospf::ByteView(e.raw).subspan(ospf::kLsaHeaderSize);
    if (key.type == 1) {
      // A router-LSA's LSID is its originator's router id.
      auto r = ospf::parse_router_lsa(body);
      if (!r || key.id != key.adv_router) {
        ++t.stats.malformed_router_lsas;
        continue;
      }
      routers.push_back({key.adv_router, std::move(*r)});
    } else if (key.type == 2) {
      auto n = ospf::parse_network_lsa(body);
      if (!n) {
        ++t.stats.malformed_network_lsas;
        continue;
      }
      networks.emplace_back(key.id, std::move(*n));
    } else if (key.type == 10 && ospf::opaque_type_of(key.id) == vnf_opaque_type) {
      auto v = ospf::parse_vnf_payload(body);
      if (!v || ospf::opaque_id_of(key.id) != v->instance_id) {
        ++t.stats.malformed_vnf_lsas;
        continue;
      }
      if (v->standby()) {
        if (!v->down()) t.standbys.push_back({key.adv_router, *v, false});  // down: removed from its config
      } else
        vnfs.push_back({key.adv_router, *v, false});
    }
  }

  auto add_node = [&](NodeKind k, std::uint32_t id) {
    t.nodes.push_back({k, id});
    t.adj.emplace_back();
    return static_cast<std::uint32_t>(t.nodes.size() - 1);
  };
  for (const auto& r : routers) t.router_index.emplace(r.id, add_node(NodeKind::Router, r.id));
  for (const auto& [lsid, n] : networks) {
    if (!t.network_index.contains(lsid)) t.network_index.emplace(lsid, add_node(NodeKind::Network, lsid));
  }

  // Facts needed for the two-way check.
  std::unordered_set<std::uint64_t> p2p_back;      // (router, neighbour) with a p2p/virtual link
  std::unordered_set<std::uint64_t> transit_back;  // (router, network lsid) with a transit link
  for (const auto& r : routers) {
    for (const auto& l : r.lsa.links) {
      if (l.type == ospf::LinkType::PointToPoint || l.type == ospf::LinkType::Virtual)
        p2p_back.insert(pair_key(r.id, l.link_id));
      else if (l.type == ospf::LinkType::Transit)
        transit_back.insert(pair_key(r.id, l.link_id));
    }
  }
  std::unordered_set<std::uint64_t> net_members;  // (network lsid, router)
  for (const auto& [lsid, n] : networks)
    for (auto rtr : n.routers) net_members.insert(pair_key(lsid, rtr));

  for (const auto& r : routers) {
    std::uint32_t from = t.router_index.at(r.id);
    for (const auto& l : r.lsa.links) {
      switch (l.type) {
        case ospf::LinkType::PointToPoint:
        case ospf::LinkType::Virtual: {
          auto nb = t.router_index.find(l.link_id);
          if (nb == t.router_index.end() || !p2p_back.contains(pair_key(l.link_id, r.id))) {
            ++t.stats.one_way_links;
            break;
          }
          t.adj[from].push_back({nb->second, l.metric, true});
          t.max_link_cost = std::max<std::uint32_t>(t.max_link_cost, l.metric);
          break;
        }
        case ospf::LinkType::Transit: {
          auto net = t.network_index.find(l.link_id);
          if (net == t.network_index.end() || !net_members.contains(pair_key(l.link_id, r.id))) {
            ++t.stats.one_way_links;
            break;
          }
          t.adj[from].push_back({net->second, l.metric, true});
          t.max_link_cost = std::max<std::uint32_t>(t.max_link_cost, l.metric);
          break;
        }
        case ospf::LinkType::Stub:
          break;  // prefixes: not part of the service graph
      }
    }
  }
  for (const auto& [lsid, n] : networks) {
    std::uint32_t from = t.network_index.at(lsid);
    std::unordered_set<std::uint32_t> seen;
    for (auto rtr : n.routers) {
      auto it = t.router_index.find(rtr);
      if (it == t.router_index.end() || !transit_back.contains(pair_key(rtr, lsid))) {
        ++t.stats.one_way_links;
        continue;
      }
      if (!seen.insert(rtr).second) continue;
      t.adj[from].push_back({it->second, 0, false});
    }
  }
  t.instances = std::move(vnfs);
  return t;
}

Result<SpfResult> spf(const Topology& topo, std::uint32_t self) {
  auto root = topo.router_index.find(self);
  if (root == topo.router_index.end())
    return fail(fmt::format("router {} has no router-LSA in the area", self), ENOENT);
  SpfResult r;
  r.root = root->second;
  r.dist.assign(topo.nodes.size(), kUnreachable);
  r.bottleneck.assign(topo.nodes.size(), 0);
  std::vector<bool> done(topo.nodes.size(), false);
  // Queue order (distance, routers after networks, index): a network reached at distance d
  // is settled before the routers it reaches at the same distance over its 0-cost edges, so
  // every equal-cost predecessor of a node is settled before the node itself and the widest
  // bottleneck among equal-cost paths is final when the node is settled (for link metrics >= 1).
  using Item = std::tuple<std::uint64_t, bool, std::uint32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> pq;
  auto is_router = [&](std::uint32_t n) { return topo.nodes[n].kind == NodeKind::Router; };
  r.dist[r.root] = 0;
  r.bottleneck[r.root] = kNoBottleneck;
  pq.push({0, true, r.root});
  while (!pq.empty()) {
    auto [d, router, u] = pq.top();
    pq.pop();
    if (done[u] || d != r.dist[u]) continue;
    done[u] = true;
    for (const auto& e : topo.adj[u]) {
      std::uint64_t nd = d + e.cost;
      std::uint32_t nb = e.real_link ? std::min<std::uint32_t>(r.bottleneck[u], e.cost) : r.bottleneck[u];
      if (nd < r.dist[e.to]) {
        r.dist[e.to] = nd;
        r.bottleneck[e.to] = nb;
        pq.push({nd, is_router(e.to), e.to});
      } else if (nd == r.dist[e.to] && nb > r.bottleneck[e.to] && !done[e.to]) {
        r.bottleneck[e.to] = nb;  // equal-cost path with a wider bottleneck
      }
    }
  }
  return r;
}

}  // namespace anychain::plane
