#include "state/expiry.h"

namespace anychain::state {

Result<void> Expiry::sweep(Store& store, std::chrono::steady_clock::time_point mono, uint64_t seen_now_ns) {
  ++stats_.sweeps;
  for (const ExpiryRule& r : rules_) {
    const ObjectSpec* s = store.schema().find(r.object);
    if (!s || (s->kind != Kind::AwSet && s->kind != Kind::RegMap))
      return fail("state expiry: object " + std::to_string(r.object) + " is not an add-wins set or a winner map", EINVAL);
  }
  std::map<std::pair<uint8_t, Key>, Since> still;
  for (const ExpiryRule& r : rules_) {
    if (r.after.count() <= 0) continue;
    const Kind kind = store.schema().find(r.object)->kind;
    std::vector<Key> keys;
    if (auto c = store.cells_of(r.object, [&](uint8_t, const Key& k) { keys.push_back(k); }); !c)
      return unexpected(c.error());
    const uint64_t after_ns = static_cast<uint64_t>(r.after.count()) * 1'000'000'000ULL;
    for (const Key& k : keys) {
      if (kind == Kind::RegMap) {
        uint64_t seen = 0;
        auto got = store.read(r.object, k, kOwnSlot, [&](uint8_t, const CellValue& v) { seen = v.reg.seen; });
        if (!got) {
          ++stats_.errors;
          continue;
        }
        if (!*got || seen_now_ns < after_ns || seen >= seen_now_ns - after_ns) continue;
        auto del = store.local_delete(r.object, k);
        if (!del) ++stats_.errors;
        else if (*del) ++stats_.reg_deleted;
        continue;
      }
      // a set element: present iff some add[s] > rm[s]; its age restarts with every new add
      bool live = false;
      uint64_t adds = 0;
      auto got = store.read(r.object, k, kAllSlots, [&](uint8_t, const CellValue& v) {
        adds += v.a;
        live |= v.a > v.b;
      });
      if (!got) {
        ++stats_.errors;
        continue;
      }
      if (!*got || !live) continue;
      const auto id = std::make_pair(r.object, k);
      auto it = present_.find(id);
      Since since = it != present_.end() && it->second.adds == adds ? it->second : Since{adds, mono};
      if (mono - since.since >= r.after) {
        if (auto rm = store.local_remove(r.object, k); !rm) {
          ++stats_.errors;
          still.emplace(id, since);
        } else {
          ++stats_.set_removed;
        }
        continue;
      }
      still.emplace(id, since);
    }
  }
  present_ = std::move(still);
  return {};
}

}  // namespace anychain::state
