// Recomputation throttle in the manner of FRR's SPF timers: the first run comes `delay` after
// a change, and two runs are at least `hold` apart; changes meanwhile are coalesced. A run
// booked for later (a timer: kick(t) with t in the future, e.g. when a hold-down expires) never
// delays one a change needs sooner: the earliest wins.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace anychain::daemon {

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  Throttle(std::chrono::milliseconds delay, std::chrono::milliseconds hold) : delay_(delay), hold_(hold) {}

  // Something changed at `now`: make sure a run is scheduled.
  void kick(Clock::time_point now) {
    Clock::time_point at = now + delay_;
    if (last_) at = std::max(at, *last_ + hold_);
    if (!due_ || at < *due_) due_ = at;
  }
  std::optional<Clock::time_point> due() const { return due_; }
  // True if a run is due at `now`; the caller runs it and the throttle records the run.
  bool take(Clock::time_point now) {
    if (!due_ || now < *due_) return false;
    due_.reset();
    last_ = now;
    return true;
  }

 private:
  std::chrono::milliseconds delay_, hold_;
  std::optional<Clock::time_point> due_;
  std::optional<Clock::time_point> last_;
};

}  // namespace anychain::daemon
