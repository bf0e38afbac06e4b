#include "ospf/lsdb.h"

#include <algorithm>

namespace anychain::ospf {

Result<LsdbChange> Lsdb::apply_update(std::uint32_t area, ByteView lsa, bool is_self,
                                      std::uint64_t generation) {
  auto h = parse_lsa_header(lsa);
  if (!h) return unexpected(h.error());
  LsaKey key{area, h->type, h->id, h->adv_router};
  auto it = entries_.find(key);
  if (h->age >= kMaxAge) {
    if (it == entries_.end()) return LsdbChange::None;
    entries_.erase(it);
    return LsdbChange::Removed;
  }
  if (it == entries_.end()) {
    entries_.emplace(key, LsdbEntry{*h, Bytes(lsa.begin(), lsa.end()), is_self, generation});
    return LsdbChange::Added;
  }
  auto& e = it->second;
  if (h->seq < e.hdr.seq) {
    // Older copy (e.g. replayed by a dump): keep ours but it is still confirmed present.
    e.generation = std::max(e.generation, generation);
    return LsdbChange::None;
  }
  bool same = std::equal(lsa.begin() + kLsaHeaderSize, lsa.end(), e.raw.begin() + kLsaHeaderSize,
                         e.raw.end()) &&
              h->seq == e.hdr.seq;
  e.hdr = *h;
  e.raw.assign(lsa.begin(), lsa.end());
  e.is_self = is_self;
  e.generation = std::max(e.generation, generation);
  return same ? LsdbChange::None : LsdbChange::Updated;
}

Result<LsdbChange> Lsdb::apply_delete(std::uint32_t area, ByteView lsa) {
  auto h = parse_lsa_header(lsa);
  if (!h) return unexpected(h.error());
  auto it = entries_.find(LsaKey{area, h->type, h->id, h->adv_router});
  if (it == entries_.end()) return LsdbChange::None;
  if (it->second.hdr.seq > h->seq) return LsdbChange::None;
  entries_.erase(it);
  return LsdbChange::Removed;
}

std::size_t Lsdb::sweep(std::uint64_t generation) {
  return std::erase_if(entries_, [&](const auto& kv) { return kv.second.generation < generation; });
}

const LsdbEntry* Lsdb::find(const LsaKey& k) const {
  auto it = entries_.find(k);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace anychain::ospf
