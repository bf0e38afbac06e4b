// The agent's FTC channel and ingress forwarder (docs/ftc.md 4.4, 5.2): opened when a chain uses
// FTC, re-keyed on reload, closed when no chain does. The egress buffer sends its FEEDBACK and
// RELEASED through the channel; the forwarder handles them (also when this node is both the
// chain's ingress and its egress: the channel hands a message to this node's handler at once).
#include "common/log.h"
#include "daemon/agent.h"

namespace anychain::daemon {

void Agent::sync_ftc() {
  if (!spec_.ftc_channel) {
    if (ftc_channel_) log::info("ftc channel: closed (no FTC chain)");
    if (ftc_) ftc_->set_channel(nullptr);
    ftc_fwd_.reset();
    ftc_recovery_.reset();
    ftc_recovery_on_ = nullptr;
    ftc_channel_.reset();
    ftc_channel_error_.clear();
    return;
  }
  if (ftc_channel_) {
    if (auto r = ftc_channel_->reconfigure(*spec_.ftc_channel); !r) {
      ftc_channel_error_ = r.error().str();
      log::error("ftc channel: {}", ftc_channel_error_);
    } else {
      ftc_channel_error_.clear();
    }
  } else {
    auto ch = FtcChannel::open(*spec_.ftc_channel);
    if (!ch) {
      if (ftc_channel_error_ != ch.error().str()) log::error("ftc channel: {}", ch.error().str());
      ftc_channel_error_ = ch.error().str();
    } else {
      ftc_channel_error_.clear();
      ftc_channel_ = std::move(*ch);
    }
  }
  ftc::ForwarderLimits lim;
  lim.propagate_after_ns = spec_.ftc_propagate_after_ns;
  if (!ftc_fwd_) ftc_fwd_ = std::make_unique<FtcForwarder>(dp_, spec_.ftc_channel->self, lim);
  if (ftc_channel_) ftc_fwd_->attach(*ftc_channel_);
  if (ftc_) ftc_->set_channel(ftc_channel_.get());
  sync_ftc_recovery();
}

void Agent::ftc_tick() {
  if (ftc_channel_) ftc_channel_->on_timer();
  // recovery messages to this node (a holder here, or this node's own session): handed to their
  // handlers now, outside the send that queued them; answering may queue more
  for (int round = 0; round < 8 && ftc_channel_ && !ftc_local_q_.empty(); ++round)
    for (auto& m : std::exchange(ftc_local_q_, {})) (void)ftc_channel_->send(ftc_channel_->self(), m);
  if (!ftc_deferred_.empty()) ftc_start_deferred(Clock::now());
  if (ftc_recovery_) ftc_recovery_->on_timer(Clock::now());
  else if (spec_.ftc_channel && Clock::now() >= ftc_retry_at_) {
    ftc_retry_at_ = Clock::now() + std::chrono::seconds(1);
    sync_ftc();  // e.g. the key file or the endpoint address appeared
  }
  // propagating packets enter the fast path as if from the first configured interface
  if (ftc_fwd_) ftc_fwd_->on_timer(spec_.interfaces.empty() ? std::string{} : spec_.interfaces.front().name);
}

std::optional<Agent::Clock::time_point> Agent::ftc_wake() const {
  std::optional<Clock::time_point> t;
  if (ftc_channel_) t = ftc_channel_->next_timer();
  if (!ftc_local_q_.empty()) t = Clock::now();
  if (!ftc_deferred_.empty()) {
    auto p = Clock::now() + std::chrono::milliseconds(100);  // a deferred recovery's give-up
    t = t ? std::min(*t, p) : p;
  }
  if (!ftc_replacements_.empty()) {
    auto p = Clock::now() + std::chrono::milliseconds(50);  // a recovery's holders' timeout
    t = t ? std::min(*t, p) : p;
  }
  // pending returned logs: the propagate-after deadline is short (1 ms by default)
  if (ftc_fwd_ && ftc_fwd_->logic().flows()) {
    auto p = Clock::now() + std::chrono::nanoseconds(spec_.ftc_propagate_after_ns);
    t = t ? std::min(*t, p) : p;
  }
  if (ftc_ && ftc_->held()) {
    auto p = Clock::now() + std::chrono::milliseconds(10);  // feedback re-sends
    t = t ? std::min(*t, p) : p;
  }
  return t;
}

}  // namespace anychain::daemon
