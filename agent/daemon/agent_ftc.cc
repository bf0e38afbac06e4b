// The agent's FTC side that needs neither the channel nor the NFs' maps: the control files of
// the local NF instances of FTC services (docs/ftc.md 7, docs/nf.md "FTC control") and the
// instances' incarnations.
#include <filesystem>

#include "common/log.h"
#include "daemon/agent.h"
#include "daemon/ftc_peers.h"

namespace anychain::daemon {

// An agent that restarts finds the incarnation each NF runs with in its control file (the NF
// applied it to nf_ftc_cfg): it keeps announcing that one.
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
    } else {
      log::warn("ftc: {}: {} (its incarnation starts at 0)", path, c.error().str());
    }
  }
  for (const auto& [id, inc] : ftc_inc_) monitor_->set_incarnation(id, inc);
}

void Agent::sync_ftc_controls() {
  if (!nf_ || spec_.ftc_chains.empty() || !last_view_) return;
  auto controls = compute_ftc_controls(spec_, *last_view_, ftc_inc_);
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

void Agent::ftc_restarted(const LocalInstanceSpec& i, Clock::time_point now) {
  if (!i.ftc) return;
  const uint8_t inc = static_cast<uint8_t>(ftc_inc_[i.id] + 1);  // wraps: compared in serial arithmetic
  ftc_inc_[i.id] = inc;
  monitor_->set_incarnation(i.id, inc);
  ++ftc_restarts_;
  if (auto d = ftc_died_at_.find(i.id); d != ftc_died_at_.end()) {
    ftc_last_restart_ms_ = std::chrono::duration<double, std::milli>(now - d->second).count();
    ftc_died_at_.erase(d);
  }
  log::info("ftc: instance {} ({}) restarted as incarnation {} ({:.1f} ms after its death was noticed)", i.name, i.id,
            inc, ftc_last_restart_ms_);
  sync_ftc_controls();  // the NF gets its incarnation before the plane makes it live again
}

}  // namespace anychain::daemon
