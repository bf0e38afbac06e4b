// Read-only view of a running fast path's pinned maps, opened by path (bpf_obj_get with
// BPF_F_RDONLY): no program is loaded and nothing is created, so tools like `anychain flows`
// and `anychain stats` can read the live state whether or not anychaind runs, without
// side effects. Maps missing from the pin root are an error that says so.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "anychain/maps.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "dataplane/dataplane.h"

namespace anychain::dataplane {

class PinnedMaps {
 public:
  static Result<PinnedMaps> open(const std::string& pin_root = AC_PIN_ROOT);

  Result<std::vector<ac_counter>> stats() const;         // by slot (dataplane/reasons.h)
  Result<std::vector<PathCounter>> path_stats() const;   // every (SPI, SI) path, sorted
  // Flow cache entries (decoded like Dataplane::flows, with their shared placements), optionally
  // of one SPI only.
  Result<std::vector<FlowEntry>> flows(size_t limit = SIZE_MAX, std::optional<uint32_t> spi = std::nullopt) const;
  // max_entries of the pinned flow cache and proxy maps (to load a matching program instance).
  uint32_t flow_cache_entries() const { return flow_sets_ * AC_FLOW_WAYS; }  // per CPU
  uint32_t proxy_entries() const { return proxy_entries_; }
  uint32_t affinity_entries() const { return affinity_entries_; }  // shared placements
  const std::string& pin_root() const { return pin_root_; }
  uint32_t stats_map_id() const;  // the kernel's id of the pinned ac_stats (which fast path it is)
  // Whether the XDP program prog_id works on these maps (and not on a set of its own).
  Result<bool> used_by(uint32_t prog_id) const;

 private:
  PinnedMaps() = default;
  std::string pin_root_;
  UniqueFd stats_, paths_, path_stats_, flows_, proxy_, affinity_, instances_;
  uint32_t flow_sets_ = 0, proxy_entries_ = 0, affinity_entries_ = 0;
};

}  // namespace anychain::dataplane
