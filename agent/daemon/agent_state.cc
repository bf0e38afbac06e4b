// anychaind's shared-state replication (docs/state.md, Section 5): the Replication of
// daemon/replication.h run from the agent's loop. Its transports are opened from the `state:`
// section (the keyring swapped on reload: key rotation without a restart), its local instances
// are those whose process published replicated objects in <run_dir>/<name>.json, its members
// come from the LSDB after every recomputation, and a joining instance is not announced until
// its snapshot is in.
#include <fmt/format.h>

#include "common/log.h"
#include "daemon/agent.h"
#include "nf/published.h"
#include "plane/topology.h"

namespace anychain::daemon {

namespace {

// The fast path redirects the replication port into its XSKMAP at a slot per (interface, RX
// queue) (AC_XSK_SLOT): AF_XDP on every state interface, UDP where it cannot be set up (the fast
// path passes datagrams of a slot without a socket to the stack). Returns the map's fd or why not.
std::pair<int, std::string> xsk_choice(const dataplane::Dataplane& dp) {
  if (int fd = dp.map_fd("ac_state_xsk"); fd >= 0) return {fd, ""};
  return {-1, "the fast path has no XSKMAP (ac_state_xsk)"};
}

}  // namespace

void Agent::sync_state() {
  if (!spec_.state) {
    if (state_) log::info("state replication turned off (no state: section)");
    state_.reset();
    state_error_.clear();
    return;
  }
  if (state_) {
    auto [fd, why] = xsk_choice(dp_);
    if (auto r = state_->reconfigure(*spec_.state, fd, why); !r) {
      state_error_ = r.error().str();
      log::error("state replication: {}; the previous keys and transports stay", state_error_);
    } else {
      state_error_.clear();
    }
  } else {
    Replication::Options o;
    o.spec = *spec_.state;
    o.endpoint = spec_.nsh_endpoint;
    std::tie(o.xskmap_fd, o.no_xsk) = xsk_choice(dp_);
    auto r = Replication::open(std::move(o), state_clock_);
    if (!r) {
      state_error_ = r.error().str();
      log::error("state replication: {}; stateful NFs run without sharing their state", state_error_);
      return;
    }
    state_error_.clear();
    state_ = std::move(*r);
    next_state_tick_ = Clock::now();
  }
  state_local();
  state_members();
}

void Agent::state_local() {
  if (!state_) return;
  std::vector<ReplicaSpec> local;
  for (const auto& i : spec_.instances)
    local.push_back({i.name, i.id, static_cast<uint16_t>(i.service_id), nf::published_path(spec_.nf.run_dir, i.name)});
  state_->set_local(local);
  for (const auto& i : spec_.instances)
    if (monitor_->set_joining(i.id, !state_->ready(i.id)) && state_->ready(i.id))
      next_monitor_ = Clock::now();  // its snapshot is in: announce it now
}

void Agent::state_members() {
  if (!state_ || !ospf_ || !lsdb_trusted_) return;
  std::vector<ServicePrefix> services;
  for (const auto& s : spec_.services)
    services.push_back({static_cast<uint16_t>(s.id), s.anycast_addr, s.anycast_len});
  auto topo = plane::build_topology(ospf_->lsdb(), spec_.ospf.area, spec_.ospf.opaque_type);
  // Instances of routers SPF does not reach from ours are lost (docs/state.md 3.13): every
  // survivor computes the same from the same LSDB. Without our own router-LSA (ospfd restarting)
  // nothing is decided.
  std::function<bool(uint32_t)> reachable;
  std::optional<plane::SpfResult> spf;
  if (auto self = self_router())
    if (auto s = plane::spf(topo, *self)) spf = std::move(*s);
  if (spf)
    reachable = [&](uint32_t router) {
      auto it = topo.router_index.find(router);
      return it != topo.router_index.end() && spf->dist[it->second] != plane::kUnreachable;
    };
  state_->set_members(members_from_topology(topo, services, spec_.state->port, reachable));
}

void Agent::state_tick(Clock::time_point now) {
  if (!state_ || now < next_state_tick_) return;
  state_->tick();
  next_state_tick_ = now + std::chrono::duration_cast<Clock::duration>(state_->interval());
  // an instance whose join just completed is announced at once
  for (const auto& i : spec_.instances)
    if (monitor_->set_joining(i.id, !state_->ready(i.id)) && state_->ready(i.id)) next_monitor_ = now;
}

}  // namespace anychain::daemon
