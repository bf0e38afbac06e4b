// FTC state stores in C++ (docs/ftc.md Section 3): what bpf/nf_state.h keeps in nf_head and
// nf_replica, with the same limits (4 keys per partition, keys of 1..16 bytes, values of up to
// 32), transactions at the head and the order rule at replicas.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "ftc/wire.h"

namespace anychain::ftc {

// A flow as packets carry it: (SPI, flow hash).
struct Flow {
  uint32_t spi = 0;
  uint32_t hash = 0;
  auto operator<=>(const Flow&) const = default;
};

// A record of the middlebox (instance id, head SI) for one flow: the FTC partition.
struct RecordKey {
  uint16_t id = 0;
  uint8_t si = 0;
  Flow flow;
  auto operator<=>(const RecordKey&) const = default;
};

using Kv = std::map<std::pair<uint8_t, Bytes>, Bytes>;  // (table, key) -> value

struct Record {
  uint32_t seq = 0;  // head: last transaction; replica: MAX
  uint8_t inc = 0;   // incarnation that last wrote it
  uint8_t held = 1;  // copies up to this one (head 1, replicas 2..f + 1)
  Kv kv;
  bool operator==(const Record&) const = default;
};

// Apply writes (latest wins, deletes remove) to kv.
void apply_writes(Kv& kv, const std::vector<Write>& writes);

// A transaction on one partition at its head. Reads see the record as the transaction left it.
class Transaction {
 public:
  [[nodiscard]] std::optional<Bytes> get(uint8_t table, const Bytes& key) const;
  // Refused (and nothing written) when the partition would hold more than AC_ST_SLOTS keys,
  // a key or value breaks its limit, or the log would exceed AC_FTC_LOG_MAX.
  Result<void> put(uint8_t table, Bytes key, Bytes value);
  Result<void> del(uint8_t table, const Bytes& key);
  [[nodiscard]] const Record& record() const { return rec_; }
  [[nodiscard]] bool wrote() const { return !writes_.empty(); }

 private:
  friend class Store;
  explicit Transaction(Record& rec) : rec_(rec) {}
  Result<void> stage(Write w);
  Record& rec_;
  std::vector<Write> writes_;  // one per key, latest value
};

enum class Outcome { Applied, Satisfied, Gap, Stale };
const char* outcome_str(Outcome o);

// One instance's records: its own partitions (head) and its replicas of predecessors'.
class Store {
 public:
  Store(uint16_t id, uint8_t inc, size_t max_head = 65536, size_t max_replica = 4 * 65536)
      : id_(id), inc_(inc), max_head_(max_head), max_replica_(max_replica) {}

  [[nodiscard]] uint16_t id() const { return id_; }
  [[nodiscard]] uint8_t inc() const { return inc_; }
  void set_inc(uint8_t inc) { inc_ = inc; }

  // Run fn as a transaction on the partition (flow, head SI si): the log it produces (a
  // no-op log if nothing was written), with held 1 and count 0 or 1. Fails only when the store
  // is full (the NF must then refuse the flow).
  using TxFn = std::function<void(Transaction&)>;
  Result<Log> transact(Flow flow, uint8_t si, const TxFn& fn);

  // The order rule for a predecessor's log on this replica; Applied changes the record (created
  // when absent) and sets held = held_after. Satisfied with a newer incarnation records it.
  Result<Outcome> apply(const RecordKey& key, const Log& log, uint8_t held_after);

  // Install a record from a re-request or a recovery transfer: only if absent or older (never
  // moves a record backwards). Returns whether it was installed.
  bool install_replica(const RecordKey& key, const Record& rec);
  bool install_head(const RecordKey& key, const Record& rec);
  // Fence: a record of this replica now belongs to incarnation inc (recovery source).
  void fence(const RecordKey& key, uint8_t inc);

  [[nodiscard]] const Record* head(const RecordKey& key) const;
  [[nodiscard]] const Record* replica(const RecordKey& key) const;
  [[nodiscard]] const std::map<RecordKey, Record>& heads() const { return head_; }
  [[nodiscard]] const std::map<RecordKey, Record>& replicas() const { return replica_; }
  void clear() {
    head_.clear();
    replica_.clear();
  }

 private:
  uint16_t id_;
  uint8_t inc_;
  size_t max_head_, max_replica_;
  std::map<RecordKey, Record> head_, replica_;
};

}  // namespace anychain::ftc
