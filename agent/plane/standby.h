// Standbys for FTC instances on other nodes (docs/ftc.md 7.3): which failed FTC instance a
// standby replaces, and which of several standbys acts. Everything is read from one plane
// computation (the LSDB, SPF, the failure detector's verdicts), so every agent that has the same
// LSDB reaches the same answer: no election.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "plane/service_plane.h"

namespace anychain::plane {

// An FTC instance the view keeps frozen (recovering) and that no router announces live.
struct FailedInstance {
  std::uint32_t id = 0;
  std::uint32_t router = 0;          // the router that announced it last
  ospf::VnfInfo last;                // its last live announcement (service, incarnation, ...)
  bool node_lost = false;            // its router is unreachable (SPF) or failed by the detector
  bool operator==(const FailedInstance&) const = default;
};

// Sorted by id.
std::vector<FailedInstance> failed_ftc_instances(const PlaneView& v);

// The router whose standby replaces instance `f`: the lowest router id among the reachable
// routers announcing a standby for it, the failed instance's own router excluded; none when no
// standby is reachable.
std::optional<std::uint32_t> acting_standby(const PlaneView& v, const FailedInstance& f);

// A node that comes back after a standby took its FTC instance over stands down (docs/ftc.md
// 7.3): a flow's state lives on one head, the newest incarnation's, so the instance `id` this
// router runs (or is about to run) yields to another router that runs it. `own_live` is the
// incarnation this router announces it live with, none while it is not announced live (its
// process starting, its state being recovered, the agent back after a failure): then any live
// announcement elsewhere wins. Between two live ones the newer incarnation wins (serial
// arithmetic, as the fence compares them), then the lower router id: claim_wins, the order by
// which the plane keeps one of several announcements of an id as the candidate, so that the
// router every agent routes the instance to is the one that keeps running it. A held
// announcement (its LSA vanished: that router's agent restarting, the instance running on, a
// double failure) wins too when its incarnation is newer than `own_live`, or, while this router
// is not live, not older than `own_next` (the incarnation it would restart with, its last + 1;
// none: this router never ran it, any held copy wins). Returns the winning router when it is not
// this one. Only FTC announcements of reachable routers count (frozen and standby ones do not),
// the candidates' and the superseded ones'.
std::optional<std::uint32_t> superseded_by(const PlaneView& v, std::uint32_t self_router, std::uint32_t id,
                                           std::optional<std::uint8_t> own_live,
                                           std::optional<std::uint8_t> own_next = std::nullopt);

}  // namespace anychain::plane
