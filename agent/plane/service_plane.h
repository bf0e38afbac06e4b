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

// An announcement of an instance id that another router's announcement of the same id supersedes
// (see keeps_instance): not a candidate, kept for `anychain status` and the stand-down rule.
struct SupersededAd {
  std::uint32_t router = 0;
  ospf::VnfInfo info;
  bool held = false;
  bool recovering = false;
  std::uint32_t by = 0;  // the router whose announcement is the candidate
  bool operator==(const SupersededAd&) const = default;
};

// Serial order of FTC incarnations (8 bits, as the fence compares them, docs/ftc.md 7.5), then
// router ids: true when incarnation `inc_a` announced by `router_a` keeps an instance id over
// `inc_b` announced by `router_b` (the newer incarnation, then the lower router id).
[[nodiscard]] bool claim_wins(std::uint32_t inc_a, std::uint32_t router_a, std::uint32_t inc_b, std::uint32_t router_b);

// Of two announcements of one instance id by different routers, true when `a` is the one every
// router makes the candidate (docs/ftc.md 7.3): a frozen one (recovering) last; then the newer
// incarnation (the one the fence lets keep the state: an older one's logs are stale); then a
// live one before a held one (its LSA vanished: its agent restarting); then the lower router id.
// Among live ones this is claim_wins, the stand-down order (plane/standby.h superseded_by). Read
// from the announcements only, so every agent with the same LSDB keeps the same one.
[[nodiscard]] bool keeps_instance(const Candidate& a, const Candidate& b);

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
  // announcements of an instance id that another router's announcement of it supersedes (sorted
  // by instance id, router): the fast path has one entry per instance id, so every router keeps
  // the same one of them (keeps_instance) and none of these is a candidate
  std::vector<SupersededAd> superseded;
  std::vector<std::uint32_t> detected_down;    // routers lost by the failure detector (sorted)
  // reachable by SPF and not failed by the detector
  [[nodiscard]] bool router_usable(std::uint32_t router) const;
};

// Candidates per service: every instance whose router is reachable, with
// path cost = network cost to its router + its VNF cost. An instance id announced by several
// routers is one candidate, the one keeps_instance prefers; the others go to `superseded`.
std::vector<ServiceRoute> service_routes(const Topology& topo, const SpfResult& spf, const WcmpConfig& wcmp,
                                         std::size_t* unreachable = nullptr,
                                         std::vector<SupersededAd>* superseded = nullptr);

// build_topology + (hold-down) + spf + service_routes. ENOENT if this router is not (yet) in
// the LSDB. With `hold`, instances whose LSA vanished stay candidates for the hold time.
// Instances flagged down by their own node are never candidates (and never held).
Result<PlaneView> compute_plane(const ospf::Lsdb& lsdb, const PlaneConfig& cfg, VnfHoldDown* hold = nullptr,
                                VnfHoldDown::Clock::time_point now = VnfHoldDown::Clock::now());

}  // namespace anychain::plane
