#include "daemon/plane_sync.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <fmt/format.h>

namespace anychain::daemon {

namespace {
const LocalInstanceSpec* local_spec(const AgentSpec& s, uint32_t id) {
  for (const auto& i : s.instances)
    if (i.id == id) return &i;
  return nullptr;
}
}  // namespace

SyncReport PlaneSync::apply(const plane::PlaneView& view, uint32_t self_router,
                            const std::function<bool(uint32_t)>& local_alive) {
  SyncReport rep;
  std::set<uint32_t> wanted;
  std::set<uint32_t> frozen;
  std::map<uint32_t, ServiceState> next;

  for (const auto& svc : spec_.services) {
    ServiceState st;
    st.service_id = svc.id;
    st.name = svc.name;
    const plane::ServiceRoute* route = nullptr;
    for (const auto& r : view.services)
      if (r.key.addr == svc.anycast_addr && r.key.len == svc.anycast_len) route = &r;
    std::vector<dataplane::WcmpMember> members;
    if (route) {
      for (size_t i = 0; i < route->candidates.size(); ++i) {
        const auto& c = route->candidates[i];
        ProgrammedInstance pi{.id = c.info.instance_id, .service_id = svc.id, .router = c.router,
                              .local = c.router == self_router, .nsh_aware = c.info.nsh_aware(),
                              .endpoint = c.info.nsh_endpoint, .network_cost = c.network_cost,
                              .link_bottleneck = c.link_bottleneck, .path_cost = c.path_cost, .vnf_cost = c.info.cost,
                              .weight = route->weights[i], .held = c.held};
        dataplane::Instance in{.id = pi.id, .local = pi.local, .nsh_aware = pi.nsh_aware, .service_id = svc.id};
        const bool dead_here = pi.local && local_alive && !local_alive(pi.id);
        // An FTC instance withdrawn (or dead here, before its own down LSA is back): frozen, its
        // buckets kept at the weight it had, its flows' packets dropped until the replacement
        // (docs/ftc.md 7.2). Only an instance that is in the maps can be frozen.
        if ((c.recovering || (dead_here && c.info.ftc())) && programmed_.contains(pi.id)) {
          if (!recovering_.contains(pi.id)) {
            if (auto r = dp_.set_instance_recovering(pi.id); !r) {
              rep.errors.push_back(r.error().str());
              continue;
            }
            ++ftc_.frozen;
          }
          pi.recovering = true;
          auto lw = last_weight_.find(pi.id);
          pi.weight = lw != last_weight_.end() ? lw->second : 1;
          wanted.insert(pi.id);
          frozen.insert(pi.id);
          ++rep.recovering;
          members.push_back({pi.id, static_cast<double>(pi.weight)});
          st.instances.push_back(pi);
          continue;
        }
        if (c.recovering || dead_here) continue;
        if (pi.local) {
          const LocalInstanceSpec* ls = local_spec(spec_, pi.id);
          if (!ls) {
            rep.errors.push_back(fmt::format("instance {} is announced by this router but not configured here", pi.id));
            continue;
          }
          auto le = local_entry(*ls);
          if (!le) {
            rep.errors.push_back(le.error().str());
            continue;
          }
          le->service_id = svc.id;
          le->nsh_aware = pi.nsh_aware;
          in = *le;
        } else {
          in.endpoint.s_addr = htonl(pi.endpoint);
        }
        if (recovering_.contains(pi.id)) {
          // the replacement: its frozen flows' placements first name its next generation, then it
          // is made live (set_instance gives it that generation), so they resume on it (7.5)
          if (auto n = dp_.repoint_affinity(pi.id); n) ftc_.placements_repointed += *n;
          else rep.errors.push_back(n.error().str());
        }
        if (auto r = dp_.set_instance(in); !r) {
          rep.errors.push_back(r.error().str());
          continue;
        }
        if (recovering_.contains(pi.id)) {
          ++ftc_.resumed;
          if (on_resumed) on_resumed(pi.id);
        }
        last_weight_[pi.id] = pi.weight;
        wanted.insert(pi.id);
        if (pi.weight > 0) members.push_back({pi.id, static_cast<double>(pi.weight)});
        st.instances.push_back(pi);
      }
    }
    if (members.empty()) {
      (void)dp_.del_wcmp_table(svc.id);  // no instance: packets for it are dropped and counted
    } else if (auto moved = dp_.set_wcmp_weights(svc.id, members); moved) {
      st.last_moved = *moved;
      ++rep.services;
    } else {
      rep.errors.push_back(moved.error().str());
    }
    next[svc.id] = std::move(st);
  }
  // Local instances written before the view listed them (program_local): the view has them now,
  // or they are kept while configured and alive (their LSA is on its way), or they go as any other.
  for (auto it = early_.begin(); it != early_.end();) {
    if (wanted.contains(*it)) {
      it = early_.erase(it);
    } else if (local_spec(spec_, *it) && (!local_alive || local_alive(*it))) {
      wanted.insert(*it);
      ++it;
    } else {
      it = early_.erase(it);
    }
  }
  // Instances we programmed that no service uses any more: withdraw (flows re-balance).
  for (uint32_t id : programmed_) {
    if (wanted.count(id)) continue;
    if (recovering_.contains(id)) {
      // frozen and no replacement came in time: its flows are placed again without their state
      ++ftc_.abandoned;
      if (auto n = dp_.count_affinity(id); n) ftc_.partitions_abandoned += *n;
    }
    last_weight_.erase(id);
    if (auto r = dp_.del_instance(id); r) ++rep.withdrawn;
    else rep.errors.push_back(r.error().str());
  }
  programmed_ = std::move(wanted);
  recovering_ = std::move(frozen);
  rep.instances = programmed_.size();
  services_ = std::move(next);
  return rep;
}

Result<dataplane::Instance> PlaneSync::local_entry(const LocalInstanceSpec& ls) const {
  dataplane::Instance in{.id = ls.id, .local = true, .nsh_aware = ls.nsh_aware, .service_id = ls.service_id};
  in.ifindex = if_nametoindex(ls.veth.c_str());
  auto ifmac = dataplane::interface_mac(ls.veth);
  auto mac = ls.mac ? Result<Mac>(*ls.mac) : veth_peer_mac(ls.veth);
  if (!in.ifindex || !ifmac || !mac)
    return fail(fmt::format("instance {}: veth {} is not usable ({})", ls.id, ls.veth,
                            !mac ? mac.error().str() : !ifmac ? ifmac.error().str() : "missing"),
                EINVAL);
  in.mac = *mac;
  in.if_mac = *ifmac;
  in.mtu = mtu_of ? mtu_of(ls.id) : 0;  // the veth's role is the daemon's Ports' to write
  return in;
}

Result<bool> PlaneSync::program_local(uint32_t id, const std::function<bool(uint32_t)>& local_alive) {
  const LocalInstanceSpec* ls = local_spec(spec_, id);
  if (!ls || ls->ftc || programmed_.contains(id) || (local_alive && !local_alive(id))) return false;
  auto in = local_entry(*ls);
  if (!in) return unexpected(in.error());
  if (auto r = dp_.set_instance(*in); !r) return unexpected(r.error());
  programmed_.insert(id);
  early_.insert(id);
  return true;
}

}  // namespace anychain::daemon
