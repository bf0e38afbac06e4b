#include "state/bpf_store.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>

#include "common/percpu.h"

namespace anychain::state {

namespace {

uint32_t value_size(Kind k) {
  switch (k) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: return sizeof(ac_gcounter);
    case Kind::PNCounter: return sizeof(ac_pncounter);
    case Kind::AwSet: return sizeof(ac_awset_elem);
    case Kind::RegMap: return sizeof(ac_register);
  }
  return 0;
}

uint32_t merge_value_size(Kind k) {
  switch (k) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: return 8;
    case Kind::PNCounter: return sizeof(ac_crdt_pn_value);
    case Kind::AwSet: return sizeof(ac_crdt_set_value);
    case Kind::RegMap: return sizeof(ac_reg_value);
  }
  return 0;
}

bool counter(Kind k) { return k == Kind::GCounter || k == Kind::CountMin || k == Kind::CountingBloom; }

uint64_t fingerprint(const void* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return ac_mix64(h);
}

void append(std::vector<uint8_t>& b, const void* p, size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
  b.resize(b.size() + (AC_CRDT_PAD8(n) - n), 0);
}

struct Value {
  alignas(8) uint8_t b[sizeof(ac_pncounter)];
};

}  // namespace

Result<std::unique_ptr<BpfStore>> BpfStore::open(Schema schema, BpfStoreMaps maps) {
  std::unique_ptr<BpfStore> s(new BpfStore());
  s->fds_.fill(-1);
  s->gen_.fill(-1);
  if (maps.ctl_fd < 0 || maps.changes_fd < 0 || maps.stats_fd < 0 || maps.merge_prog_fd < 0)
    return fail("state store: the control, change-log and stats maps and the merge program are all needed");
  for (const auto& o : maps.objects) {
    const ObjectSpec* spec = schema.find(o.id);
    if (!spec) return fail("state store: map for object " + std::to_string(o.id) + ", which the schema does not have");
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(o.fd, &info, &len)) return fail_errno("state store: map of object " + spec->name);
    std::string what = "state store: object " + spec->name + " (map " + info.name + ")";
    uint32_t want_type = spec->keyed() ? BPF_MAP_TYPE_HASH : BPF_MAP_TYPE_ARRAY;
    uint32_t want_key = spec->keyed() ? spec->key_size : 4;
    if (info.type != want_type) return fail(what + ": wrong map type " + std::to_string(info.type));
    if (info.key_size != want_key) return fail(what + ": key of " + std::to_string(info.key_size) + " bytes, want " + std::to_string(want_key));
    if (info.value_size != value_size(spec->kind))
      return fail(what + ": value of " + std::to_string(info.value_size) + " bytes, want " + std::to_string(value_size(spec->kind)));
    if (info.max_entries != spec->cells)
      return fail(what + ": " + std::to_string(info.max_entries) + " entries, want " + std::to_string(spec->cells));
    if (spec->keyed() && !(info.map_flags & BPF_F_NO_PREALLOC))
      return fail(what + ": a hash map object needs BPF_F_NO_PREALLOC (readers must never see a reused element)");
    if (o.generation > 1) return fail(what + ": generation " + std::to_string(o.generation) + " (0 or 1)");
    if (o.generation >= 0 && maps.win_fd < 0) return fail(what + ": windowed, but no ac_crdt_win map");
    if (o.generation >= 0 && spec->keyed()) return fail(what + ": only array objects are windowed");
    s->fds_[o.id] = o.fd;
    s->gen_[o.id] = o.generation;
  }
  for (const ObjectSpec& o : schema.objects())
    if (s->fds_[o.id] < 0) return fail("state store: no map for object " + o.name);
  s->schema_ = std::move(schema);
  s->maps_ = maps;
  if (auto w = s->windows()) s->gen_window_ = {w->gen[0], w->gen[1]};
  s->rb_ = ring_buffer__new(
      maps.changes_fd,
      [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<BpfStore*>(ctx);
        if (size < sizeof(ac_crdt_change)) return 0;
        ac_crdt_change c;
        std::memcpy(&c, data, sizeof c);
        self->note(c.object, c.key, c.key_len);
        return 0;
      },
      s.get(), nullptr);
  if (!s->rb_) return fail_errno("state store: change-log ring buffer");
  return s;
}

BpfStore::~BpfStore() {
  if (rb_) ring_buffer__free(rb_);
}

void BpfStore::note(uint8_t object, const void* key, uint32_t len) {
  ++stats_.logged;
  const ObjectSpec* s = schema_.find(object);
  if (!s) return;
  if (!s->keyed()) {
    uint32_t i = 0;
    if (len != 4) return;
    std::memcpy(&i, key, 4);
    drained_.insert({object, Key::index(i)});
  } else if (len == s->key_size) {
    drained_.insert({object, Key::bytes(key, len)});
  }
}

bool BpfStore::map_key(const ObjectSpec& s, const Key& k, std::array<uint8_t, AC_CRDT_KEY_MAX>& out) const {
  if (!s.keyed()) {
    if (k.len != 4 || k.as_index() >= s.cells) return false;
    uint32_t i = k.as_index();
    std::memcpy(out.data(), &i, 4);
    return true;
  }
  if (k.len != s.key_size) return false;
  std::memcpy(out.data(), k.b.data(), k.len);
  return true;
}

std::optional<uint64_t> BpfStore::own_fingerprint(const ObjectSpec& s, const Key& k) const {
  std::array<uint8_t, AC_CRDT_KEY_MAX> mk;
  Value v;
  if (!map_key(s, k, mk) || bpf_map_lookup_elem(fd_of(s.id), mk.data(), v.b)) return std::nullopt;
  switch (s.kind) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: return reinterpret_cast<const ac_gcounter*>(v.b)->slot[0];
    case Kind::PNCounter: {
      auto* c = reinterpret_cast<const ac_pncounter*>(v.b);
      uint64_t own[2] = {c->inc.slot[0], c->dec.slot[0]};
      return own[0] || own[1] ? fingerprint(own, sizeof own) : 0;
    }
    case Kind::AwSet: return reinterpret_cast<const ac_awset_elem*>(v.b)->add[0];
    case Kind::RegMap: return fingerprint(&reinterpret_cast<const ac_register*>(v.b)->v, sizeof(ac_reg_value));
  }
  return std::nullopt;
}

std::optional<ac_crdt_windows> BpfStore::windows() const {
  if (maps_.win_fd < 0) return std::nullopt;
  uint32_t zero = 0;
  ac_crdt_windows w{};
  if (bpf_map_lookup_elem(maps_.win_fd, &zero, &w)) return std::nullopt;
  return w;
}

void BpfStore::windows_moved() {
  auto w = windows();
  if (!w) return;
  for (int g = 0; g < 2; ++g) {
    if (w->gen[g] == gen_window_[g]) continue;
    gen_window_[g] = w->gen[g];
    std::erase_if(shadow_, [&](const auto& e) { return gen_[e.first.object] == g; });
  }
}

uint64_t BpfStore::lost() const { return percpu_u64_sum(maps_.stats_fd, AC_CRDT_ST_LOST).value_or(0); }

Result<void> BpfStore::changes(const CellFn& fn) {
  // A new epoch first: what XDP changes from now on is logged again.
  ++epoch_;
  uint32_t zero = 0;
  ac_crdt_ctl ctl{.epoch = epoch_, .pad = 0};
  if (bpf_map_update_elem(maps_.ctl_fd, &zero, &ctl, 0)) return fail_errno("state store: scan epoch");
  ++stats_.scans;
  windows_moved();
  drained_.clear();
  if (ring_buffer__consume(rb_) < 0) return fail_errno("state store: change log");
  uint64_t l = lost();
  bool full = !scanned_ || l != lost_seen_;
  lost_seen_ = l;
  scanned_ = true;
  std::vector<CellRef> todo;
  if (full) {
    ++stats_.full_scans;
    auto r = cells([&](uint8_t o, const Key& k) { todo.push_back({o, k}); });
    if (!r) return r;
  } else {
    todo.assign(drained_.begin(), drained_.end());
    for (const CellRef& c : previous_)  // a write racing the epoch bump lands after our drain
      if (!drained_.count(c)) todo.push_back(c);
    for (const CellRef& c : forced_)
      if (!drained_.count(c) && !previous_.count(c)) todo.push_back(c);
  }
  for (const CellRef& c : todo) {
    const ObjectSpec* s = schema_.find(c.object);
    auto fp = own_fingerprint(*s, c.key);
    if (!fp) {
      shadow_.erase(c);  // removed meanwhile
      continue;
    }
    auto it = shadow_.find(c);
    uint64_t before = it == shadow_.end() ? 0 : it->second;
    if (*fp == before && !forced_.count(c)) continue;
    shadow_[c] = *fp;
    ++stats_.reported;
    fn(c.object, c.key);
  }
  previous_ = std::move(drained_);
  drained_.clear();
  forced_.clear();
  return {};
}

Result<bool> BpfStore::read(uint8_t object, const Key& key, SlotMask mask, const SlotFn& fn) {
  const ObjectSpec* s = schema_.find(object);
  if (!s) return fail("state store: no object " + std::to_string(object));
  std::array<uint8_t, AC_CRDT_KEY_MAX> mk;
  if (!map_key(*s, key, mk)) return false;
  Value v;
  std::optional<ac_crdt_windows> before;
  int8_t g = gen_[object];
  if (g >= 0) {
    // a windowed cell: read between two looks at its generation's window; a cell whose
    // generation is being reset (or was, meanwhile) is not read (the new window logs it again)
    before = windows();
    if (!before || before->gen[g] == AC_CRDT_WIN_NONE || before->gen[g] == 0) return false;
  }
  if (bpf_map_lookup_elem(fd_of(object), mk.data(), v.b)) {
    if (errno == ENOENT) return false;
    return fail_errno("state store: read " + s->name);
  }
  if (g >= 0) {
    auto after = windows();
    if (!after || after->gen[g] != before->gen[g]) return false;
    read_epoch_[object] = ac_crdt_win_epoch(before->gen[g]);
  }
  switch (s->kind) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: {
      auto* c = reinterpret_cast<const ac_gcounter*>(v.b);
      for (uint8_t i = 0; i < AC_CRDT_SLOTS; ++i)
        if ((mask & (1u << i)) && c->slot[i]) fn(i, CellValue{.a = c->slot[i]});
      if ((mask & kRetiredBit) && c->retired) fn(kRetiredSlot, CellValue{.a = c->retired});
      break;
    }
    case Kind::PNCounter: {
      auto* c = reinterpret_cast<const ac_pncounter*>(v.b);
      for (uint8_t i = 0; i < AC_CRDT_SLOTS; ++i)
        if ((mask & (1u << i)) && (c->inc.slot[i] || c->dec.slot[i]))
          fn(i, CellValue{.a = c->inc.slot[i], .b = c->dec.slot[i]});
      if ((mask & kRetiredBit) && (c->inc.retired || c->dec.retired))
        fn(kRetiredSlot, CellValue{.a = c->inc.retired, .b = c->dec.retired});
      break;
    }
    case Kind::AwSet: {
      auto* e = reinterpret_cast<const ac_awset_elem*>(v.b);
      for (uint8_t i = 0; i < AC_CRDT_SLOTS; ++i)
        if (e->add[i] || e->rm[i]) fn(i, CellValue{.a = e->add[i], .b = e->rm[i]});
      break;
    }
    case Kind::RegMap:
      fn(0, CellValue{.reg = reinterpret_cast<const ac_register*>(v.b)->v});
      break;
  }
  return true;
}

Result<void> BpfStore::cells(const CellFn& fn) {
  for (const ObjectSpec& s : schema_.objects())
    if (auto r = cells_of(s.id, fn); !r) return r;
  return {};
}

Result<void> BpfStore::cells_of(uint8_t object, const CellFn& fn) {
  const ObjectSpec* s = schema_.find(object);
  if (!s) return fail("state store: no object " + std::to_string(object), ENOENT);
  if (!s->keyed()) {
    for (uint32_t i = 0; i < s->cells; ++i) fn(s->id, Key::index(i));
    return {};
  }
  std::array<uint8_t, AC_CRDT_KEY_MAX> k{}, next{};
  int fd = fd_of(s->id);
  for (int err = bpf_map_get_next_key(fd, nullptr, next.data()); !err;
       err = bpf_map_get_next_key(fd, k.data(), next.data())) {
    k = next;
    fn(s->id, Key::bytes(k.data(), s->key_size));
  }
  return {};
}

Result<bool> BpfStore::local_delete(uint8_t object, const Key& key) {
  const ObjectSpec* s = schema_.find(object);
  std::array<uint8_t, AC_CRDT_KEY_MAX> mk;
  if (!s || s->kind != Kind::RegMap || !map_key(*s, key, mk)) return fail("state store: not an entry of a winner map", EINVAL);
  if (auto r = flush(); !r) return unexpected(r.error());
  const CellRef c{object, key};
  shadow_.erase(c);
  forced_.erase(c);
  if (bpf_map_delete_elem(fd_of(object), mk.data())) {
    if (errno == ENOENT) return false;
    return fail_errno("state store: delete from " + s->name);
  }
  return true;
}

Result<void> BpfStore::run_batch(std::vector<uint8_t>& batch, uint16_t count, uint16_t* changed, uint16_t* rejected) {
  ac_crdt_batch_hdr h{.magic = AC_CRDT_BATCH_MAGIC, .version = AC_CRDT_BATCH_VERSION, .pad = 0, .count = count,
                      .applied = 0, .changed = 0, .rejected = 0};
  std::memcpy(batch.data(), &h, sizeof h);
  std::vector<uint8_t> out(batch.size() + 64);
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = batch.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(batch.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = 1);
  if (bpf_prog_test_run_opts(maps_.merge_prog_fd, &o)) return fail_errno("state store: merge program");
  if (o.retval != XDP_PASS) return fail("state store: merge program refused the batch (verdict " + std::to_string(o.retval) + ")");
  std::memcpy(&h, out.data(), sizeof h);
  ++stats_.batches;
  if (changed) *changed = h.changed;
  if (rejected) *rejected = h.rejected;
  const auto* first = reinterpret_cast<const ac_crdt_op*>(batch.data() + sizeof h);
  if (first->op == AC_CRDT_OP_FOLD || first->op == AC_CRDT_OP_CLEAR) {
    // one whole-object operation: changed = cells visited, rejected = set elements still live
    if (h.applied != 1) return fail("state store: the merge program refused to fold object " + std::to_string(first->object));
    return {};
  }
  stats_.merged += h.applied;
  stats_.merge_rejected += h.rejected;
  if (h.applied + h.rejected != count)
    return fail("state store: the merge program read " + std::to_string(h.applied + h.rejected) + " of " +
                std::to_string(count) + " records");
  return {};
}

Result<void> BpfStore::merge(uint8_t object, const Key& key, uint8_t slot, const CellValue& v, uint16_t epoch) {
  const ObjectSpec* s = schema_.find(object);
  std::array<uint8_t, AC_CRDT_KEY_MAX> mk;
  if (!s || !map_key(*s, key, mk)) return fail("state store: record for a cell that does not exist");
  if (slot == 0 && counter(s->kind)) return {};  // our own slot: never merged
  uint8_t klen = s->keyed() ? s->key_size : 4;
  uint32_t vlen = merge_value_size(s->kind);
  size_t need = sizeof(ac_crdt_op) + AC_CRDT_PAD8(klen) + AC_CRDT_PAD8(vlen);
  if (batch_.empty()) batch_.resize(sizeof(ac_crdt_batch_hdr));
  if (batch_.size() + need > AC_CRDT_BATCH_MAX) {
    auto r = flush();
    if (!r) return r;
    batch_.resize(sizeof(ac_crdt_batch_hdr));
  }
  ac_crdt_op op{.op = AC_CRDT_OP_MERGE, .object = object, .slot = slot, .key_len = klen,
                .value_len = static_cast<uint16_t>(vlen), .epoch = epoch};
  append(batch_, &op, sizeof op);
  append(batch_, mk.data(), klen);
  switch (s->kind) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: append(batch_, &v.a, 8); break;
    case Kind::PNCounter: {
      ac_crdt_pn_value pv{.inc = v.a, .dec = v.b};
      append(batch_, &pv, sizeof pv);
      break;
    }
    case Kind::AwSet: {
      ac_crdt_set_value sv{.add = static_cast<uint32_t>(v.a), .rm = static_cast<uint32_t>(v.b)};
      append(batch_, &sv, sizeof sv);
      break;
    }
    case Kind::RegMap: append(batch_, &v.reg, sizeof v.reg); break;
  }
  ++batch_count_;
  return {};
}

Result<void> BpfStore::flush() {
  if (!batch_count_) return {};
  uint16_t n = batch_count_;
  batch_count_ = 0;
  auto r = run_batch(batch_, n, nullptr, nullptr);
  batch_.clear();
  return r;
}

Result<bool> BpfStore::fold(uint8_t slot) {
  if (slot == 0 || slot >= AC_CRDT_SLOTS) return fail("state store: cannot fold slot " + std::to_string(slot));
  if (auto r = flush(); !r) return unexpected(r.error());
  uint32_t live = 0;
  for (const ObjectSpec& s : schema_.objects()) {
    if (s.kind == Kind::RegMap) continue;
    std::vector<uint8_t> b(sizeof(ac_crdt_batch_hdr));
    ac_crdt_op op{.op = AC_CRDT_OP_FOLD, .object = s.id, .slot = slot, .key_len = 0, .value_len = 0, .epoch = 0};
    append(b, &op, sizeof op);
    uint16_t changed = 0, rejected = 0;
    auto r = run_batch(b, 1, &changed, &rejected);
    if (!r) return unexpected(r.error());
    if (s.kind == Kind::AwSet) live += rejected;
  }
  return live == 0;
}

Result<void> BpfStore::set_remove(uint8_t object, const Key& key) {
  const ObjectSpec* s = schema_.find(object);
  std::array<uint8_t, AC_CRDT_KEY_MAX> mk;
  if (!s || s->kind != Kind::AwSet || !map_key(*s, key, mk)) return fail("state store: not an element of a set");
  if (auto r = flush(); !r) return r;
  std::vector<uint8_t> b(sizeof(ac_crdt_batch_hdr));
  ac_crdt_op op{.op = AC_CRDT_OP_REMOVE, .object = object, .slot = 0, .key_len = s->key_size, .value_len = 0, .epoch = 0};
  append(b, &op, sizeof op);
  append(b, mk.data(), s->key_size);
  uint16_t rejected = 0;
  auto r = run_batch(b, 1, nullptr, &rejected);
  if (!r) return r;
  if (rejected) return fail("state store: no such element to remove", ENOENT);
  forced_.insert({object, key});
  return {};
}

}  // namespace anychain::state
