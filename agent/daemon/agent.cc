#include "daemon/agent.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <ifaddrs.h>
#include <poll.h>
#include <sys/inotify.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/log.h"
#include "nf/maps.h"

namespace anychain::daemon {

Agent::Agent(AgentSpec spec, dataplane::Dataplane dp, LinkWatcher links)
    : spec_(std::move(spec)),
      dp_(std::move(dp)),
      links_(std::move(links)),
      throttle_(spec_.timers.spf_delay, spec_.timers.spf_hold),
      hold_(spec_.hold_down, spec_.ftc_recovery_hold) {}

Agent::~Agent() = default;

Result<std::unique_ptr<Agent>> Agent::create(AgentSpec spec) {
  auto dp = dataplane::Dataplane::open(spec.dataplane);
  if (!dp) return unexpected(dp.error());
  auto links = LinkWatcher::open();
  if (!links) return unexpected(links.error());
  std::unique_ptr<Agent> a(new Agent(std::move(spec), std::move(*dp), std::move(*links)));
  a->sync_ = std::make_unique<PlaneSync>(a->dp_, a->spec_);
  a->ports_ = std::make_unique<Ports>(a->dp_);
  a->ports_->on_instance_mtu = [p = a.get()](uint32_t id, uint16_t mtu) {
    if (auto r = p->dp_.set_instance_mtu(id, mtu); !r) log::warn("{}", r.error().str());
  };
  a->sync_->mtu_of = [p = a.get()](uint32_t id) { return p->ports_->instance_mtu(id); };
  if (a->spec_.slow_path) a->open_slow_path();
  a->add_source({[p = a.get()] { return p->slow_ ? p->slow_->poll_fds() : std::vector<pollfd>{}; },
                 [p = a.get()](int fd, short ev) {
                   if (p->slow_) p->slow_->on_event(fd, ev);
                 }});
  if (a->spec_.ftc_buffer) {
    a->ftc_ = std::make_unique<FtcEgress>(a->dp_, *a->spec_.ftc_buffer);
    a->add_source({[p = a.get()] { return p->ftc_->poll_fds(); },
                   [p = a.get()](int fd, short ev) { p->ftc_->on_event(fd, ev); }});
  }
  a->sync_ftc();
  a->add_source({[p = a.get()] { return p->ftc_channel_ ? p->ftc_channel_->poll_fds() : std::vector<pollfd>{}; },
                 [p = a.get()](int fd, short ev) {
                   if (p->ftc_channel_) p->ftc_channel_->on_event(fd, ev);
                 }});
  a->add_source({[p = a.get()] {
                   return p->ftc_resync_sock_ ? std::vector<pollfd>{{p->ftc_resync_sock_->fd(), POLLIN, 0}}
                                              : std::vector<pollfd>{};
                 },
                 [p = a.get()](int, short) { p->ftc_resync_receive(); }});
  if (auto live = a->dp_.live_instances(); live) {
    a->sync_->adopt(*live);
    if (!live->empty()) log::info("adopted {} live instances from the pinned maps", live->size());
  }
  a->load_ftc_standby_acting();  // before anything is made from the spec's instances
  a->monitor_ = std::make_unique<VnfMonitor>(a->spec_);
  a->links_.on_event = [p = a.get()](const LinkEvent& e) { p->on_link(e); };
  // a neighbour or route changed: next hops cached by the fast path may be stale
  a->links_.on_route = [p = a.get()] { p->nexthops_dirty_ = true; };
  a->links_.on_address = [p = a.get()] { p->check_endpoint(); };
  if (auto r = a->apply_static(); !r) return unexpected(r.error());

  a->ospf_ = std::make_unique<ospf::Client>(a->spec_.ospf);
  a->sync_nf();
  a->sync_state();
  a->ospf_->on_lsdb_changed = [p = a.get()](const ospf::Lsdb&) {
    p->release_ups(Clock::now());  // an up waiting for its down to be in the LSDB
    if (p->lsdb_trusted_) p->ftc_lsdb_kick(Clock::now());  // agent_ftc_control.cc
  };
  a->ospf_->on_connection = [p = a.get()](bool up) {
    if (up) {
      log::info("connected to ospfd at {}:{}", p->spec_.ospf.server_addr, p->spec_.ospf.server_port);
      p->trust_lsdb_at_ = Clock::now() + p->spec_.ospf.resync_grace + std::chrono::milliseconds(200);
    } else {
      log::warn("lost ospfd ({}); the fast path keeps forwarding with the last state",
                p->ospf_->last_error());
      p->lsdb_trusted_ = false;
      p->trust_lsdb_at_.reset();
    }
  };
  a->warn_liveness_sources();
  a->check_liveness(Clock::now());
  a->check_endpoint();
  a->watch_ospfd_pid_file();
  if (auto r = a->ospf_->connect(); !r)
    log::warn("ospfd not reachable yet ({}); retrying with backoff (at least every {} ms)", r.error().str(),
              a->spec_.ospf.backoff_max.count());
  a->next_monitor_ = a->next_announce_ = Clock::now();
  return a;
}

void Agent::open_slow_path() {
  slowpath::Options o;
  o.endpoint = spec_.nsh_endpoint;
  o.gpe_port = spec_.fastpath.gpe_port;
  o.hold_for_fragments = [this](uint32_t ifindex, uint32_t flow, uint32_t datagram) {
    return dp_.hold_proxy_for_fragments(ifindex, flow, datagram);
  };
  auto s = slowpath::SlowPath::open(std::move(o));
  if (!s) {
    slow_error_ = s.error().str();
    log::error("slow path: {}; packets too big for their next hop are dropped (drop_too_big)", slow_error_);
    return;
  }
  slow_error_.clear();
  slow_ = std::move(*s);
}

Result<void> Agent::apply_static() {
  // the config first (a program without it passes everything), then the interfaces, instance
  // veths and the slow path's end, attached with their roles (the fast path hands nothing to
  // the slow path before its interface has the role)
  dataplane::Config fc = spec_.fastpath;
  fc.local_endpoint = spec_.nsh_endpoint;
  fc.slow_ifindex = slow_ ? static_cast<uint32_t>(slow_->fast_ifindex()) : 0;
  if (auto r = dp_.set_config(fc); !r) return r;
  if (auto errors = ports_->apply(wanted_ports(spec_, slow_ ? slow_->fast_if() : "")); !errors.empty())
    return unexpected(errors.front());  // a configured interface that cannot be attached
  if (auto r = dp_.set_policies(spec_.policies); !r) return r;
  auto old = dp_.paths();
  for (const auto& p : spec_.paths)
    if (auto r = dp_.set_path(p.spi, p.si, p.service_id, p.last_hop); !r) return r;
  if (old) {
    for (const auto& o : *old) {
      bool keep = std::any_of(spec_.paths.begin(), spec_.paths.end(),
                              [&](const dataplane::PathEntry& p) { return p.spi == o.spi && p.si == o.si; });
      if (!keep) (void)dp_.del_path(o.spi, o.si);
    }
  }
  return {};
}

Result<void> Agent::reload(AgentSpec spec) {
  // What this node announced and no longer has: announced down now (peers drop it at once,
  // without their hold-down), its LSA deleted once every peer has seen that. ospfd applies one
  // update per LSA per MinLSInterval (5 s by default), so the delete waits at least that long.
  auto now = Clock::now();
  auto linger = std::max<std::chrono::milliseconds>(spec.hold_down, std::chrono::seconds(5)) + std::chrono::seconds(1);
  std::vector<ospf::VnfInfo> gone;
  ftc_standby_apply(spec);
  for (const auto& [id, info] : ospf_->local()) {
    auto has = [id = id](const LocalInstanceSpec& i) { return i.id == id; };
    bool still = std::any_of(spec.instances.begin(), spec.instances.end(), has) ||
                 std::any_of(spec.standbys.begin(), spec.standbys.end(), has);
    if (!still && !withdraw_at_.contains(id)) {
      gone.push_back(info);
      withdraw_at_[id] = now + linger;
    }
  }
  for (auto v : gone) {
    v.flags |= ospf::kVnfFlagDown;
    v.cost = 0;
    if (auto r = ospf_->announce(v); !r)
      log::warn("announce instance {} down: {}", v.instance_id, r.error().str());
    else
      down_handed(v.instance_id, now);  // configured again meanwhile: its up follows the down (DownFirst)
  }
  for (const auto& i : spec.instances) withdraw_at_.erase(i.id);  // configured again
  const bool endpoint_moved = spec.nsh_endpoint.s_addr != spec_.nsh_endpoint.s_addr;
  spec_ = std::move(spec);
  hold_.set_ftc_hold(spec_.ftc_recovery_hold);
  auto was = std::exchange(monitor_, std::make_unique<VnfMonitor>(spec_));
  std::erase_if(liveness_, [&](const auto& kv) {
    return std::none_of(spec_.instances.begin(), spec_.instances.end(),
                        [&](const LocalInstanceSpec& i) { return i.id == kv.first; });
  });
  // announced as before: an instance alive but not announced (its state being recovered, waiting
  // for the plane, superseded) stays unannounced; its path announces it (docs/ftc.md 7.3)
  for (const auto& [id, lv] : liveness_) monitor_->set_alive(id, lv.alive() && was->alive(id));
  if (spec_.slow_path && !slow_) {
    open_slow_path();
  } else if (!spec_.slow_path && slow_) {
    slow_.reset();
    if (auto r = slowpath::SlowPath::remove(); !r) log::warn("slow path: {}", r.error().str());
    log::info("slow path turned off (node.slow_path: false)");
  } else if (slow_ && endpoint_moved) {
    slow_->set_endpoint(spec_.nsh_endpoint);
  }
  if (auto r = apply_static(); !r) return r;
  sync_nf();
  sync_state();
  sync_ftc();
  warn_liveness_sources();
  check_liveness(now);
  next_monitor_ = next_announce_ = now;
  throttle_.kick(Clock::now());
  log::info("configuration reloaded");
  return {};
}

std::optional<uint32_t> Agent::self_router() const {
  for (const auto& [k, e] : ospf_->lsdb().entries())
    if (k.type == 1 && e.is_self && k.area == spec_.ospf.area) return k.adv_router;
  return std::nullopt;
}

void Agent::recompute(Clock::time_point now) {
  auto self = self_router();
  if (!self) {
    last_plane_error_ = "this router's router-LSA is not in the LSDB yet";
    return;
  }
  plane::PlaneConfig pc{.self_router = *self, .area = spec_.ospf.area, .vnf_opaque_type = spec_.ospf.opaque_type,
                        .wcmp = spec_.wcmp, .failed_endpoints = ftc_failed_endpoints()};
  const auto t0 = Clock::now();
  auto view = plane::compute_plane(ospf_->lsdb(), pc, &hold_, now);
  const auto t1 = Clock::now();
  if (!view) {
    last_plane_error_ = view.error().str();
    log::warn("service plane: {}", last_plane_error_);
    return;
  }
  last_plane_error_.clear();
  last_report_ = sync_->apply(*view, *self, [this](uint32_t id) { return monitor_->alive(id); });
  last_compute_ms_ = std::chrono::duration<double, std::milli>(t1 - t0).count();
  last_apply_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  // recovered FTC instances live in this node's maps now (not frozen any more: while this node's
  // down LSA for one is the LSDB's, the plane keeps it frozen until its up LSA is back): their
  // rerouting time
  for (auto it = ftc_rerouting_.begin(); it != ftc_rerouting_.end();)
    if (!ftc_recovery_ || !monitor_->alive(*it)) {
      it = ftc_rerouting_.erase(it);  // died again: its next recovery measures its own
    } else if (sync_->live(*it)) {
      ftc_recovery_->rerouted(static_cast<uint16_t>(*it), Clock::now(), last_compute_ms_ + last_apply_ms_);
      it = ftc_rerouting_.erase(it);
    } else {
      ++it;
    }
  for (const auto& e : last_report_.errors) log::warn("{}", e);
  last_view_ = std::move(*view);
  state_members();
  sync_ftc_controls();
  ftc_stand_down(now);  // a node back after its standby took over (agent_ftc_standby.cc)
  ftc_start_deferred(Clock::now());
  last_recompute_ = std::chrono::system_clock::now();
  ++recomputations_;
  log::debug("recomputed: {} services, {} instances, {} withdrawn", last_report_.services, last_report_.instances,
             last_report_.withdrawn);
  if (auto exp = hold_.next_expiry()) throttle_.kick(std::max(now, *exp - spec_.timers.spf_delay));
  ftc_standby_tick(now);
}

void Agent::sync_nf() {
  std::vector<nf::InstanceSpec> specs;
  for (const auto& i : spec_.instances)
    if (i.nf) specs.push_back(*i.nf);
  if (specs.empty() && !nf_) return;
  if (!nf_) {
    auto s = nf::Supervisor::create(spec_.nf);
    if (!s) {
      log::error("built-in network functions: {}", s.error().str());
      return;
    }
    nf_ = std::move(*s);
    // an instance that dies (or comes back) is withdrawn (announced) at once
    nf_->on_change = [this](const std::string&, bool) {
      state_local();  // a new incarnation replicates afresh (and joins) before it is announced
      check_liveness(Clock::now());
    };
    nf_->on_veth = [this](const std::string& name, const std::string& veth) { on_nf_veth(name, veth); };
  }
  nf_->configure(specs);
  load_ftc_incarnations();
}

// The host side of an NF's veth was (re)created: the fast path goes on it (native XDP: the
// frames the NF returns with XDP_TX arrive there). It is an instance veth, so Ports owns it
// (role, MTU, re-attachment); it is told now rather than when the link notification arrives.
void Agent::on_nf_veth(const std::string& name, const std::string& veth) {
  auto link = LinkWatcher::query(veth);
  if (!link) {
    log::error("nf {}: its veth {}: {}", name, veth, link.error().str());
    return;
  }
  ports_->on_link(*link);
  if (!ports_->attached(veth)) log::error("nf {}: the fast path is not attached to {} (anychain status)", name, veth);
  // the FTC egress buffer's sockets go on the new veth now, before the NF runs (not at the end
  // of the loop's turn): nothing the NF returns finds the old interface's XSKMAP slots
  if (ftc_) ftc_->ensure({veth});
}

void Agent::warn_liveness_sources() const {
  for (const auto& w : ftc_share_warnings(spec_)) log::warn("{}", w);
  for (const auto& i : spec_.instances) {
    if (!i.pid_file.empty() || !i.cgroup.empty() || i.nf) continue;  // an NF: its supervisor knows
    if (spec_.timers.vnf_stall.count() > 0)
      log::warn("instance {} ({}): no pid_file or cgroup: a VNF that dies while its veth stays up is noticed only "
                "from the dataplane, once it has answered none of its packets for {} s (timers.vnf_stall_s), "
                "and not while it gets no traffic; set pid_file or cgroup to notice it at once",
                i.name, i.id, spec_.timers.vnf_stall.count());
    else
      log::warn("instance {} ({}): no liveness source but its veth (no pid_file or cgroup, timers.vnf_stall_s is 0): "
                "a VNF that dies while its veth stays up stays announced and chosen", i.name, i.id);
  }
}

void Agent::set_dead(const LocalInstanceSpec& i, const std::string& why) {
  log::warn("instance {} ({}) is down: {}; announced down and withdrawn", i.name, i.id, why);
  if (ospf_) {
    if (auto r = ospf_->announce(monitor_->down_info(i.id)); !r)
      log::warn("announce instance {} down: {}", i.id, r.error().str());
    else
      down_handed(i.id, Clock::now());
  }
  withdraw_local(i);
}

std::optional<uint64_t> Agent::nf_consumed(const LocalInstanceSpec& i) const {
  if (!nf_ || !i.nf) return std::nullopt;
  auto m = nf::InstanceMaps::open(nf_->options().run_dir, i.nf->name);
  if (!m) return std::nullopt;
  uint64_t n = 0;
  for (uint32_t s : {AC_NF_DROP_BAD_NSH, AC_NF_DROP_BAD_INNER, AC_NF_DROP_FILTERED, AC_NF_DROP_FTC, AC_NF_HOLD}) {
    auto v = m->percpu_sum("nf_stats", s);
    if (!v || v->empty()) return std::nullopt;
    n += (*v)[0];
  }
  return n;
}

void Agent::check_liveness(Clock::time_point now, const std::map<uint32_t, uint64_t>* delivered) {
  for (const auto& i : spec_.instances) {
    LivenessProbe p;
    auto link = LinkWatcher::query(i.veth);
    if (!link)
      p.link_problem = fmt::format("veth {} does not exist", i.veth);
    else if (!link->admin_up)
      p.link_problem = fmt::format("veth {} is down", i.veth);
    else if (!link->up)
      p.link_problem = fmt::format("veth {} has no carrier (its peer is down)", i.veth);
    // chain traffic back from it (the fast path's ac_inst_returned), not the veth's rx_packets:
    // a dead VNF's side still sends ARP, ND and the like (docs/agent.md, "Liveness")
    if (auto r = dp_.instance_returned(i.id); r) p.answered = r->packets;
    // a built-in NF answers what it drops too: its program counted it (a firewall dropping all it
    // gets by rule, an FTC hop dropping what its full store cannot replicate is not dead). Only
    // on monitor ticks, where the stall is judged.
    if (delivered && i.nf && p.answered)
      if (auto c = nf_consumed(i)) *p.answered += *c;
    if (!i.pid_file.empty()) {
      p.pid = read_pid_file(i.pid_file);
      p.process = process_alive(i.pid_file);
    }
    if (i.nf) p.supervised = nf_ && nf_->alive(i.name);  // its anychain-nf process, run by nf_
    p.cgroup = cgroup_populated(i.cgroup);
    if (delivered)
      if (auto d = delivered->find(i.id); d != delivered->end()) p.delivered = d->second;
    auto [it, fresh] = liveness_.try_emplace(i.id, spec_.timers.vnf_stall);
    bool changed = it->second.update(p, now);
    bool alive = it->second.alive();
    // dead at start: say so (peers may still hold its old LSA); an FTC instance alive at start
    // is one back (its node or agent restarted: docs/ftc.md 7.3), never announced as it is
    if (fresh && (!alive || i.ftc)) changed = true;
    if (!changed) continue;
    if (ftc_standby_waiting(i, alive, now)) continue;
    // an FTC instance back: a new incarnation, announced once its state is recovered (or once
    // the first plane says nobody else runs it)
    if (alive && i.ftc) monitor_->set_alive(i.id, false);
    if (alive && ftc_restarted(i, now)) {
      log::info("instance {} ({}) is up; recovering its state before it is announced", i.name, i.id);
      nf_down_at_.erase(i.id);
      continue;
    }
    if (alive) {
      instance_up(i, now);
    } else {
      monitor_->set_alive(i.id, false);
      if (i.nf && i.nf->restart == nf::Restart::Always && ospf_) {
        log::warn("instance {} ({}) is down: {}; withdrawn here, announced down unless it is back within {} ms",
                  i.name, i.id, it->second.reason(), kNfRestartGrace.count());
        withdraw_local(i);
        nf_down_at_.try_emplace(i.id, now + kNfRestartGrace);
      } else {
        set_dead(i, it->second.reason());
      }
    }
    throttle_.kick(now);
  }
}

void Agent::instance_up(const LocalInstanceSpec& i, Clock::time_point now) {
  monitor_->set_alive(i.id, true);
  log::info("instance {} ({}) is up", i.name, i.id);
  ftc_was_alive_.insert(i.id);
  nf_down_at_.erase(i.id);
  next_monitor_ = std::min(next_monitor_, now);  // announce it at once
}

void Agent::check_endpoint() {
  char want[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &spec_.nsh_endpoint, want, sizeof want);
  bool present = false;
  if (ifaddrs* all = nullptr; getifaddrs(&all) == 0) {
    for (ifaddrs* i = all; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
          reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == spec_.nsh_endpoint.s_addr)
        present = true;
    freeifaddrs(all);
  }
  if (present != endpoint_present_) {
    if (present) log::info("NSH endpoint {} is configured on this node", want);
    else log::error("NSH endpoint {} is not an address of this node: other nodes' VXLAN-GPE will not reach it", want);
  }
  endpoint_present_ = present;
}

void Agent::on_link(const LinkEvent& e) {
  for (const auto& i : spec_.interfaces)
    if (i.name == e.name && !e.up) log::warn("interface {} is {}", e.name, e.exists ? "down" : "gone");
  ports_->on_link(e);
  if (slow_ && !slow_->intact()) {
    // someone deleted the pair: make it again, and point the fast path at the new one
    log::warn("slow path: {} was removed; setting it up again", slow_->fast_if());
    slow_.reset();
    open_slow_path();
    if (auto r = apply_static(); !r) log::warn("{}", r.error().str());
  }
  check_liveness(Clock::now());
}

void Agent::monitor_tick(Clock::time_point now, bool announce) {
  ports_->refresh_mtus();
  state_local();
  std::map<uint32_t, uint64_t> packets;
  for (const auto& i : spec_.instances)
    if (auto c = dp_.instance_stats(i.id); c) packets[i.id] = c->packets;
  check_liveness(now, &packets);
  for (const auto& v : monitor_->tick(packets, now, announce)) {
    if (hold_up(v, now)) continue;  // its down is not in the LSDB yet: released by release_ups
    announce_up(v);
  }
  release_ups(now);
}

bool Agent::announce_up(const ospf::VnfInfo& v) {
  // programmed here before peers learn of it: they may send to it as soon as the LSA reaches them
  if (!v.down() && !v.standby())
    if (auto p = sync_->program_local(v.instance_id, [this](uint32_t id) { return monitor_->alive(id); }); !p)
      log::warn("instance {}: not written into the maps before its announcement: {}", v.instance_id,
                p.error().str());
  auto r = ospf_->announce(v);
  if (!r) log::warn("announce instance {}: {}", v.instance_id, r.error().str());
  return r.has_value();
}

void Agent::nf_down_due(Clock::time_point now) {
  for (auto it = nf_down_at_.begin(); it != nf_down_at_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    for (const auto& i : spec_.instances)
      if (i.id == it->first && !monitor_->alive(i.id)) set_dead(i, "not back after its restart grace");
    it = nf_down_at_.erase(it);
  }
}

void Agent::withdraw_due(Clock::time_point now) {
  for (auto it = withdraw_at_.begin(); it != withdraw_at_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    if (auto r = ospf_->withdraw(it->first); !r && r.error().code != ENOENT)
      log::warn("withdraw instance {}: {}", it->first, r.error().str());
    it = withdraw_at_.erase(it);
  }
}

void Agent::watch_ospfd_pid_file() {
  if (spec_.ospfd_pid_file.empty()) return;
  std::filesystem::path p(spec_.ospfd_pid_file);
  UniqueFd fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) {
    log::warn("watch ospfd's pid file {}: inotify: {}", p.string(), std::strerror(errno));
    return;
  }
  // the directory: ospfd re-creates or rewrites the file when it starts
  if (inotify_add_watch(fd.get(), p.parent_path().c_str(), IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    log::warn("watch ospfd's pid file {}: {}", p.string(), std::strerror(errno));
    return;
  }
  ospfd_watch_ = std::move(fd);
  ospfd_pid_name_ = p.filename().string();
  log::info("watching {}: reconnecting as soon as ospfd writes it", p.string());
}

void Agent::on_ospfd_pid_file() {
  alignas(inotify_event) char buf[4096];
  bool ours = false;
  for (;;) {
    ssize_t n = read(ospfd_watch_.get(), buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      if (ev->len && ospfd_pid_name_ == ev->name) ours = true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (ours && !ospf_->connected()) {
    log::info("ospfd's pid file {} was written: reconnecting", spec_.ospfd_pid_file);
    ospf_->reconnect_soon();
  }
}

int Agent::run(const std::function<bool()>& should_stop) {
  while (!should_stop()) {
    auto now = Clock::now();
    if (trust_lsdb_at_ && now >= *trust_lsdb_at_) {
      trust_lsdb_at_.reset();
      lsdb_trusted_ = true;
      throttle_.kick(now);
    }
    if (lsdb_trusted_ && throttle_.take(now)) recompute(now);
    if (nexthops_dirty_ && now >= last_nexthop_flush_ + std::chrono::milliseconds(100)) {
      nexthops_dirty_ = false;
      last_nexthop_flush_ = now;
      if (auto r = dp_.flush_nexthops(); !r) log::warn("flush the next-hop cache: {}", r.error().str());
    }
    if (now >= next_monitor_ || now >= next_announce_) {
      bool announce = now >= next_announce_;
      monitor_tick(now, announce);
      if (now >= next_monitor_) next_monitor_ = now + spec_.timers.monitor_interval;
      if (announce) next_announce_ = now + spec_.timers.announce_interval;
    }
    withdraw_due(now);
    nf_down_due(now);
    state_tick(now);
    // next deadline
    Clock::time_point wake = std::min(next_monitor_, next_announce_);
    for (const auto& [id, t] : withdraw_at_) wake = std::min(wake, t);
    for (const auto& [id, t] : nf_down_at_) wake = std::min(wake, t);
    if (auto t = ospf_->next_timer()) wake = std::min(wake, *t);
    if (auto t = throttle_.due(); t && lsdb_trusted_) wake = std::min(wake, *t);
    if (trust_lsdb_at_) wake = std::min(wake, *trust_lsdb_at_);
    if (nexthops_dirty_) wake = std::min(wake, last_nexthop_flush_ + std::chrono::milliseconds(100));
    if (nf_)
      if (auto t = nf_->next_timer()) wake = std::min(wake, *t);
    if (state_) wake = std::min(wake, next_state_tick_);
    if (auto t = ftc_wake()) wake = std::min(wake, *t);
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    int timeout = static_cast<int>(std::clamp<long long>(ms, 0, 1000));

    std::vector<pollfd> pfds;
    std::vector<int> ofds = ospf_->fds();
    for (int fd : ofds) pfds.push_back({fd, POLLIN, 0});
    pfds.push_back({links_.fd(), POLLIN, 0});
    if (ospfd_watch_) pfds.push_back({ospfd_watch_.get(), POLLIN, 0});
    const size_t nf_first = pfds.size();
    if (nf_)
      for (const auto& p : nf_->fds()) pfds.push_back(p);
    const size_t nf_end = pfds.size();
    if (state_)
      for (int fd : state_->fds()) pfds.push_back({fd, POLLIN, 0});
    const size_t state_end = pfds.size();
    std::vector<size_t> owner(pfds.size(), SIZE_MAX);
    bool state_input = false;
    for (size_t si = 0; si < sources_.size(); ++si)
      for (const auto& p : sources_[si].fds()) {
        pfds.push_back(p);
        owner.push_back(si);
      }
    int n = poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR) {
      log::error("poll: {}", std::strerror(errno));
      return 1;
    }
    for (size_t k = 0; k < pfds.size(); ++k) {
      const auto& p = pfds[k];
      if (!p.revents) continue;
      if (owner[k] != SIZE_MAX) {
        sources_[owner[k]].on_event(p.fd, p.revents);
      } else if (k >= nf_first && k < nf_end) {
        if (nf_) nf_->on_event(p.fd, p.revents);
      } else if (k >= nf_end && k < state_end) {
        state_input = true;
      } else if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) {
        continue;
      } else if (std::find(ofds.begin(), ofds.end(), p.fd) != ofds.end()) {
        ospf_->on_readable(p.fd);
      } else if (p.fd == links_.fd()) {
        links_.on_readable();
      } else if (ospfd_watch_ && p.fd == ospfd_watch_.get()) {
        on_ospfd_pid_file();
      }
    }
    if (state_input && state_) {
      state_->on_readable();
      state_->tick();  // acknowledgements and merges of what just came in
    }
    ospf_->on_timer(Clock::now());
    if (nf_) nf_->on_timer(Clock::now());
    if (ftc_) {
      // every interface a chain can end on: the configured ones and the instances' veths
      std::vector<std::string> names;
      for (const auto& i : spec_.interfaces) names.push_back(i.name);
      for (const auto& i : spec_.instances) names.push_back(i.veth);
      ftc_->ensure(names);
      ftc_->on_timer();
    }
    ftc_tick();
  }
  shutdown();
  return 0;
}

void Agent::shutdown() {
  if (nf_) {
    // the NFs end with the agent (their processes would die with it anyway): out of the fast path
    nf_->stop_all(spec_.flush_on_exit);
    for (const auto& i : spec_.instances)
      if (i.nf) (void)dp_.del_instance(i.id);
    log::info("stopped the built-in network functions{}", spec_.flush_on_exit ? ", removed their namespaces" : "");
  }
  if (spec_.flush_on_exit) {
    ports_->detach_all();
    if (slow_) {
      slow_.reset();
      if (auto r = slowpath::SlowPath::remove(); !r) log::warn("slow path: {}", r.error().str());
    }
    if (auto r = dataplane::Dataplane::unpin_all(spec_.dataplane.pin_root); !r) log::warn("{}", r.error().str());
    log::info("detached, slow path removed and unpinned (--flush-on-exit)");
  } else {
    log::info("exiting; the fast path keeps forwarding from the maps pinned under {}", spec_.dataplane.pin_root);
  }
  ospf_->disconnect();
}

}  // namespace anychain::daemon
