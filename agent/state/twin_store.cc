#include "state/twin_store.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace anychain::state {

TwinStore::TwinStore(Schema schema) : schema_(std::move(schema)) {
  objs_.resize(256);
  for (const ObjectSpec& s : schema_.objects()) {
    Obj& o = objs_[s.id];
    o.spec = schema_.find(s.id);
    if (s.keyed()) continue;
    if (s.kind == Kind::PNCounter)
      o.pn.assign(s.cells, ac_pncounter{});
    else if (s.kind == Kind::GCounter || s.kind == Kind::CountMin || s.kind == Kind::CountingBloom)
      o.gc.assign(s.cells, ac_gcounter{});
  }
}

TwinStore::Obj* TwinStore::obj(uint8_t id) { return objs_[id].spec ? &objs_[id] : nullptr; }
const TwinStore::Obj* TwinStore::obj(uint8_t id) const { return objs_[id].spec ? &objs_[id] : nullptr; }

size_t TwinStore::keys(const Obj& o) const { return o.gck.size() + o.pnk.size() + o.set.size() + o.reg.size(); }

namespace {
// The cell of an array object (index key) or of a hash object (created if asked and room left).
template <class T>
T* cell_at(const ObjectSpec& spec, std::vector<T>& array, std::map<Key, T>& keyed, size_t keys, const Key& key,
           bool create) {
  if (!spec.keyed()) {
    if (key.len != 4 || key.as_index() >= array.size()) return nullptr;
    return &array[key.as_index()];
  }
  if (key.len != spec.key_size) return nullptr;
  auto it = keyed.find(key);
  if (it != keyed.end()) return &it->second;
  if (!create || keys >= spec.cells) return nullptr;
  return &keyed[key];
}
}  // namespace

ac_gcounter* TwinStore::gc_at(Obj& o, const Key& key, bool create) {
  return cell_at(*o.spec, o.gc, o.gck, keys(o), key, create);
}

ac_pncounter* TwinStore::pn_at(Obj& o, const Key& key, bool create) {
  return cell_at(*o.spec, o.pn, o.pnk, keys(o), key, create);
}

// ---- local updates ----

bool TwinStore::gc_add(uint8_t object, const Key& key, uint64_t n) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::GCounter) return false;
  ac_gcounter* c = gc_at(*o, key, true);
  if (!c) return false;
  ac_gc_add_own(c, n);
  changed_.emplace(object, key);
  return true;
}

bool TwinStore::pn_add(uint8_t object, const Key& key, int64_t n) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::PNCounter) return false;
  ac_pncounter* c = pn_at(*o, key, true);
  if (!c) return false;
  ac_pn_add_own(c, n);
  changed_.emplace(object, key);
  return true;
}

void TwinStore::sketch_add(uint8_t object, Kind kind, uint64_t h, uint64_t n) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != kind) return;
  uint32_t mask = o->spec->mask(), stride = kind == Kind::CountMin ? mask + 1 : 0;
  for (uint32_t i = 0; i < o->spec->rows; ++i) {
    uint32_t cell = ac_sketch_cell(h, i, mask, stride);
    ac_gc_add_own(&o->gc[cell], n);
    changed_.emplace(object, Key::index(cell));
  }
}

void TwinStore::cms_add(uint8_t object, uint64_t h, uint64_t n) { sketch_add(object, Kind::CountMin, h, n); }
void TwinStore::cbf_add(uint8_t object, uint64_t h, uint64_t n) { sketch_add(object, Kind::CountingBloom, h, n); }

bool TwinStore::set_add(uint8_t object, const Key& key) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::AwSet || key.len != o->spec->key_size) return false;
  auto it = o->set.find(key);
  if (it == o->set.end()) {
    if (keys(*o) >= o->spec->cells) return false;
    it = o->set.emplace(key, ac_awset_elem{}).first;
  }
  ac_set_add_own(&it->second);
  changed_.emplace(object, key);
  return true;
}

void TwinStore::set_remove(uint8_t object, const Key& key) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::AwSet) return;
  auto it = o->set.find(key);
  if (it == o->set.end()) return;
  ac_set_remove(&it->second);
  changed_.emplace(object, key);
}

std::optional<ac_reg_value> TwinStore::reg_insert(uint8_t object, const Key& key, const ac_reg_value& v) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::RegMap || key.len != o->spec->key_size) return std::nullopt;
  auto it = o->reg.find(key);
  if (it != o->reg.end()) return it->second.v;
  if (keys(*o) >= o->spec->cells) return std::nullopt;
  ac_register r{};
  r.v = v;
  o->reg.emplace(key, r);
  changed_.emplace(object, key);
  return v;
}

void TwinStore::reg_seen(uint8_t object, const Key& key, uint64_t seen) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::RegMap) return;
  auto it = o->reg.find(key);
  if (it == o->reg.end() || it->second.v.seen >= seen) return;
  it->second.v.seen = seen;
  changed_.emplace(object, key);
}

// ---- reads ----

uint64_t TwinStore::gc_value(uint8_t object, const Key& key) const {
  const ac_gcounter* c = gc_cell(object, key);
  return c ? ac_gc_value(c) : 0;
}

int64_t TwinStore::pn_value(uint8_t object, const Key& key) const {
  const ac_pncounter* c = pn_cell(object, key);
  return c ? ac_pn_value(c) : 0;
}

uint64_t TwinStore::sketch_min(uint8_t object, Kind kind, uint64_t h) const {
  const Obj* o = obj(object);
  if (!o || o->spec->kind != kind) return 0;
  uint32_t mask = o->spec->mask(), stride = kind == Kind::CountMin ? mask + 1 : 0;
  uint64_t best = std::numeric_limits<uint64_t>::max();
  for (uint32_t i = 0; i < o->spec->rows; ++i)
    best = std::min<uint64_t>(best, ac_gc_value(&o->gc[ac_sketch_cell(h, i, mask, stride)]));
  return best;
}

uint64_t TwinStore::cms_estimate(uint8_t object, uint64_t h) const { return sketch_min(object, Kind::CountMin, h); }
uint64_t TwinStore::cbf_value(uint8_t object, uint64_t h) const { return sketch_min(object, Kind::CountingBloom, h); }

bool TwinStore::set_contains(uint8_t object, const Key& key) const {
  const ac_awset_elem* e = set_cell(object, key);
  return e && ac_set_contains(e);
}

std::optional<ac_reg_value> TwinStore::reg_get(uint8_t object, const Key& key) const {
  const ac_register* r = reg_cell(object, key);
  if (!r) return std::nullopt;
  return r->v;
}

const ac_gcounter* TwinStore::gc_cell(uint8_t object, const Key& key) const {
  const Obj* o = obj(object);
  if (!o || o->spec->kind == Kind::PNCounter || o->spec->kind == Kind::AwSet || o->spec->kind == Kind::RegMap)
    return nullptr;
  return const_cast<TwinStore*>(this)->gc_at(*const_cast<Obj*>(o), key, false);
}

const ac_pncounter* TwinStore::pn_cell(uint8_t object, const Key& key) const {
  const Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::PNCounter) return nullptr;
  return const_cast<TwinStore*>(this)->pn_at(*const_cast<Obj*>(o), key, false);
}

const ac_awset_elem* TwinStore::set_cell(uint8_t object, const Key& key) const {
  const Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::AwSet) return nullptr;
  auto it = o->set.find(key);
  return it == o->set.end() ? nullptr : &it->second;
}

const ac_register* TwinStore::reg_cell(uint8_t object, const Key& key) const {
  const Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::RegMap) return nullptr;
  auto it = o->reg.find(key);
  return it == o->reg.end() ? nullptr : &it->second;
}

// ---- Store ----

Result<void> TwinStore::changes(const CellFn& fn) {
  auto c = std::move(changed_);
  changed_.clear();
  for (const auto& [object, key] : c) fn(object, key);
  return {};
}

namespace {
void read_gc(const ac_gcounter& c, SlotMask mask, const SlotFn& fn) {
  for (uint8_t s = 0; s < AC_CRDT_SLOTS; ++s)
    if ((mask & (1u << s)) && c.slot[s]) fn(s, CellValue{.a = c.slot[s]});
  if ((mask & kRetiredBit) && c.retired) fn(kRetiredSlot, CellValue{.a = c.retired});
}
void read_pn(const ac_pncounter& c, SlotMask mask, const SlotFn& fn) {
  for (uint8_t s = 0; s < AC_CRDT_SLOTS; ++s)
    if ((mask & (1u << s)) && (c.inc.slot[s] || c.dec.slot[s]))
      fn(s, CellValue{.a = c.inc.slot[s], .b = c.dec.slot[s]});
  if ((mask & kRetiredBit) && (c.inc.retired || c.dec.retired))
    fn(kRetiredSlot, CellValue{.a = c.inc.retired, .b = c.dec.retired});
}
}  // namespace

Result<bool> TwinStore::read(uint8_t object, const Key& key, SlotMask mask, const SlotFn& fn) {
  Obj* o = obj(object);
  if (!o) return fail("state: no object " + std::to_string(object));
  switch (o->spec->kind) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: {
      const ac_gcounter* c = gc_at(*o, key, false);
      if (!c) return false;
      read_gc(*c, mask, fn);
      return true;
    }
    case Kind::PNCounter: {
      const ac_pncounter* c = pn_at(*o, key, false);
      if (!c) return false;
      read_pn(*c, mask, fn);
      return true;
    }
    case Kind::AwSet: {
      const ac_awset_elem* e = set_cell(object, key);
      if (!e) return false;
      for (uint8_t s = 0; s < AC_CRDT_SLOTS; ++s)
        if (e->add[s] || e->rm[s]) fn(s, CellValue{.a = e->add[s], .b = e->rm[s]});
      return true;
    }
    case Kind::RegMap: {
      const ac_register* r = reg_cell(object, key);
      if (!r) return false;
      fn(0, CellValue{.reg = r->v});
      return true;
    }
  }
  return false;
}

Result<void> TwinStore::cells(const CellFn& fn) {
  for (const ObjectSpec& s : schema_.objects())
    if (auto r = cells_of(s.id, fn); !r) return r;
  return {};
}

Result<void> TwinStore::cells_of(uint8_t object, const CellFn& fn) {
  const ObjectSpec* s = schema_.find(object);
  if (!s) return fail("state store: no object " + std::to_string(object), ENOENT);
  Obj& o = objs_[s->id];
  if (!s->keyed()) {
    for (uint32_t i = 0; i < s->cells; ++i) fn(s->id, Key::index(i));
    return {};
  }
  for (const auto& kv : o.gck) fn(s->id, kv.first);
  for (const auto& kv : o.pnk) fn(s->id, kv.first);
  for (const auto& kv : o.set) fn(s->id, kv.first);
  for (const auto& kv : o.reg) fn(s->id, kv.first);
  return {};
}

Result<void> TwinStore::local_remove(uint8_t object, const Key& key) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::AwSet) return fail("state store: not an element of a set", EINVAL);
  if (!o->set.contains(key)) return fail("state store: no such element to remove", ENOENT);
  set_remove(object, key);
  return {};
}

Result<bool> TwinStore::local_delete(uint8_t object, const Key& key) {
  Obj* o = obj(object);
  if (!o || o->spec->kind != Kind::RegMap) return fail("state store: not an entry of a winner map", EINVAL);
  changed_.erase({object, key});
  return o->reg.erase(key) > 0;
}

Result<void> TwinStore::merge(uint8_t object, const Key& key, uint8_t slot, const CellValue& v, uint16_t) {
  Obj* o = obj(object);
  bool ok = false;
  if (o) {
    switch (o->spec->kind) {
      case Kind::GCounter:
      case Kind::CountMin:
      case Kind::CountingBloom:
        if (ac_gcounter* c = gc_at(*o, key, true)) {
          ok = slot == kRetiredSlot || slot < AC_CRDT_SLOTS;
          if (slot == kRetiredSlot) ac_gc_merge_retired(c, v.a);
          else ac_gc_merge_slot(c, slot, v.a);
        }
        break;
      case Kind::PNCounter:
        if (ac_pncounter* c = pn_at(*o, key, true)) {
          ok = slot == kRetiredSlot || slot < AC_CRDT_SLOTS;
          if (slot == kRetiredSlot) ac_pn_merge_retired(c, v.a, v.b);
          else ac_pn_merge_slot(c, slot, v.a, v.b);
        }
        break;
      case Kind::AwSet: {
        if (key.len != o->spec->key_size || slot >= AC_CRDT_SLOTS) break;
        auto it = o->set.find(key);
        if (it == o->set.end()) {
          if (keys(*o) >= o->spec->cells) break;
          it = o->set.emplace(key, ac_awset_elem{}).first;
        }
        ac_set_merge_slot(&it->second, slot, static_cast<uint32_t>(v.a), static_cast<uint32_t>(v.b));
        ok = true;
        break;
      }
      case Kind::RegMap: {
        if (key.len != o->spec->key_size) break;
        auto it = o->reg.find(key);
        if (it == o->reg.end()) {
          if (keys(*o) >= o->spec->cells) break;
          ac_register r{};
          r.v = v.reg;
          o->reg.emplace(key, r);
        } else {
          ac_reg_merge(&it->second.v, &v.reg);
        }
        ok = true;
        break;
      }
    }
  }
  ++(ok ? merged_ : refused_);
  return {};
}

Result<bool> TwinStore::fold(uint8_t slot) {
  if (slot == 0 || slot >= AC_CRDT_SLOTS) return fail("state: cannot fold slot " + std::to_string(slot));
  bool empty = true;
  for (const ObjectSpec& s : schema_.objects()) {
    Obj& o = objs_[s.id];
    for (auto& c : o.gc) ac_gc_fold(&c, slot);
    for (auto& kv : o.gck) ac_gc_fold(&kv.second, slot);
    for (auto& c : o.pn) {
      ac_gc_fold(&c.inc, slot);
      ac_gc_fold(&c.dec, slot);
    }
    for (auto& kv : o.pnk) {
      ac_gc_fold(&kv.second.inc, slot);
      ac_gc_fold(&kv.second.dec, slot);
    }
    for (auto& kv : o.set) {
      if (ac_set_slot_live(&kv.second, slot)) empty = false;
      else ac_set_clear_slot(&kv.second, slot);
    }
  }
  return empty;
}

}  // namespace anychain::state
