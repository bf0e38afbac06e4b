#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <tuple>

#include "plane/service_plane.h"
#include "plane_fixtures.h"

using namespace anychain;
using namespace anychain::plane;
using test::LsdbBuilder;

namespace {
std::uint64_t dist_to(const Topology& t, const SpfResult& s, std::uint32_t router) {
  auto it = t.router_index.find(router);
  return it == t.router_index.end() ? kUnreachable : s.dist[it->second];
}
}  // namespace

TEST(Spf, PointToPointChainAndTwoWayCheck) {
  LsdbBuilder b;
  b.link(1, 2, 10, 10);
  b.link(2, 3, 5, 7);
  b.link(1, 3, 100, 100);
  b.link(3, 4, 1, 1, /*one_way=*/true);  // 4 never announces the link back
  b.router(4);
  auto db = b.build();
  auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
  EXPECT_EQ(t.stats.one_way_links, 1u);
  auto s = spf(t, 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(dist_to(t, *s, 1), 0u);
  EXPECT_EQ(dist_to(t, *s, 2), 10u);
  EXPECT_EQ(dist_to(t, *s, 3), 15u);
  EXPECT_EQ(dist_to(t, *s, 4), kUnreachable);
  EXPECT_EQ(s->bottleneck[t.router_index.at(3)], 5u);
  EXPECT_FALSE(spf(t, 99)) << "unknown root";
}

TEST(Spf, TransitNetworkCostsZeroFromNetworkToRouter) {
  LsdbBuilder b;
  b.lan(0x0a000001, {1, 2, 3}, {10, 20, 30});
  auto db = b.build();
  auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
  auto s = spf(t, 2);
  ASSERT_TRUE(s);
  EXPECT_EQ(dist_to(t, *s, 1), 20u);  // 2 -> net (20) -> 1 (0)
  EXPECT_EQ(dist_to(t, *s, 3), 20u);
  auto s1 = spf(t, 1);
  EXPECT_EQ(dist_to(t, *s1, 3), 10u);
}

TEST(Spf, TransitWithoutNetworkLsaOrMembershipIsDropped) {
  LsdbBuilder b;
  b.lan(0x0a000001, {1, 2}, {10, 10}, /*announce_network=*/false);
  auto db = b.build();
  auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
  auto s = spf(t, 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(dist_to(t, *s, 2), kUnreachable);
  EXPECT_EQ(t.stats.one_way_links, 2u);

  LsdbBuilder c;  // network-LSA lists router 3 which has no transit link to it
  c.lan(0x0a000001, {1, 2}, {10, 10});
  c.router(3);
  auto db2 = c.build();
  // Rewrite the network-LSA to also claim router 3.
  ospf::LsaHeader h;
  h.id = 0x0a000001;
  h.adv_router = 1;
  h.seq = 2;
  auto net = ospf::build_network_lsa(h, ospf::NetworkLsa{0xffffff00, {1, 2, 3}});
  ASSERT_TRUE(db2.apply_update(0, *net, false, 1));
  auto t2 = build_topology(db2, 0, ospf::kDefaultVnfOpaqueType);
  auto s2 = spf(t2, 1);
  EXPECT_EQ(dist_to(t2, *s2, 2), 10u);
  EXPECT_EQ(dist_to(t2, *s2, 3), kUnreachable);
}

TEST(Spf, MalformedLsasAreCountedNotTrusted) {
  LsdbBuilder b;
  b.link(1, 2, 10, 10);
  b.vnf(2, ospf::VnfInfo{0x0a640001, 32, 5, 40, 150, 2, 0});
  auto db = b.build();
  // A VNF LSA whose LSID says instance 6 but whose payload says 5.
  auto bad = ospf::build_vnf_lsa(ospf::VnfInfo{0x0a640001, 32, 5, 40, 150, 2, 0}, 200, 2);
  (*bad)[7] = 6;
  ASSERT_TRUE(db.apply_update(0, *bad, false, 1));
  // A VNF LSA with a wrong payload version.
  auto bad2 = ospf::build_vnf_lsa(ospf::VnfInfo{0x0a640001, 32, 8, 40, 150, 2, 0}, 200, 2);
  (*bad2)[20] = 9;
  ASSERT_TRUE(db.apply_update(0, *bad2, false, 1));
  // A router-LSA whose body is garbage (link count too big).
  auto junk = ospf::build_opaque_lsa({0, 0, 10, 0, 0, 0, 0, 0}, ospf::Bytes{0, 0, 0, 9});
  ASSERT_TRUE(junk);
  (*junk)[3] = 1, (*junk)[7] = 3, (*junk)[11] = 3;  // turn it into router-LSA 3
  ASSERT_TRUE(db.apply_update(0, *junk, false, 1));
  auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
  EXPECT_EQ(t.stats.malformed_vnf_lsas, 2u);
  EXPECT_EQ(t.stats.malformed_router_lsas, 1u);
  EXPECT_EQ(t.instances.size(), 1u);
  // A different opaque type is not ours and is ignored silently.
  auto t2 = build_topology(db, 0, 201);
  EXPECT_EQ(t2.instances.size(), 0u);
  EXPECT_EQ(t2.stats.malformed_vnf_lsas, 0u);
}

TEST(Spf, ServiceCandidatesAndPathCosts) {
  LsdbBuilder b;
  b.link(1, 2, 10, 10);
  b.link(1, 3, 30, 30);
  b.router(4);  // isolated
  b.vnf(2, {0x0a640001, 32, 1, 40, 150, 2, 1});
  b.vnf(3, {0x0a640001, 32, 2, 5, 150, 3, 1});
  b.vnf(1, {0x0a640001, 32, 3, 100, 150, 1, 1});
  b.vnf(4, {0x0a640001, 32, 4, 1, 150, 4, 1});
  b.vnf(2, {0x0a650000, 24, 5, 7, 150, 2, 0});
  auto db = b.build();
  PlaneConfig cfg;
  cfg.self_router = 1;
  auto v = compute_plane(db, cfg);
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_EQ(v->unreachable_instances, 1u);
  ASSERT_EQ(v->services.size(), 2u);
  const auto& fw = v->services[0];
  EXPECT_EQ(fw.key, (ServiceKey{0x0a640001, 32}));
  ASSERT_EQ(fw.candidates.size(), 3u);
  EXPECT_EQ(fw.candidates[0].path_cost, 35u);  // router 3: 30 + 5
  EXPECT_EQ(fw.candidates[1].path_cost, 50u);  // router 2: 10 + 40
  EXPECT_EQ(fw.candidates[2].path_cost, 100u); // local
  EXPECT_TRUE(fw.candidates[2].local);
  EXPECT_EQ(v->services[1].key, (ServiceKey{0x0a650000, 24}));
}

// Random topologies (p2p links, asymmetric costs, LANs, one-way links) against Floyd-Warshall
// on the same graph described independently of the LSAs.
TEST(Spf, RandomTopologiesMatchFloydWarshall) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 60; ++round) {
    const int n = 2 + static_cast<int>(rng() % 30);
    const int nets = static_cast<int>(rng() % 4);
    const int total = n + nets;  // nodes 0..n-1 routers, n.. networks
    constexpr std::uint64_t INF = kUnreachable / 4;
    std::vector<std::vector<std::uint64_t>> d(total, std::vector<std::uint64_t>(total, INF));
    for (int i = 0; i < total; ++i) d[i][i] = 0;
    LsdbBuilder b;
    auto rid = [](int i) { return static_cast<std::uint32_t>(0x01000000 + i); };
    for (int i = 0; i < n; ++i) b.router(rid(i));
    const int links = static_cast<int>(rng() % (3 * n));
    std::set<std::pair<int, int>> announced;
    std::vector<std::tuple<int, int, std::uint16_t>> usable;
    for (int k = 0; k < links; ++k) {
      int a = static_cast<int>(rng() % n), c = static_cast<int>(rng() % n);
      if (a == c) continue;
      auto ab = static_cast<std::uint16_t>(1 + rng() % 100), ba = static_cast<std::uint16_t>(1 + rng() % 100);
      bool one_way = rng() % 10 == 0;
      b.link(rid(a), rid(c), ab, ba, one_way);
      announced.insert({a, c});
      usable.push_back({a, c, ab});
      if (!one_way) {
        announced.insert({c, a});
        usable.push_back({c, a, ba});
      }
    }
    // Two-way check, per router pair: a link a->c counts if c announces any link to a.
    for (auto [a, c, cost] : usable)
      if (announced.contains({c, a})) d[a][c] = std::min<std::uint64_t>(d[a][c], cost);
    for (int k = 0; k < nets; ++k) {
      std::vector<std::uint32_t> members;
      std::vector<std::uint16_t> costs;
      for (int i = 0; i < n; ++i) {
        if (rng() % 4 != 0) continue;
        members.push_back(rid(i));
        costs.push_back(static_cast<std::uint16_t>(1 + rng() % 50));
        d[i][n + k] = std::min<std::uint64_t>(d[i][n + k], costs.back());
        d[n + k][i] = 0;
      }
      if (members.empty()) continue;
      b.lan(0xC0000000u + static_cast<std::uint32_t>(k) * 256, members, costs);
    }
    // Direct edges (kept before the closure) for the bottleneck reference below.
    auto edge = d;
    for (int m = 0; m < total; ++m)
      for (int i = 0; i < total; ++i)
        for (int j = 0; j < total; ++j)
          if (d[i][m] + d[m][j] < d[i][j]) d[i][j] = d[i][m] + d[m][j];
    auto db = b.build();
    auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
    const int root = static_cast<int>(rng() % n);
    auto s = spf(t, rid(root));
    ASSERT_TRUE(s);
    for (int i = 0; i < n; ++i) {
      std::uint64_t want = d[root][i] >= INF ? kUnreachable : d[root][i];
      EXPECT_EQ(dist_to(t, *s, rid(i)), want) << "round " << round << " root " << root << " to " << i;
    }
    // Widest bottleneck over all shortest paths: DP over the shortest-path DAG in order of
    // (distance, networks first). Network->router edges (cost 0) do not narrow a path.
    std::vector<int> order;
    for (int v = 0; v < total; ++v)
      if (d[root][v] < INF) order.push_back(v);
    std::sort(order.begin(), order.end(), [&](int x, int y) {
      return std::make_tuple(d[root][x], x < n, x) < std::make_tuple(d[root][y], y < n, y);
    });
    std::vector<std::uint64_t> wide(total, 0);
    wide[root] = kNoBottleneck;
    for (int v : order) {
      if (v == root) continue;
      for (int u : order) {
        if (u == v || edge[u][v] >= INF || d[root][u] + edge[u][v] != d[root][v]) continue;
        std::uint64_t via = u >= n ? wide[u] : std::min<std::uint64_t>(wide[u], edge[u][v]);
        wide[v] = std::max(wide[v], via);
      }
    }
    for (int i = 0; i < n; ++i) {
      if (d[root][i] >= INF || i == root) continue;
      EXPECT_EQ(s->bottleneck[t.router_index.at(rid(i))], wide[i])
          << "bottleneck, round " << round << " root " << root << " to " << i;
    }
  }
}

TEST(Spf, EqualCostPathsKeepTheWidestBottleneck) {
  LsdbBuilder b;
  b.link(1, 2, 5, 5);   // 1-2-4: 5 + 15, narrowest 5
  b.link(2, 4, 15, 15);
  b.link(1, 3, 10, 10);  // 1-3-4: 10 + 10, narrowest 10
  b.link(3, 4, 10, 10);
  auto db = b.build();
  auto t = build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
  auto s = spf(t, 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(dist_to(t, *s, 4), 20u);
  EXPECT_EQ(s->bottleneck[t.router_index.at(4)], 10u);
}
