// The C++ twin of an NF's objects: the same cells (include/anychain/crdt.h) and the same update,
// read and merge functions as the BPF programs, in ordinary containers. Tests and simulations
// replicate it exactly as an NF's maps are replicated; the BPF fixtures check that both produce
// the same bytes.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "state/store.h"

namespace anychain::state {

class TwinStore final : public Store {
 public:
  explicit TwinStore(Schema schema);

  // ---- what the NF does on the packet path (slot 0) ----
  // Counter cells: array objects take Key::index(i), hash objects their key. False when a hash
  // object is full (as the BPF map would refuse a new key).
  bool gc_add(uint8_t object, const Key& key, uint64_t n);
  bool pn_add(uint8_t object, const Key& key, int64_t n);
  void cms_add(uint8_t object, uint64_t key_hash, uint64_t n);
  void cbf_add(uint8_t object, uint64_t key_hash, uint64_t n);
  bool set_add(uint8_t object, const Key& key);
  // A local remove (in BPF it runs through the merge program, serialised with merges).
  void set_remove(uint8_t object, const Key& key);
  // Insert if absent; returns the value now held (the existing one if the key was there).
  std::optional<ac_reg_value> reg_insert(uint8_t object, const Key& key, const ac_reg_value& v);
  void reg_seen(uint8_t object, const Key& key, uint64_t seen);

  // ---- reads (merged values) ----
  uint64_t gc_value(uint8_t object, const Key& key) const;
  int64_t pn_value(uint8_t object, const Key& key) const;
  uint64_t cms_estimate(uint8_t object, uint64_t key_hash) const;
  uint64_t cbf_value(uint8_t object, uint64_t key_hash) const;
  bool set_contains(uint8_t object, const Key& key) const;
  std::optional<ac_reg_value> reg_get(uint8_t object, const Key& key) const;

  // Raw cells (nullptr if absent), for byte comparisons with the BPF maps.
  const ac_gcounter* gc_cell(uint8_t object, const Key& key) const;
  const ac_pncounter* pn_cell(uint8_t object, const Key& key) const;
  const ac_awset_elem* set_cell(uint8_t object, const Key& key) const;
  const ac_register* reg_cell(uint8_t object, const Key& key) const;

  // ---- Store ----
  const Schema& schema() const override { return schema_; }
  Result<void> changes(const CellFn& fn) override;
  Result<bool> read(uint8_t object, const Key& key, SlotMask mask, const SlotFn& fn) override;
  Result<void> cells(const CellFn& fn) override;
  Result<void> cells_of(uint8_t object, const CellFn& fn) override;
  Result<void> merge(uint8_t object, const Key& key, uint8_t slot, const CellValue& v, uint16_t epoch) override;
  Result<void> flush() override { return {}; }
  Result<bool> fold(uint8_t slot) override;
  Result<void> local_remove(uint8_t object, const Key& key) override;
  Result<bool> local_delete(uint8_t object, const Key& key) override;

  uint64_t merges_applied() const { return merged_; }
  uint64_t merges_refused() const { return refused_; }

 private:
  struct Obj {
    const ObjectSpec* spec = nullptr;
    std::vector<ac_gcounter> gc;           // array G-counter, count-min, Bloom filter
    std::vector<ac_pncounter> pn;          // array PN counter
    std::map<Key, ac_gcounter> gck;        // keyed G-counter
    std::map<Key, ac_pncounter> pnk;       // keyed PN counter
    std::map<Key, ac_awset_elem> set;
    std::map<Key, ac_register> reg;
  };
  Obj* obj(uint8_t id);
  const Obj* obj(uint8_t id) const;
  size_t keys(const Obj& o) const;
  ac_gcounter* gc_at(Obj& o, const Key& key, bool create);
  ac_pncounter* pn_at(Obj& o, const Key& key, bool create);
  void sketch_add(uint8_t object, Kind kind, uint64_t key_hash, uint64_t n);
  uint64_t sketch_min(uint8_t object, Kind kind, uint64_t key_hash) const;

  Schema schema_;
  std::vector<Obj> objs_;
  std::set<std::pair<uint8_t, Key>> changed_;
  uint64_t merged_ = 0, refused_ = 0;
};

}  // namespace anychain::state
