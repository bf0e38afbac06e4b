// Overlapping NAT port blocks across instances, found in the replicated table (docs/state.md
// 4.3). Each NAT instance allocates external ports from its own block of the pool; a config file
// only sees the instances of its node (config validation refuses overlaps there), so two nodes
// may still give instances of one external address overlapping blocks. Both then hand out the
// same external port to different flows, and the shared table keeps one winner for both (one
// flow's replies reach the other's client). Every instance's mappings reach every replica of
// `nat_shared` (writer = the instance that made the mapping), so a replica sees the overlap as
// soon as a mapping of another writer lands on its own address inside its own block: that can
// only happen when the blocks overlap. Run by the replicating agent once a second beside the
// expiry (agent/daemon/replication.cc); each writer found is logged once and counted.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "state/store.h"

namespace anychain::state {

struct NatPool {
  uint32_t self = 0;          // this instance's id: its own mappings' writer
  uint32_t address = 0;       // the external address, network order (as in the NF's maps)
  uint16_t lo = 0, hi = 0;    // this instance's block, inclusive, host order
  uint8_t object = 0;         // the shared table (AC_NF_NAT_OBJ_SHARED)
};

struct NatPoolOverlap {
  uint32_t writer = 0;        // the other instance
  uint64_t mappings = 0;      // its mappings inside our block, in the last sweep
  uint16_t first_port = 0;    // the lowest such external port, in the last sweep
};

class NatPoolCheck {
 public:
  explicit NatPoolCheck(NatPool p) : pool_(p) {}
  // One pass over the shared table. Returns the writers found for the first time (to log).
  Result<std::vector<NatPoolOverlap>> sweep(Store& store);
  const NatPool& pool() const { return pool_; }
  // Writers ever found, with what the last sweep saw of them.
  const std::map<uint32_t, NatPoolOverlap>& overlaps() const { return seen_; }
  uint64_t sweeps() const { return sweeps_; }

 private:
  NatPool pool_;
  std::map<uint32_t, NatPoolOverlap> seen_;
  uint64_t sweeps_ = 0;
};

}  // namespace anychain::state
