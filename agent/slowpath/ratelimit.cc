#include "slowpath/ratelimit.h"

#include <algorithm>

namespace anychain::slowpath {

void IcmpLimiter::refill(Bucket& b, double rate, double burst, Clock::time_point now) {
  if (b.last != Clock::time_point{}) {
    const double dt = std::chrono::duration<double>(now - b.last).count();
    if (dt > 0) b.tokens = std::min(burst, b.tokens + dt * rate);
  }
  b.last = now;
}

bool IcmpLimiter::allow(const Key& destination, Clock::time_point now) {
  refill(total_, limits_.total_per_s, limits_.total_burst, now);
  auto it = buckets_.find(destination);
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_destinations) {
      // forget the buckets that are full again (their destinations were quiet for a while)
      for (auto i = buckets_.begin(); i != buckets_.end();) {
        refill(i->second, limits_.per_destination_per_s, limits_.per_destination_burst, now);
        i = i->second.tokens >= limits_.per_destination_burst ? buckets_.erase(i) : std::next(i);
      }
      if (buckets_.size() >= limits_.max_destinations) buckets_.clear();  // a flood of sources
    }
    it = buckets_.emplace(destination, Bucket{limits_.per_destination_burst, now}).first;
  }
  Bucket& b = it->second;
  refill(b, limits_.per_destination_per_s, limits_.per_destination_burst, now);
  if (b.tokens < 1 || total_.tokens < 1) return false;
  b.tokens -= 1;
  total_.tokens -= 1;
  return true;
}

}  // namespace anychain::slowpath
