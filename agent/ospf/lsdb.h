// The agent's mirror of ospfd's LSDB, fed by LSA_UPDATE/DELETE_NOTIFY messages.
#pragma once

#include <compare>
#include <cstdint>
#include <map>

#include "ospf/bytes.h"
#include "common/error.h"
#include "ospf/lsa.h"

namespace anychain::ospf {

struct LsaKey {
  std::uint32_t area = 0;
  std::uint8_t type = 0;
  std::uint32_t id = 0;
  std::uint32_t adv_router = 0;
  auto operator<=>(const LsaKey&) const = default;
};

struct LsdbEntry {
  LsaHeader hdr;
  Bytes raw;  // whole LSA: header + body
  bool is_self = false;
  std::uint64_t generation = 0;  // connection generation that last confirmed it
};

enum class LsdbChange { None, Added, Updated, Removed };

class Lsdb {
 public:
  // Newest sequence number wins (an equal sequence number refreshes the entry). An update
  // at MaxAge removes the entry instead of storing it. Malformed LSAs are rejected.
  Result<LsdbChange> apply_update(std::uint32_t area, ByteView lsa, bool is_self, std::uint64_t generation);
  // Removes the entry unless the stored copy is newer than the deleted one.
  Result<LsdbChange> apply_delete(std::uint32_t area, ByteView lsa);
  // Removes every entry whose generation is older than `generation` (entries that a resync
  // did not confirm); returns how many were removed.
  std::size_t sweep(std::uint64_t generation);
  void clear() { entries_.clear(); }

  [[nodiscard]] const std::map<LsaKey, LsdbEntry>& entries() const { return entries_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] const LsdbEntry* find(const LsaKey& k) const;

 private:
  std::map<LsaKey, LsdbEntry> entries_;
};

}  // namespace anychain::ospf
