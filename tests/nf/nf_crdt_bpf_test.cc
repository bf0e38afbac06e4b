// The shared-state NFs (docs/state.md 4.1, 4.2): the port-scan detector and the distributed rate
// limiter, loaded by anychain-nf's loader (not attached) and run with BPF_PROG_TEST_RUN, exact
// bytes and counters. Several instances of one service are several loads of the same program;
// their objects are opened by the ids they published (nf::open_crdt_store, as the agent opens
// them) into state::BpfStore, and deltas go from one to the other as the replicator moves them:
// changes() -> read() -> merge(epoch) -> flush() through the other instance's merge program.
#include <fmt/format.h>

#include "anychain/crdt.h"
#include "nf/crdt.h"
#include "state/expiry.h"
#include "nf_bpf_fixture.h"
#include "../state/sim.h"

namespace anychain::test {
namespace {

using namespace nfbpf;
using state::CellValue;
using state::Key;
namespace sim = state::sim;

// One NF instance of a shared-state service: the loaded object, its maps, its store.
struct Inst {
  std::unique_ptr<nf::Nf> nf;
  std::optional<nf::InstanceMaps> maps;
  nf::CrdtStore crdt;

  explicit Inst(const nf::Params& p) {
    nf::LoadOptions o;
    o.name = fmt::format("t-{}-{}", nf::to_string(p.kind), p.instance_id);
    o.attach = false;
    auto r = nf::Nf::load(p, o);
    if (!r) throw std::runtime_error(r.error().str());
    nf = std::move(*r);
    auto m = nf::InstanceMaps::open(nf->published());
    if (!m) throw std::runtime_error(m.error().str());
    maps.emplace(std::move(*m));
    auto c = nf::open_crdt_store(nf->published());
    if (!c) throw std::runtime_error(c.error().str());
    crdt = std::move(*c);
    // The loader starts in the wall clock's window; two instances loaded either side of a
    // minute's end would hold different windows. Every instance of the test process moves to
    // the same window, well ahead of the clock, so no test depends on when it runs.
    if (nf->params().window_s != 0) {
      static const uint64_t kAhead_s = static_cast<uint64_t>(std::time(nullptr)) + 1'000'000;
      const uint64_t window = kAhead_s / nf->params().window_s;
      auto w = nf->roll_windows(window * nf->params().window_s * 1'000'000'000ULL);
      if (!w) throw std::runtime_error(w.error().str());
    }
  }
  Out run(const Bytes& frame) const { return run_prog(nf->prog_fd(), frame); }
  uint64_t count(uint32_t s) const {
    auto v = maps->percpu_sum("nf_stats", s);
    return v ? (*v)[0] : ~0ULL;
  }
  uint64_t crdt_count(uint32_t s) const {
    auto v = maps->percpu_sum("ac_crdt_stats", s);
    return v ? (*v)[0] : ~0ULL;
  }
  json state() const {
    auto s = nf::decode_state(*maps);
    EXPECT_TRUE(s.has_value()) << s.error().str();
    return s ? *s : json();
  }
  ac_crdt_windows windows() const {
    ac_crdt_windows w{};
    uint32_t k = 0;
    EXPECT_EQ(bpf_map_lookup_elem(maps->fd("ac_crdt_win"), &k, &w), 0);
    return w;
  }
  ac_gcounter cell(const std::string& map, uint32_t i) const {
    ac_gcounter c{};
    EXPECT_EQ(bpf_map_lookup_elem(maps->fd(map), &i, &c), 0) << map << " " << i;
    return c;
  }
  // Roll to the window after the current one (the wall clock of its start).
  bool next_window() {
    uint64_t w = windows().cur + 1;
    auto r = nf->roll_windows(w * nf->params().window_s * 1'000'000'000ULL);
    EXPECT_TRUE(r.has_value()) << r.error().str();
    return r && *r;
  }
};

// What the replicator does for one direction: the cells `from` changed, their own slot, merged
// into `to`'s slot `slot` (the slot `to` gave `from`'s origin) with the epoch read alongside.
// Returns the records moved.
size_t replicate(Inst& from, Inst& to, uint8_t slot) {
  state::BpfStore& f = *from.crdt.store;
  state::BpfStore& t = *to.crdt.store;
  std::vector<std::pair<uint8_t, Key>> cells;
  auto r = f.changes([&](uint8_t o, const Key& k) { cells.push_back({o, k}); });
  EXPECT_TRUE(r.has_value()) << r.error().str();
  size_t n = 0;
  for (const auto& [o, k] : cells) {
    std::vector<CellValue> vals;
    auto ok = f.read(o, k, state::kOwnSlot, [&](uint8_t s, const CellValue& v) {
      if (s == 0) vals.push_back(v);
    });
    EXPECT_TRUE(ok.has_value());
    for (const CellValue& v : vals) {
      auto m = t.merge(o, k, slot, v, f.epoch(o));
      EXPECT_TRUE(m.has_value()) << m.error().str();
      ++n;
    }
  }
  auto fl = t.flush();
  EXPECT_TRUE(fl.has_value()) << fl.error().str();
  return n;
}

nf::Params ids(uint32_t id, uint32_t threshold, bool drop = false) {
  nf::Params p;
  p.kind = nf::Kind::Ids;
  p.instance_id = id;
  p.ids_threshold = threshold;
  p.ids_drop = drop;
  p.ids_pairs_cells = 4096;  // small: fixtures load several instances
  p.ids_sketch_width = 1024;
  p.ids_flagged_max = 64;
  p.window_s = 60;
  return p;
}

nf::Params ratelimit(uint32_t id, uint64_t limit, bool packets) {
  nf::Params p;
  p.kind = nf::Kind::Ratelimit;
  p.instance_id = id;
  p.rl_limit = limit;
  p.rl_packets = packets;
  p.window_s = 60;
  return p;
}

ac_nf_ids_src src4(const char* a) {
  ac_nf_ids_src s{};
  inet_pton(AF_INET, a, &s.addr[0]);
  s.family = 4;
  return s;
}

Bytes probe(const char* src, uint16_t dport, uint8_t proto = IPPROTO_UDP) {
  L4 l4 = udp(40000, dport);
  l4.proto = proto;
  if (proto == IPPROTO_TCP) l4.payload.clear();
  return ipv4(src, "10.2.0.2", l4);
}

class SharedStateNf : public NfBpf {};

// ---------------------------------------------------------------------------------- ids

TEST_F(SharedStateNf, IdsCountsDistinctPortsPerSourceAndFlagsAtTheThreshold) {
  Inst a(ids(21, 4));
  const ac_crdt_windows w = a.windows();
  ASSERT_GT(w.cur, 0u);
  const int g = static_cast<int>(w.cur & 1);
  EXPECT_EQ(w.gen[g], w.cur);
  EXPECT_EQ(w.gen[g ^ 1], w.cur + 1) << "the next window is prepared";
  const std::string ports = g ? "ids_ports1" : "ids_ports0", pairs = g ? "ids_pairs1" : "ids_pairs0";
  for (uint16_t port : {1001, 1002, 1003, 1002, 1001}) {
    Bytes inner = probe("10.1.0.1", port);
    Out o = a.run(to_nf(md1(), inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), inner))) << "passed unchanged";
  }
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 3u) << "three distinct ports";
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 0u);
  // the exact cells: each sketch row's cell of the source holds 3 in the own slot, each hash's
  // filter cell of pair (udp, 1002) at least 1
  const ac_nf_ids_src s = src4("10.1.0.1");
  const uint64_t hs = ac_nf_ids_src_hash(&s);
  for (uint32_t r = 0; r < 4; ++r) {
    ac_gcounter c = a.cell(ports, ac_cms_cell(hs, r, 1023));
    EXPECT_EQ(c.slot[0], 3u) << "row " << r;
    EXPECT_EQ(c.others, 0u);
  }
  const uint64_t hp = ac_nf_ids_pair_hash(hs, IPPROTO_UDP, 1002);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_GE(a.cell(pairs, ac_crdt_index(hp, i, 4095)).slot[0], 1u);
  // the other generation is untouched
  EXPECT_EQ(a.cell(g ? "ids_ports0" : "ids_ports1", ac_cms_cell(hs, 0, 1023)).slot[0], 0u);
  // TCP to a fourth port: the threshold; the packet that flags passes (action pass) and counts
  Bytes fourth = probe("10.1.0.1", 22, IPPROTO_TCP);
  Out o = a.run(to_nf(md1(), fourth));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), fourth)));
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), 1u);
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.1", 1001))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), 2u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u) << "flagged once";
  // another source and ICMP are not flagged; ICMP has no ports to count
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.9", 1001))).verdict, XDP_TX);
  EXPECT_EQ(a.run(to_nf(md1(), icmp4("10.1.0.9", "10.2.0.2", 8, 7))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_NO_PORTS), 1u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), 2u);
  json st = a.state()["ids"];
  ASSERT_EQ(st["flagged"].size(), 1u) << st.dump();
  EXPECT_EQ(st["flagged"][0]["source"], "10.1.0.1");
  EXPECT_EQ(st["flagged"][0]["flagged"], true);
  EXPECT_EQ(st["flagged"][0]["by_this_instance"], true);
  EXPECT_EQ(st["flagged"][0]["ports_in_window"], 4u);
  EXPECT_EQ(st["threshold"], 4u);
  EXPECT_EQ(st["pairs"]["merged"], 5u) << "4 pairs of one source, 1 of another";
  EXPECT_EQ(st["window"]["current"], w.cur);
  EXPECT_EQ(a.count(AC_NF_RX), 9u);
  EXPECT_EQ(a.count(AC_NF_TX), 9u);
}

TEST_F(SharedStateNf, IdsWithActionDropDropsAFlaggedSourceCounted) {
  Inst a(ids(22, 2, true));
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.1", 1))).verdict, XDP_TX);
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.1", 2))).verdict, XDP_DROP) << "the flagging packet";
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.1", 1))).verdict, XDP_DROP);
  EXPECT_EQ(a.run(to_nf(md1(), icmp4("10.1.0.1", "10.2.0.2", 8, 7))).verdict, XDP_DROP) << "whatever it sends";
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.2", 1))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), 3u);
  EXPECT_EQ(a.count(AC_NF_DROP_FILTERED), 3u);
  EXPECT_EQ(a.count(AC_NF_RX), a.count(AC_NF_TX) + a.count(AC_NF_DROP_FILTERED));
  EXPECT_EQ(a.state()["ids"]["action"], "drop");
}

// WCMP spreads a scanner's flows over two instances: each sees 4 of its 8 ports, under the
// threshold of 6. Once each merged the other's deltas, both read 8 and flag it at its next
// packet; a pair the other instance saw first is not counted twice.
TEST_F(SharedStateNf, IdsScanSplitOverTwoInstancesIsFlaggedOnBothAfterMerging) {
  Inst a(ids(31, 6)), b(ids(32, 6));
  ASSERT_EQ(a.windows().cur, b.windows().cur) << "the same wall-clock window";
  // the replicator's first scan of each reads every cell: all zero, nothing reported
  EXPECT_EQ(replicate(a, b, 1), 0u);
  EXPECT_EQ(replicate(b, a, 1), 0u);
  for (uint16_t p = 1; p <= 4; ++p) EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.66", p))).verdict, XDP_TX);
  for (uint16_t p = 5; p <= 8; ++p) EXPECT_EQ(b.run(to_nf(md1(), probe("10.1.0.66", p))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED) + b.count(AC_NF_IDS_SCAN_FLAGGED), 0u) << "4 < 6 on each";
  // 4 new pairs x (3 filter hashes + 4 sketch rows) cells at most, fewer when cells coincide
  size_t ab = replicate(a, b, 1), ba = replicate(b, a, 1);
  EXPECT_GT(ab, 4u);
  EXPECT_LE(ab, 28u);
  EXPECT_GT(ba, 4u);
  EXPECT_EQ(a.crdt.store->stats().merge_rejected + b.crdt.store->stats().merge_rejected, 0u);
  EXPECT_EQ(a.state()["ids"]["flagged"].size(), 0u) << "merging does not flag by itself";
  const ac_nf_ids_src s = src4("10.1.0.66");
  const uint64_t hs = ac_nf_ids_src_hash(&s);
  const std::string ports = (a.windows().cur & 1) ? "ids_ports1" : "ids_ports0";
  for (Inst* i : {&a, &b}) {
    ac_gcounter c = i->cell(ports, ac_cms_cell(hs, 0, 1023));
    EXPECT_EQ(c.slot[0], 4u);
    EXPECT_EQ(c.slot[1], 4u) << "the other instance's share, in the slot of its origin";
    EXPECT_EQ(ac_gc_value(&c), 8u);
  }
  // a's next packet to a port b saw: not a new pair (b's filter cells merged), estimate 8 >= 6
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.66", 5))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 4u) << "port 5 was b's: counted once over the service";
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_EQ(b.run(to_nf(md1(), probe("10.1.0.66", 1))).verdict, XDP_TX);
  EXPECT_EQ(b.count(AC_NF_IDS_NEW_PAIR), 4u);
  EXPECT_EQ(b.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  // the flags replicate too: each holds the other's add in the set element
  replicate(a, b, 1);
  replicate(b, a, 1);
  for (Inst* i : {&a, &b}) {
    json f = i->state()["ids"]["flagged"];
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0]["source"], "10.1.0.66");
    EXPECT_EQ(f[0]["flagged"], true);
    EXPECT_EQ(f[0]["adds"], 2u) << "flagged by both instances";
    EXPECT_EQ(f[0]["ports_in_window"], 8u);
  }
  // a third instance that never saw the scanner learns the flag from the merge alone
  Inst c(ids(33, 6, true));
  (void)replicate(c, a, 2);
  ac_awset_elem e{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("ids_flagged"), &s, &e), 0);
  auto r = c.crdt.store->merge(AC_NF_IDS_OBJ_FLAGGED, Key::bytes(&s, sizeof s), 1, CellValue{.a = e.add[0], .b = 0}, 0);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(c.crdt.store->flush().has_value());
  EXPECT_EQ(c.run(to_nf(md1(), icmp4("10.1.0.66", "10.2.0.2", 8, 1))).verdict, XDP_DROP);
  EXPECT_EQ(c.count(AC_NF_IDS_SCAN_PACKETS), 1u);
  EXPECT_EQ(c.count(AC_NF_IDS_SCAN_FLAGGED), 0u) << "flagged by the others";
}

// The threshold test reads the source's sketch rows only until one is under the threshold (the
// estimate, their minimum, cannot reach it then): one row for a source under it, the others
// only once the first is at or over it (counted ids_full_estimate), and the decision is the
// whole estimate's. Rows raised by merges alone (another instance's counts, or other sources
// sharing a row's cell) flag a known pair's next packet exactly when the smallest row reaches
// the threshold, whatever the row.
TEST_F(SharedStateNf, IdsReadsTheSketchRowsOnlyUntilOneIsUnderTheThreshold) {
  Inst a(ids(37, 6));
  const uint32_t w = a.windows().cur;
  const uint8_t obj = (w & 1) ? AC_NF_IDS_OBJ_PORTS1 : AC_NF_IDS_OBJ_PORTS0;
  const std::string ports = (w & 1) ? "ids_ports1" : "ids_ports0";
  for (uint16_t p = 1; p <= 3; ++p) EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.44", p))).verdict, XDP_TX);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.44", 2))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 3u);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 0u) << "3 < 6 in the first row: one row read per packet";
  const ac_nf_ids_src s = src4("10.1.0.44");
  const uint64_t hs = ac_nf_ids_src_hash(&s);
  state::BpfStore& st = *a.crdt.store;
  // merged counts in some rows (slot 1: another instance); the source's own 3 in every row
  auto raise = [&](uint32_t row, uint64_t v) {
    ASSERT_TRUE(st.merge(obj, Key::index(ac_cms_cell(hs, row, 1023)), 1, CellValue{.a = v}, ac_crdt_win_epoch(w)).has_value());
    ASSERT_TRUE(st.flush().has_value());
    ASSERT_EQ(ac_gc_value(&static_cast<const ac_gcounter&>(a.cell(ports, ac_cms_cell(hs, row, 1023)))), 3 + v);
  };
  auto known = [&] { return a.run(to_nf(md1(), probe("10.1.0.44", 1))).verdict; };
  raise(0, 10);  // the first row past the threshold, the others not: the estimate is 3
  EXPECT_EQ(known(), XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 1u) << "the other rows were read";
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 0u);
  raise(1, 10);
  raise(2, 10);
  raise(3, 2);  // 5: the smallest row, still under 6
  EXPECT_EQ(known(), XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 2u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 0u) << "estimate 5";
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 3u);
  raise(3, 3);  // 6 in every row: the next packet of a known pair flags the source
  EXPECT_EQ(known(), XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 3u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 3u) << "flagged by merged counts alone";
  // a flagged source's packets read no estimate
  for (int i = 0; i < 3; ++i) EXPECT_EQ(known(), XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 3u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), 4u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  // another source (its first row's cell not the raised one's): one row, not flagged
  const ac_nf_ids_src o = src4("10.1.0.45");
  ASSERT_NE(ac_cms_cell(ac_nf_ids_src_hash(&o), 0, 1023), ac_cms_cell(hs, 0, 1023));
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.45", 1))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_FULL_ESTIMATE), 3u);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
}

// The same split scan with the real replication protocol between the two instances' stores over
// a lossy simulated network (agent/state/replicator.*): the records it sends carry the window
// they were read in (Store::epoch), so the merges accept them, and both instances flag.
TEST_F(SharedStateNf, IdsScanFlaggedOnBothThroughTheReplicator) {
  Inst a(ids(35, 6)), b(ids(36, 6));
  sim::Net net(7);
  net.set_all({.delay_us = 300, .jitter_us = 500, .loss = 0.1, .dup = 0.05});
  auto keys = sim::test_keys();
  sim::SimTransport ta(net, {sim::Node::addr_of(1), 4795}), tb(net, {sim::Node::addr_of(2), 4795});
  auto cfg = [](uint32_t id) {
    state::ReplicatorConfig c;
    c.me = state::Identity{.service = 3, .id = id, .incarnation = 500 + id};
    return c;
  };
  state::Replicator ra(cfg(1), *a.crdt.store, ta, keys, net.clock), rb(cfg(2), *b.crdt.store, tb, keys, net.clock);
  std::vector<state::Replicator::Member> all = {{1, ta.me()}, {2, tb.me()}};
  ra.set_members(all);
  rb.set_members(all);
  auto settle = [&] {
    for (int ms = 0; ms < 3000; ++ms) {
      net.clock.advance(1000);
      ra.poll();
      rb.poll();
      if (ms > 50 && ra.peers()[0].acked == ra.stats().version && rb.peers()[0].acked == rb.stats().version) return;
    }
  };
  settle();
  for (uint16_t p = 1; p <= 4; ++p) a.run(to_nf(md1(), probe("10.1.0.66", p)));
  for (uint16_t p = 5; p <= 8; ++p) b.run(to_nf(md1(), probe("10.1.0.66", p)));
  settle();
  EXPECT_EQ(a.crdt_count(AC_CRDT_ST_MERGE_STALE) + b.crdt_count(AC_CRDT_ST_MERGE_STALE), 0u)
      << "every record carried its window";
  EXPECT_GT(a.crdt_count(AC_CRDT_ST_MERGED), 0u);
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.66", 6))).verdict, XDP_TX);
  EXPECT_EQ(b.run(to_nf(md1(), probe("10.1.0.66", 2))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_EQ(b.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR) + b.count(AC_NF_IDS_NEW_PAIR), 8u) << "no pair counted twice";
  settle();
  for (Inst* i : {&a, &b}) {
    json f = i->state()["ids"]["flagged"];
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0]["adds"], 2u) << "each holds both flags";
    EXPECT_EQ(f[0]["ports_in_window"], 8u);
  }
}

// Item 6 of docs/state.md 5: the merge checks a record's epoch against the window its
// generation holds; rolling a window resets the generation and refuses the past window's records.
TEST_F(SharedStateNf, IdsWindowsRollAndTheMergeRefusesRecordsOfAWindowNotHeld) {
  Inst a(ids(41, 3)), b(ids(42, 3));
  EXPECT_EQ(replicate(a, b, 1), 0u);
  const uint32_t w0 = a.windows().cur;
  const int g0 = static_cast<int>(w0 & 1);
  const std::string ports0 = g0 ? "ids_ports1" : "ids_ports0", ports1 = g0 ? "ids_ports0" : "ids_ports1";
  for (uint16_t p = 1; p <= 2; ++p) a.run(to_nf(md1(), probe("10.1.0.5", p)));
  const ac_nf_ids_src s = src4("10.1.0.5");
  const uint64_t hs = ac_nf_ids_src_hash(&s);
  const uint32_t cell = ac_cms_cell(hs, 0, 1023);
  const Key key = Key::index(cell);
  // records carry the window's epoch (what BpfStore read with the cell)
  std::vector<std::pair<uint8_t, Key>> changed;
  ASSERT_TRUE(a.crdt.store->changes([&](uint8_t o, const Key& k) { changed.push_back({o, k}); }).has_value());
  ASSERT_FALSE(changed.empty());
  const uint8_t obj0 = g0 ? AC_NF_IDS_OBJ_PORTS1 : AC_NF_IDS_OBJ_PORTS0, obj1 = g0 ? AC_NF_IDS_OBJ_PORTS0 : AC_NF_IDS_OBJ_PORTS1;
  ASSERT_TRUE(*a.crdt.store->read(obj0, key, state::kOwnSlot, [](uint8_t, const CellValue&) {}));
  EXPECT_EQ(a.crdt.store->epoch(obj0), ac_crdt_win_epoch(w0));
  state::BpfStore& bs = *b.crdt.store;
  // a record of the current window merges; one of another window (past or too far ahead) or of
  // a plain object (epoch 0) is refused and counted stale
  ASSERT_TRUE(bs.merge(obj0, key, 1, CellValue{.a = 2}, ac_crdt_win_epoch(w0)).has_value());
  ASSERT_TRUE(bs.merge(obj0, key, 2, CellValue{.a = 9}, ac_crdt_win_epoch(w0 - 2)).has_value());
  ASSERT_TRUE(bs.merge(obj0, key, 3, CellValue{.a = 9}, 0).has_value());
  ASSERT_TRUE(bs.merge(obj1, key, 2, CellValue{.a = 5}, ac_crdt_win_epoch(w0 - 1)).has_value());
  ASSERT_TRUE(bs.flush().has_value());
  EXPECT_EQ(b.crdt_count(AC_CRDT_ST_MERGED), 1u);
  EXPECT_EQ(b.crdt_count(AC_CRDT_ST_MERGE_STALE), 3u);
  EXPECT_EQ(b.crdt_count(AC_CRDT_ST_MERGE_BAD), 3u);
  EXPECT_EQ(bs.stats().merge_rejected, 3u);
  EXPECT_EQ(b.cell(ports0, cell).slot[1], 2u);
  EXPECT_EQ(b.cell(ports0, cell).slot[2], 0u);
  // the next window is held already (a peer whose clock is ahead): accepted in the other generation
  ASSERT_TRUE(bs.merge(obj1, key, 2, CellValue{.a = 7}, ac_crdt_win_epoch(w0 + 1)).has_value());
  ASSERT_TRUE(bs.flush().has_value());
  EXPECT_EQ(b.cell(ports1, cell).slot[2], 7u);
  EXPECT_EQ(b.crdt_count(AC_CRDT_ST_MERGED), 2u);
  // roll both to w0 + 1: the packet path moves to the prepared generation (with the early
  // record in it), the past window's generation is reset and now holds w0 + 2
  ASSERT_TRUE(a.next_window());
  ASSERT_TRUE(b.next_window());
  EXPECT_FALSE(a.nf->roll_windows(uint64_t{w0} * 60 * 1'000'000'000ULL).value()) << "a clock going back keeps the window";
  ac_crdt_windows w = b.windows();
  EXPECT_EQ(w.cur, w0 + 1);
  EXPECT_EQ(w.gen[g0 ^ 1], w0 + 1);
  EXPECT_EQ(w.gen[g0], w0 + 2);
  EXPECT_EQ(b.cell(ports1, cell).slot[2], 7u) << "the prepared generation keeps what it merged";
  ac_gcounter old = b.cell(ports0, cell);
  EXPECT_EQ(old.slot[1], 0u) << "reset";
  EXPECT_EQ(ac_gc_value(&old), 0u);
  EXPECT_EQ(a.cell(ports0, cell).slot[0], 0u) << "the own slot too";
  // a late record of w0 is refused now
  ASSERT_TRUE(bs.merge(obj0, key, 1, CellValue{.a = 2}, ac_crdt_win_epoch(w0)).has_value());
  ASSERT_TRUE(bs.flush().has_value());
  EXPECT_EQ(b.crdt_count(AC_CRDT_ST_MERGE_STALE), 4u);
  // the new window counts from zero: the same two ports are new pairs again and are reported
  // by the store even where a cell's new value equals the shadow of the old window's
  for (uint16_t p = 1; p <= 2; ++p) a.run(to_nf(md1(), probe("10.1.0.5", p)));
  EXPECT_EQ(a.count(AC_NF_IDS_NEW_PAIR), 4u);
  EXPECT_EQ(a.cell(ports1, cell).slot[0], 2u);
  std::set<std::pair<uint8_t, uint32_t>> again;
  ASSERT_TRUE(a.crdt.store->changes([&](uint8_t o, const Key& k) { again.insert({o, k.as_index()}); }).has_value());
  EXPECT_TRUE(again.count({obj1, cell})) << "same value 2 as last window's shadow, still reported";
  ASSERT_TRUE(*a.crdt.store->read(obj1, key, state::kOwnSlot, [](uint8_t, const CellValue&) {}));
  EXPECT_EQ(a.crdt.store->epoch(obj1), ac_crdt_win_epoch(w0 + 1));
  json st = a.state()["ids"]["window"];
  EXPECT_EQ(st["current"], w0 + 1);
  EXPECT_EQ(st["length_s"], 60u);
  // a jump over several windows (a process stopped for a while) resets both generations
  ASSERT_TRUE(a.nf->roll_windows(uint64_t{w0 + 5} * 60 * 1'000'000'000ULL).value());
  EXPECT_EQ(a.windows().cur, w0 + 5);
  EXPECT_EQ(ac_gc_value(&static_cast<const ac_gcounter&>(a.cell(ports1, cell))), 0u);
  EXPECT_EQ(a.state()["ids"]["pairs"]["merged"], 0u);
}

TEST_F(SharedStateNf, IdsPublishesItsObjectsForTheAgent) {
  Inst a(ids(51, 6));
  const nf::Published& p = a.nf->published();
  ASSERT_TRUE(p.crdt.has_value());
  EXPECT_EQ(p.crdt->merge_prog_id, p.progs.at("nf_ids_merge"));
  EXPECT_EQ(p.crdt->win_map_id, p.map_id("ac_crdt_win"));
  EXPECT_EQ(p.crdt->window_s, 60u);
  ASSERT_EQ(p.crdt->objects.size(), 5u);
  for (const auto& o : p.crdt->objects) EXPECT_EQ(o.map_id, p.map_id(o.map)) << o.map;
  EXPECT_EQ(p.crdt->objects[0].kind, "counting-bloom");
  EXPECT_EQ(p.crdt->objects[0].cells, 4096u);
  EXPECT_EQ(p.crdt->objects[2].kind, "count-min");
  EXPECT_EQ(p.crdt->objects[2].cells, 4u * 1024);
  EXPECT_EQ(p.crdt->objects[4].kind, "add-wins-set");
  EXPECT_EQ(p.crdt->objects[4].key_size, sizeof(ac_nf_ids_src));
  EXPECT_EQ(p.crdt->objects[4].expire_s, 600u) << "the flag expiry (ids_flag_expire_s)";
  EXPECT_EQ(p.crdt->objects[0].expire_s, 0u);
  // the JSON round trip gives the same store
  auto back = nf::published_from_json(nf::to_json(p));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->crdt->objects, p.crdt->objects);
  auto s = nf::open_crdt_store(*back);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  EXPECT_EQ(s->store->schema().digest(), a.crdt.store->schema().digest());
  // every instance of the service with the same parameters has the same schema (digest)
  Inst b(ids(52, 9));
  EXPECT_EQ(b.crdt.store->schema().digest(), a.crdt.store->schema().digest());
  nf::Params other = ids(53, 6);
  other.ids_sketch_width = 2048;
  Inst c(other);
  EXPECT_NE(c.crdt.store->schema().digest(), a.crdt.store->schema().digest()) << "another geometry";
  // an instance without shared-state objects (a firewall, a monitor): nothing to open
  nf::Published none = p;
  none.crdt.reset();
  EXPECT_FALSE(nf::open_crdt_store(none).has_value());
}

// Flag expiry (docs/state.md 3.11), on the real maps: the agent's sweep removes a flag through
// a's merge program once it has been present for the expiry time; the remove is a change a's
// store reports and b merges, so b holds the source unflagged too; once the windows that counted
// the scan are gone, the source's packets are no longer scan packets on either instance.
TEST_F(SharedStateNf, IdsFlagExpiresAndTheRemoveReplicates) {
  nf::Params pa = ids(41, 3), pb = ids(42, 3);
  pa.ids_flag_expire_s = pb.ids_flag_expire_s = 120;
  Inst a(pa), b(pb);
  EXPECT_EQ(replicate(a, b, 1), 0u);
  EXPECT_EQ(replicate(b, a, 1), 0u);
  for (uint16_t port = 1; port <= 3; ++port) EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.77", port))).verdict, XDP_TX);
  ASSERT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 1u);
  EXPECT_GT(replicate(a, b, 1), 0u);
  const ac_nf_ids_src src = src4("10.1.0.77");
  auto present = [&](Inst& i) {
    ac_awset_elem e{};
    if (bpf_map_lookup_elem(i.maps->fd("ids_flagged"), &src, &e)) return false;
    return ac_set_contains(&e) != 0;
  };
  ASSERT_TRUE(present(a));
  ASSERT_TRUE(present(b)) << "b learnt the flag from the merge";
  // the rule as the agent builds it from the published object
  const auto& o = a.nf->published().crdt->objects.at(4);
  ASSERT_EQ(o.map, "ids_flagged");
  ASSERT_EQ(o.expire_s, 120u);
  state::Expiry e({{o.id, std::chrono::seconds(o.expire_s)}});
  const std::chrono::steady_clock::time_point t0{};
  ASSERT_TRUE(e.sweep(*a.crdt.store, t0, 0).has_value());
  ASSERT_TRUE(e.sweep(*a.crdt.store, t0 + std::chrono::seconds(119), 0).has_value());
  EXPECT_TRUE(present(a));
  EXPECT_EQ(replicate(a, b, 1), 0u) << "nothing changed";
  ASSERT_TRUE(e.sweep(*a.crdt.store, t0 + std::chrono::seconds(120), 0).has_value());
  EXPECT_EQ(e.stats().set_removed, 1u);
  EXPECT_EQ(e.stats().errors, 0u);
  EXPECT_FALSE(present(a)) << "removed through a's merge program";
  ac_awset_elem el{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("ids_flagged"), &src, &el), 0);
  EXPECT_EQ(el.add[0], 1u);
  EXPECT_EQ(el.rm[0], 1u) << "the remove observed a's add";
  EXPECT_EQ(replicate(a, b, 1), 1u) << "the remove is a change: the element";
  EXPECT_FALSE(present(b)) << "b merged the remove";
  EXPECT_EQ(a.state()["ids"]["flagged"][0]["flagged"], false);
  // within the window the scan still counts: the next packet flags the source again (a new add,
  // which would win over a concurrent remove)
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.77", 1))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 2u);
  ASSERT_TRUE(present(a));
  ASSERT_TRUE(e.sweep(*a.crdt.store, t0 + std::chrono::seconds(121), 0).has_value());
  EXPECT_TRUE(present(a)) << "a new add restarts the age";
  // two windows later the counts are gone; the expired flag stays gone
  ASSERT_TRUE(a.next_window());
  ASSERT_TRUE(a.next_window());
  ASSERT_TRUE(e.sweep(*a.crdt.store, t0 + std::chrono::seconds(241), 0).has_value());
  EXPECT_FALSE(present(a));
  const uint64_t scan = a.count(AC_NF_IDS_SCAN_PACKETS);
  EXPECT_EQ(a.run(to_nf(md1(), probe("10.1.0.77", 1))).verdict, XDP_TX);
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_PACKETS), scan) << "no longer a flagged source";
  EXPECT_EQ(a.count(AC_NF_IDS_SCAN_FLAGGED), 2u);
}

// ---------------------------------------------------------------------------------- nat

// Two empty instances, then a maps the outbound packet `out` to exactly `translated`.
Out map_on_first(Inst& a, Inst& b, const Bytes& out, const Bytes& translated) {
  EXPECT_EQ(replicate(a, b, 1), 0u);
  EXPECT_EQ(replicate(b, a, 1), 0u);
  Out o = a.run(to_nf(md1(), out));
  EXPECT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(translated));
  return o;
}

// The reply key of the tests' UDP flow 10.1.0.1:40000 -> 198.51.100.7:9000 mapped to port 20032
ac_nf_nat_rkey flow_rkey() {
  ac_nf_nat_rkey rk{};
  inet_pton(AF_INET, "198.51.100.7", &rk.remote);
  rk.remote_port = htons(9000);
  rk.port = htons(20032);
  rk.proto = IPPROTO_UDP;
  return rk;
}

nf::Params nat_in(uint32_t id, const std::string& ports) {
  nf::Params p = nat(ports);
  p.instance_id = id;
  p.nat_shared_entries = 1024;
  return p;
}

// An asymmetric route (docs/state.md 4.3, papers/002 Fig. 3.2): the reply of a flow that a
// translated reaches b. Before b merged a's shared table it is dropped (nat_rev_miss); after, b
// translates it exactly as a would, and both directions keep the merged entry's `seen` moving.
TEST_F(SharedStateNf, NatTranslatesAReplyOnTheInstanceThatDidNotMakeTheMapping) {
  Inst a(nat_in(71, "20032-20095")), b(nat_in(72, "20096-20159"));
  EXPECT_EQ(replicate(a, b, 1), 0u);
  EXPECT_EQ(replicate(b, a, 1), 0u);
  Bytes out = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  Out o = a.run(to_nf(md1(), out));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  Bytes reply = ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032));
  const Bytes back = from_nf(md1(0x9999), ipv4("198.51.100.7", "10.1.0.1", udp(9000, 40000)));
  EXPECT_EQ(b.run(to_nf(md1(0x9999), reply)).verdict, XDP_DROP) << "not merged yet";
  EXPECT_EQ(b.count(AC_NF_NAT_REV_MISS), 1u);
  // the shared entry, exactly: key as nf_nat_rev's, data external then inside, writer a
  const ac_nf_nat_rkey rk = flow_rkey();
  ac_register r{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_shared"), &rk, &r), 0);
  EXPECT_EQ(r.v.writer, 71u);
  EXPECT_EQ(hex(Bytes(r.v.data, r.v.data + sizeof(ac_nf_nat_shared))), "c000 020a 4e40 9c40 0a01 0001 ");
  EXPECT_TRUE(std::all_of(r.v.data + sizeof(ac_nf_nat_shared), r.v.data + AC_CRDT_REG_DATA,
                          [](uint8_t x) { return x == 0; }));
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  const uint64_t tai = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  EXPECT_LE(r.v.seen, tai);
  EXPECT_GT(r.v.seen + 10'000'000'000ULL, tai) << "seen is CLOCK_TAI";
  EXPECT_EQ(replicate(a, b, 1), 2u) << "one mapping: its nat_shared and nat_fwd entries";
  o = b.run(to_nf(md1(0x9999), reply));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(back)) << "translated on b as on a";
  EXPECT_EQ(b.count(AC_NF_NAT_IN), 1u);
  EXPECT_EQ(b.count(AC_NF_NAT_IN_SHARED), 1u);
  o = a.run(to_nf(md1(0x9999), reply));
  EXPECT_EQ(hex(o.frame), hex(back)) << "and on a, by its own reverse index";
  EXPECT_EQ(a.count(AC_NF_NAT_IN_SHARED), 0u);
  json sb = b.state()["nat"];
  ASSERT_EQ(sb["shared"].size(), 1u) << sb.dump();
  EXPECT_EQ(sb["shared"][0]["writer"], 71u);
  EXPECT_EQ(sb["shared"][0]["inside"], "10.1.0.1");
  EXPECT_EQ(sb["shared"][0]["external_port"], 20032u);
  EXPECT_EQ(sb["mappings"].size(), 0u) << "b holds no mapping of its own";
  // a reply to a port nobody mapped, or from another peer port: still dropped on b
  EXPECT_EQ(b.run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9001, 20032)))).verdict, XDP_DROP);
  EXPECT_EQ(b.run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20033)))).verdict, XDP_DROP);
  EXPECT_EQ(b.count(AC_NF_NAT_REV_MISS), 3u);
  // b's own flows use b's pool and are shared back to a
  o = b.run(to_nf(md1(), ipv4("10.1.0.2", "198.51.100.7", udp(40000, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20096, 9000)))));
  size_t moved = replicate(b, a, 1);
  EXPECT_GE(moved, 1u) << "b's new mapping (the merged entry is a's: b sends it again only if its seen moved)";
  EXPECT_LE(moved, 2u);
  o = a.run(to_nf(md1(0x7777), ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20096))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x7777), ipv4("198.51.100.7", "10.1.0.2", udp(9000, 40000)))));
  EXPECT_EQ(a.count(AC_NF_NAT_IN_SHARED), 1u);
  // two instances that mapped the same external port for the same remote (overlapping pools, a
  // misconfiguration): the larger mapping wins on both replicas
  Inst c(nat_in(73, "20032-20095"));
  o = c.run(to_nf(md1(), ipv4("10.1.0.9", "198.51.100.7", udp(40000, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  (void)replicate(c, a, 2);
  (void)replicate(a, c, 1);
  for (Inst* i : {&a, &c}) {
    ac_register w{};
    ASSERT_EQ(bpf_map_lookup_elem(i->maps->fd("nat_shared"), &rk, &w), 0);
    ac_nf_nat_shared s{};
    std::memcpy(&s, w.v.data, sizeof s);
    EXPECT_EQ(s.inside, htonl(0x0a010009)) << "10.1.0.9 > 10.1.0.1";
    EXPECT_EQ(w.v.writer, 73u);
  }
}

// Expiry of the shared table by the merged `seen` (docs/state.md 3.11): b deletes a's entry once
// it is older than the published expiry (idle timeout + 30 s); a reply reaching b is then dropped
// as before the merge; a late record of it is deleted again at the next sweep.
TEST_F(SharedStateNf, NatSharedEntryExpiresByItsMergedSeen) {
  Inst a(nat_in(81, "20032-20095")), b(nat_in(82, "20096-20159"));
  EXPECT_EQ(replicate(a, b, 1), 0u);
  Out o = a.run(to_nf(md1(), ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000))));
  ASSERT_EQ(o.verdict, XDP_TX);
  ASSERT_EQ(replicate(a, b, 1), 2u) << "nat_shared and nat_fwd";
  const Bytes reply = ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032));
  ASSERT_EQ(b.run(to_nf(md1(0x9999), reply)).verdict, XDP_TX) << "translated by the merged entry";
  const ac_nf_nat_rkey rk = flow_rkey();
  ac_register r{};
  ASSERT_EQ(bpf_map_lookup_elem(b.maps->fd("nat_shared"), &rk, &r), 0);
  const auto& obj = b.nf->published().crdt->objects.at(0);
  ASSERT_EQ(obj.map, "nat_shared");
  ASSERT_EQ(obj.expire_s, 300u + nf::kNatSharedGrace) << "idle timeout + grace";
  state::Expiry e({{obj.id, std::chrono::seconds(obj.expire_s)}});
  const uint64_t after = uint64_t{obj.expire_s} * 1'000'000'000ULL;
  const std::chrono::steady_clock::time_point t0{};
  ASSERT_TRUE(e.sweep(*b.crdt.store, t0, r.v.seen + after).has_value());
  EXPECT_EQ(bpf_map_lookup_elem(b.maps->fd("nat_shared"), &rk, &r), 0) << "exactly the expiry: kept";
  ASSERT_TRUE(e.sweep(*b.crdt.store, t0, r.v.seen + after + 1).has_value());
  EXPECT_NE(bpf_map_lookup_elem(b.maps->fd("nat_shared"), &rk, &r), 0) << "older: deleted";
  EXPECT_EQ(e.stats().reg_deleted, 1u);
  const uint64_t miss = b.count(AC_NF_NAT_REV_MISS);
  EXPECT_EQ(b.run(to_nf(md1(0x9999), reply)).verdict, XDP_DROP);
  EXPECT_EQ(b.count(AC_NF_NAT_REV_MISS), miss + 1);
  // a late record (a's entry, its seen unchanged) re-creates it on b: the next sweep deletes it
  ac_register ar{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_shared"), &rk, &ar), 0);
  state::CellValue v;
  v.reg = ar.v;
  ASSERT_TRUE(b.crdt.store->merge(obj.id, Key::bytes(&rk, sizeof rk), 1, v, 0).has_value());
  ASSERT_TRUE(b.crdt.store->flush().has_value());
  ASSERT_EQ(bpf_map_lookup_elem(b.maps->fd("nat_shared"), &rk, &r), 0);
  ASSERT_TRUE(e.sweep(*b.crdt.store, t0, ar.v.seen + after + 2).has_value());
  EXPECT_NE(bpf_map_lookup_elem(b.maps->fd("nat_shared"), &rk, &r), 0);
  EXPECT_EQ(e.stats().reg_deleted, 2u);
  EXPECT_EQ(e.stats().errors, 0u);
  // a's own entry (its mapping) is kept while a's clock says it is fresh
  state::Expiry ea({{obj.id, std::chrono::seconds(obj.expire_s)}});
  ASSERT_TRUE(ea.sweep(*a.crdt.store, t0, ar.v.seen + 1).has_value());
  EXPECT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_shared"), &rk, &r), 0);
}

// The outbound half (docs/state.md 4.3, nat_fwd): a flow a mapped moves to b (another ingress
// node's WCMP, a withdrawn instance). Once b merged a's records, b translates the flow's outbound
// packets with a's mapping, to the same bytes, without a mapping or a port of its own; its replies
// reach b or a alike; ICMP echo by its id. The entry's bytes exactly; its seen moves on b and the
// change reaches a.
TEST_F(SharedStateNf, NatTranslatesOutboundPacketsOfAFlowAnotherInstanceMapped) {
  Inst a(nat_in(91, "20032-20095")), b(nat_in(92, "20096-20159"));
  const Bytes out = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  const Bytes translated = from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)));
  Out o = map_on_first(a, b, out, translated);
  ASSERT_EQ(o.verdict, XDP_TX);
  const Bytes ping = icmp4("10.1.0.2", "198.51.100.7", 8, 0x1234);
  o = a.run(to_nf(md1(), ping));
  ASSERT_EQ(o.verdict, XDP_TX);
  const Bytes ping_out = o.frame;
  // the outbound entry, exactly: key the inside flow, data as nat_shared's, writer a
  ac_nf_nat_fkey fk{};
  inet_pton(AF_INET, "10.1.0.1", &fk.inside);
  inet_pton(AF_INET, "198.51.100.7", &fk.remote);
  fk.inside_port = htons(40000);
  fk.remote_port = htons(9000);
  fk.proto = IPPROTO_UDP;
  ac_register r{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_fwd"), &fk, &r), 0);
  EXPECT_EQ(r.v.writer, 91u);
  EXPECT_EQ(hex(Bytes(r.v.data, r.v.data + sizeof(ac_nf_nat_shared))), "c000 020a 4e40 9c40 0a01 0001 ");
  EXPECT_TRUE(std::all_of(r.v.data + sizeof(ac_nf_nat_shared), r.v.data + AC_CRDT_REG_DATA,
                          [](uint8_t x) { return x == 0; }));
  EXPECT_EQ(replicate(a, b, 1), 4u) << "two mappings, each in nat_shared and nat_fwd";
  // b: the same flow's outbound packets leave with a's external port, byte for byte
  for (int i = 0; i < 3; ++i) {
    o = b.run(to_nf(md1(), out));
    ASSERT_EQ(o.verdict, XDP_TX);
    EXPECT_EQ(hex(o.frame), hex(translated)) << "packet " << i;
  }
  EXPECT_EQ(b.count(AC_NF_NAT_OUT), 3u);
  EXPECT_EQ(b.count(AC_NF_NAT_OUT_SHARED), 3u);
  EXPECT_EQ(b.count(AC_NF_NAT_NEW), 0u) << "no mapping of b's own";
  o = b.run(to_nf(md1(), ping));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(ping_out)) << "the echo id a gave it";
  EXPECT_EQ(b.count(AC_NF_NAT_OUT_SHARED), 4u);
  EXPECT_EQ(b.state()["nat"]["mappings"].size(), 0u);
  // the reply reaches b: translated by the shared reply table (as before)
  o = b.run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032))));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x9999), ipv4("198.51.100.7", "10.1.0.1", udp(9000, 40000)))));
  // b's pool is untouched: its first own flow takes its first port
  o = b.run(to_nf(md1(), ipv4("10.1.0.3", "198.51.100.7", udp(40000, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20096, 9000)))));
  EXPECT_EQ(b.count(AC_NF_NAT_NEW), 1u);
  // another flow of the same host (another port) is not a's: b maps it itself
  o = b.run(to_nf(md1(), ipv4("10.1.0.1", "198.51.100.7", udp(40001, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20097, 9000)))));
  EXPECT_EQ(b.count(AC_NF_NAT_OUT_SHARED), 4u);
  // a NAT of another external address does not use the entry (m->external must be ours)
  nf::Params other = nat_in(93, "20160-20223");
  inet_pton(AF_INET, "192.0.2.11", &other.nat_address);
  Inst c(other);
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_fwd"), &fk, &r), 0);
  CellValue fv;
  fv.reg = r.v;
  ASSERT_TRUE(c.crdt.store->merge(AC_NF_NAT_OBJ_FWD, Key::bytes(&fk, sizeof fk), 1, fv, 0).has_value());
  ASSERT_TRUE(c.crdt.store->flush().has_value());
  ac_register cr{};
  ASSERT_EQ(bpf_map_lookup_elem(c.maps->fd("nat_fwd"), &fk, &cr), 0) << "c holds the merged entry";
  o = c.run(to_nf(md1(), out));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.11", "198.51.100.7", udp(20160, 9000)))));
  EXPECT_EQ(c.count(AC_NF_NAT_OUT_SHARED), 0u);
  // b's use moves the entry's seen (past the 1 s granularity): b reports it, a merges the max
  ASSERT_EQ(bpf_map_lookup_elem(b.maps->fd("nat_fwd"), &fk, &r), 0);
  const uint64_t before = r.v.seen;
  usleep(1'100'000);
  EXPECT_EQ(b.run(to_nf(md1(), out)).verdict, XDP_TX);
  ASSERT_EQ(bpf_map_lookup_elem(b.maps->fd("nat_fwd"), &fk, &r), 0);
  EXPECT_GT(r.v.seen, before + 1'000'000'000ULL);
  EXPECT_GE(replicate(b, a, 1), 2u) << "the moved entries (nat_fwd, nat_shared) and b's own mappings";
  ac_register ar{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_fwd"), &fk, &ar), 0);
  EXPECT_EQ(ar.v.seen, r.v.seen) << "a holds b's later use";
  EXPECT_EQ(ar.v.writer, 91u) << "still a's mapping";
}

// The owner's reclaim (docs/state.md 4.3): a flow a mapped moved to b, whose packets use a's
// mapping through nat_fwd. a's own record goes idle and is deleted, but while the shared table
// still maps the port to the flow (b's use keeps its merged seen fresh) a keeps the port and its
// reply entry: a new flow of a to the same remote takes another port, a reply reaching a is still
// translated. Once the entry expires (nobody used it for the idle timeout plus the grace) the
// port goes back to the pool.
TEST_F(SharedStateNf, NatOwnerKeepsAPortAnotherInstanceStillTranslatesWith) {
  nf::Params pa = nat_in(121, "20032-20095");
  pa.idle_timeout_s = 10;  // with the default grace (30 s): idle after 40 s
  Inst a(pa), b(nat_in(122, "20096-20159"));
  const Bytes out = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  const Bytes translated = from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)));
  Out o = map_on_first(a, b, out, translated);
  ASSERT_EQ(o.verdict, XDP_TX);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = a.nf->reclaim(t0);
  ASSERT_TRUE(r.has_value()) << r.error().str();
  EXPECT_EQ(r->records, 0u);
  EXPECT_EQ(replicate(a, b, 1), 2u);
  // the flow moves to b; b's use, past the 1 s granularity, reaches a
  usleep(1'100'000);
  o = b.run(to_nf(md1(), out));
  ASSERT_EQ(o.verdict, XDP_TX);
  ASSERT_EQ(hex(o.frame), hex(translated));
  ASSERT_EQ(b.count(AC_NF_NAT_OUT_SHARED), 1u);
  EXPECT_GE(replicate(b, a, 1), 2u);
  const ac_nf_nat_rkey rk = flow_rkey();
  ac_register sh{};
  ASSERT_EQ(bpf_map_lookup_elem(a.maps->fd("nat_shared"), &rk, &sh), 0);
  EXPECT_EQ(sh.v.writer, 121u) << "still a's mapping";
  const uint64_t seen = sh.v.seen;  // b's use
  const uint64_t limit = 40'000'000'000ULL;
  // a's record idle for 41 s; the entry last used by b less than 40 s ago: the port is held
  using namespace std::chrono_literals;
  r = a.nf->reclaim(t0 + 41s, seen + limit - 500'000'000ULL);
  ASSERT_TRUE(r.has_value()) << r.error().str();
  EXPECT_EQ(r->records, 1u) << "a's record of the flow";
  EXPECT_EQ(r->mappings, 0u) << "its port is not given back";
  EXPECT_EQ(r->held, 1u);
  json s = a.state();
  EXPECT_EQ(s["nat"]["pool"]["used"], 1u);
  EXPECT_EQ(s["process"]["nat_ports_held"], 1u);
  // a new flow of a to the same remote: another port (20032 would send its replies to 10.1.0.1)
  o = a.run(to_nf(md1(), ipv4("10.1.0.9", "198.51.100.7", udp(40000, 9000))));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20033, 9000)))));
  // a reply to the moved flow reaching a is still translated to its inside host
  o = a.run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032))));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x9999), ipv4("198.51.100.7", "10.1.0.1", udp(9000, 40000)))));
  // nobody used it for 40 s: the entry expires, the port goes back (the new flow keeps its own)
  r = a.nf->reclaim(t0 + 42s, seen + limit + 1'000'000'000ULL);
  ASSERT_TRUE(r.has_value()) << r.error().str();
  EXPECT_EQ(r->records, 0u);
  EXPECT_GE(r->shared, 2u) << "the moved flow's nat_shared and nat_fwd entries";
  EXPECT_EQ(r->mappings, 1u);
  EXPECT_EQ(r->held, 0u);
  s = a.state();
  EXPECT_EQ(s["nat"]["pool"]["used"], 1u);
  EXPECT_EQ(s["process"]["nat_ports_held"], 0u);
  ASSERT_EQ(s["nat"]["mappings"].size(), 1u);
  EXPECT_EQ(s["nat"]["mappings"][0]["external_port"], 20033);
}

// ---------------------------------------------------------------------------------- ratelimit

// A limit of 10 packets per window over two instances: a alone passes 6; b, having merged them,
// passes 4 and drops the fifth; a, having merged b's, drops at once. Exact bytes for what passes.
TEST_F(SharedStateNf, RatelimitEnforcesOneGlobalLimitAcrossInstancesAfterMerging) {
  Inst a(ratelimit(61, 10, true)), b(ratelimit(62, 10, true));
  EXPECT_EQ(replicate(a, b, 1), 0u);
  EXPECT_EQ(replicate(b, a, 1), 0u);
  Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000));
  for (int i = 0; i < 6; ++i) {
    Out o = a.run(to_nf(md2(), inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    EXPECT_EQ(hex(o.frame), hex(from_nf(md2(), inner)));
  }
  EXPECT_EQ(replicate(a, b, 1), 1u) << "one cell";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.run(to_nf(md1(), inner)).verdict, XDP_TX) << i;
  EXPECT_EQ(b.run(to_nf(md1(), inner)).verdict, XDP_DROP) << "6 + 4 = the limit";
  EXPECT_EQ(b.count(AC_NF_RL_PASSED), 4u);
  EXPECT_EQ(b.count(AC_NF_RL_DROPPED), 1u);
  EXPECT_EQ(b.count(AC_NF_DROP_FILTERED), 1u);
  EXPECT_EQ(a.run(to_nf(md1(), inner)).verdict, XDP_TX) << "a has not merged b's 4 yet: the overshoot";
  EXPECT_EQ(replicate(b, a, 1), 1u);
  EXPECT_EQ(a.run(to_nf(md1(), inner)).verdict, XDP_DROP);
  EXPECT_EQ(a.count(AC_NF_RL_PASSED), 7u);
  EXPECT_EQ(a.count(AC_NF_RL_DROPPED), 1u);
  json s = a.state()["ratelimit"];
  EXPECT_EQ(s["limit"], 10u);
  EXPECT_EQ(s["unit"], "packets");
  EXPECT_EQ(s["count"]["own"], 7u);
  EXPECT_EQ(s["count"]["others"], 4u);
  EXPECT_EQ(s["count"]["merged"], 11u);
  EXPECT_EQ(s["over_limit"], true);
  EXPECT_EQ(a.state()["crdt"]["counters"]["merged"], 1u);
  // a duplicate of b's record changes nothing (idempotent), an old window's is refused
  state::BpfStore& as = *a.crdt.store;
  const uint8_t obj = (a.windows().cur & 1) ? AC_NF_RL_OBJ_COUNT1 : AC_NF_RL_OBJ_COUNT0;
  ASSERT_TRUE(as.merge(obj, Key::index(0), 1, CellValue{.a = 4}, ac_crdt_win_epoch(a.windows().cur)).has_value());
  ASSERT_TRUE(as.merge(obj, Key::index(0), 1, CellValue{.a = 100}, ac_crdt_win_epoch(a.windows().cur - 2)).has_value());
  ASSERT_TRUE(as.flush().has_value());
  EXPECT_EQ(a.crdt_count(AC_CRDT_ST_MERGE_NOOP), 1u);
  EXPECT_EQ(a.crdt_count(AC_CRDT_ST_MERGE_STALE), 1u);
  EXPECT_EQ(a.state()["ratelimit"]["count"]["merged"], 11u);
  // the next window starts from zero on both
  ASSERT_TRUE(a.next_window());
  ASSERT_TRUE(b.next_window());
  EXPECT_EQ(a.run(to_nf(md1(), inner)).verdict, XDP_TX);
  EXPECT_EQ(a.state()["ratelimit"]["count"]["merged"], 1u);
  EXPECT_EQ(a.count(AC_NF_RX), a.count(AC_NF_TX) + a.count(AC_NF_DROP_FILTERED));
}

TEST_F(SharedStateNf, RatelimitInBytesCountsTheInnerPacket) {
  Inst a(ratelimit(63, 300, false));
  Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));  // 20 + 8 + 72 = 100 bytes
  ASSERT_EQ(inner.size(), 100u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.run(to_nf(md1(), inner)).verdict, XDP_TX);
  EXPECT_EQ(a.run(to_nf(md1(), inner)).verdict, XDP_DROP);
  EXPECT_EQ(a.state()["ratelimit"]["count"]["own"], 300u);
  EXPECT_EQ(a.state()["ratelimit"]["unit"], "bytes");
}

TEST_F(SharedStateNf, ParametersAreChecked) {
  nf::Params p = ids(1, 0);
  EXPECT_FALSE(nf::validate(p).has_value()) << "threshold 0";
  p = ids(1, 5);
  p.ids_pairs_cells = 1000;
  EXPECT_FALSE(nf::validate(p).has_value()) << "not a power of two";
  p = ids(1, 5);
  p.ids_sketch_rows = 9;
  EXPECT_FALSE(nf::validate(p).has_value());
  p = ids(1, 5);
  p.window_s = 0;
  EXPECT_FALSE(nf::validate(p).has_value());
  EXPECT_TRUE(nf::validate(ids(1, 5)).has_value());
  EXPECT_FALSE(nf::validate(ratelimit(1, 0, true)).has_value()) << "no limit";
  auto args = nf::to_args(ids(3, 7, true));
  auto has = [&](const std::string& k, const std::string& v) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == k && args[i + 1] == v) return true;
    return false;
  };
  EXPECT_TRUE(has("--kind", "ids"));
  EXPECT_TRUE(has("--ids-threshold", "7"));
  EXPECT_TRUE(has("--ids-action", "drop"));
  EXPECT_TRUE(has("--ids-filter", "3x4096"));
  EXPECT_TRUE(has("--ids-sketch", "4x1024"));
  EXPECT_TRUE(has("--window", "60"));
  args = nf::to_args(ratelimit(3, 500, false));
  EXPECT_TRUE(has("--rl-limit", "500"));
  EXPECT_TRUE(has("--rl-unit", "bytes"));
  auto g = nf::parse_geometry("4x4096");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(*g, (std::pair<uint32_t, uint32_t>{4, 4096}));
  EXPECT_FALSE(nf::parse_geometry("4096").has_value());
}

}  // namespace
}  // namespace anychain::test
