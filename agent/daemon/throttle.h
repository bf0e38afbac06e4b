// Recomputation throttle in the manner of FRR's SPF timers: the first run comes `delay` after
// a change, and two runs are at least `hold` apart; changes meanwhile are coalesced. A run
// booked for later (a timer: kick(t) with t in the future, e.g. when a hold-down expires) never
// delays one a change needs sooner: the earliest wins. kick_now() is for the one event that must
// not wait (an FTC recovery completed: its instance is to be made live at once): it books a run
// at `now`, ignoring delay and hold for that run only; the hold then counts from that run.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>

namespace anychain::daemon {

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  Throttle(std::chrono::milliseconds delay, std::chrono::milliseconds hold) : delay_(delay), hold_(hold) {}

  // Something changed at `now` (or will at a later `now`: a deadline such as a hold-down's
  // end): make sure a run is scheduled by then. The earliest wins: a deadline far ahead never
  // delays the run a change before it needs.
  void kick(Clock::time_point now) {
    Clock::time_point at = now + delay_;
    if (last_) at = std::max(at, *last_ + hold_);
    if (!due_ || at < *due_) due_ = at;
  }
  // A run at `now` for an event that cannot wait: neither `delay` nor what remains of `hold` since
  // the last run applies to it. Later kick()s are held `hold` after this run as usual.
  void kick_now(Clock::time_point now) {
    if (!due_ || now < *due_) due_ = now;
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
