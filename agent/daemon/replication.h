// The node's shared-state replication (docs/state.md, Section 5 items 4, 5, 8, 9): one
// state::Replicator per local instance of a stateful built-in NF, over a BpfStore of the maps the
// instance's anychain-nf process publishes; one transport per interface (AF_XDP where the fast
// path's XSKMAP is there, else UDP), shared by every replicator through a dispatcher that reads
// each datagram's destination (service, receiver instance) before anything is verified. Members
// come from the LSDB (the VNF LSAs of the instance's service, at their node's NSH endpoint).
//
// Single-threaded, driven by the agent's poll loop: fds() for input, on_readable(), tick() every
// scan interval (1 ms by default).
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nf/published.h"
#include "plane/topology.h"
#include "state/bpf_store.h"
#include "state/expiry.h"
#include "state/replicator.h"

namespace anychain::daemon {

// The `state:` section, resolved (from_config.cc).
struct ReplicationSpec {
  uint16_t port = 4795;
  std::vector<std::string> interfaces;   // AF_XDP on these (empty: none, UDP only)
  std::vector<state::KeySpec> keys;
  uint8_t send_key = 0;
  uint64_t max_skew_us = 60'000'000;
  uint64_t scan_interval_us = 1'000;
  uint64_t keepalive_us = 100'000;
  uint64_t window_bytes = 256 * 1024;
  uint64_t node_gone_grace_us = 30'000'000;  // docs/state.md 3.13
  bool operator==(const ReplicationSpec& o) const;
};

// One local instance that may replicate: its published file says whether (and how).
struct ReplicaSpec {
  std::string name;
  uint32_t id = 0;
  uint16_t service = 0;
  std::string published;                 // <run_dir>/<name>.json
};

// The members of each service from the LSDB: every instance announced (not down) in a VNF LSA,
// at its node's NSH endpoint on `port`; services by their anycast prefix. An instance whose
// router `reachable` says SPF does not reach (router id -> reachable; empty: every router is)
// is listed `lost` (docs/state.md 3.13).
struct ServicePrefix {
  uint16_t id = 0;
  uint32_t addr = 0;                     // host order
  uint8_t len = 32;
};
std::map<uint16_t, std::vector<state::Replicator::Member>> members_from_topology(
    const plane::Topology& topo, const std::vector<ServicePrefix>& services, uint16_t port,
    const std::function<bool(uint32_t)>& reachable = {});

class Replication {
 public:
  struct Options {
    ReplicationSpec spec;
    in_addr endpoint{};                  // the node's NSH endpoint: our address for replication
    int xskmap_fd = -1;                  // the fast path's XSKMAP (borrowed; -1: UDP only)
    std::string no_xsk;                  // why AF_XDP is not used (with xskmap_fd -1)
    uint64_t join_timeout_us = 5'000'000;  // a join that gets no snapshot: serve alone after this
  };
  static Result<std::unique_ptr<Replication>> open(Options o, const state::Clock& clock);
  ~Replication();

  // New keys (rotation) or timers: the keyring is swapped in every replicator; a new port,
  // interface list or XSKMAP choice reopens the transports.
  Result<void> reconfigure(const ReplicationSpec& spec, int xskmap_fd, const std::string& no_xsk);

  // The local instances that may replicate. Each one's published file is read again (an
  // instance whose process restarted has a new incarnation: its replicator starts over and
  // joins again); an instance no longer listed leaves (drains) and is dropped once drained.
  void set_local(const std::vector<ReplicaSpec>& instances);
  // Members per service (from the LSDB); ourselves are left out.
  void set_members(const std::map<uint16_t, std::vector<state::Replicator::Member>>& members);

  // May the instance be announced as a candidate (its join from a snapshot is complete, or
  // there was nobody to join from)? False while it joins; true for an instance not replicated.
  bool ready(uint32_t instance) const;
  bool replicating(uint32_t instance) const { return replicas_.contains(instance); }

  std::vector<int> fds() const;
  void on_readable();
  void tick();
  // The next tick: every scan interval while an instance replicates, else 100 ms (nothing to
  // scan; datagrams still wake the loop).
  std::chrono::microseconds interval() const {
    return std::chrono::microseconds(replicas_.empty() && leaving_.empty() ? 100'000 : opt_.spec.scan_interval_us);
  }

  // status: mode per interface, peers with RTT and state, the dispatcher's drops
  nlohmann::json status() const;
  // one instance: its replicator's counters, peers, slots, the gate's refusals by reason
  std::optional<nlohmann::json> instance(const std::string& name) const;

  struct DispatchStats {
    uint64_t datagrams = 0;
    uint64_t malformed = 0;              // too short to name a destination
    uint64_t bad_version = 0;            // a wire version this agent does not speak (another release)
    uint64_t no_receiver = 0;            // no local replicator for (service, receiver)
  };
  const DispatchStats& dispatch_stats() const { return dstats_; }

 private:
  class Sender;
  struct Replica;
  Replication(Options o, const state::Clock& clock);
  Result<void> open_transports();
  Result<std::unique_ptr<Replica>> make_replica(const ReplicaSpec& r, const nf::Published& p);
  void dispatch(state::ByteView d, const state::Endpoint& from);
  void expire(Replica& r, uint64_t now_us);

  Options opt_;
  const state::Clock& clock_;
  std::shared_ptr<const state::Keyring> keys_;
  struct Link {
    std::string ifname;                  // "" for the plain UDP socket
    uint32_t ifindex = 0;
    std::unique_ptr<state::Transport> t;
  };
  std::vector<Link> links_;
  std::unique_ptr<Sender> sender_;
  std::map<uint32_t, std::unique_ptr<Replica>> replicas_;     // by instance id
  std::vector<std::unique_ptr<Replica>> leaving_;             // draining after removal
  std::map<uint16_t, std::vector<state::Replicator::Member>> members_;
  bool members_known_ = false;           // set_members() was called: "no other member" means it
  DispatchStats dstats_;
  std::set<uint8_t> warned_versions_;  // wire versions refused and logged once
};

}  // namespace anychain::daemon
