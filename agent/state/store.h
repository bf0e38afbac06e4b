// Where a replica's objects live, as the replicator sees them: the C++ twin (TwinStore, tests and
// simulations) or an NF instance's BPF maps (BpfStore). Slot numbers are this replica's own
// (docs/state.md 1.1): slot 0 is the local instance, the replicator maps origins to the others.
#pragma once

#include <cstdint>
#include <functional>

#include "common/error.h"
#include "state/schema.h"

namespace anychain::state {

// Which slots of a cell to read: bit s for slot s, kRetiredBit for the retired totals.
using SlotMask = uint32_t;
inline constexpr SlotMask kOwnSlot = 1u << 0;
inline constexpr SlotMask kRetiredBit = 1u << 31;
inline constexpr SlotMask kAllSlots = 0xffffu | kRetiredBit;
inline constexpr uint8_t kRetiredSlot = AC_CRDT_SLOT_RETIRED;

using CellFn = std::function<void(uint8_t object, const Key& key)>;
using SlotFn = std::function<void(uint8_t slot, const CellValue& value)>;

class Store {
 public:
  virtual ~Store() = default;
  virtual const Schema& schema() const = 0;

  // Cells the local instance may have changed since the previous call, each reported once (a
  // cell that did not change may be reported too: reading it again is harmless).
  virtual Result<void> changes(const CellFn& fn) = 0;
  // The records describing a cell. Counters, sketches, filters: the nonzero slots in `mask`
  // (kRetiredBit: the retired totals, as slot kRetiredSlot). Sets: every slot with a nonzero add
  // or rm (an element travels whole: a remove changes every slot). Registers: one record, slot 0.
  // Returns false when the cell does not exist (a key removed meanwhile).
  virtual Result<bool> read(uint8_t object, const Key& key, SlotMask mask, const SlotFn& fn) = 0;
  // Every existing cell (a snapshot, a relay of a departed origin's slot).
  virtual Result<void> cells(const CellFn& fn) = 0;
  // Every existing cell of one object.
  virtual Result<void> cells_of(uint8_t object, const CellFn& fn) = 0;
  // Merge one remote record into slot `slot` (kRetiredSlot: a retired total). May be buffered
  // until flush(). Slot 0 of a counter or a set's adds are never written by a merge.
  virtual Result<void> merge(uint8_t object, const Key& key, uint8_t slot, const CellValue& v,
                             uint16_t epoch) = 0;
  virtual Result<void> flush() = 0;
  // A departed origin's slot, in every cell of every object: counters fold it into retired;
  // set elements clear it where none of its adds is live. Returns whether the slot is now empty
  // everywhere (it can then be given to another origin).
  virtual Result<bool> fold(uint8_t slot) = 0;
  // Expiry (state/expiry.h). A local remove of an add-wins set element (it observes every add
  // this replica holds), reported as a change so that it replicates; ENOENT if there is none.
  virtual Result<void> local_remove(uint8_t object, const Key& key) = 0;
  // A local delete of a deterministic-winner map entry (not replicated: every replica deletes by
  // the same merged `seen`). Returns false when the key was not there.
  virtual Result<bool> local_delete(uint8_t object, const Key& key) = 0;
  // The epoch its records carry: for a windowed object (docs/state.md 4.1), the window of the
  // cell last read from it by read(); 0 for every other object.
  virtual uint16_t epoch(uint8_t object) const {
    (void)object;
    return 0;
  }
};

}  // namespace anychain::state
