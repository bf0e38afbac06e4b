// BPF fixtures for the shared-state objects (bpf/nf_crdt.h through tests/state/crdt_test.bpf.c):
// each object's update path with exact map contents and change-log records, the merge program
// with exact slots and counters, byte equality with the C++ twin on random histories, and two
// CPUs updating (or updating and merging) the same cells at once without losing an update.
// Over 500 lines: one fixture per object kind with its exact map contents; they share the
// loader and the twin comparison at the top.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "crdt_test.h"
#include "crdt_test.skel.h"
#include "crdt_test_store.h"
#include "state/twin_store.h"

namespace anychain::state {
namespace {

// Pin the calling thread (a thread of its own) to one CPU.
void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) throw std::runtime_error("pin to a CPU");
}

const Schema& test_schema() { return crdt_test_schema(); }

ct_key16 k16(uint32_t v) {
  ct_key16 k{};
  std::memcpy(k.b, &v, 4);
  k.b[15] = 0xee;
  return k;
}

struct Change {
  uint8_t object;
  std::vector<uint8_t> key;
  bool operator==(const Change&) const = default;
  bool operator<(const Change& o) const { return std::tie(object, key) < std::tie(o.object, o.key); }
};

Change idx_change(uint8_t obj, uint32_t i) {
  std::vector<uint8_t> k(4);
  std::memcpy(k.data(), &i, 4);
  return {obj, k};
}
template <class K>
Change key_change(uint8_t obj, const K& key) {
  std::vector<uint8_t> k(sizeof key);
  std::memcpy(k.data(), &key, sizeof key);
  return {obj, k};
}

template <class T>
::testing::AssertionResult bytes_eq(const T& a, const T& b) {
  if (std::memcmp(&a, &b, sizeof a) == 0) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure() << "differ at bytes:";
  auto* x = reinterpret_cast<const uint8_t*>(&a);
  auto* y = reinterpret_cast<const uint8_t*>(&b);
  for (size_t i = 0; i < sizeof a; ++i)
    if (x[i] != y[i]) r << " [" << i << "] " << int(x[i]) << "!=" << int(y[i]);
  return r;
}

class CrdtBpf : public ::testing::Test {
 protected:
  void SetUp() override {
    skel_ = crdt_test_bpf__open();
    ASSERT_NE(skel_, nullptr);
    int err = crdt_test_bpf__load(skel_);
    ASSERT_EQ(err, 0) << "the verifier refused the test program (libbpf printed its log)";
    rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.ac_crdt_changes), &CrdtBpf::on_change, this, nullptr);
    ASSERT_NE(rb_, nullptr);
    set_epoch(1);
  }
  void TearDown() override {
    ring_buffer__free(rb_);
    crdt_test_bpf__destroy(skel_);
  }

  static int on_change(void* ctx, void* data, size_t size) {
    auto* self = static_cast<CrdtBpf*>(ctx);
    if (size != sizeof(ac_crdt_change)) return -1;
    ac_crdt_change c;
    std::memcpy(&c, data, sizeof c);
    self->log_.push_back({c.object, std::vector<uint8_t>(c.key, c.key + c.key_len)});
    return 0;
  }
  std::vector<Change> drain() {
    log_.clear();
    ring_buffer__consume(rb_);
    return log_;
  }

  void set_epoch(uint32_t e) {
    uint32_t zero = 0;
    ac_crdt_ctl ctl{.epoch = e, .pad = 0};
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_crdt_ctl), &zero, &ctl, 0), 0);
  }

  // Run the update program on one operation; returns the verdict, *op gets the written-back op.
  static int run_op(int prog_fd, crdt_test_op* op, uint32_t repeat = 1) {
    uint8_t frame[14 + sizeof(crdt_test_op)] = {};
    std::memcpy(frame + 14, op, sizeof *op);
    uint8_t out[sizeof frame + 64];
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_out = out, .data_size_in = sizeof frame,
                .data_size_out = sizeof out, .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) return -1;
    std::memcpy(op, out + 14, sizeof *op);
    return static_cast<int>(o.retval);
  }
  int op(crdt_test_op o, crdt_test_op* back = nullptr) {
    int v = run_op(bpf_program__fd(skel_->progs.crdt_update), &o);
    if (back) *back = o;
    return v;
  }
  crdt_test_op gc_add(uint32_t i, uint64_t n) { return {.code = CT_GC_ADD, .index = i, .amount = n}; }

  // A merge batch builder.
  struct Batch {
    std::vector<uint8_t> b = std::vector<uint8_t>(sizeof(ac_crdt_batch_hdr));
    uint16_t count = 0;
    template <class K, class V>
    Batch& add(uint8_t op, uint8_t obj, uint8_t slot, const K* key, const V* val) {
      ac_crdt_op h{.op = op, .object = obj, .slot = slot, .key_len = key ? uint8_t(sizeof(K)) : uint8_t(0),
                   .value_len = val ? uint16_t(sizeof(V)) : uint16_t(0), .epoch = 0};
      append(&h, sizeof h);
      if (key) append(key, sizeof(K));
      if (val) append(val, sizeof(V));
      ++count;
      return *this;
    }
    Batch& merge_idx(uint8_t obj, uint8_t slot, uint32_t idx, uint64_t v) {
      return add(AC_CRDT_OP_MERGE, obj, slot, &idx, &v);
    }
    void append(const void* p, size_t n) {
      auto* c = static_cast<const uint8_t*>(p);
      b.insert(b.end(), c, c + n);
      b.resize(b.size() + (AC_CRDT_PAD8(n) - n), 0);
    }
    std::vector<uint8_t> bytes() const {
      std::vector<uint8_t> out = b;
      ac_crdt_batch_hdr h{.magic = AC_CRDT_BATCH_MAGIC, .version = AC_CRDT_BATCH_VERSION, .pad = 0,
                          .count = count, .applied = 0, .changed = 0, .rejected = 0};
      std::memcpy(out.data(), &h, sizeof h);
      return out;
    }
  };
  struct MergeResult {
    int verdict = -1;
    uint16_t applied = 0, changed = 0, rejected = 0;
  };
  static MergeResult run_merge(int prog_fd, const std::vector<uint8_t>& in) {
    std::vector<uint8_t> out(in.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(in.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                .repeat = 1);
    MergeResult r;
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) return r;
    ac_crdt_batch_hdr h;
    std::memcpy(&h, out.data(), sizeof h);
    r.verdict = static_cast<int>(o.retval);
    r.applied = h.applied;
    r.changed = h.changed;
    r.rejected = h.rejected;
    return r;
  }
  MergeResult merge(const Batch& b) { return run_merge(bpf_program__fd(skel_->progs.crdt_merge), b.bytes()); }

  template <class V>
  V cell(bpf_map* m, const void* key) {
    V v{};
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(m), key, &v), 0);
    return v;
  }
  ac_gcounter gc(uint32_t i) { return cell<ac_gcounter>(skel_->maps.t_gc, &i); }
  uint64_t stat(ac_crdt_stat s) {
    std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    uint32_t k = s;
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_crdt_stats), &k, v.data()), 0);
    uint64_t sum = 0;
    for (uint64_t x : v) sum += x;
    return sum;
  }

  // Every cell of every object equals the twin's, byte for byte (touch words aside: the twin
  // keeps no change log).
  template <class V>
  static V untouched(V v) {
    if constexpr (std::is_same_v<V, ac_pncounter>) {
      v.inc.touch = 0;
      v.dec.touch = 0;
    } else {
      v.touch = 0;
    }
    return v;
  }
  template <class V>
  void expect_array(bpf_map* m, uint32_t cells, uint8_t obj, const V* (TwinStore::*get)(uint8_t, const Key&) const,
                    const TwinStore& twin) {
    for (uint32_t i = 0; i < cells; ++i) {
      const V* t = (twin.*get)(obj, Key::index(i));
      ASSERT_NE(t, nullptr);
      EXPECT_TRUE(bytes_eq(untouched(cell<V>(m, &i)), *t)) << "object " << int(obj) << " cell " << i;
    }
  }
  template <class K, class V>
  void expect_hash(bpf_map* m, uint8_t obj, const V* (TwinStore::*get)(uint8_t, const Key&) const,
                   const TwinStore& twin, size_t twin_keys) {
    K key{}, next{};
    size_t n = 0;
    int fd = bpf_map__fd(m);
    for (int err = bpf_map_get_next_key(fd, nullptr, &next); !err; err = bpf_map_get_next_key(fd, &key, &next)) {
      key = next;
      ++n;
      const V* t = (twin.*get)(obj, Key::bytes(&key, sizeof key));
      ASSERT_NE(t, nullptr) << "object " << int(obj) << ": a key the twin does not have";
      EXPECT_TRUE(bytes_eq(untouched(cell<V>(m, &key)), untouched(*t))) << "object " << int(obj);
    }
    EXPECT_EQ(n, twin_keys) << "object " << int(obj);
  }
  void expect_same_as(TwinStore& twin) {
    std::map<uint8_t, size_t> keys;
    (void)twin.cells([&](uint8_t o, const Key&) { ++keys[o]; });
    expect_array<ac_gcounter>(skel_->maps.t_gc, CT_GC_CELLS, CT_OBJ_GC, &TwinStore::gc_cell, twin);
    expect_array<ac_pncounter>(skel_->maps.t_pn, CT_PN_CELLS, CT_OBJ_PN, &TwinStore::pn_cell, twin);
    expect_array<ac_gcounter>(skel_->maps.t_cms, CT_CMS_ROWS * CT_CMS_WIDTH, CT_OBJ_CMS, &TwinStore::gc_cell, twin);
    expect_array<ac_gcounter>(skel_->maps.t_cbf, CT_CBF_CELLS, CT_OBJ_CBF, &TwinStore::gc_cell, twin);
    expect_hash<uint64_t, ac_gcounter>(skel_->maps.t_gck, CT_OBJ_GCK, &TwinStore::gc_cell, twin, keys[CT_OBJ_GCK]);
    expect_hash<ct_key16, ac_awset_elem>(skel_->maps.t_set, CT_OBJ_SET, &TwinStore::set_cell, twin, keys[CT_OBJ_SET]);
    expect_hash<ct_key16, ac_register>(skel_->maps.t_reg, CT_OBJ_REG, &TwinStore::reg_cell, twin, keys[CT_OBJ_REG]);
  }

  crdt_test_bpf* skel_ = nullptr;
  ring_buffer* rb_ = nullptr;
  std::vector<Change> log_;
};

ac_gcounter expected_gc(uint32_t touch, std::initializer_list<std::pair<int, uint64_t>> slots, uint64_t retired = 0) {
  ac_gcounter c{};
  c.touch = touch;
  for (auto [s, v] : slots) {
    c.slot[s] = v;
    if (s) c.others += v;
  }
  c.retired = retired;
  c.others += retired;
  return c;
}

// ---- update paths --------------------------------------------------------------------------

TEST_F(CrdtBpf, GCounterArrayAddsToItsOwnSlotAndLogsOncePerEpoch) {
  crdt_test_op back{};
  EXPECT_EQ(op(gc_add(3, 5), &back), XDP_PASS);
  EXPECT_EQ(back.result, 5u) << "read: own + others";
  EXPECT_EQ(op(gc_add(3, 5)), XDP_PASS);
  EXPECT_EQ(op(gc_add(4, 7)), XDP_PASS);
  EXPECT_TRUE(bytes_eq(gc(3), expected_gc(1, {{0, 10}})));
  EXPECT_TRUE(bytes_eq(gc(4), expected_gc(1, {{0, 7}})));
  EXPECT_EQ(drain(), (std::vector<Change>{idx_change(CT_OBJ_GC, 3), idx_change(CT_OBJ_GC, 4)}))
      << "each cell once in epoch 1";
  EXPECT_EQ(op(gc_add(3, 1)), XDP_PASS);
  EXPECT_TRUE(drain().empty()) << "still epoch 1";
  set_epoch(2);
  EXPECT_EQ(op(gc_add(3, 1)), XDP_PASS);
  EXPECT_EQ(drain(), (std::vector<Change>{idx_change(CT_OBJ_GC, 3)}));
  EXPECT_TRUE(bytes_eq(gc(3), expected_gc(2, {{0, 12}})));
  EXPECT_EQ(stat(AC_CRDT_ST_LOGGED), 3u);
  set_epoch(0);
  EXPECT_EQ(op(gc_add(5, 1)), XDP_PASS);
  EXPECT_TRUE(drain().empty()) << "epoch 0: no agent, nothing logged";
  EXPECT_EQ(op(gc_add(CT_GC_CELLS, 1)), XDP_ABORTED) << "an index past the array";
}

TEST_F(CrdtBpf, KeyedGCounterCreatesKeysUntilFull) {
  for (uint64_t k = 0; k < CT_GCK_KEYS; ++k) {
    crdt_test_op o{.code = CT_GCK_ADD, .amount = k + 1, .hash = 1000 + k};
    ASSERT_EQ(op(o), XDP_PASS) << k;
  }
  uint64_t key = 1005;
  EXPECT_TRUE(bytes_eq(cell<ac_gcounter>(skel_->maps.t_gck, &key), expected_gc(1, {{0, 6}})));
  crdt_test_op again{.code = CT_GCK_ADD, .amount = 4, .hash = 1005};
  crdt_test_op back{};
  EXPECT_EQ(op(again, &back), XDP_PASS);
  EXPECT_EQ(back.result, 10u);
  auto log = drain();
  EXPECT_EQ(log.size(), static_cast<size_t>(CT_GCK_KEYS)) << "new keys logged at insertion, once";
  EXPECT_EQ(log[5], key_change(CT_OBJ_GCK, key));
  crdt_test_op full{.code = CT_GCK_ADD, .amount = 1, .hash = 99999};
  EXPECT_EQ(op(full), XDP_ABORTED);
  EXPECT_EQ(stat(AC_CRDT_ST_FULL), 1u) << "a full map is counted";
}

TEST_F(CrdtBpf, PnCounterSplitsIncrementsAndDecrements) {
  crdt_test_op back{};
  EXPECT_EQ(op({.code = CT_PN_ADD, .index = 2, .amount = 5}), XDP_PASS);
  EXPECT_EQ(op({.code = CT_PN_ADD, .index = 2, .amount = static_cast<uint64_t>(-8)}, &back), XDP_PASS);
  EXPECT_EQ(static_cast<int64_t>(back.result), -3);
  uint32_t i = 2;
  auto c = cell<ac_pncounter>(skel_->maps.t_pn, &i);
  EXPECT_TRUE(bytes_eq(c.inc, expected_gc(1, {{0, 5}})));
  EXPECT_TRUE(bytes_eq(c.dec, expected_gc(0, {{0, 8}}))) << "the cell's touch word is inc's";
  EXPECT_EQ(drain(), (std::vector<Change>{idx_change(CT_OBJ_PN, 2)}));
}

TEST_F(CrdtBpf, CountMinSketchUpdatesOneCellPerRow) {
  const uint64_t h = ac_mix64(42);
  crdt_test_op back{};
  EXPECT_EQ(op({.code = CT_CMS_ADD, .amount = 3, .hash = h}, &back), XDP_PASS);
  EXPECT_EQ(back.result, 3u);
  std::vector<Change> want;
  for (uint32_t r = 0; r < CT_CMS_ROWS; ++r) {
    uint32_t cell_i = ac_cms_cell(h, r, CT_CMS_WIDTH - 1);
    EXPECT_GE(cell_i, r * CT_CMS_WIDTH);
    EXPECT_LT(cell_i, (r + 1) * CT_CMS_WIDTH);
    EXPECT_TRUE(bytes_eq(cell<ac_gcounter>(skel_->maps.t_cms, &cell_i), expected_gc(1, {{0, 3}}))) << "row " << r;
    want.push_back(idx_change(CT_OBJ_CMS, cell_i));
  }
  EXPECT_EQ(drain(), want);
}

TEST_F(CrdtBpf, CountingBloomFilterUpdatesKCells) {
  const uint64_t h = ac_mix64(7);
  crdt_test_op back{};
  EXPECT_EQ(op({.code = CT_CBF_ADD, .amount = 1, .hash = h}, &back), XDP_PASS);
  EXPECT_EQ(back.result, 1u);
  std::map<uint32_t, uint64_t> want;
  for (uint32_t i = 0; i < CT_CBF_HASHES; ++i) ++want[ac_crdt_index(h, i, CT_CBF_CELLS - 1)];
  for (auto [c, n] : want) EXPECT_TRUE(bytes_eq(cell<ac_gcounter>(skel_->maps.t_cbf, &c), expected_gc(1, {{0, n}})));
  EXPECT_EQ(drain().size(), want.size());
  EXPECT_EQ(op({.code = CT_CBF_ADD, .amount = 0, .hash = ac_mix64(8)}, &back), XDP_PASS);
  EXPECT_LE(back.result, 1u);
}

// The threshold tests read cells only until one is under the bound: the same answer as the
// estimate's, for keys that collide in some rows and not others (small sketches, many keys).
TEST_F(CrdtBpf, SketchReachesAnswersAsTheEstimateComparedWithTheBound) {
  std::mt19937_64 rng(14);
  for (uint64_t i = 0; i < 400; ++i) {
    ASSERT_EQ(op({.code = CT_CMS_ADD, .amount = 1 + rng() % 5, .hash = ac_mix64(i)}), XDP_PASS);
    if (i % 2) {
      ASSERT_EQ(op({.code = CT_CBF_ADD, .amount = 1, .hash = ac_mix64(i)}), XDP_PASS);
    }
  }
  size_t under_first = 0, reached = 0, absent = 0;
  for (uint64_t i = 0; i < 800; ++i) {
    const uint64_t h = ac_mix64(i);
    crdt_test_op back{};
    ASSERT_EQ(op({.code = CT_CMS_ADD, .amount = 0, .hash = h}, &back), XDP_PASS);
    const uint64_t est = back.result;
    for (uint64_t bound : {uint64_t{0}, uint64_t{1}, est == 0 ? 0 : est - 1, est, est + 1, est + 7}) {
      ASSERT_EQ(op({.code = CT_CMS_REACHES, .amount = bound, .hash = h}, &back), XDP_PASS);
      EXPECT_EQ(back.result, est >= bound ? 1u : 0u) << "key " << i << " bound " << bound << " estimate " << est;
      reached += back.result;
    }
    uint32_t c0 = ac_cms_cell(h, 0, CT_CMS_WIDTH - 1);
    if (ac_gc_value(&static_cast<const ac_gcounter&>(cell<ac_gcounter>(skel_->maps.t_cms, &c0))) > est) ++under_first;
    ASSERT_EQ(op({.code = CT_CBF_ADD, .amount = 0, .hash = h}, &back), XDP_PASS);
    const uint64_t value = back.result;
    ASSERT_EQ(op({.code = CT_CBF_CONTAINS, .hash = h}, &back), XDP_PASS);
    EXPECT_EQ(back.result, value != 0 ? 1u : 0u) << "key " << i;
    absent += value == 0;
  }
  EXPECT_GT(under_first, 0u) << "some keys' first row is not their smallest";
  EXPECT_GT(reached, 0u);
  EXPECT_GT(absent, 0u);
}

TEST_F(CrdtBpf, AddWinsSetCountsOwnAdds) {
  ct_key16 k = k16(9);
  crdt_test_op o{.code = CT_SET_ADD, .key = k};
  crdt_test_op back{};
  EXPECT_EQ(op(o, &back), XDP_PASS);
  EXPECT_EQ(back.result, 1u);
  EXPECT_EQ(op(o), XDP_PASS);
  auto e = cell<ac_awset_elem>(skel_->maps.t_set, &k);
  ac_awset_elem want{};
  want.touch = 1;
  want.add[0] = 2;
  EXPECT_TRUE(bytes_eq(e, want));
  EXPECT_EQ(drain(), (std::vector<Change>{key_change(CT_OBJ_SET, k)}));
  crdt_test_op c{.code = CT_SET_CONTAINS, .key = k16(10)};
  EXPECT_EQ(op(c, &back), XDP_PASS);
  EXPECT_EQ(back.result, 0u);
}

TEST_F(CrdtBpf, RegisterInsertKeepsTheFirstAndSeenAdvancesByGranularity) {
  ct_key16 k = k16(1);
  crdt_test_op o{.code = CT_REG_INSERT, .key = k};
  o.reg.writer = 31;
  o.reg.seen = 100;
  o.reg.data[0] = 0x11;
  crdt_test_op back{};
  EXPECT_EQ(op(o, &back), XDP_PASS);
  EXPECT_EQ(back.result, 31u);
  o.reg.writer = 32;
  o.reg.data[0] = 0xff;
  EXPECT_EQ(op(o, &back), XDP_PASS);
  EXPECT_EQ(back.result, 31u) << "an existing key is not overwritten by the packet path";
  EXPECT_EQ(back.reg.data[0], 0x11);
  crdt_test_op s{.code = CT_REG_SEEN, .index = 50, .amount = 140, .key = k};
  EXPECT_EQ(op(s, &back), XDP_PASS);
  EXPECT_EQ(back.result, 100u) << "within the granularity: unchanged";
  s.amount = 151;
  EXPECT_EQ(op(s, &back), XDP_PASS);
  EXPECT_EQ(back.result, 151u);
  auto r = cell<ac_register>(skel_->maps.t_reg, &k);
  EXPECT_EQ(r.touch, 1u);
  EXPECT_EQ(r.v.writer, 31u);
  EXPECT_EQ(r.v.seen, 151u);
  EXPECT_EQ(drain(), (std::vector<Change>{key_change(CT_OBJ_REG, k)}));
}

TEST_F(CrdtBpf, FullChangeLogIsCountedNotBlocking) {
  // 4 x 64 + 256 distinct cells in one epoch: more records than the 16 KB ring holds.
  for (uint64_t i = 0; i < 400; ++i) {
    ASSERT_EQ(op({.code = CT_CMS_ADD, .amount = 1, .hash = ac_mix64(i)}), XDP_PASS);
    ASSERT_EQ(op({.code = CT_CBF_ADD, .amount = 1, .hash = ac_mix64(i)}), XDP_PASS);
  }
  uint64_t logged = stat(AC_CRDT_ST_LOGGED), lost = stat(AC_CRDT_ST_LOST);
  EXPECT_GT(lost, 0u) << "the ring filled";
  EXPECT_EQ(drain().size(), logged) << "every record that was logged is there";
  EXPECT_LE(logged + lost, 4u * 64 + 256);
}

// ---- the same bytes as the twin ------------------------------------------------------------

TEST_F(CrdtBpf, RandomHistoryGivesTheTwinsBytes) {
  TwinStore twin(test_schema());
  std::mt19937_64 rng(2024);
  for (int i = 0; i < 3000; ++i) {
    crdt_test_op o{};
    switch (rng() % 7) {
      case 0:
        o = gc_add(static_cast<uint32_t>(rng() % CT_GC_CELLS), rng() % 100);
        twin.gc_add(CT_OBJ_GC, Key::index(o.index), o.amount);
        break;
      case 1:
        o = {.code = CT_GCK_ADD, .amount = rng() % 100, .hash = rng() % 20};
        twin.gc_add(CT_OBJ_GCK, Key::bytes(&o.hash, 8), o.amount);
        break;
      case 2: {
        int64_t n = static_cast<int64_t>(rng() % 200) - 100;
        o = {.code = CT_PN_ADD, .index = static_cast<uint32_t>(rng() % CT_PN_CELLS), .amount = static_cast<uint64_t>(n)};
        twin.pn_add(CT_OBJ_PN, Key::index(o.index), n);
        break;
      }
      case 3:
        o = {.code = CT_CMS_ADD, .amount = 1 + rng() % 9, .hash = ac_mix64(rng() % 500)};
        twin.cms_add(CT_OBJ_CMS, o.hash, o.amount);
        break;
      case 4:
        o = {.code = CT_CBF_ADD, .amount = 1, .hash = ac_mix64(rng() % 500)};
        twin.cbf_add(CT_OBJ_CBF, o.hash, o.amount);
        break;
      case 5:
        o = {.code = CT_SET_ADD, .key = k16(static_cast<uint32_t>(rng() % 30))};
        twin.set_add(CT_OBJ_SET, Key::bytes(&o.key, 16));
        break;
      case 6:
        o = {.code = CT_REG_INSERT, .key = k16(static_cast<uint32_t>(rng() % 30))};
        o.reg.writer = static_cast<uint32_t>(rng() % 5);
        o.reg.seen = rng() % 1000;
        o.reg.data[3] = static_cast<uint8_t>(rng());
        twin.reg_insert(CT_OBJ_REG, Key::bytes(&o.key, 16), o.reg);
        break;
    }
    ASSERT_EQ(op(o), XDP_PASS) << "op " << i;
  }
  expect_same_as(twin);
}

// ---- merge program ---------------------------------------------------------------------------

TEST_F(CrdtBpf, MergeTakesTheMaximumPerRemoteSlotAndKeepsOthersInStep) {
  ASSERT_EQ(op(gc_add(2, 4)), XDP_PASS);
  Batch b;
  b.merge_idx(CT_OBJ_GC, 3, 2, 10).merge_idx(CT_OBJ_GC, 5, 2, 7).merge_idx(CT_OBJ_GC, 3, 2, 6);
  auto r = merge(b);
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(r.applied, 3);
  EXPECT_EQ(r.changed, 2) << "6 < 10 in slot 3: no change";
  EXPECT_EQ(r.rejected, 0);
  EXPECT_TRUE(bytes_eq(gc(2), expected_gc(1, {{0, 4}, {3, 10}, {5, 7}})));
  r = merge(b);
  EXPECT_EQ(r.applied, 3);
  EXPECT_EQ(r.changed, 0) << "the same batch again: idempotent";
  EXPECT_TRUE(bytes_eq(gc(2), expected_gc(1, {{0, 4}, {3, 10}, {5, 7}})));
  crdt_test_op back{};
  EXPECT_EQ(op(gc_add(2, 0), &back), XDP_PASS);
  EXPECT_EQ(back.result, 21u) << "reads see own + others";
  EXPECT_EQ(stat(AC_CRDT_ST_MERGED), 6u);
  EXPECT_EQ(stat(AC_CRDT_ST_MERGE_NOOP), 4u);
}

TEST_F(CrdtBpf, MergeRefusesTheOwnSlotUnknownObjectsAndBadLengths) {
  ASSERT_EQ(op(gc_add(1, 9)), XDP_PASS);
  uint32_t idx = 1;
  uint64_t v = 100;
  uint32_t short_v = 5;
  Batch b;
  b.merge_idx(CT_OBJ_GC, 0, 1, 100);                           // own slot
  b.merge_idx(99, 2, 1, 100);                                  // unknown object
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_GC, 2, &idx, &short_v);       // value too short
  b.merge_idx(CT_OBJ_GC, 2, CT_GC_CELLS + 3, 100);             // index past the array
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_GC, 16, &idx, &v);            // no such slot
  b.merge_idx(CT_OBJ_GC, 2, 1, 1);                             // fine
  auto r = merge(b);
  EXPECT_EQ(r.rejected, 5);
  EXPECT_EQ(r.applied, 1);
  EXPECT_TRUE(bytes_eq(gc(1), expected_gc(1, {{0, 9}, {2, 1}})));
  EXPECT_EQ(stat(AC_CRDT_ST_MERGE_BAD), 5u);
  std::vector<uint8_t> garbage(64, 0x5a);
  EXPECT_EQ(run_merge(bpf_program__fd(skel_->progs.crdt_merge), garbage).verdict, XDP_DROP) << "bad magic";
  Batch truncated;
  truncated.merge_idx(CT_OBJ_GC, 2, 1, 50);
  auto bytes = truncated.bytes();
  bytes.resize(bytes.size() - 8);
  r = run_merge(bpf_program__fd(skel_->progs.crdt_merge), bytes);
  EXPECT_EQ(r.applied + r.rejected, 0) << "a record running past the batch is not read";
}

TEST_F(CrdtBpf, MergeOfEveryKind) {
  // keyed counter: merge creates the key
  uint64_t key = 77;
  uint64_t v = 40;
  Batch b;
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_GCK, 4, &key, &v);
  ac_crdt_pn_value pv{.inc = 9, .dec = 2};
  uint32_t pi = 1;
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_PN, 6, &pi, &pv);
  uint64_t ret = 55;
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_CMS, kRetiredSlot, &pi, &ret);
  ct_key16 sk = k16(3);
  ac_crdt_set_value sv{.add = 2, .rm = 1};
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_SET, 7, &sk, &sv);
  ac_crdt_set_value own_rm{.add = 99, .rm = 1};
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_SET, 0, &sk, &own_rm);  // a remote remove of our adds
  ac_reg_value rv{};
  rv.writer = 8;
  rv.seen = 10;
  rv.data[0] = 5;
  ct_key16 rk = k16(4);
  b.add(AC_CRDT_OP_MERGE, CT_OBJ_REG, 3, &rk, &rv);
  auto r = merge(b);
  EXPECT_EQ(r.applied, 6);
  EXPECT_EQ(r.rejected, 0);
  EXPECT_TRUE(bytes_eq(cell<ac_gcounter>(skel_->maps.t_gck, &key), expected_gc(0, {{4, 40}})));
  auto pn = cell<ac_pncounter>(skel_->maps.t_pn, &pi);
  EXPECT_TRUE(bytes_eq(pn.inc, expected_gc(0, {{6, 9}})));
  EXPECT_TRUE(bytes_eq(pn.dec, expected_gc(0, {{6, 2}})));
  EXPECT_TRUE(bytes_eq(cell<ac_gcounter>(skel_->maps.t_cms, &pi), expected_gc(0, {}, 55)));
  auto e = cell<ac_awset_elem>(skel_->maps.t_set, &sk);
  EXPECT_EQ(e.add[7], 2u);
  EXPECT_EQ(e.rm[7], 1u);
  EXPECT_EQ(e.add[0], 0u) << "our own adds are never merged";
  EXPECT_EQ(e.rm[0], 1u) << "but a remote remove of them is";
  auto reg = cell<ac_register>(skel_->maps.t_reg, &rk);
  EXPECT_TRUE(bytes_eq(reg.v, rv));

  // the register: a smaller value loses but its newer seen is taken; a larger one replaces it
  ac_reg_value lose = rv;
  lose.data[0] = 4;
  lose.writer = 9;
  lose.seen = 20;
  ac_reg_value win = rv;
  win.data[0] = 6;
  win.writer = 2;
  win.seen = 15;
  Batch c;
  c.add(AC_CRDT_OP_MERGE, CT_OBJ_REG, 3, &rk, &lose);
  c.add(AC_CRDT_OP_MERGE, CT_OBJ_REG, 3, &rk, &win);
  c.add(AC_CRDT_OP_REMOVE, CT_OBJ_SET, 0, &sk, static_cast<const uint8_t*>(nullptr));
  r = merge(c);
  EXPECT_EQ(r.applied, 3);
  EXPECT_EQ(r.changed, 3);
  reg = cell<ac_register>(skel_->maps.t_reg, &rk);
  EXPECT_EQ(reg.v.data[0], 6);
  EXPECT_EQ(reg.v.writer, 2u);
  EXPECT_EQ(reg.v.seen, 20u);
  e = cell<ac_awset_elem>(skel_->maps.t_set, &sk);
  EXPECT_EQ(e.rm[7], 2u) << "the remove observed origin 7's two adds";
  crdt_test_op back{};
  EXPECT_EQ(op({.code = CT_SET_CONTAINS, .key = sk}, &back), XDP_PASS);
  EXPECT_EQ(back.result, 0u);
}

TEST_F(CrdtBpf, FoldMovesADepartedSlotIntoRetiredWithoutChangingValues) {
  for (uint32_t i = 0; i < 4; ++i) ASSERT_EQ(op(gc_add(i, 1)), XDP_PASS);
  Batch b;
  for (uint32_t i = 0; i < 4; ++i) b.merge_idx(CT_OBJ_GC, 6, i, 10 + i).merge_idx(CT_OBJ_GC, 2, i, 100);
  ASSERT_EQ(merge(b).applied, 8);
  Batch f;
  f.add(AC_CRDT_OP_FOLD, CT_OBJ_GC, 6, static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(nullptr));
  auto r = merge(f);
  EXPECT_EQ(r.applied, 1);
  EXPECT_EQ(r.changed, CT_GC_CELLS) << "every cell visited";
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(bytes_eq(gc(i), expected_gc(1, {{0, 1}, {2, 100}}, 10 + i)));
  // sets: a slot with a live add stays
  ct_key16 a = k16(1), z = k16(2);
  ac_crdt_set_value live{.add = 1, .rm = 0}, dead{.add = 1, .rm = 1};
  Batch s;
  s.add(AC_CRDT_OP_MERGE, CT_OBJ_SET, 6, &a, &live).add(AC_CRDT_OP_MERGE, CT_OBJ_SET, 6, &z, &dead);
  ASSERT_EQ(merge(s).applied, 2);
  Batch fs;
  fs.add(AC_CRDT_OP_FOLD, CT_OBJ_SET, 6, static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(nullptr));
  r = merge(fs);
  EXPECT_EQ(r.rejected, 1) << "one element keeps slot 6 live";
  EXPECT_EQ(cell<ac_awset_elem>(skel_->maps.t_set, &a).add[6], 1u);
  EXPECT_EQ(cell<ac_awset_elem>(skel_->maps.t_set, &z).add[6], 0u);
  Batch own;
  own.add(AC_CRDT_OP_FOLD, CT_OBJ_GC, 0, static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(nullptr));
  EXPECT_EQ(merge(own).rejected, 1) << "slot 0 is never folded";
}

TEST_F(CrdtBpf, RandomMergesGiveTheTwinsBytes) {
  TwinStore twin(test_schema());
  std::mt19937_64 rng(77);
  for (int round = 0; round < 40; ++round) {
    Batch b;
    while (b.b.size() < 2500) {
      uint8_t slot = static_cast<uint8_t>(1 + rng() % 15);
      switch (rng() % 5) {
        case 0: {
          uint32_t i = static_cast<uint32_t>(rng() % CT_GC_CELLS);
          uint64_t v = rng() % 1000;
          b.merge_idx(CT_OBJ_GC, slot, i, v);
          (void)twin.merge(CT_OBJ_GC, Key::index(i), slot, {.a = v}, 0);
          break;
        }
        case 1: {
          uint64_t k = rng() % 40;
          uint64_t v = rng() % 1000;
          b.add(AC_CRDT_OP_MERGE, CT_OBJ_GCK, slot, &k, &v);
          (void)twin.merge(CT_OBJ_GCK, Key::bytes(&k, 8), slot, {.a = v}, 0);
          break;
        }
        case 2: {
          uint32_t i = static_cast<uint32_t>(rng() % (CT_CMS_ROWS * CT_CMS_WIDTH));
          uint64_t v = rng() % 1000;
          if (rng() % 8 == 0) slot = kRetiredSlot;
          b.merge_idx(CT_OBJ_CMS, slot, i, v);
          (void)twin.merge(CT_OBJ_CMS, Key::index(i), slot, {.a = v}, 0);
          break;
        }
        case 3: {
          ct_key16 k = k16(static_cast<uint32_t>(rng() % 20));
          ac_crdt_set_value sv{.add = static_cast<uint32_t>(rng() % 9), .rm = 0};
          sv.rm = static_cast<uint32_t>(rng() % (sv.add + 1));
          b.add(AC_CRDT_OP_MERGE, CT_OBJ_SET, slot, &k, &sv);
          (void)twin.merge(CT_OBJ_SET, Key::bytes(&k, 16), slot, {.a = sv.add, .b = sv.rm}, 0);
          break;
        }
        case 4: {
          ct_key16 k = k16(static_cast<uint32_t>(rng() % 20));
          ac_reg_value v{};
          v.writer = static_cast<uint32_t>(rng() % 4);
          v.seen = rng() % 100;
          v.data[0] = static_cast<uint8_t>(rng() % 4);
          b.add(AC_CRDT_OP_MERGE, CT_OBJ_REG, slot, &k, &v);
          (void)twin.merge(CT_OBJ_REG, Key::bytes(&k, 16), slot, {.reg = v}, 0);
          break;
        }
      }
    }
    auto r = merge(b);
    ASSERT_EQ(r.verdict, XDP_PASS);
    ASSERT_EQ(r.rejected, 0);
    ASSERT_EQ(r.applied, b.count);
  }
  expect_same_as(twin);
}

// ---- two CPUs --------------------------------------------------------------------------------

// Both CPUs run the update program on the same cells at once (BPF_PROG_TEST_RUN with a repeat
// count runs it back to back in the kernel): every increment lands.
TEST_F(CrdtBpf, TwoCpusUpdatingTheSameCellsLoseNoUpdate) {
  ASSERT_GE(libbpf_num_possible_cpus(), 2) << "this test needs two CPUs";
  constexpr uint32_t kRuns = 200000;
  const int prog = bpf_program__fd(skel_->progs.crdt_update);
  const ct_key16 sk = k16(5);
  crdt_test_op ops[] = {gc_add(0, 1),
                        {.code = CT_GCK_ADD, .amount = 1, .hash = 4242},
                        {.code = CT_PN_ADD, .index = 0, .amount = 3},
                        {.code = CT_CMS_ADD, .amount = 1, .hash = ac_mix64(1)},
                        {.code = CT_SET_ADD, .key = sk}};
  for (crdt_test_op& o : ops) {
    std::atomic<int> ready{0};
    std::atomic<int> failed{0};
    auto worker = [&](int cpu) {
      pin_to(cpu);
      crdt_test_op mine = o;
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      if (run_op(prog, &mine, kRuns) != XDP_PASS) failed.fetch_add(1);
    };
    std::thread t0(worker, 0), t1(worker, 1);
    t0.join();
    t1.join();
    ASSERT_EQ(failed.load(), 0) << "op " << o.code;
  }
  EXPECT_EQ(gc(0).slot[0], 2ull * kRuns);
  uint64_t gk = 4242;
  EXPECT_EQ(cell<ac_gcounter>(skel_->maps.t_gck, &gk).slot[0], 2ull * kRuns) << "including the first insert race";
  uint32_t zero = 0;
  EXPECT_EQ(cell<ac_pncounter>(skel_->maps.t_pn, &zero).inc.slot[0], 6ull * kRuns);
  for (uint32_t r = 0; r < CT_CMS_ROWS; ++r) {
    uint32_t c = ac_cms_cell(ac_mix64(1), r, CT_CMS_WIDTH - 1);
    EXPECT_EQ(cell<ac_gcounter>(skel_->maps.t_cms, &c).slot[0], 2ull * kRuns) << "row " << r;
  }
  EXPECT_EQ(cell<ac_awset_elem>(skel_->maps.t_set, &sk).add[0], 2u * kRuns);
}

// CPU 0 increments a cell's own slot while CPU 1 runs the merge program on the same cell's
// remote slots: the merge never overwrites the own slot, the increments never disturb the merge.
TEST_F(CrdtBpf, MergingWhileAnotherCpuUpdatesLosesNothing) {
  ASSERT_GE(libbpf_num_possible_cpus(), 2) << "this test needs two CPUs";
  constexpr uint32_t kRuns = 300000;
  const int prog = bpf_program__fd(skel_->progs.crdt_update);
  std::atomic<bool> done{false};
  std::atomic<int> merges{0};
  std::thread updater([&] {
    pin_to(0);
    crdt_test_op o = gc_add(7, 1);
    run_op(prog, &o, kRuns);
    done = true;
  });
  std::thread merger([&] {
    pin_to(1);
    uint64_t v = 0;
    while (!done.load() || merges.load() < 200) {
      Batch b;
      for (uint8_t s = 1; s < AC_CRDT_SLOTS; ++s) b.merge_idx(CT_OBJ_GC, s, 7, v + s);
      if (merge(b).applied == AC_CRDT_SLOTS - 1) merges.fetch_add(1);
      ++v;
    }
  });
  updater.join();
  merger.join();
  ac_gcounter c = gc(7);
  EXPECT_EQ(c.slot[0], kRuns) << "no increment lost to a concurrent merge";
  uint64_t others = 0;
  for (int s = 1; s < AC_CRDT_SLOTS; ++s) others += c.slot[s];
  EXPECT_EQ(c.others, others) << "others in step with the slots";
  EXPECT_GE(merges.load(), 200);
}

}  // namespace
}  // namespace anychain::state
