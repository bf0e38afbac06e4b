// Applies the service plane (per service: candidate instances and WCMP weights, as computed
// from the LSDB) to the fast path's maps: instance entries (local veth or remote NSH endpoint),
// then each service's bucket table, rebalanced so that only the buckets that must move do.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/spec.h"

namespace anychain::daemon {

struct ProgrammedInstance {
  uint32_t id = 0;
  uint32_t service_id = 0;
  uint32_t router = 0;         // advertising router (host order)
  bool local = false;
  bool nsh_aware = true;
  uint32_t endpoint = 0;       // host order
  uint64_t network_cost = 0;   // SPF distance from this router to the instance's router
  uint32_t link_bottleneck = 0;  // smallest link metric on that path (kNoBottleneck if local)
  uint64_t path_cost = 0;
  uint32_t vnf_cost = 0;
  uint32_t weight = 0;
  bool held = false;
  bool recovering = false;     // FTC instance frozen for recovery (docs/ftc.md 7.2): AC_INST_RECOVERING
};

struct ServiceState {
  uint32_t service_id = 0;
  std::string name;
  std::vector<ProgrammedInstance> instances;
  double last_moved = 0;       // fraction of buckets the last change moved
};

struct SyncReport {
  size_t services = 0;         // services with a table
  size_t instances = 0;        // instances programmed
  size_t withdrawn = 0;        // instances removed from the maps by this run
  std::vector<std::string> errors;  // per-item problems (the rest was still applied)
  size_t recovering = 0;       // FTC instances frozen (AC_INST_RECOVERING) by this run
};

// The FTC side of the plane (docs/ftc.md 7.2, 7.5), cumulative.
struct FtcPlaneStats {
  uint64_t frozen = 0;                   // instances marked RECOVERING
  uint64_t resumed = 0;                  // recovering instances made live again (a replacement)
  uint64_t placements_repointed = 0;     // ac_affinity entries moved to a replacement's generation
  uint64_t abandoned = 0;                // recovering instances withdrawn without a replacement
  uint64_t partitions_abandoned = 0;     // their placed flows, placed again without state
};

class PlaneSync {
 public:
  PlaneSync(dataplane::Dataplane& dp, const AgentSpec& spec) : dp_(dp), spec_(spec) {}

  // self_router: this node's router id (host order). local_alive: false for a local instance
  // whose VNF is down (it is left out even while its LSA is still in the LSDB).
  SyncReport apply(const plane::PlaneView& view, uint32_t self_router,
                   const std::function<bool(uint32_t)>& local_alive = {});
  // Instance ids found live in pinned maps at start (a previous run's): withdrawn at the first
  // apply() unless still wanted.
  void adopt(const std::vector<uint32_t>& live) { programmed_.insert(live.begin(), live.end()); }
  // A local instance about to be announced (not an FTC one: its announcement has its own order,
  // docs/ftc.md 7): written into the maps first, live, so that packets a peer sends to it as soon
  // as the LSA reaches it are delivered, also while this router's LSDB is not trusted yet or its
  // own LSA is not back in the view. apply() keeps it (without WCMP buckets here) until the view
  // lists it, as long as it stays configured and alive. True if it was written now.
  Result<bool> program_local(uint32_t id, const std::function<bool(uint32_t)>& local_alive = {});
  const std::map<uint32_t, ServiceState>& services() const { return services_; }
  // The instance is in the maps and not frozen: packets are steered to it.
  bool live(uint32_t id) const { return programmed_.contains(id) && !recovering_.contains(id); }
  const FtcPlaneStats& ftc_stats() const { return ftc_; }
  // Called with the instance id when a recovering instance is made live again in the maps (the
  // steering phase of a recovery ends there, docs/ftc.md 7.6).
  std::function<void(uint32_t)> on_resumed;
  // The MTU a local instance's veth carries (0: not checked); the fast path hands longer packets
  // to the slow path.
  std::function<uint16_t(uint32_t instance_id)> mtu_of;

 private:
  dataplane::Dataplane& dp_;
  const AgentSpec& spec_;
  Result<dataplane::Instance> local_entry(const LocalInstanceSpec& ls) const;

  std::set<uint32_t> programmed_;                // instance ids in the maps, written by us
  std::set<uint32_t> early_;                     // local ones written before the view listed them
  std::map<uint32_t, ServiceState> services_;    // by service id
  std::set<uint32_t> recovering_;                // instance ids marked RECOVERING by us
  std::map<uint32_t, uint32_t> last_weight_;     // the WCMP weight last programmed (kept while frozen)
  FtcPlaneStats ftc_;
};

// The MAC of the far end of a veth (which may live in another network namespace).
Result<Mac> veth_peer_mac(const std::string& veth);

}  // namespace anychain::daemon
