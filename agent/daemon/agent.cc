#include "daemon/agent.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <ifaddrs.h>
#include <poll.h>

#include <fmt/format.h>

#include <algorithm>

#include "common/log.h"

namespace anychain::daemon {

namespace {

std::string ip_str(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, b, sizeof b);
  return b;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  char b[32];
  std::strftime(b, sizeof b, "%FT%TZ", std::gmtime(&tt));
  return b;
}

}  // namespace

Agent::Agent(AgentSpec spec, dataplane::Dataplane dp, LinkWatcher links)
    : spec_(std::move(spec)),
      dp_(std::move(dp)),
      links_(std::move(links)),
      throttle_(spec_.timers.spf_delay, spec_.timers.spf_hold),
      hold_(spec_.hold_down) {}

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
  if (auto live = a->dp_.live_instances(); live) {
    a->sync_->adopt(*live);
    if (!live->empty()) log::info("adopted {} live instances from the pinned maps", live->size());
  }
  a->monitor_ = std::make_unique<VnfMonitor>(a->spec_);
  a->links_.on_event = [p = a.get()](const LinkEvent& e) { p->on_link(e); };
  // a neighbour or route changed: next hops cached by the fast path may be stale
  a->links_.on_route = [p = a.get()] { p->nexthops_dirty_ = true; };
  a->links_.on_address = [p = a.get()] { p->check_endpoint(); };
  if (auto r = a->apply_static(); !r) return unexpected(r.error());

  a->ospf_ = std::make_unique<ospf::Client>(a->spec_.ospf);
  a->sync_nf();
  a->ospf_->on_lsdb_changed = [p = a.get()](const ospf::Lsdb&) {
    if (p->lsdb_trusted_) p->throttle_.kick(Clock::now());
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
  a->check_liveness();
  a->check_endpoint();
  if (auto r = a->ospf_->connect(); !r)
    log::warn("ospfd not reachable yet ({}); retrying with backoff", r.error().str());
  a->next_monitor_ = Clock::now();
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
  // what this node announced and no longer has: withdraw (ids first: withdraw() erases from
  // the map local() returns)
  std::vector<uint32_t> gone;
  for (const auto& [id, _] : ospf_->local())
    if (std::none_of(spec.instances.begin(), spec.instances.end(),
                     [id = id](const LocalInstanceSpec& i) { return i.id == id; }))
      gone.push_back(id);
  for (uint32_t id : gone) (void)ospf_->withdraw(id);
  const bool endpoint_moved = spec.nsh_endpoint.s_addr != spec_.nsh_endpoint.s_addr;
  spec_ = std::move(spec);
  monitor_ = std::make_unique<VnfMonitor>(spec_);
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
  check_liveness();
  next_monitor_ = Clock::now();
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
                        .wcmp = spec_.wcmp};
  auto view = plane::compute_plane(ospf_->lsdb(), pc, &hold_, now);
  if (!view) {
    last_plane_error_ = view.error().str();
    log::warn("service plane: {}", last_plane_error_);
    return;
  }
  last_plane_error_.clear();
  last_report_ = sync_->apply(*view, *self, [this](uint32_t id) { return monitor_->alive(id); });
  for (const auto& e : last_report_.errors) log::warn("{}", e);
  last_view_ = std::move(*view);
  last_recompute_ = std::chrono::system_clock::now();
  ++recomputations_;
  log::debug("recomputed: {} services, {} instances, {} withdrawn", last_report_.services, last_report_.instances,
             last_report_.withdrawn);
  if (auto exp = hold_.next_expiry()) throttle_.kick(std::max(now, *exp - spec_.timers.spf_delay));
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
    nf_->on_change = [this](const std::string&, bool) { check_liveness(); };
    nf_->on_veth = [this](const std::string& name, const std::string& veth) { on_nf_veth(name, veth); };
  }
  nf_->configure(specs);
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
}

void Agent::check_liveness() {
  for (const auto& i : spec_.instances) {
    auto link = LinkWatcher::query(i.veth);
    bool alive = link && link->up && process_alive(i.pid_file) && (!i.nf || (nf_ && nf_->alive(i.name)));
    if (monitor_->set_alive(i.id, alive)) {
      log::info("instance {} ({}) is {}", i.name, i.id, alive ? "up" : "down: withdrawn");
      if (!alive) {
        if (ospf_) (void)ospf_->withdraw(i.id);
        (void)dp_.del_instance(i.id);
      }
      throttle_.kick(Clock::now());
    }
  }
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
  check_liveness();
}

void Agent::monitor_tick(Clock::time_point now) {
  ports_->refresh_mtus();
  check_liveness();
  std::map<uint32_t, uint64_t> packets;
  for (const auto& i : spec_.instances)
    if (auto c = dp_.instance_stats(i.id); c) packets[i.id] = c->packets;
  for (const auto& v : monitor_->tick(packets, now)) {
    if (auto r = ospf_->announce(v); !r) log::warn("announce instance {}: {}", v.instance_id, r.error().str());
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
    if (now >= next_monitor_) {
      monitor_tick(now);
      next_monitor_ = now + spec_.timers.announce_interval;
    }
    // next deadline
    Clock::time_point wake = next_monitor_;
    if (auto t = ospf_->next_timer()) wake = std::min(wake, *t);
    if (auto t = throttle_.due(); t && lsdb_trusted_) wake = std::min(wake, *t);
    if (trust_lsdb_at_) wake = std::min(wake, *trust_lsdb_at_);
    if (nexthops_dirty_) wake = std::min(wake, last_nexthop_flush_ + std::chrono::milliseconds(100));
    if (nf_)
      if (auto t = nf_->next_timer()) wake = std::min(wake, *t);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now()).count();
    int timeout = static_cast<int>(std::clamp<long long>(ms, 0, 1000));

    std::vector<pollfd> pfds;
    std::vector<int> ofds = ospf_->fds();
    for (int fd : ofds) pfds.push_back({fd, POLLIN, 0});
    pfds.push_back({links_.fd(), POLLIN, 0});
    const size_t nf_first = pfds.size();
    if (nf_)
      for (const auto& p : nf_->fds()) pfds.push_back(p);
    const size_t nf_end = pfds.size();
    std::vector<size_t> owner(pfds.size(), SIZE_MAX);
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
      } else if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) {
        continue;
      } else if (std::find(ofds.begin(), ofds.end(), p.fd) != ofds.end()) {
        ospf_->on_readable(p.fd);
      } else if (p.fd == links_.fd()) {
        links_.on_readable();
      }
    }
    ospf_->on_timer(Clock::now());
    if (nf_) nf_->on_timer(Clock::now());
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

nlohmann::json Agent::status() const {
  nlohmann::json j;
  nlohmann::json warnings = nlohmann::json::array();
  j["interfaces"] = ports_->status(spec_.inner_mtu, warnings);
  if (slow_) {
    j["slow_path"] = slow_->status();
  } else {
    j["slow_path"] = {{"state", spec_.slow_path ? "failed: " + slow_error_ : "off (node.slow_path: false)"}};
    warnings.push_back(fmt::format("no slow path ({}): packets too big for their next hop are dropped (drop_too_big)",
                                   spec_.slow_path ? slow_error_ : "node.slow_path: false"));
  }
  j["agent"] = {{"state", "running"}, {"pin_root", spec_.dataplane.pin_root},
                {"stats_map_id", dp_.map_id("ac_stats")},
                {"nsh_endpoint", ip_str(ntohl(spec_.nsh_endpoint.s_addr))},
                {"nsh_endpoint_present", endpoint_present_}};
  const auto& st = ospf_->stats();
  auto self = self_router();
  j["ospf"] = {{"server", fmt::format("{}:{}", spec_.ospf.server_addr, spec_.ospf.server_port)},
               {"connected", ospf_->connected()},
               {"ready", ospf_->ready()},
               {"lsdb_trusted", lsdb_trusted_},
               {"router_id", self ? ip_str(*self) : ""},
               {"lsdb_size", ospf_->lsdb().size()},
               {"connects", st.connects},
               {"disconnects", st.disconnects},
               {"notifications", st.notifications},
               {"rejected_lsas", st.rejected_lsas},
               {"bad_messages", st.bad_messages},
               {"originations", st.originations},
               {"last_error", ospf_->last_error()}};
  j["recompute"] = {{"count", recomputations_},
                    {"last", last_recompute_ ? iso_time(*last_recompute_) : ""},
                    {"services", last_report_.services},
                    {"instances", last_report_.instances},
                    {"errors", last_report_.errors},
                    {"plane_error", last_plane_error_}};
  if (last_view_)
    j["plane"] = {{"routers", last_view_->routers},
                  {"unreachable_instances", last_view_->unreachable_instances},
                  {"malformed_vnf_lsas", last_view_->stats.malformed_vnf_lsas},
                  {"malformed_router_lsas", last_view_->stats.malformed_router_lsas},
                  {"malformed_network_lsas", last_view_->stats.malformed_network_lsas},
                  {"one_way_links", last_view_->stats.one_way_links}};
  nlohmann::json local = nlohmann::json::array();
  for (const auto& [id, l] : monitor_->loads())
    local.push_back({{"id", id}, {"alive", l.alive}, {"pps", l.pps}, {"cpu", l.cpu}, {"load", l.load},
                     {"cost", l.announced},
                     {"fresh_cost", l.fresh_cost}, {"announced", l.announced_once && l.alive}});
  j["local_instances"] = local;
  j["nf"] = nf_ ? nf_->status() : nlohmann::json::array();
  if (!endpoint_present_)
    warnings.push_back(fmt::format("NSH endpoint {} is not an address of this node", ip_str(ntohl(spec_.nsh_endpoint.s_addr))));
  j["warnings"] = warnings;
  return j;
}

nlohmann::json Agent::topology() const {
  nlohmann::json j;
  nlohmann::json routers = nlohmann::json::array();
  if (auto self = self_router()) {
    auto topo = plane::build_topology(ospf_->lsdb(), spec_.ospf.area, spec_.ospf.opaque_type);
    if (auto spf = plane::spf(topo, *self); spf) {
      for (size_t n = 0; n < topo.nodes.size(); ++n) {
        if (topo.nodes[n].kind != plane::NodeKind::Router) continue;
        nlohmann::json r = {{"router_id", ip_str(topo.nodes[n].id)}, {"self", topo.nodes[n].id == *self}};
        if (spf->dist[n] == plane::kUnreachable) r["reachable"] = false;
        else r["cost"] = spf->dist[n];
        routers.push_back(r);
      }
    }
  }
  j["routers"] = routers;
  nlohmann::json services = nlohmann::json::array();
  for (const auto& [id, s] : sync_->services()) {
    nlohmann::json inst = nlohmann::json::array();
    uint64_t total = 0;
    for (const auto& i : s.instances) total += i.weight;
    for (const auto& i : s.instances)
      inst.push_back({{"id", i.id}, {"router", ip_str(i.router)}, {"local", i.local}, {"nsh_aware", i.nsh_aware},
                      {"endpoint", ip_str(i.endpoint)}, {"path_cost", i.path_cost}, {"vnf_cost", i.vnf_cost},
                      {"weight", i.weight}, {"share", total ? static_cast<double>(i.weight) / total : 0.0},
                      {"held", i.held}});
    services.push_back({{"id", id}, {"name", s.name}, {"instances", inst}, {"last_moved", s.last_moved}});
  }
  j["services"] = services;
  return j;
}

}  // namespace anychain::daemon
