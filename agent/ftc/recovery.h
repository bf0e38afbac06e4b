// Recovery source selection (docs/ftc.md 7.4): which holder each record of a failed instance is
// rebuilt from. No orchestrator: the replacement's agent gathers what the holders report and
// runs this plan; every agent would compute the same plan from the same reports.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "ftc/store.h"

namespace anychain::ftc {

// One record a holder reported (or that is known to have existed at a holder now dead).
struct Holding {
  uint16_t holder = 0;
  bool alive = true;
  RecordKey key;  // the middlebox (instance id, head SI) and the flow
  Record rec;     // seq, incarnation, held (the distance + 1), content
};

// The middleboxes the failed instance replicates: per SPI, the head SIs of the f FTC hops
// before its own hop on the logical ring (from the chain's configuration).
struct Geometry {
  std::map<uint32_t, std::vector<uint8_t>> replicated_sis;
};

struct Transfer {
  RecordKey key;
  uint16_t source = 0;
  bool head = false;  // a head record of the failed instance (the source fences it)
  Record rec;         // what the source holds (sequence, incarnation, content)
};

struct RecoveryPlan {
  uint16_t failed = 0;
  uint8_t new_inc = 0;              // the replacement's incarnation
  bool conflict = false;            // a holder knows a newer incarnation: another replacement won
  std::vector<Transfer> transfers;  // ordered by key
  std::vector<RecordKey> lost;      // records only dead holders had (never released)
};

// new_inc is decided before the holders are asked (one more than the incarnation the failed
// instance announced) and is the one they fence with. Head records of `failed`: from the alive holder with the newest incarnation, then the highest
// sequence (its first alive successor), ties to the nearest (lowest held). Replica records of
// the flows it headed, for the middleboxes `geo` says it replicates: the same rule (its head, or
// its nearest alive predecessor). Records held by `failed` itself are gone and never chosen.
RecoveryPlan plan_recovery(uint16_t failed, uint8_t new_inc, const std::vector<Holding>& holdings,
                           const Geometry& geo);

}  // namespace anychain::ftc
