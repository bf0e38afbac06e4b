// The FTC control of each local NF instance (docs/ftc.md 7, docs/nf.md "FTC control"), computed
// from the config and the service plane (the LSDB): for an instance X of a service at hop h of
// an FTC chain of n hops with f,
// - peers: every instance of the services at hops h - f .. h - 1 and h + 1 .. h + f (ring order:
//   the chain wraps, returned logs travel from the tail back to the head), X itself left out,
//   each with the incarnation its VNF LSA announces (recovering ones included: their
//   replacement keeps the id) and, for an instance of this node, its NF's idle timeout;
// - successors: the instances of hops h + 1 .. h + f, nearest hop first (who holds X's replicas);
// - f: the largest f of the chains X's service is on; incarnation: X's own, as given.
// Peers must fit nf_peers' ids (1..AC_MAX_INSTANCES - 1); others are left out and reported.
// For the recovery of X's replacement (docs/ftc.md 7.4), by X's id:
// - holders: the NSH endpoints (host order) of the nodes that host X's peers, the nodes to send
//   RECOVER_REQ to (this node included when it hosts a peer; peers that announce no endpoint are
//   left out and reported);
// - geo: per chain SPI, the head SIs of the f hops before X's (the middleboxes X replicates).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/spec.h"
#include "ftc/recovery.h"
#include "nf/ftc_control.h"
#include "plane/service_plane.h"

namespace anychain::daemon {

struct FtcRecoveryTarget {
  ftc::Geometry geo;
  std::set<uint32_t> holders;
  std::map<uint32_t, uint32_t> holder_router;  // holder endpoint -> the router announcing it
};

// The holders of an instance's records outlive their place in the plane: a peer withdrawn from
// its service (announced down while its process lives, frozen, a service left with no instance
// for a moment) keeps its replica store, but the chain's geometry computed while it is out names
// no successor on that side, and a replacement recovering then asked nobody and came back with
// nothing, counted as nothing lost (docs/ftc.md 7.4). So each target also keeps the holders it
// had within `keep` (a record lives at most its head's idle timeout plus the grace) whose router
// the plane still reaches: asking a node that holds nothing costs one empty answer.
class FtcHolderMemory {
 public:
  using Clock = std::chrono::steady_clock;
  void apply(std::map<uint32_t, FtcRecoveryTarget>& targets, const plane::PlaneView& view, Clock::time_point now,
             std::chrono::seconds keep);

 private:
  struct Seen {
    uint32_t router = 0;
    Clock::time_point at{};
  };
  std::map<uint32_t, std::map<uint32_t, Seen>> seen_;  // instance id -> holder endpoint -> last in its target
};

struct FtcControls {
  std::map<std::string, nf::FtcControl> by_name;  // local NF instances of FTC services
  std::map<uint32_t, FtcRecoveryTarget> recovery; // the same instances, by id
  std::vector<std::string> problems;              // ids that do not fit, services with no instance
};

FtcControls compute_ftc_controls(const AgentSpec& spec, const plane::PlaneView& view,
                                 const std::map<uint32_t, uint8_t>& incarnations);

// The FTC channel's peers (docs/ftc.md 4.4), the nodes it stays connected to and whose
// heartbeats the detector watches, all from the LSDB (no per-node list is configured): the NSH
// endpoints (host order) that the VNF LSAs announce for
// - the instances within f hops of this node's FTC instances on their chains (the holders of
//   `targets`, from compute_ftc_controls), and
// - the instances this node stands by for (spec.standbys, docs/ftc.md 7.3), unless local;
// this node (`self`) left out; ascending.
std::vector<uint32_t> ftc_channel_peers(const AgentSpec& spec, const plane::PlaneView& view,
                                        const std::map<uint32_t, FtcRecoveryTarget>& targets, uint32_t self);

// Local FTC instances whose NF writes logs over the share the f of their chains leaves each hop
// (docs/ftc.md 2.6: the largest f of the chains their service is on, as their control file
// gives): their every log goes as a stub and a propagating packet. One warning each, for the
// log and `anychain status`; nothing is refused (the protocol carries such logs, at a cost).
std::vector<std::string> ftc_share_warnings(const AgentSpec& spec);

}  // namespace anychain::daemon
