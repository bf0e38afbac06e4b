// The store over an NF's BPF maps (agent/state/bpf_store.*) on the test XDP program
// (tests/state/crdt_test.bpf.c): delta extraction from the change log (exactly the cells XDP
// changed, a write racing the epoch bump caught one scan later, a full scan after the log
// overflowed), merges through the merge program equal to the twin's, fold and local removes,
// and the whole path end to end: XDP updates -> change log -> replicator -> authenticated
// messages over a lossy network -> merge program on the other instance's maps.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <set>

#include "crdt_test_nf.h"
#include "crdt_test_store.h"
#include "sim.h"
#include "state/bpf_store.h"

namespace anychain::state {
namespace {

const Schema& test_schema() { return crdt_test_schema(); }

ct_key16 k16(uint32_t v) {
  ct_key16 k{};
  std::memcpy(k.b, &v, 4);
  return k;
}

// One loaded instance of the test program and a BpfStore over its maps.
struct Instance {
  Instance() {
    skel = crdt_test_bpf__open_and_load();
    if (!skel) throw std::runtime_error("load crdt_test");
    BpfStoreMaps m = crdt_test_maps(skel);
    auto s = BpfStore::open(test_schema(), m);
    if (!s) throw std::runtime_error(s.error().str());
    store = std::move(*s);
  }
  ~Instance() {
    store.reset();
    crdt_test_bpf__destroy(skel);
  }
  // The packet path: one operation through the XDP update program; returns its read result.
  uint64_t op(crdt_test_op o) {
    test::crdt_test_run(skel, o);
    return o.result;
  }
  void set_ctl_epoch(uint32_t e) {
    uint32_t zero = 0;
    ac_crdt_ctl c{.epoch = e, .pad = 0};
    bpf_map_update_elem(bpf_map__fd(skel->maps.ac_crdt_ctl), &zero, &c, 0);
  }
  std::set<std::pair<uint8_t, std::vector<uint8_t>>> changes() {
    std::set<std::pair<uint8_t, std::vector<uint8_t>>> out;
    auto r = store->changes([&](uint8_t o, const Key& k) { out.insert({o, {k.b.begin(), k.b.begin() + k.len}}); });
    if (!r) throw std::runtime_error(r.error().str());
    return out;
  }
  crdt_test_bpf* skel = nullptr;
  std::unique_ptr<BpfStore> store;
};

std::pair<uint8_t, std::vector<uint8_t>> idx(uint8_t o, uint32_t i) {
  Key k = Key::index(i);
  return {o, {k.b.begin(), k.b.begin() + 4}};
}

class BpfStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
  }
};

TEST_F(BpfStoreTest, ReportsExactlyTheCellsXdpChanged) {
  Instance in;
  EXPECT_TRUE(in.changes().empty()) << "the first scan reads everything: all zero";
  EXPECT_EQ(in.store->stats().full_scans, 1u);
  in.op({.code = CT_GC_ADD, .index = 3, .amount = 2});
  in.op({.code = CT_GC_ADD, .index = 3, .amount = 2});
  in.op({.code = CT_GCK_ADD, .amount = 1, .hash = 77});
  in.op({.code = CT_SET_ADD, .key = k16(1)});
  auto c = in.changes();
  uint64_t k77 = 77;
  ct_key16 s1 = k16(1);
  EXPECT_EQ(c, (std::set<std::pair<uint8_t, std::vector<uint8_t>>>{
                   idx(CT_OBJ_GC, 3),
                   {CT_OBJ_GCK, std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&k77), reinterpret_cast<uint8_t*>(&k77) + 8)},
                   {CT_OBJ_SET, std::vector<uint8_t>(s1.b, s1.b + 16)}}));
  EXPECT_TRUE(in.changes().empty()) << "nothing new: the re-read finds the same values";
  std::vector<std::pair<uint8_t, uint64_t>> recs;
  ASSERT_TRUE(*in.store->read(CT_OBJ_GC, Key::index(3), kAllSlots, [&](uint8_t s, const CellValue& v) {
    recs.push_back({s, v.a});
  }));
  EXPECT_EQ(recs, (std::vector<std::pair<uint8_t, uint64_t>>{{0, 4}}));
  EXPECT_FALSE(*in.store->read(CT_OBJ_GCK, Key::bytes(&recs, 8), kAllSlots, [](uint8_t, const CellValue&) {}))
      << "an absent key";
  EXPECT_EQ(in.store->stats().full_scans, 1u);
}

// An XDP run that read the old epoch just before the bump writes without logging; the cell was
// logged in the scan before, so it is read again and the write is found one scan later.
TEST_F(BpfStoreTest, AWriteRacingTheEpochBumpIsFoundOneScanLater) {
  Instance in;
  (void)in.changes();
  in.op({.code = CT_GC_ADD, .index = 5, .amount = 1});
  EXPECT_EQ(in.changes().size(), 1u);
  uint32_t now = in.store->epoch();
  in.set_ctl_epoch(now - 1);  // the CPU still sees the previous epoch: touch == epoch, no log
  in.op({.code = CT_GC_ADD, .index = 5, .amount = 1});
  in.set_ctl_epoch(now);
  EXPECT_EQ(in.changes(), (std::set<std::pair<uint8_t, std::vector<uint8_t>>>{idx(CT_OBJ_GC, 5)}));
}

TEST_F(BpfStoreTest, AnOverflowedLogMeansAFullScan) {
  Instance in;
  (void)in.changes();
  std::set<uint32_t> cells;
  std::set<uint32_t> bloom;
  for (uint64_t i = 0; i < 400; ++i) {  // up to 256 + 256 cells: more records than the 16 KB ring holds
    uint64_t h = ac_mix64(i);
    in.op({.code = CT_CMS_ADD, .amount = 1, .hash = h});
    in.op({.code = CT_CBF_ADD, .amount = 1, .hash = h});
    for (uint32_t r = 0; r < CT_CMS_ROWS; ++r) cells.insert(ac_cms_cell(h, r, CT_CMS_WIDTH - 1));
    for (uint32_t r = 0; r < CT_CBF_HASHES; ++r) bloom.insert(ac_crdt_index(h, r, CT_CBF_CELLS - 1));
  }
  auto c = in.changes();
  EXPECT_EQ(in.store->stats().full_scans, 2u) << "records were lost: everything read";
  EXPECT_EQ(c.size(), cells.size() + bloom.size()) << "every changed cell reported, none missed";
  EXPECT_TRUE(in.changes().empty());
}

TEST_F(BpfStoreTest, MergesThroughTheMergeProgramEqualTheTwins) {
  Instance in;
  TwinStore twin(test_schema());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 3000; ++i) {
    uint8_t slot = static_cast<uint8_t>(1 + rng() % 15);
    uint8_t obj;
    Key k;
    CellValue v;
    switch (rng() % 6) {
      case 0: obj = CT_OBJ_GC; k = Key::index(static_cast<uint32_t>(rng() % CT_GC_CELLS)); v.a = rng() % 500; break;
      case 1: {
        obj = CT_OBJ_GCK;
        uint64_t key = rng() % 30;
        k = Key::bytes(&key, 8);
        v.a = rng() % 500;
        break;
      }
      case 2: obj = CT_OBJ_PN; k = Key::index(static_cast<uint32_t>(rng() % CT_PN_CELLS)); v.a = rng() % 50; v.b = rng() % 50; break;
      case 3:
        obj = CT_OBJ_CBF;
        k = Key::index(static_cast<uint32_t>(rng() % CT_CBF_CELLS));
        v.a = rng() % 500;
        if (rng() % 10 == 0) slot = kRetiredSlot;
        break;
      case 4: {
        obj = CT_OBJ_SET;
        ct_key16 e = k16(static_cast<uint32_t>(rng() % 20));
        k = Key::bytes(&e, 16);
        v.a = rng() % 6;
        v.b = rng() % (v.a + 1);
        break;
      }
      default: {
        obj = CT_OBJ_REG;
        ct_key16 e = k16(static_cast<uint32_t>(rng() % 20));
        k = Key::bytes(&e, 16);
        v.reg.writer = static_cast<uint32_t>(rng() % 3);
        v.reg.seen = rng() % 100;
        v.reg.data[1] = static_cast<uint8_t>(rng() % 3);
        break;
      }
    }
    ASSERT_TRUE(in.store->merge(obj, k, slot, v, 0).has_value());
    (void)twin.merge(obj, k, slot, v, 0);
  }
  ASSERT_TRUE(in.store->flush().has_value());
  EXPECT_EQ(in.store->stats().merge_rejected, 0u);
  EXPECT_GT(in.store->stats().batches, 10u);
  auto dump = [](Store& s) {
    std::map<std::tuple<uint8_t, Key, uint8_t>, CellValue> out;
    std::vector<std::pair<uint8_t, Key>> cells;
    (void)s.cells([&](uint8_t o, const Key& k) { cells.emplace_back(o, k); });
    for (auto& [o, k] : cells)
      (void)s.read(o, k, kAllSlots, [&](uint8_t slot, const CellValue& v) { out[{o, k, slot}] = v; });
    return out;
  };
  EXPECT_TRUE(dump(*in.store) == dump(twin));
}

TEST_F(BpfStoreTest, FoldAndLocalRemove) {
  Instance in;
  ASSERT_TRUE(in.store->merge(CT_OBJ_GC, Key::index(1), 4, CellValue{.a = 30}, 0).has_value());
  ct_key16 e = k16(9);
  ASSERT_TRUE(in.store->merge(CT_OBJ_SET, Key::bytes(&e, 16), 4, CellValue{.a = 2, .b = 0}, 0).has_value());
  auto folded = in.store->fold(4);
  ASSERT_TRUE(folded.has_value());
  EXPECT_FALSE(*folded) << "slot 4 still has live adds in a set element";
  EXPECT_EQ(in.op({.code = CT_GC_ADD, .index = 1, .amount = 0}), 30u) << "folded, same value";
  (void)in.changes();
  ASSERT_TRUE(in.store->set_remove(CT_OBJ_SET, Key::bytes(&e, 16)).has_value());
  EXPECT_EQ(in.changes().size(), 1u) << "a local remove is a local change";
  EXPECT_EQ(in.op({.code = CT_SET_CONTAINS, .key = e}), 0u);
  folded = in.store->fold(4);
  ASSERT_TRUE(folded.has_value());
  EXPECT_TRUE(*folded) << "now empty everywhere";
  ct_key16 absent = k16(10);
  EXPECT_FALSE(in.store->set_remove(CT_OBJ_SET, Key::bytes(&absent, 16)).has_value()) << "no such element";
}

TEST_F(BpfStoreTest, MapsThatDoNotFitTheSchemaAreRefused) {
  Instance in;
  BpfStoreMaps m;
  m.objects = {{CT_OBJ_GC, bpf_map__fd(in.skel->maps.t_cms)}};  // the wrong map: other size
  m.ctl_fd = bpf_map__fd(in.skel->maps.ac_crdt_ctl);
  m.changes_fd = bpf_map__fd(in.skel->maps.ac_crdt_changes);
  m.stats_fd = bpf_map__fd(in.skel->maps.ac_crdt_stats);
  m.merge_prog_fd = bpf_program__fd(in.skel->progs.crdt_merge);
  auto s = BpfStore::open(test_schema(), m);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("t_gc"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("entries"), std::string::npos) << s.error().message;
}

// Two instances backed by their own BPF maps and one twin, over a lossy network: updates made by
// the XDP programs reach the other instances' maps through the change log, the protocol and the
// merge programs, and every instance's packet path reads the same merged values.
TEST_F(BpfStoreTest, EndToEndFromXdpToTheOtherInstancesMaps) {
  sim::Net net(21);
  net.set_all({.delay_us = 300, .jitter_us = 1000, .loss = 0.1, .dup = 0.05});
  auto keys = sim::test_keys();
  Instance i1, i2;
  TwinStore twin(test_schema());
  sim::SimTransport t1(net, {sim::Node::addr_of(1), 4795}), t2(net, {sim::Node::addr_of(2), 4795}),
      t3(net, {sim::Node::addr_of(3), 4795});
  auto cfg = [](uint32_t id) {
    ReplicatorConfig c;
    c.me = Identity{.service = 1, .id = id, .incarnation = 100 + id};
    return c;
  };
  Replicator r1(cfg(1), *i1.store, t1, keys, net.clock), r2(cfg(2), *i2.store, t2, keys, net.clock),
      r3(cfg(3), twin, t3, keys, net.clock);
  std::vector<Replicator::Member> all = {{1, t1.me()}, {2, t2.me()}, {3, t3.me()}};
  for (Replicator* r : {&r1, &r2, &r3}) r->set_members(all);
  auto step = [&] {
    net.clock.advance(1000);
    for (Replicator* r : {&r1, &r2, &r3}) r->poll();
  };
  std::mt19937_64 rng(8);
  uint64_t gc_total = 0, gck_total = 0;
  for (int ms = 0; ms < 600; ++ms) {
    for (int k = 0; k < 4; ++k) {
      Instance& in = rng() % 2 ? i1 : i2;
      uint64_t n = 1 + rng() % 3;
      switch (rng() % 5) {
        case 0:
          in.op({.code = CT_GC_ADD, .index = static_cast<uint32_t>(rng() % CT_GC_CELLS), .amount = n});
          gc_total += n;
          break;
        case 1:
          in.op({.code = CT_GCK_ADD, .amount = n, .hash = rng() % 10});
          gck_total += n;
          break;
        case 2: in.op({.code = CT_CMS_ADD, .amount = n, .hash = ac_mix64(rng() % 50)}); break;
        case 3: in.op({.code = CT_SET_ADD, .key = k16(static_cast<uint32_t>(rng() % 10))}); break;
        default: {
          crdt_test_op o{.code = CT_REG_INSERT, .key = k16(static_cast<uint32_t>(rng() % 20))};
          o.reg.writer = &in == &i1 ? 1 : 2;
          o.reg.data[0] = static_cast<uint8_t>(rng());
          in.op(o);
        }
      }
    }
    twin.gc_add(CT_OBJ_GC, Key::index(0), 1);
    ++gc_total;
    step();
  }
  net.set_all({.delay_us = 300});
  for (int ms = 0; ms < 5000; ++ms) {
    step();
    bool quiet = true;
    for (Replicator* r : {&r1, &r2, &r3})
      for (auto& p : r->peers()) quiet &= p.acked == r->stats().version;
    if (quiet) break;
  }
  auto c1 = sim::canonical(*i1.store, r1), c2 = sim::canonical(*i2.store, r2), c3 = sim::canonical(twin, r3);
  EXPECT_TRUE(c1 == c3) << "BPF instance 1 and the twin";
  EXPECT_TRUE(c2 == c3) << "BPF instance 2 and the twin";
  uint64_t sum = 0, sumk = 0;
  for (uint32_t i = 0; i < CT_GC_CELLS; ++i) {
    uint64_t v = i1.op({.code = CT_GC_ADD, .index = i, .amount = 0});
    EXPECT_EQ(v, i2.op({.code = CT_GC_ADD, .index = i, .amount = 0})) << "cell " << i;
    EXPECT_EQ(v, twin.gc_value(CT_OBJ_GC, Key::index(i)));
    sum += v;
  }
  for (uint64_t k = 0; k < 10; ++k) sumk += i2.op({.code = CT_GCK_ADD, .amount = 0, .hash = k});
  EXPECT_EQ(sum, gc_total) << "every increment, from every packet path, exactly once";
  EXPECT_EQ(sumk, gck_total);
  EXPECT_GT(i1.store->stats().merged, 0u);
  EXPECT_EQ(i1.store->stats().merge_rejected, 0u);
  EXPECT_EQ(i2.store->stats().merge_rejected, 0u);
}

}  // namespace
}  // namespace anychain::state
