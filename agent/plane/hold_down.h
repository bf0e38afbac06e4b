// Hold-down for withdrawn VNF instances (the peers' side of an agent restart).
//
// ospfd flushes every LSA of an API client that disconnects, so a restarting agent makes its
// node's VNF LSAs disappear until it reconnects and re-originates them (normally within a
// second or two). The instances themselves keep running and the node's dataplane keeps
// forwarding (its BPF maps are pinned), so peers should not move flows away and back.
// VnfHoldDown keeps an instance whose LSA vanished as a candidate for `hold` more time. A
// re-announcement replaces the held copy at once; an instance whose router becomes
// unreachable is dropped by SPF regardless of the hold. An instance whose own node flags it
// down (ospf::kVnfFlagDown: the VNF died) is dropped at once and never held, also when its
// LSA vanishes afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "plane/topology.h"

namespace anychain::plane {

class VnfHoldDown {
 public:
  using Clock = std::chrono::steady_clock;

  explicit VnfHoldDown(std::chrono::milliseconds hold) : hold_(hold) {}

  // Given the instances currently announced (down-flagged ones included), returns the live ones
  // plus the held ones (marked Instance::held); down-flagged ones are left out and end any hold.
  // Call with non-decreasing `now`.
  std::vector<Instance> apply(std::vector<Instance> current, Clock::time_point now);

  // When the earliest hold expires (recompute then), if any instance is held.
  [[nodiscard]] std::optional<Clock::time_point> next_expiry() const;
  [[nodiscard]] std::size_t held() const { return held_.size(); }

 private:
  using Key = std::pair<std::uint32_t, std::uint32_t>;  // (router, instance id)
  struct Held {
    Instance inst;
    Clock::time_point until;
  };
  std::chrono::milliseconds hold_;
  std::map<Key, Instance> live_;  // announced at the previous apply()
  std::map<Key, Held> held_;
};

}  // namespace anychain::plane
