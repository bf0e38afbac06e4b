// The objects of one NF instance as the replicator sees them, in the instance's BPF maps
// (docs/state.md, Section 2). Changes come from the change log the packet path writes (at most
// once per cell and scan epoch), checked against a shadow of what was last reported; merges go
// through the NF's merge program (BPF_PROG_TEST_RUN on batches), never through map writes from
// user space, which would overwrite the own slot that XDP increments.
#pragma once

#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "state/store.h"

struct ring_buffer;

namespace anychain::state {

struct BpfStoreMaps {
  struct Object {
    uint8_t id = 0;
    int fd = -1;              // the object's map (array or hash, as its spec says)
    int8_t generation = -1;   // a windowed object's generation (0 or 1: ac_crdt_win), else -1
  };
  std::vector<Object> objects;
  int ctl_fd = -1;            // ac_crdt_ctl
  int changes_fd = -1;        // ac_crdt_changes (ring buffer)
  int stats_fd = -1;          // ac_crdt_stats
  int merge_prog_fd = -1;     // the NF's merge program
  int win_fd = -1;            // ac_crdt_win: needed when an object is windowed
};

struct BpfStoreStats {
  uint64_t scans = 0, full_scans = 0;
  uint64_t logged = 0;        // change-log records read
  uint64_t reported = 0;      // cells reported changed
  uint64_t batches = 0, merged = 0, merge_rejected = 0;
};

class BpfStore final : public Store {
 public:
  // Checks every map against the schema (type, key and value sizes, entries) and names the first
  // that does not fit. The fds are borrowed: the caller keeps them open.
  static Result<std::unique_ptr<BpfStore>> open(Schema schema, BpfStoreMaps maps);
  ~BpfStore() override;

  const Schema& schema() const override { return schema_; }
  Result<void> changes(const CellFn& fn) override;
  Result<bool> read(uint8_t object, const Key& key, SlotMask mask, const SlotFn& fn) override;
  Result<void> cells(const CellFn& fn) override;
  Result<void> cells_of(uint8_t object, const CellFn& fn) override;
  Result<void> merge(uint8_t object, const Key& key, uint8_t slot, const CellValue& v, uint16_t epoch) override;
  Result<void> flush() override;
  Result<bool> fold(uint8_t slot) override;
  Result<void> local_remove(uint8_t object, const Key& key) override { return set_remove(object, key); }
  // bpf_map_delete_elem: a hash map element is freed after an RCU grace period, so XDP holding
  // it finishes on the old element; a packet of the entry in the same instant may find it gone.
  Result<bool> local_delete(uint8_t object, const Key& key) override;
  uint16_t epoch(uint8_t object) const override { return read_epoch_[object]; }

  // A local remove from an add-wins set (through the merge program, serialised with merges);
  // reported as a change at the next scan.
  Result<void> set_remove(uint8_t object, const Key& key);

  const BpfStoreStats& stats() const { return stats_; }
  uint32_t epoch() const { return epoch_; }

  struct CellRef {
    uint8_t object;
    Key key;
    bool operator==(const CellRef& o) const { return object == o.object && key == o.key; }
  };
  struct CellRefHash {
    size_t operator()(const CellRef& c) const { return KeyHash{}(c.key) * 131 + c.object; }
  };

 private:
  BpfStore() = default;
  int fd_of(uint8_t object) const { return fds_[object]; }
  Result<void> run_batch(std::vector<uint8_t>& batch, uint16_t count, uint16_t* changed, uint16_t* rejected);
  bool map_key(const ObjectSpec& s, const Key& k, std::array<uint8_t, AC_CRDT_KEY_MAX>& out) const;
  // A fingerprint of what the local instance writes in a cell (own slot, own adds, register).
  std::optional<uint64_t> own_fingerprint(const ObjectSpec& s, const Key& k) const;
  uint64_t lost() const;
  void note(uint8_t object, const void* key, uint32_t len);
  // The windows of the generations (ac_crdt_win), or nothing without windowed objects.
  std::optional<ac_crdt_windows> windows() const;
  // A generation that took a new window was reset to zero by the NF: forget its cells' shadows,
  // so that what the new window writes is reported even if it equals the old value.
  void windows_moved();

  Schema schema_;
  BpfStoreMaps maps_;
  std::array<int, 256> fds_{};
  std::array<int8_t, 256> gen_{};       // object -> generation, -1: not windowed
  std::array<uint16_t, 256> read_epoch_{};  // object -> epoch of the cell last read
  std::array<uint32_t, 2> gen_window_{};    // the windows the shadows belong to
  ring_buffer* rb_ = nullptr;
  uint32_t epoch_ = 0;
  bool scanned_ = false;
  uint64_t lost_seen_ = 0;
  std::unordered_set<CellRef, CellRefHash> drained_, previous_, forced_;
  std::unordered_map<CellRef, uint64_t, CellRefHash> shadow_;
  std::vector<uint8_t> batch_;
  uint16_t batch_count_ = 0;
  BpfStoreStats stats_;
};

}  // namespace anychain::state
