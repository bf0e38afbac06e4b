// The fast path's counter slots (include/anychain/maps.h: ac_stats) by name and kind.
#pragma once

#include <cstdint>
#include <span>

#include "anychain/maps.h"

namespace anychain::dataplane {

enum class StatKind {
  Verdict,  // every packet ends under one verdict reason (passed or sent on) ...
  Drop,     // ... or one drop reason
  Note,     // work done on the way; not an outcome
};

struct StatReason {
  uint32_t slot;     // index in ac_stats
  const char* name;  // "fwd_remote", "drop_ttl", "cache_hit", ...
  StatKind kind;
};

// Every defined slot, verdicts first, then drops, then notes (slot order).
std::span<const StatReason> stat_reasons();
// The name of a slot, or "unknown" for a slot no reason uses.
const char* reason_name(uint32_t slot);
const char* kind_name(StatKind k);  // "verdict", "drop", "note"

}  // namespace anychain::dataplane
