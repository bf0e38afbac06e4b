// Builders for synthetic LSDBs used by plane tests and the benchmark.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "ospf/lsa.h"
#include "ospf/lsdb.h"

namespace anychain::test {

struct P2p {
  std::uint32_t a, b;
  std::uint16_t cost_ab, cost_ba;
};

class LsdbBuilder {
 public:
  // p2p link announced by both ends (or only by a if one_way).
  void link(std::uint32_t a, std::uint32_t b, std::uint16_t cost_ab, std::uint16_t cost_ba, bool one_way = false) {
    links_[a].push_back({b, a, ospf::LinkType::PointToPoint, cost_ab, {}});
    if (!one_way) links_[b].push_back({a, b, ospf::LinkType::PointToPoint, cost_ba, {}});
  }
  void router(std::uint32_t r) { links_[r]; }
  // Transit network with DR interface address `lsid`; members[i] reaches it with cost[i].
  void lan(std::uint32_t lsid, const std::vector<std::uint32_t>& members, const std::vector<std::uint16_t>& costs,
           bool announce_network = true) {
    for (std::size_t i = 0; i < members.size(); ++i)
      links_[members[i]].push_back({lsid, lsid + 1 + static_cast<std::uint32_t>(i), ospf::LinkType::Transit, costs[i], {}});
    if (announce_network) nets_.push_back({lsid, members});
  }
  void vnf(std::uint32_t router, const ospf::VnfInfo& v) { vnfs_.push_back({router, v}); }

  ospf::Lsdb build(std::int32_t seq = 1) const {
    ospf::Lsdb db;
    for (const auto& [r, ls] : links_) {
      ospf::LsaHeader h;
      h.id = h.adv_router = r;
      h.seq = seq;
      ospf::RouterLsa body;
      body.links = ls;
      body.links.push_back({r, 0xffffffff, ospf::LinkType::Stub, 0, {}});  // loopback stub
      auto b = ospf::build_router_lsa(h, body);
      if (b) (void)db.apply_update(0, *b, false, 1);
    }
    for (const auto& n : nets_) {
      ospf::LsaHeader h;
      h.id = n.lsid;
      h.adv_router = n.members.front();
      h.seq = seq;
      auto b = ospf::build_network_lsa(h, ospf::NetworkLsa{0xffffff00, n.members});
      if (b) (void)db.apply_update(0, *b, false, 1);
    }
    for (const auto& [r, v] : vnfs_) {
      auto b = ospf::build_vnf_lsa(v, ospf::kDefaultVnfOpaqueType, r);
      if (!b) continue;
      (*b)[15] = 1;  // seq
      (void)db.apply_update(0, *b, false, 1);
    }
    return db;
  }

 private:
  struct Net {
    std::uint32_t lsid;
    std::vector<std::uint32_t> members;
  };
  std::map<std::uint32_t, std::vector<ospf::RouterLink>> links_;
  std::vector<Net> nets_;
  std::vector<std::pair<std::uint32_t, ospf::VnfInfo>> vnfs_;
};

}  // namespace anychain::test
