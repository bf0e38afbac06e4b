// Expiry of shared-state entries (docs/state.md 3.11): local set removes for add-wins sets whose
// elements expire (the IDS's flagged sources) and local deletes of deterministic-winner map
// entries by their merged `seen` (the NAT's shared table). Run by the replicating agent on each
// replica's Store (the daemon's replication tick, once a second), so a set remove goes through
// the store that reports it to the replicator and travels to every other replica.
//
// - Set element: present (some add[s] > rm[s]) for `after` since this replica first saw it
//   present with its current adds (a new add, another instance flagging it again, restarts the
//   time). The remove observes only the adds this replica holds: an add it has not seen wins.
// - Register: its merged `seen` (CLOCK_TAI nanoseconds, as the NFs write it) older than `after`.
//   Every replica deletes by the same merged value, so they agree without a tombstone; a late
//   record re-creates the entry with an old `seen` and the next sweep deletes it again.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "state/store.h"

namespace anychain::state {

struct ExpiryRule {
  uint8_t object = 0;                  // an add-wins set or a deterministic-winner map
  std::chrono::seconds after{0};       // 0: never
};

struct ExpiryStats {
  uint64_t sweeps = 0;
  uint64_t set_removed = 0;            // elements removed (local removes, replicated)
  uint64_t reg_deleted = 0;            // map entries deleted (locally, on every replica alike)
  uint64_t errors = 0;                 // store operations that failed (retried at the next sweep)
};

class Expiry {
 public:
  // Rules naming objects of another kind (or not in the store's schema) are refused by sweep().
  explicit Expiry(std::vector<ExpiryRule> rules) : rules_(std::move(rules)) {}

  // One pass over every ruled object. `mono` is the local monotonic clock (set elements' age),
  // `seen_now_ns` the clock registers' `seen` is written in (CLOCK_TAI ns).
  Result<void> sweep(Store& store, std::chrono::steady_clock::time_point mono, uint64_t seen_now_ns);

  bool empty() const { return rules_.empty(); }
  const ExpiryStats& stats() const { return stats_; }

 private:
  struct Since {
    uint64_t adds = 0;                 // sum of the element's adds when its age started
    std::chrono::steady_clock::time_point since;
  };
  std::vector<ExpiryRule> rules_;
  std::map<std::pair<uint8_t, Key>, Since> present_;
  ExpiryStats stats_;
};

}  // namespace anychain::state
