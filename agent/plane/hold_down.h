// Hold-down for withdrawn VNF instances (the peers' side of an agent restart), and the freeze
// of withdrawn FTC instances (docs/ftc.md 7.2).
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
//
// An FTC instance (ospf::kVnfFlagFtc) that was live and is then flagged down by its node, or
// whose router becomes unreachable (given `reachable`), is not dropped: it is kept RECOVERING
// (Instance::recovering, the copy of its last live announcement) for `ftc_hold`, so that every
// agent keeps its WCMP buckets and its flows' placements and drops their packets until its
// replacement (same instance id, a new incarnation) is announced live. If none comes in time it
// is dropped as any withdrawn instance ("abandoned": its flows are placed again, without state).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "plane/topology.h"

namespace anychain::plane {

class VnfHoldDown {
 public:
  using Clock = std::chrono::steady_clock;
  using Key = std::pair<std::uint32_t, std::uint32_t>;  // (router, instance id)

  explicit VnfHoldDown(std::chrono::milliseconds hold,
                       std::chrono::milliseconds ftc_hold = std::chrono::milliseconds(30000))
      : hold_(hold), ftc_hold_(ftc_hold) {}
  void set_ftc_hold(std::chrono::milliseconds h) { ftc_hold_ = h; }

  // Given the instances currently announced (down-flagged ones included), returns the live ones
  // plus the held ones (marked Instance::held) and the recovering FTC ones (marked
  // Instance::recovering); other down-flagged ones are left out and end any hold. `reachable`
  // (router id -> reachable by SPF; empty: every router is) turns a live or held FTC instance
  // of an unreachable router into a recovering one. Call with non-decreasing `now`.
  std::vector<Instance> apply(std::vector<Instance> current, Clock::time_point now,
                              const std::function<bool(std::uint32_t)>& reachable = {});

  // When the earliest hold or freeze expires (recompute then), if any.
  [[nodiscard]] std::optional<Clock::time_point> next_expiry() const;
  [[nodiscard]] std::size_t held() const { return held_.size(); }
  [[nodiscard]] std::size_t recovering() const { return recovering_.size(); }

  // FTC freezes so far: started, ended by a live announcement (recovered), expired (abandoned).
  struct FtcCounts {
    std::uint64_t frozen = 0;
    std::uint64_t recovered = 0;
    std::uint64_t abandoned = 0;
  };
  [[nodiscard]] const FtcCounts& ftc_counts() const { return ftc_; }
  // Instance ids whose freeze expired since the last call (the caller withdraws them and counts
  // their flows as abandoned partitions).
  std::vector<std::uint32_t> take_abandoned() { return std::exchange(abandoned_, {}); }

 private:
  struct Held {
    Instance inst;
    Clock::time_point until;
  };
  std::chrono::milliseconds hold_;
  std::chrono::milliseconds ftc_hold_;
  std::map<Key, Instance> live_;  // announced at the previous apply()
  std::map<Key, Held> held_;
  std::map<Key, Held> recovering_;
  FtcCounts ftc_;
  std::vector<std::uint32_t> abandoned_;
};

}  // namespace anychain::plane
