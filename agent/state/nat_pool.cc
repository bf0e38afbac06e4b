#include "state/nat_pool.h"

#include <arpa/inet.h>

#include <cstring>

#include "anychain/nf.h"

namespace anychain::state {

Result<std::vector<NatPoolOverlap>> NatPoolCheck::sweep(Store& store) {
  const ObjectSpec* s = store.schema().find(pool_.object);
  if (!s || s->kind != Kind::RegMap)
    return fail("nat pool check: object " + std::to_string(pool_.object) + " is not a winner map", EINVAL);
  ++sweeps_;
  std::vector<Key> keys;
  if (auto c = store.cells_of(pool_.object, [&](uint8_t, const Key& k) { keys.push_back(k); }); !c)
    return unexpected(c.error());
  std::map<uint32_t, NatPoolOverlap> now;
  for (const Key& k : keys) {
    ac_reg_value v{};
    auto got = store.read(pool_.object, k, kOwnSlot, [&](uint8_t, const CellValue& c) { v = c.reg; });
    if (!got) return unexpected(got.error());
    if (!*got || v.writer == pool_.self || v.writer == 0) continue;
    ac_nf_nat_shared m{};
    std::memcpy(&m, v.data, sizeof(m));
    const uint16_t port = ntohs(m.external_port);
    if (m.external != pool_.address || port < pool_.lo || port > pool_.hi) continue;
    NatPoolOverlap& o = now[v.writer];
    o.writer = v.writer;
    if (o.mappings++ == 0 || port < o.first_port) o.first_port = port;
  }
  std::vector<NatPoolOverlap> fresh;
  for (const auto& [w, o] : now) {
    if (!seen_.contains(w)) fresh.push_back(o);
    seen_[w] = o;
  }
  for (auto& [w, o] : seen_)
    if (!now.contains(w)) o.mappings = 0;  // none left (expired): still reported as found once
  return fresh;
}

}  // namespace anychain::state
