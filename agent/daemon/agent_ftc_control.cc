// The agent's FTC side that needs neither the channel nor the NFs' maps: the control files of
// the local NF instances of FTC services (docs/ftc.md 7, docs/nf.md "FTC control") and the
// instances' incarnations.
#include <algorithm>
#include <filesystem>

#include <fmt/ranges.h>

#include "common/log.h"
#include "daemon/agent.h"
#include "daemon/ftc_peers.h"

namespace anychain::daemon {

// An agent that restarts finds the incarnation each NF runs with in its control file (the NF
// applied it to nf_ftc_cfg): it keeps announcing that one. Such an NF ran under the previous
// agent, and died with it (its process is the agent's child): its state now lives only in the
// other hops' replicas, so its next start is a restart to recover, like one seen by this agent.
void Agent::load_ftc_incarnations() {
  if (!nf_) return;
  for (const auto& i : spec_.instances) {
    if (!i.ftc || !i.nf || ftc_inc_.contains(i.id)) continue;
    const std::string path = nf_->ftc_control_file(i.nf->name);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    if (auto c = nf::read_ftc_control(path); c) {
      ftc_inc_[i.id] = c->incarnation;
      ftc_written_[i.nf->name] = *c;
      ftc_was_alive_.insert(i.id);
    } else {
      log::warn("ftc: {}: {} (its incarnation starts at 0)", path, c.error().str());
    }
  }
  for (const auto& [id, inc] : ftc_inc_) monitor_->set_incarnation(id, inc);
}

void Agent::sync_ftc_controls() {
  if (!nf_ || spec_.ftc_chains.empty() || !last_view_) return;
  auto controls = compute_ftc_controls(spec_, *last_view_, ftc_inc_);
  // holders a moment out of the plane stay asked while their node is reached (ftc_peers.h)
  uint32_t idle = nf::kFtcDefaultPeerIdle;
  for (const auto& i : spec_.instances)
    if (i.ftc && i.nf) idle = std::max(idle, i.nf->params.idle_timeout_s);
  ftc_holders_.apply(controls.recovery, *last_view_, Clock::now(), std::chrono::seconds(idle + 30));
  ftc_targets_ = controls.recovery;
  if (controls.problems != ftc_control_problems_)
    for (const auto& p : controls.problems) log::warn("ftc control: {}", p);
  ftc_control_problems_ = std::move(controls.problems);
  for (auto& [name, c] : controls.by_name) {
    auto it = ftc_written_.find(name);
    if (it != ftc_written_.end() && it->second == c) continue;
    if (auto r = nf_->set_ftc_control(name, c); !r) {
      ++ftc_control_errors_;
      log::warn("ftc control of {}: {}", name, r.error().str());
      continue;
    }
    ++ftc_control_writes_;
    log::info("ftc control of {}: f {}, incarnation {}, {} peers, {} successors", name, c.f, c.incarnation,
              c.peers.size(), c.successors.size());
    ftc_written_[name] = std::move(c);
  }
}

void Agent::withdraw_local(const LocalInstanceSpec& i) {
  if (!i.ftc) {
    (void)dp_.del_instance(i.id);
    return;
  }
  ftc_died_at_.try_emplace(i.id, Clock::now());
  if (auto r = dp_.set_instance_recovering(i.id); !r)
    log::warn("ftc: freeze instance {} ({}): {}", i.name, i.id, r.error().str());
}

bool Agent::ftc_restarted(const LocalInstanceSpec& i, Clock::time_point now) {
  if (!i.ftc) return false;
  const uint8_t inc = static_cast<uint8_t>(ftc_inc_[i.id] + 1);  // wraps: compared in serial arithmetic
  ftc_inc_[i.id] = inc;
  monitor_->set_incarnation(i.id, inc);
  ++ftc_restarts_;
  Clock::time_point detected = now;
  if (auto d = ftc_died_at_.find(i.id); d != ftc_died_at_.end()) {
    detected = d->second;
    ftc_last_restart_ms_ = std::chrono::duration<double, std::milli>(now - d->second).count();
    ftc_died_at_.erase(d);
  }
  log::info("ftc: instance {} ({}) restarted as incarnation {} ({:.1f} ms after its death was noticed)", i.name, i.id,
            inc, ftc_last_restart_ms_);
  if (!last_view_) {
    // the agent has just started: whether another router runs it (it stands down then), the
    // incarnations announced for it and its holders come from the first service plane
    // (ftc_start_deferred, after ftc_stand_down; docs/ftc.md 7.3)
    if (ftc_deferred_.try_emplace(i.id, FtcDeferred{inc, detected, Clock::now()}).second)
      log::info("ftc: instance {} ({}) waits for the service plane before it is recovered or announced", i.name, i.id);
    return true;
  }
  return ftc_come_back(i, inc, detected);  // agent_ftc_standby.cc
}

// The recovery service lives on the channel: every node answers RECOVER_REQ for its NFs, and
// runs the recoveries of its own restarted instances. Made again when the channel object is.
void Agent::sync_ftc_recovery() {
  if (ftc_recovery_ && ftc_recovery_on_ == ftc_channel_.get()) return;
  ftc_recovery_.reset();
  ftc_recovery_on_ = ftc_channel_.get();
  if (!ftc_channel_) return;
  FtcRecoveryService::Link link{
      [this](ftc::chan::Type t, ftc::Channel::Handler h) {
        if (ftc_channel_) ftc_channel_->on(t, std::move(h));
      },
      [this](uint32_t node, const ftc::chan::Body& m) -> Result<void> {
        if (!ftc_channel_) return fail("ftc channel closed", ENOTCONN);
        if (node == ftc_channel_->self()) {
          ftc_local_q_.push_back(m);
          return {};
        }
        return ftc_channel_->send(node, m);
      }};
  ftc_recovery_ = std::make_unique<FtcRecoveryService>(std::move(link), [this] { return ftc_local_holders(); });
  ftc_recovery_->on_recovered = [this](const FtcRecoveryService::Result& r) { ftc_recovered(r); };
  ftc_channel_->on_peer = [this](uint32_t node, bool up) {
    if (!ftc_recovery_) return;
    if (up)
      ftc_recovery_->on_peer_up(node);
    else
      ftc_recovery_->on_peer_down(node);
  };
}

bool Agent::ftc_begin_recovery(const LocalInstanceSpec& i, uint8_t inc, Clock::time_point detected) {
  if (!ftc_recovery_ || !i.nf) {
    ++ftc_recoveries_unrecovered_;
    log::warn("ftc: instance {} ({}) announced without its state: no FTC channel ({})", i.name, i.id,
              ftc_channel_error_.empty() ? "no key" : ftc_channel_error_);
    return false;
  }
  auto t = ftc_targets_.find(i.id);
  if (t == ftc_targets_.end() && !last_view_) {
    // the agent has just started: the holders come from the first service plane
    if (ftc_deferred_.try_emplace(i.id, FtcDeferred{inc, detected, Clock::now()}).second)
      log::info("ftc: recovery of {} ({}) waits for the service plane", i.name, i.id);
    return true;
  }
  auto m = nf::InstanceMaps::open(nf_->options().run_dir, i.nf->name);
  if (t == ftc_targets_.end() || !m) {
    ++ftc_recoveries_unrecovered_;
    log::warn("ftc: instance {} ({}) announced without its state: {}", i.name, i.id,
              !m ? "its maps: " + m.error().str() : std::string("no recovery target (no plane yet)"));
    return false;
  }
  auto maps = std::make_unique<nf::InstanceMaps>(std::move(*m));
  const bool nat = i.nf->params.kind == nf::Kind::Nat;
  // nodes as the recovery service's own messages name them
  log::info("ftc recovery of {} ({}) as incarnation {}: asking {}", i.name, i.id, inc,
            t->second.holders.empty() ? std::string("no holder (none in the plane or remembered)")
                                      : fmt::format("nodes {:#x}", fmt::join(t->second.holders, ", ")));
  auto r = ftc_recovery_->begin(static_cast<uint16_t>(i.id), inc, t->second.geo, t->second.holders, maps.get(), nat,
                                detected);
  if (!r) {
    ++ftc_recoveries_unrecovered_;
    log::warn("ftc: recovery of {} ({}): {}; announced without its state", i.name, i.id, r.error().str());
    return false;
  }
  ++ftc_recoveries_started_;
  ftc_replacements_[i.id] = std::move(maps);
  return true;
}

void Agent::ftc_start_deferred(Clock::time_point now) {
  for (auto it = ftc_deferred_.begin(); it != ftc_deferred_.end();) {
    const auto id = it->first;
    const FtcDeferred d = it->second;
    auto spec = std::find_if(spec_.instances.begin(), spec_.instances.end(),
                             [&](const LocalInstanceSpec& x) { return x.id == id; });
    auto l = liveness_.find(id);
    if (spec == spec_.instances.end() || l == liveness_.end() || !l->second.alive()) {
      it = ftc_deferred_.erase(it);  // removed, or died again: its next start recovers
      continue;
    }
    if (!last_view_ && now - d.since < kFtcPlaneWait) {
      ++it;
      continue;
    }
    it = ftc_deferred_.erase(it);
    if (last_view_ && ftc_come_back(*spec, d.inc, d.detected)) continue;
    if (!last_view_) {
      ++ftc_recoveries_unrecovered_;
      log::warn("ftc: instance {} ({}) announced without its state: no service plane after {} s", spec->name, id,
                std::chrono::duration_cast<std::chrono::seconds>(kFtcPlaneWait).count());
    }
    instance_up(*spec, now);
    throttle_.kick(now);
  }
}

void Agent::ftc_recovered(const FtcRecoveryService::Result& r) {
  ftc_replacements_.erase(r.failed);
  if (r.conflict) {
    ++ftc_recoveries_conflict_;
    log::error("ftc: instance {}: another replacement won its recovery; not announced here", r.failed);
    return;
  }
  for (const auto& e : r.errors) log::warn("ftc: recovery of instance {}: {}", r.failed, e);
  auto l = liveness_.find(r.failed);
  if (l == liveness_.end() || !l->second.alive()) return;  // died again meanwhile: its next start recovers
  ftc_standby_affinity(r);  // a standby's replacement: its flows' next hops (agent_ftc_standby.cc)
  const auto now = Clock::now();
  monitor_->set_alive(r.failed, true);
  ftc_rerouting_.insert(r.failed);
  next_monitor_ = std::min(next_monitor_, now);  // announce it at once
  // Recompute at once, not after spf_delay and what remains of spf_hold since the death's own
  // recomputation (about 130 ms of the rerouting time, docs/performance.md): the recovered
  // instance is put in this node's maps as soon as the plane has it live. If this node's down LSA
  // for it is in the LSDB, the plane keeps it frozen until its up LSA is back from ospfd: that
  // LSDB change recomputes at once too (ftc_lsdb_kick), for kFtcRerouteWindow at most, so a
  // recovery that never comes live does not unthrottle the plane for good.
  ftc_reroute_until_ = now + kFtcRerouteWindow;
  throttle_.kick_now(now);
}

void Agent::ftc_lsdb_kick(Clock::time_point now) {
  if (!ftc_rerouting_.empty() && now < ftc_reroute_until_)
    throttle_.kick_now(now);
  else
    throttle_.kick(now);
}

}  // namespace anychain::daemon
