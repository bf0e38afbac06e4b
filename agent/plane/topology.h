// Service-plane topology: routers and transit networks from router/network LSAs, VNF
// instances from VNF opaque LSAs, and shortest paths from this router.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "ospf/lsa.h"
#include "ospf/lsdb.h"

namespace anychain::plane {


inline constexpr std::uint64_t kUnreachable = std::numeric_limits<std::uint64_t>::max();
inline constexpr std::uint32_t kNoBottleneck = std::numeric_limits<std::uint32_t>::max();

enum class NodeKind : std::uint8_t { Router, Network };

struct Node {
  NodeKind kind = NodeKind::Router;
  std::uint32_t id = 0;  // router id, or the network-LSA's link state id (DR interface address)
};

struct Edge {
  std::uint32_t to = 0;      // node index
  std::uint32_t cost = 0;    // 0 for network -> router
  bool real_link = true;     // false for network -> router edges (no capacity of their own)
};

struct Instance {
  std::uint32_t router = 0;  // advertising router id
  ospf::VnfInfo info;
  bool held = false;  // LSA withdrawn, kept by VnfHoldDown
  bool recovering = false;  // FTC instance withdrawn, frozen by VnfHoldDown (docs/ftc.md 7.2)
};

struct PlaneStats {
  std::uint64_t malformed_router_lsas = 0;
  std::uint64_t malformed_network_lsas = 0;
  std::uint64_t malformed_vnf_lsas = 0;  // bad payload or LSID/instance mismatch
  std::uint64_t one_way_links = 0;       // links dropped by the two-way check
};

struct Topology {
  std::vector<Node> nodes;
  std::vector<std::vector<Edge>> adj;
  std::unordered_map<std::uint32_t, std::uint32_t> router_index;   // router id -> node
  std::unordered_map<std::uint32_t, std::uint32_t> network_index;  // network LSID -> node
  std::vector<Instance> instances;
  std::vector<Instance> standbys;   // LSAs flagged ospf::kVnfFlagStandby: never candidates
  PlaneStats stats;
  std::uint32_t max_link_cost = 0;  // largest router link metric in the area

  [[nodiscard]] std::size_t edge_count() const;
};

// Builds the topology of one area from the mirrored LSDB. Malformed LSAs are skipped and
// counted; links that fail the two-way check are dropped and counted.
Topology build_topology(const ospf::Lsdb& lsdb, std::uint32_t area, std::uint8_t vnf_opaque_type);

struct SpfResult {
  std::vector<std::uint64_t> dist;        // per node, kUnreachable if not reachable
  std::vector<std::uint32_t> bottleneck;  // per node: widest smallest link metric on a shortest path
  std::uint32_t root = 0;                 // node index of the root
};

// Dijkstra from router `self`. Fails with ENOENT if `self` has no router-LSA in the area.
Result<SpfResult> spf(const Topology& topo, std::uint32_t self);

}  // namespace anychain::plane
