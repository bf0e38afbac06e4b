#include "daemon/ftc_egress.h"

#include <net/if.h>

#include <chrono>

#include "common/log.h"

namespace anychain::daemon {

namespace {
// to: plus the counters of from (not the gauges held_now, held_bytes)
void add_counters(ftc::EgressPort::Stats& to, const ftc::EgressPort::Stats& from) {
  to.rx += from.rx;
  to.bad_nsh += from.bad_nsh;
  to.not_ftc += from.not_ftc;
  to.released += from.released;
  to.released_at_end += from.released_at_end;
  to.release_failed += from.release_failed;
  to.consumed += from.consumed;
  to.full += from.full;
  to.expired += from.expired;
  to.fenced += from.fenced;
  to.egress_writes += from.egress_writes;
  to.egress_write_failed += from.egress_write_failed;
}
}  // namespace

uint64_t ftc_now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void FtcEgress::ensure(const std::vector<std::string>& ifnames) {
  for (const auto& name : ifnames) {
    const uint32_t ifindex = if_nametoindex(name.c_str());
    if (auto it = ports_.find(name); it != ports_.end()) {
      if (ifindex == it->second.ifindex) continue;
      // the interface was deleted (and perhaps made again under its name, as an NF's veth when
      // its namespace goes): the sockets are bound to the old one and its XSKMAP slots, so the
      // new one's FTC packets would find no socket (drop_ftc_no_buffer). Its held frames can
      // only leave through the old interface: they are dropped, counted.
      const auto held = it->second.port->stats().held_now;
      lost_with_interface_ += held;
      log::warn("FTC egress buffer on {}: the interface is {}; {} held frames dropped{}", name,
                ifindex ? "new" : "gone", held, ifindex ? ", binding the new one" : "");
      add_counters(before_[name], it->second.port->stats());
      ports_.erase(it);
      ++rebound_;
    }
    if (ifindex == 0) continue;
    ftc::EgressOptions o;
    o.ifname = name;
    o.xskmap_fd = dp_.map_fd("ac_ftc_xsk");
    o.prog_fd = dp_.prog_fd();
    o.egress_fd = dp_.map_fd("ac_ftc_egress");
    o.end_stats_fd = dp_.map_fd("ac_ftc_end_stats");
    o.limits = limits_;
    auto p = ftc::EgressPort::open(o);
    if (!p) {
      if (errors_[name] != p.error().str()) log::warn("{}", p.error().str());
      errors_[name] = p.error().str();
      continue;
    }
    errors_.erase(name);
    log::info("FTC egress buffer bound on {} (ifindex {})", name, ifindex);
    ports_.emplace(name, Bound{ifindex, std::move(*p)});
  }
}

std::vector<pollfd> FtcEgress::poll_fds() const {
  std::vector<pollfd> out;
  for (const auto& [_, b] : ports_)
    for (int fd : b.port->fds()) out.push_back({fd, POLLIN, 0});
  return out;
}

void FtcEgress::on_event(int fd, short) {
  for (auto& [_, b] : ports_)
    for (int f : b.port->fds())
      if (f == fd) b.port->poll(ftc_now_ns());
  send_out();
}

void FtcEgress::on_timer() {
  uint64_t now = ftc_now_ns();
  for (auto& [_, b] : ports_) {
    b.port->poll(now);
    b.port->expire(now);
  }
  send_out();
}

void FtcEgress::send_out() {
  for (auto& [name, b] : ports_) {
    auto& p = b.port;
    for (auto& fb : p->take_feedback()) {
      uint32_t to = fb.ingress;
      if (channel_ && channel_->send(to, std::move(fb)))
        ++feedback_sent_;
      else
        ++feedback_unsent_;
    }
    for (auto& r : p->take_released()) {
      if (channel_ && channel_->send(r.ingress, ftc::chan::Released{r.flow, std::move(r.cv)}))
        ++released_sent_;
      else
        ++released_unsent_;
    }
  }
}

size_t FtcEgress::held() const {
  size_t n = 0;
  for (const auto& [_, b] : ports_) n += b.port->stats().held_now;
  return n;
}

nlohmann::json FtcEgress::status() const {
  nlohmann::json ports = nlohmann::json::object();
  for (const auto& [name, b] : ports_) {
    auto s = b.port->stats();
    if (auto o = before_.find(name); o != before_.end()) add_counters(s, o->second);  // the interface's, not the port's
    ports[name] = {{"ifindex", b.ifindex}, {"rx", s.rx},           {"held", s.held_now},     {"held_bytes", s.held_bytes},
                   {"released", s.released},
                   {"released_at_chain_end", s.released_at_end}, {"consumed", s.consumed}, {"drop_full", s.full},
                   {"drop_expired", s.expired}, {"drop_fenced", s.fenced}, {"drop_bad_nsh", s.bad_nsh},
                   {"drop_not_ftc", s.not_ftc}, {"release_failed", s.release_failed},
                   {"egress_writes", s.egress_writes}, {"egress_write_failed", s.egress_write_failed}};
  }
  nlohmann::json unbound = nlohmann::json::object();
  for (const auto& [name, why] : errors_) unbound[name] = why;
  return {{"ports", ports},
          {"unbound", unbound},
          {"limits", {{"frames", limits_.packets}, {"per_partition", limits_.per_flow},
                      {"hold_timeout_ms", limits_.max_hold_ns / 1'000'000}}},
          {"feedback_sent", feedback_sent_},
          {"feedback_unsent", feedback_unsent_},
          {"released_sent", released_sent_},
          {"released_unsent", released_unsent_},
          {"rebound", rebound_},
          {"lost_with_interface", lost_with_interface_}};
}

}  // namespace anychain::daemon
