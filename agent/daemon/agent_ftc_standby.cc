// The agent's standbys (docs/ftc.md 7.3): a standby is announced as such (a VNF LSA flagged
// standby under the id of the instance it stands by for) and, when plane/standby.h says it acts,
// becomes that instance: it moves to the spec's instances (reload), its NF starts with the failed
// instance's incarnation + 1, its state is recovered from the holders like a restart in place
// (agent_ftc_control.cc), then it is announced and the plane re-points the frozen flows to it.
// The FTC channel's heartbeat detector is an input of the same path (docs/ftc.md 7.1).
#include <algorithm>

#include "common/log.h"
#include "daemon/agent.h"
#include "ospf/lsa.h"

namespace anychain::daemon {

void Agent::ftc_standby_apply(AgentSpec& s) const {
  std::set<uint32_t> down;
  for (const auto& [id, router] : ftc_stood_down_) down.insert(id);
  apply_standby_roles(s, ftc_standby_active_, down);
}

// A standby acting as its instance when the previous agent died (its NF died with it) is still
// the instance: the new agent starts with it acting, so its NF starts as a restart to recover, as
// a configured instance's does (load_ftc_incarnations reads its control file), and it stands down
// like any instance if another router runs it live meanwhile (ftc_stand_down).
void Agent::load_ftc_standby_acting() {
  if (spec_.standbys.empty()) return;
  const std::string path = standby_acting_path(spec_.nf.run_dir);
  auto acting = read_standby_acting(path);
  if (!acting) {
    log::warn("ftc standby: {} (no standby taken as acting)", acting.error().str());
    return;
  }
  for (const auto& sb : spec_.standbys)
    if (acting->contains(sb.id)) {
      ftc_standby_active_.insert(sb.id);
      log::warn("ftc standby {}: it ran as instance {} under the previous agent ({}): it still does, its state "
                "recovered from the holders before it is announced",
                sb.name, sb.id, path);
    }
  ftc_standby_apply(spec_);
}

void Agent::save_ftc_standby_acting() const {
  if (auto r = write_standby_acting(standby_acting_path(spec_.nf.run_dir), ftc_standby_active_); !r)
    log::error("ftc standby: {}: a restarted agent would not know which standbys act", r.error().str());
}

// The router another router's live (or held, newer) copy of local FTC instance `i` makes it
// yield to, if any (plane/standby.h superseded_by): its own incarnation counts as live only while
// it is announced, else as the one it would announce (its restart's, a held copy as new wins).
std::optional<uint32_t> Agent::ftc_superseded(const LocalInstanceSpec& i) const {
  if (!i.ftc || !last_view_ || !lsdb_trusted_) return std::nullopt;
  auto self = self_router();
  if (!self) return std::nullopt;
  std::optional<uint8_t> own;
  if (auto inc = ftc_inc_.find(i.id); inc != ftc_inc_.end()) own = inc->second;
  if (monitor_->alive(i.id)) return plane::superseded_by(*last_view_, *self, i.id, own);
  return plane::superseded_by(*last_view_, *self, i.id, std::nullopt, own);
}

// Every incarnation announced for FTC instance `id`: its VNF LSAs in the LSDB (every router's,
// down ones too; a standby LSA carries none) and the plane's held copies (their LSA is gone).
// `ran`: it ran before, as far as the LSDB tells (another router announces it, or this one's own
// LSA from a previous life, re-flooded by the neighbours: live, or with an incarnation).
std::vector<uint8_t> Agent::ftc_announced(uint32_t id, bool* ran) const {
  std::vector<uint8_t> out;
  bool before = false;
  const auto self = self_router();
  const uint32_t lsid = ospf::opaque_lsid(spec_.ospf.opaque_type, id);
  for (const auto& [k, e] : ospf_->lsdb().entries()) {
    if (k.type != 10 || k.area != spec_.ospf.area || k.id != lsid || e.raw.size() < ospf::kLsaHeaderSize) continue;
    auto v = ospf::parse_vnf_payload(ospf::ByteView(e.raw).subspan(ospf::kLsaHeaderSize));
    if (!v || !v->ftc() || v->standby()) continue;
    out.push_back(static_cast<uint8_t>(v->incarnation));
    before = before || k.adv_router != self || !v->down() || v->incarnation != 0;
  }
  if (last_view_) {
    auto add = [&](uint32_t router, const ospf::VnfInfo& v, bool held) {
      if (v.instance_id != id || !v.ftc() || !held) return;
      out.push_back(static_cast<uint8_t>(v.incarnation));
      before = before || router != self;
    };
    for (const auto& s : last_view_->services)
      for (const auto& c : s.candidates) add(c.router, c.info, c.held);
    for (const auto& x : last_view_->superseded) add(x.router, x.info, x.held);
  }
  if (ran) *ran = before;
  return out;
}

// A local FTC instance alive again once the plane is known (restarted, first seen alive by this
// agent: docs/ftc.md 7.3): announced with an incarnation newer than every one announced for its
// id (comeback_incarnation), after its state is recovered when it ran before (here, under the
// previous agent, or elsewhere). True when a recovery began: announced when it ends.
bool Agent::ftc_come_back(const LocalInstanceSpec& i, uint8_t next, Clock::time_point detected) {
  bool ran = false;
  const uint8_t inc = comeback_incarnation(next, ftc_announced(i.id, &ran));
  if (inc != next)
    log::info("ftc: instance {} ({}) comes back as incarnation {}, not {}: the LSDB announces {} already", i.name,
              i.id, inc, next, static_cast<uint8_t>(inc - 1));
  ftc_inc_[i.id] = inc;
  monitor_->set_incarnation(i.id, inc);
  sync_ftc_controls();  // the NF gets its incarnation before its recovery and its announcement
  if (!ftc_was_alive_.contains(i.id) && !ran) return false;  // its first start: nothing to recover
  return ftc_begin_recovery(i, inc, detected);
}

// A node back after a standby took its FTC instance over stands down (docs/ftc.md 7.3): the
// replacement keeps the instance and its flows (their state is at its head only, fenced against
// this node's older incarnation); this node stops its copy before recovering or announcing it,
// and stands by for it in turn (announced as a standby: it acts if the replacement fails).
// After every plane computation, before deferred recoveries start.
void Agent::ftc_stand_down(Clock::time_point now) {
  if (!last_view_) return;
  std::vector<std::pair<uint32_t, uint32_t>> yield;
  for (const auto& i : spec_.instances)
    if (auto w = ftc_superseded(i)) {
      yield.emplace_back(i.id, *w);
      log::warn("ftc: instance {} ({}) runs live on router {}{}: this node stands down (its copy stops) and stands "
                "by for it",
                i.name, i.id, ftc::node_str(*w),
                monitor_->alive(i.id) ? " with a newer incarnation" : " (a standby took it over while this node was away)");
    }
  if (yield.empty()) return;
  for (const auto& [id, router] : yield) {
    ftc_stood_down_[id] = router;
    ftc_standby_active_.erase(id);
    ftc_standby_pending_.erase(id);
    ftc_deferred_.erase(id);
    ftc_standby_.forget(id);
    ++ftc_stand_downs_;
  }
  save_ftc_standby_acting();
  if (auto r = reload(spec_); !r) log::error("ftc: standing down: {}", r.error().str());
  ftc_standby_announce();
  throttle_.kick(now);
}

std::vector<uint32_t> Agent::ftc_failed_endpoints() const {
  if (!ftc_channel_) return {};
  const auto& d = ftc_channel_->detected_down();
  return {d.begin(), d.end()};
}

void Agent::ftc_standby_announce() {
  if (!ospf_) return;
  const uint32_t endpoint = ntohl(spec_.nsh_endpoint.s_addr);
  for (const auto& sb : spec_.standbys) {
    auto svc = std::find_if(spec_.services.begin(), spec_.services.end(),
                            [&](const ServiceSpec& x) { return x.id == sb.service_id; });
    if (svc == spec_.services.end()) continue;
    ospf::VnfInfo v{.service_addr = svc->anycast_addr, .service_len = svc->anycast_len, .instance_id = sb.id,
                    .cost = 0, .capacity = 0, .nsh_endpoint = endpoint, .flags = ospf::kVnfFlagStandby, .incarnation = 0};
    if (auto it = ospf_->local().find(sb.id); it != ospf_->local().end() && it->second == v) continue;
    if (auto r = ospf_->announce(v); !r)
      log::warn("ftc standby {}: announce it stands by for instance {}: {}", sb.name, sb.id, r.error().str());
    else
      log::info("ftc standby {}: announced standing by for instance {}", sb.name, sb.id);
  }
}

// After every plane computation.
void Agent::ftc_standby_tick(Clock::time_point now) {
  if (ftc_channel_ && !ftc_channel_->on_detected)
    ftc_channel_->on_detected = [this] { throttle_.kick(Clock::now()); };
  ftc_standby_channel_peers();
  if (spec_.standbys.empty() || !last_view_) return;
  ftc_standby_.set_grace(std::min<std::chrono::milliseconds>(kStandbyWithdrawnGrace, spec_.ftc_recovery_hold / 2));
  ftc_standby_announce();
  auto self = self_router();
  if (!self) return;
  auto starts = ftc_standby_.update(*last_view_, *self, spec_.standbys, now);
  if (auto t = ftc_standby_.next_due()) throttle_.kick(std::max(now, *t));
  if (starts.empty()) return;
  AgentSpec next = spec_;
  for (const auto& s : starts) {
    auto sb = std::find_if(next.standbys.begin(), next.standbys.end(),
                           [&](const LocalInstanceSpec& x) { return x.id == s.id; });
    if (sb == next.standbys.end()) continue;
    log::warn("ftc standby {}: instance {} failed on router {} ({}): this node's standby acts (the reachable one "
              "with the lowest router id); starting it as incarnation {}",
              sb->name, s.id, ftc::node_str(s.failed_router), s.why, s.new_inc);
    ftc_standby_active_.insert(s.id);
    ftc_stood_down_.erase(s.id);  // a node that stood down for it acts again (its replacement failed)
    ftc_inc_[s.id] = s.new_inc;
    ftc_standby_pending_[s.id] = s.detected;
    ++ftc_standby_starts_;
  }
  save_ftc_standby_acting();
  if (auto r = reload(std::move(next)); !r)
    log::error("ftc standby: starting the replacement: {}", r.error().str());
}

// A standby started as its instance: not alive yet (its NF starting) or alive for the first
// time: its state is recovered before it is announced (like a restart in place). True when the
// liveness change was handled here.
bool Agent::ftc_standby_waiting(const LocalInstanceSpec& i, bool alive, Clock::time_point now) {
  if (alive && ftc_superseded(i)) {
    // another router runs it live: neither recovered nor announced here; it stands down on the
    // next computation (ftc_stand_down)
    monitor_->set_alive(i.id, false);
    throttle_.kick(now);
    return true;
  }
  auto p = ftc_standby_pending_.find(i.id);
  if (p == ftc_standby_pending_.end()) return false;
  if (!alive) {
    monitor_->set_alive(i.id, false);  // never announced before its state is in
    return true;
  }
  const Clock::time_point detected = p->second;
  ftc_standby_pending_.erase(p);
  ftc_was_alive_.insert(i.id);  // so ftc_come_back recovers it (its state is the failed one's)
  if (ftc_come_back(i, ftc_inc_[i.id], detected)) {
    log::info("ftc standby: instance {} ({}) is up here; recovering its state before it is announced", i.name, i.id);
    return true;
  }
  monitor_->set_alive(i.id, true);  // without its state (counted by ftc_begin_recovery)
  next_monitor_ = std::min(next_monitor_, now);
  throttle_.kick(now);
  return true;
}

// The channel's peers (connected and watched by the heartbeat detector): the nodes of the
// instances this node stands by for, and the holders of this node's FTC instances' records.
void Agent::ftc_standby_channel_peers() {
  if (!ftc_channel_ || !last_view_) return;
  auto v = ftc_channel_peers(spec_, *last_view_, ftc_targets_, ftc_channel_->self());
  if (v == ftc_channel_peers_) return;
  ftc_channel_peers_ = v;
  ftc_channel_->set_peers(v);
}

// A standby's replacement is recovered: its flows' next hops are the successors that held its
// head records (docs/ftc.md 7.5 step 3), written before it is announced.
void Agent::ftc_standby_affinity(const FtcRecoveryService::Result& r) {
  if (!ftc_standby_active_.contains(r.failed) || !last_view_) return;
  size_t skipped = 0;
  size_t written = 0;
  for (const auto& w : replacement_next_hops(r.head_sources, spec_, *last_view_, &skipped)) {
    if (auto e = dp_.set_affinity(w.spi, w.si, w.hash, w.id); !e) {
      ++skipped;
      log::warn("ftc standby: next hop of instance {} (spi {} si {} hash {:#x} -> {}): {}", r.failed, w.spi, w.si,
                w.hash, w.id, e.error().str());
      continue;
    }
    ++written;
  }
  ftc_standby_affinity_written_ += written;
  ftc_standby_affinity_skipped_ += skipped;
  log::info("ftc standby: instance {}: {} next-hop placements written from its recovered head records, {} left to WCMP",
            r.failed, written, skipped);
}

Result<void> Agent::check_standby(const std::string& name, uint32_t id, const std::string& service) const {
  if (!lsdb_trusted_ || !last_view_) return {};
  auto svc = std::find_if(spec_.services.begin(), spec_.services.end(),
                          [&](const ServiceSpec& s) { return s.name == service; });
  if (svc == spec_.services.end()) return {};  // a new service: the config's checks say what is wrong
  return check_standby_target(*last_view_, name, id, svc->anycast_addr, svc->anycast_len);
}

nlohmann::json Agent::ftc_standby_status() const {
  auto j = ftc_standby_.status(Clock::now());
  j["replacements_started"] = ftc_standby_starts_;
  nlohmann::json active = nlohmann::json::array();
  for (auto id : ftc_standby_active_) active.push_back(id);
  j["running_as"] = active;
  j["next_hops_written"] = ftc_standby_affinity_written_;
  j["next_hops_left_to_wcmp"] = ftc_standby_affinity_skipped_;
  nlohmann::json down = nlohmann::json::array();
  for (const auto& [id, router] : ftc_stood_down_) down.push_back({{"id", id}, {"live_on", ftc::node_str(router)}});
  j["stood_down"] = down;
  j["stand_downs"] = ftc_stand_downs_;
  return j;
}

}  // namespace anychain::daemon
