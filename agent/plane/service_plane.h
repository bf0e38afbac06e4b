// From the mirrored LSDB to per-service WCMP weights, as seen from this router.
#pragma once

#include <compare>
#include <cstdint>
#include <vector>

#include "ospf/lsdb.h"
#include "plane/hold_down.h"
#include "plane/topology.h"
#include "plane/wcmp_policy.h"

namespace anychain::plane {

struct ServiceKey {
  std::uint32_t addr = 0;  // anycast prefix, host order
  std::uint8_t len = 32;
  auto operator<=>(const ServiceKey&) const = default;
};

struct ServiceRoute {
  ServiceKey key;
  std::vector<Candidate> candidates;  // sorted by (path_cost, router, instance id)
  std::vector<std::uint32_t> weights;  // WCMP weights, same order
};

struct PlaneConfig {
  std::uint32_t self_router = 0;
  std::uint32_t area = 0;
  std::uint8_t vnf_opaque_type = ospf::kDefaultVnfOpaqueType;
  WcmpConfig wcmp;
  // NSH endpoints a failure detector declared down (the FTC channel's heartbeats, docs/ftc.md
  // 7.1): the routers announcing VNF LSAs with one of them count as unreachable for the freeze
  // of their FTC instances and for standby selection, as if SPF had lost them.
  std::vector<std::uint32_t> failed_endpoints;
};

// A router standing by for an FTC instance (a VNF LSA flagged ospf::kVnfFlagStandby).
struct StandbyAd {
  std::uint32_t router = 0;
  std::uint32_t instance_id = 0;
  bool reachable = false;  // by SPF and not failed by the detector
  auto operator<=>(const StandbyAd&) const = default;
};

struct RouterDistance {
  std::uint32_t router_id = 0;
  std::uint64_t dist = kUnreachable;   // SPF distance from this router (kUnreachable: none)
};

struct PlaneView {
  std::vector<ServiceRoute> services;  // sorted by key
  // Every router of the area as the same SPF saw it: what `anychain topology` reports next to
  // the services, so that both come from one computation (a router reachable in the LSDB now
  // but not yet in the last run shows as unreachable until the next run, as in the maps).
  std::vector<RouterDistance> router_dist;
  PlaneStats stats;
  std::size_t routers = 0;
  std::size_t unreachable_instances = 0;
  std::size_t down_instances = 0;  // flagged down by their own node (ospf::kVnfFlagDown): not candidates
                                   // (FTC ones that were live come back as recovering candidates)
  std::vector<StandbyAd> standbys;             // sorted
  std::vector<std::uint32_t> detected_down;    // routers lost by the failure detector (sorted)
  // reachable by SPF and not failed by the detector
  [[nodiscard]] bool router_usable(std::uint32_t router) const;
};

// Candidates per service: every instance whose router is reachable, with
// path cost = network cost to its router + its VNF cost.
std::vector<ServiceRoute> service_routes(const Topology& topo, const SpfResult& spf, const WcmpConfig& wcmp,
                                         std::size_t* unreachable = nullptr);

// build_topology + (hold-down) + spf + service_routes. ENOENT if this router is not (yet) in
// the LSDB. With `hold`, instances whose LSA vanished stay candidates for the hold time.
// Instances flagged down by their own node are never candidates (and never held).
Result<PlaneView> compute_plane(const ospf::Lsdb& lsdb, const PlaneConfig& cfg, VnfHoldDown* hold = nullptr,
                                VnfHoldDown::Clock::time_point now = VnfHoldDown::Clock::now());

}  // namespace anychain::plane
