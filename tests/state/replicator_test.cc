// The replication protocol (agent/state/replicator.*) between replicators over the C++ twin on
// an in-memory network with a manual clock (tests/state/sim.h): convergence under loss,
// duplication and reordering for 2..10 instances, acknowledgements and retransmission, partition
// and heal, coalescing savings on a skewed update mix, lagging peers and stragglers, join from a
// snapshot, drain on leave and fold, restarts (gone origins relayed), forged/replayed messages
// through the replicator, key rotation while replicating.
// Over 500 lines: one scenario per property of the protocol on the shared simulator (sim.h).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "sim.h"

namespace anychain::state {
namespace {

using sim::Net;
using sim::Node;

enum : uint8_t { kGc = 1, kGcKeyed = 2, kPn = 3, kCms = 4, kCbf = 5, kSet = 6, kReg = 7 };

Schema schema() {
  static const Schema s = *Schema::make({
      {.id = kGc, .kind = Kind::GCounter, .name = "gc", .cells = 8},
      {.id = kGcKeyed, .kind = Kind::GCounter, .name = "gck", .cells = 4096, .key_size = 8},
      {.id = kPn, .kind = Kind::PNCounter, .name = "pn", .cells = 4},
      {.id = kCms, .kind = Kind::CountMin, .name = "cms", .cells = 4 * 64, .rows = 4},
      {.id = kCbf, .kind = Kind::CountingBloom, .name = "cbf", .cells = 256, .rows = 3},
      {.id = kSet, .kind = Kind::AwSet, .name = "set", .cells = 64, .key_size = 4},
      {.id = kReg, .kind = Kind::RegMap, .name = "reg", .cells = 64, .key_size = 4},
  });
  return s;
}

Key key8(uint64_t v) { return Key::bytes(&v, 8); }
Key key4(uint32_t v) { return Key::bytes(&v, 4); }

struct Cluster {
  explicit Cluster(int n, uint64_t seed = 1, ReplicatorConfig cfg = {}) : net(seed), cfg(cfg) {
    for (int i = 1; i <= n; ++i) add(static_cast<uint32_t>(i));
    members();
  }
  Node& add(uint32_t id, uint64_t incarnation = 0) {
    nodes.push_back(std::make_unique<Node>(net, schema(), id, incarnation ? incarnation : 1000 + id, cfg));
    return *nodes.back();
  }
  std::vector<Replicator::Member> member_list(uint32_t except = 0) {
    std::vector<Replicator::Member> v;
    for (auto& n : nodes)
      if (n->id != except) v.push_back({n->id, n->transport.me()});
    return v;
  }
  void members() {
    for (auto& n : nodes) n->rep->set_members(member_list());
  }
  Node& at(uint32_t id) {
    for (auto& n : nodes)
      if (n->id == id) return *n;
    throw std::runtime_error("no node " + std::to_string(id));
  }
  void step(uint64_t us = 1000) {
    net.clock.advance(us);
    for (auto& n : nodes) n->rep->poll();
  }
  void run(uint64_t ms) {
    for (uint64_t i = 0; i < ms; ++i) step();
  }
  // Everyone acknowledged everyone's latest version (keepalives may still be in flight).
  bool quiet() {
    for (auto& n : nodes)
      for (const PeerStatus& p : n->rep->peers())
        if (p.member && p.acked != n->rep->stats().version) return false;
    return true;
  }
  uint64_t settle(uint64_t max_ms = 20000) {
    for (uint64_t ms = 0; ms < max_ms; ms += 10) {
      run(10);
      if (quiet()) return ms;
    }
    ADD_FAILURE() << "did not settle in " << max_ms << " ms";
    dump();
    return max_ms;
  }
  void dump() {
    for (auto& n : nodes)
      for (const PeerStatus& p : n->rep->peers())
        std::printf("node %u version %lu -> peer %u: %s acked %lu sent %lu srtt %lu us rto %lu us in flight %lu\n", n->id,
                    static_cast<unsigned long>(n->rep->stats().version), p.id, to_string(p.state),
                    static_cast<unsigned long>(p.acked), static_cast<unsigned long>(p.sent),
                    static_cast<unsigned long>(p.srtt_us), static_cast<unsigned long>(p.rto_us),
                    static_cast<unsigned long>(p.in_flight_bytes));
  }
  void expect_converged(const std::string& what) {
    auto base = sim::canonical(*nodes.front(), schema());
    EXPECT_FALSE(base.empty()) << what;
    for (size_t i = 1; i < nodes.size(); ++i)
      EXPECT_TRUE(sim::canonical(*nodes[i], schema()) == base) << what << ": node " << nodes[i]->id << " differs";
  }
  Net net;
  ReplicatorConfig cfg;
  std::vector<std::unique_ptr<Node>> nodes;
};

// What every replica must read in the end, whatever the network did.
struct Expect {
  std::map<uint32_t, uint64_t> gc;
  std::map<uint64_t, uint64_t> gck;
  std::map<uint32_t, int64_t> pn;
  std::map<uint32_t, uint64_t> cms_cells;
  std::map<uint32_t, ac_reg_value> reg;
  std::set<uint32_t> never_removed_set;  // added, never removed anywhere: must be present
  uint64_t ops = 0;
};

// A counter update of one kind (0: keyed G-counter, 1: PN counter, 2: sketch) and its reference.
void counter_update(Node& n, Expect& e, std::mt19937_64& rng, uint64_t kind) {
  switch (kind) {
    case 0: {
      uint64_t k = rng() % 50, v = 1 + rng() % 4;
      n.store.gc_add(kGcKeyed, key8(k), v);
      e.gck[k] += v;
      return;
    }
    case 1: {
      uint32_t i = static_cast<uint32_t>(rng() % 4);
      int64_t v = static_cast<int64_t>(rng() % 9) - 4;
      n.store.pn_add(kPn, Key::index(i), v);
      e.pn[i] += v;
      return;
    }
    default: {
      uint64_t h = ac_mix64(rng() % 40);
      n.store.cms_add(kCms, h, 1);
      for (uint32_t r = 0; r < 4; ++r) ++e.cms_cells[ac_cms_cell(h, r, 63)];
      return;
    }
  }
}

void random_op(Node& n, Expect& e, std::mt19937_64& rng, std::set<uint32_t>& removed) {
  ++e.ops;
  switch (uint64_t r = rng() % 7) {
    case 0: {
      uint32_t i = static_cast<uint32_t>(rng() % 8);
      n.store.gc_add(kGc, Key::index(i), 1 + rng() % 3);
      break;
    }
    case 1:
    case 2:
    case 3: counter_update(n, e, rng, r - 1); return;
    case 4: {
      uint32_t el = static_cast<uint32_t>(rng() % 12);
      if (rng() % 4 == 0) {
        n.store.set_remove(kSet, key4(el));
        removed.insert(el);
      } else {
        n.store.set_add(kSet, key4(el));
        e.never_removed_set.insert(el);
      }
      return;
    }
    default: {
      uint32_t k = static_cast<uint32_t>(rng() % 10);
      ac_reg_value v{};
      v.writer = n.id;
      v.seen = rng() % 100;
      v.data[0] = static_cast<uint8_t>(rng() % 5);
      bool existed = n.store.reg_get(kReg, key4(k)).has_value();
      n.store.reg_insert(kReg, key4(k), v);
      if (!existed) {
        auto it = e.reg.find(k);
        if (it == e.reg.end()) e.reg[k] = v;
        else ac_reg_merge(&it->second, &v);
      }
      return;
    }
  }
}

void expect_values(Node& n, Expect& e, const std::set<uint32_t>& removed) {
  for (auto& [k, v] : e.gck) EXPECT_EQ(n.store.gc_value(kGcKeyed, key8(k)), v) << "node " << n.id << " key " << k;
  for (auto& [i, v] : e.pn) EXPECT_EQ(n.store.pn_value(kPn, Key::index(i)), v) << "node " << n.id;
  for (auto& [c, v] : e.cms_cells) EXPECT_EQ(n.store.gc_value(kCms, Key::index(c)), v) << "node " << n.id;
  for (uint32_t el : e.never_removed_set) {
    if (removed.count(el)) continue;
    EXPECT_TRUE(n.store.set_contains(kSet, key4(el))) << "node " << n.id << " element " << el;
  }
  for (auto& [k, v] : e.reg) {
    auto got = n.store.reg_get(kReg, key4(k));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(std::memcmp(&*got, &v, sizeof v), 0) << "node " << n.id << " reg " << k;
  }
}

// ---- convergence --------------------------------------------------------------------------------

TEST(Replicator, TwoInstancesConvergeAndAcknowledge) {
  Cluster c(2);
  c.run(5);  // first contact: keepalives
  c.at(1).store.gc_add(kGc, Key::index(1), 5);
  c.at(2).store.gc_add(kGc, Key::index(1), 7);
  c.at(2).store.gc_add(kGcKeyed, key8(9), 3);
  c.settle();
  for (uint32_t id : {1u, 2u}) {
    EXPECT_EQ(c.at(id).store.gc_value(kGc, Key::index(1)), 12u);
    EXPECT_EQ(c.at(id).store.gc_value(kGcKeyed, key8(9)), 3u);
  }
  c.expect_converged("two instances");
  auto p = c.at(1).rep->peers();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].acked, c.at(1).rep->stats().version);
  EXPECT_EQ(p[0].retransmits, 0u);
  EXPECT_GT(p[0].srtt_us, 0u) << "RTT measured from echoes";
  EXPECT_EQ(c.at(2).rep->received().at(c.at(1).rep->self()), c.at(1).rep->stats().version);
  EXPECT_EQ(c.at(1).rep->gate().rejected_total(), 0u);
}

struct NetCase {
  int instances;
  uint32_t seed;
};
std::ostream& operator<<(std::ostream& os, const NetCase& c) { return os << c.instances << " instances, seed " << c.seed; }

class LossyNetwork : public ::testing::TestWithParam<NetCase> {};

// Operations on every instance while the network loses 20 %, duplicates 10 % and reorders
// (jitter of several RTTs); then the network heals and the protocol alone (acknowledgements,
// retransmission) brings every instance to the same state, equal to the sequential reference.
TEST_P(LossyNetwork, ConvergesToTheReference) {
  auto [n, seed] = GetParam();
  Cluster c(n, seed);
  c.net.set_all({.delay_us = 300, .jitter_us = 2000, .loss = 0.2, .dup = 0.1});
  std::mt19937_64 rng(seed);
  Expect e;
  std::set<uint32_t> removed;
  for (int ms = 0; ms < 400; ++ms) {
    for (int k = 0; k < 3; ++k) random_op(*c.nodes[rng() % c.nodes.size()], e, rng, removed);
    c.step();
  }
  c.net.set_all({.delay_us = 300});
  uint64_t ms = c.settle();
  RecordProperty("settle_ms", static_cast<int>(ms));
  c.expect_converged("after healing");
  for (auto& node : c.nodes) expect_values(*node, e, removed);
  uint64_t retransmits = 0;
  for (auto& node : c.nodes)
    for (auto& p : node->rep->peers()) {
      retransmits += p.retransmits;
    }
  EXPECT_GT(retransmits, 0u) << "a 20 % loss must have needed retransmissions";
  EXPECT_GT(c.net.dropped, 0u);
  EXPECT_GT(c.net.duplicated, 0u);
  for (auto& node : c.nodes) {
    EXPECT_GT(node->rep->gate().rejected(Reject::Replay), 0u) << "duplicates are refused as replays";
    EXPECT_EQ(node->rep->gate().rejected_total(), node->rep->gate().rejected(Reject::Replay));
  }
}

std::vector<NetCase> net_cases() {
  std::vector<NetCase> v;
  for (int n = 2; n <= 10; ++n) v.push_back({n, 100u + static_cast<uint32_t>(n)});
  v.push_back({3, 7});
  v.push_back({5, 8});
  return v;
}
INSTANTIATE_TEST_SUITE_P(Instances, LossyNetwork, ::testing::ValuesIn(net_cases()));

TEST(Replicator, PartitionAndHeal) {
  Cluster c(3);
  c.run(5);
  // node 3 cut off from both others
  for (uint32_t other : {1u, 2u}) {
    c.net.link(3, other).down = true;
    c.net.link(other, 3).down = true;
  }
  for (int i = 0; i < 100; ++i) {
    c.at(1).store.gc_add(kGc, Key::index(0), 1);
    c.at(3).store.gc_add(kGc, Key::index(0), 2);
    c.step();
  }
  c.run(3500);
  EXPECT_EQ(c.at(1).store.gc_value(kGc, Key::index(0)), 100u) << "nothing crossed the partition";
  bool unreachable = false;
  for (auto& p : c.at(1).rep->peers())
    if (p.id == 3) unreachable = p.state == PeerState::Unreachable;
  EXPECT_TRUE(unreachable) << "silent for more than 3 s";
  for (uint32_t other : {1u, 2u}) {
    c.net.link(3, other).down = false;
    c.net.link(other, 3).down = false;
  }
  c.settle();
  for (uint32_t id : {1u, 2u, 3u}) EXPECT_EQ(c.at(id).store.gc_value(kGc, Key::index(0)), 300u) << id;
  c.expect_converged("healed");
  for (auto& p : c.at(1).rep->peers()) EXPECT_EQ(p.state, PeerState::Active) << p.id;
}

// ---- coalescing ----------------------------------------------------------------------------------

// A skewed (Zipf, s = 1.2) update stream on 200 keys at node 1; node 2 is on a fast link, node 3
// behind a slow one (200 KB/s with a queue: its RTT climbs far above its minimum as soon as
// node 1 sends more than the link carries). The slow peer lags and gets coalesced ranges; both
// end with every update.
TEST(Replicator, CoalescingSavesOnASkewedMixWhenAPeerLags) {
  Cluster c(3, 5);
  c.net.link(1, 3).bytes_per_ms = 200;
  c.net.link(1, 3).delay_us = 2'000;
  c.net.link(3, 1).delay_us = 2'000;
  c.run(100);
  std::mt19937_64 rng(3);
  std::vector<double> w(200);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 1.0 / std::pow(static_cast<double>(i + 1), 1.2);
  std::discrete_distribution<size_t> zipf(w.begin(), w.end());
  uint64_t updates = 0;
  Expect e;
  // the far peer's RTT climbs when the window fills: a burst, then a steady stream
  for (int ms = 0; ms < 2000; ++ms) {
    for (int k = 0; k < 50; ++k) {
      uint64_t key = zipf(rng);
      c.at(1).store.gc_add(kGcKeyed, key8(key), 1);
      ++e.gck[key];
      ++updates;
    }
    c.step();
  }
  c.settle(30000);
  for (uint32_t id : {2u, 3u})
    for (auto& [k, v] : e.gck) ASSERT_EQ(c.at(id).store.gc_value(kGcKeyed, key8(k)), v) << "node " << id;
  PeerStatus near{}, far{};
  for (auto& p : c.at(1).rep->peers()) (p.id == 2 ? near : far) = p;
  double saved_far = 1.0 - static_cast<double>(far.records_sent) / static_cast<double>(updates);
  double saved_near = 1.0 - static_cast<double>(near.records_sent) / static_cast<double>(updates);
  RecordProperty("updates", static_cast<int>(updates));
  RecordProperty("records_near", static_cast<int>(near.records_sent));
  RecordProperty("records_far", static_cast<int>(far.records_sent));
  std::printf("updates %lu; records to the near peer %lu (%.1f %% saved), to the far peer %lu (%.1f %% saved), "
              "versions coalesced for the far peer %lu\n",
              static_cast<unsigned long>(updates), static_cast<unsigned long>(near.records_sent), 100 * saved_near,
              static_cast<unsigned long>(far.records_sent), 100 * saved_far, static_cast<unsigned long>(far.coalesced));
  EXPECT_GE(saved_far, 0.5) << "against one record per update (the thesis's uncoalesced log)";
  EXPECT_LT(far.records_sent, near.records_sent) << "the lagging peer got fewer, larger-step records";
  EXPECT_GT(far.coalesced, 0u);
}

// ---- stragglers ----------------------------------------------------------------------------------

TEST(Replicator, AStragglerIsDetectedByRttAndDoesNotSlowTheOthers) {
  Cluster c(3, 9);
  c.run(50);
  for (int ms = 0; ms < 200; ++ms) {
    c.at(1).store.gc_add(kGc, Key::index(0), 1);
    c.step();
  }
  // node 3's path degrades: 1 ms -> 150 ms each way
  c.net.link(1, 3).delay_us = 150'000;
  c.net.link(3, 1).delay_us = 150'000;
  bool saw_lagging = false;
  for (int ms = 0; ms < 7000; ++ms) {
    c.at(1).store.gc_add(kGc, Key::index(0), 1);
    c.step();
    for (auto& p : c.at(1).rep->peers()) {
      if (p.id == 3 && p.state == PeerState::Lagging) saw_lagging = true;
      if (p.id != 2) continue;
      ASSERT_EQ(p.state, PeerState::Active) << "the near peer is not held back (ms " << ms << ")";
    }
  }
  PeerStatus far{};
  for (auto& p : c.at(1).rep->peers())
    if (p.id == 3) far = p;
  EXPECT_TRUE(saw_lagging);
  EXPECT_EQ(far.state, PeerState::Straggler) << "lagging for more than 5 s";
  EXPECT_GT(far.srtt_us, 250'000u);
  EXPECT_LT(far.min_rtt_us, far.srtt_us);
  // the near peer is current within a few ms at any time
  uint64_t v = c.at(1).store.gc_value(kGc, Key::index(0));
  c.run(5);
  EXPECT_EQ(c.at(2).store.gc_value(kGc, Key::index(0)), v);
  c.settle(10000);
  EXPECT_EQ(c.at(3).store.gc_value(kGc, Key::index(0)), 7200u);
}

// ---- join, drain, fold, restart ---------------------------------------------------------------

TEST(Replicator, JoinFromASnapshot) {
  Cluster c(2, 11);
  c.run(5);
  std::mt19937_64 rng(1);
  Expect e;
  std::set<uint32_t> removed;
  for (int i = 0; i < 3000; ++i) random_op(*c.nodes[i % 2], e, rng, removed);
  for (uint64_t k = 0; k < 1500; ++k) {  // enough keys for many chunks
    c.at(1).store.gc_add(kGcKeyed, key8(10000 + k), k + 1);
    e.gck[10000 + k] = k + 1;
  }
  c.settle();
  // node 3 arrives: the others know it (the LSDB), it joins from node 1 over a lossy network
  Node& j = c.add(3);
  c.members();
  c.net.set_all({.delay_us = 500, .jitter_us = 500, .loss = 0.1});
  c.run(2);
  ASSERT_TRUE(j.rep->join(1).has_value());
  EXPECT_EQ(j.rep->join_state(), JoinState::Requested);
  uint64_t to_joiner_before = 0;
  for (auto& p : c.at(2).rep->peers())
    if (p.id == 3) to_joiner_before = p.records_sent;
  for (int ms = 0; ms < 5000 && j.rep->join_state() != JoinState::Done; ++ms) {
    if (ms % 3 == 0) random_op(c.at(2), e, rng, removed);  // the others keep working
    c.step();
  }
  ASSERT_EQ(j.rep->join_state(), JoinState::Done);
  EXPECT_EQ(c.at(1).rep->stats().snapshots_served, 1u);
  EXPECT_GT(c.at(1).rep->stats().snapshot_chunks_sent, 20u);
  c.net.set_all({.delay_us = 500});
  c.settle();
  c.expect_converged("after the join");
  expect_values(j, e, removed);
  uint64_t to_joiner = 0;
  for (auto& p : c.at(2).rep->peers())
    if (p.id == 3) to_joiner = p.records_sent - to_joiner_before;
  uint64_t cells = 0;
  (void)c.at(2).store.cells([&](uint8_t, const Key&) { ++cells; });
  EXPECT_LT(to_joiner, cells / 2) << "after the snapshot the others sent the joiner only what was newer";
  EXPECT_GE(j.rep->received().at(c.at(1).rep->self()), 1u);
}

TEST(Replicator, DrainOnLeaveThenFold) {
  Cluster c(3, 12);
  c.run(5);
  for (uint32_t id : {1u, 2u, 3u}) {
    c.at(id).store.gc_add(kGc, Key::index(2), id * 10);
    c.at(id).store.pn_add(kPn, Key::index(1), -static_cast<int64_t>(id));
    c.at(id).store.cms_add(kCms, ac_mix64(5), id);
  }
  c.settle();
  uint64_t gc_before = c.at(1).store.gc_value(kGc, Key::index(2));
  ASSERT_EQ(gc_before, 60u);
  // node 3 leaves: its traffic is gone, a last update, then drain
  c.at(3).store.gc_add(kGc, Key::index(2), 5);
  c.at(3).rep->leave();
  for (int ms = 0; ms < 2000 && !c.at(3).rep->drained(); ++ms) c.step();
  ASSERT_TRUE(c.at(3).rep->drained());
  EXPECT_TRUE(c.at(3).rep->drain_missing().empty());
  // the LSDB withdraws it; the others fold its slot once both hold its final version
  Origin three = c.at(3).rep->self();
  c.nodes.pop_back();
  c.members();
  c.run(1500);
  for (uint32_t id : {1u, 2u}) {
    Node& n = c.at(id);
    EXPECT_EQ(n.rep->stats().folded, 1u) << id;
    EXPECT_TRUE(n.rep->folded().count(three)) << id;
    EXPECT_EQ(n.rep->stats().gone, 0u) << "a graceful leave is not a crash";
    for (auto& [s, o] : n.rep->slots()) EXPECT_NE(o, three) << "its slot is free again";
    EXPECT_EQ(n.store.gc_value(kGc, Key::index(2)), 65u) << "folding changes no value";
    EXPECT_EQ(n.store.pn_value(kPn, Key::index(1)), -6);
    EXPECT_EQ(n.store.gc_cell(kGc, Key::index(2))->retired, 35u);
  }
  c.expect_converged("after the fold");
  // a late duplicate of the leaver's messages is dropped, not merged again
  EXPECT_EQ(c.at(1).store.gc_value(kGc, Key::index(2)), 65u);
}

// A leaver's set add is still live when it is folded (its slot stays reserved); a joiner's
// snapshot carries that slot, so the joiner holds the element like the others (the IDS lab found
// a restarted instance missing flags that only a drained incarnation's adds held).
TEST(Replicator, AJoinerHoldsTheLiveSetAddsOfAFoldedLeaver) {
  Cluster c(3, 16);
  c.run(5);
  c.at(3).store.set_add(kSet, key4(7));
  c.at(3).store.gc_add(kGc, Key::index(1), 9);
  c.settle();
  c.at(3).rep->leave();
  for (int ms = 0; ms < 2000 && !c.at(3).rep->drained(); ++ms) c.step();
  ASSERT_TRUE(c.at(3).rep->drained());
  Origin three = c.at(3).rep->self();
  c.nodes.pop_back();
  c.members();
  c.run(1500);
  ASSERT_TRUE(c.at(1).rep->folded().count(three));
  Node& j = c.add(4);
  c.members();
  c.run(2);
  ASSERT_TRUE(j.rep->join(1).has_value());
  for (int ms = 0; ms < 3000 && j.rep->join_state() != JoinState::Done; ++ms) c.step();
  ASSERT_EQ(j.rep->join_state(), JoinState::Done);
  c.settle();
  EXPECT_TRUE(j.store.set_contains(kSet, key4(7))) << "the folded leaver's live add";
  EXPECT_EQ(j.store.gc_value(kGc, Key::index(1)), 9u) << "its counts, in the retired total";
  EXPECT_TRUE(j.rep->folded().count(three));
  c.expect_converged("after the join");
}

TEST(Replicator, DrainTimesOutWithAnUnreachableMember) {
  ReplicatorConfig cfg;
  cfg.drain_timeout_us = 2'000'000;
  Cluster c(3, 13, cfg);
  c.run(5);
  c.net.link(1, 3).down = true;
  c.net.link(3, 1).down = true;
  c.at(1).store.gc_add(kGc, Key::index(0), 1);
  c.at(1).rep->leave();
  c.run(2500);
  EXPECT_FALSE(c.at(1).rep->drained());
  EXPECT_TRUE(c.at(1).rep->drain_timed_out());
  EXPECT_EQ(c.at(1).rep->drain_missing(), std::vector<uint32_t>{3});
}

// As in a lab: the leaver is announced down as it leaves, so the others' LSDB takes it out of
// their members before its last delta and its LEAVE arrive. It drains all the same: the others
// still acknowledge it and answer its LEAVE (tests/integration/state_nf_lab_test.py saw the drain
// time out before).
TEST(Replicator, DrainsWhenTheOthersDroppedItFromTheirMembersFirst) {
  Cluster c(3, 15);
  c.run(5);
  c.at(3).store.gc_add(kGc, Key::index(2), 10);
  c.settle();
  ASSERT_EQ(c.at(1).store.gc_value(kGc, Key::index(2)), 10u);
  // a last update, then it leaves and the others' LSDB drops it at once
  c.at(3).store.gc_add(kGc, Key::index(2), 5);
  c.at(3).rep->leave();
  for (uint32_t id : {1u, 2u}) c.at(id).rep->set_members(c.member_list(3));
  for (int ms = 0; ms < 2000 && !c.at(3).rep->drained(); ++ms) c.step();
  EXPECT_TRUE(c.at(3).rep->drained()) << c.at(3).rep->drain_missing().size() << " members missing";
  EXPECT_FALSE(c.at(3).rep->drain_timed_out());
  for (uint32_t id : {1u, 2u}) EXPECT_EQ(c.at(id).store.gc_value(kGc, Key::index(2)), 15u) << id;
}

// Node 1 crashes after its last update reached node 2 but not node 3; it comes back as a new
// incarnation. Node 2 relays the old incarnation's slot, so node 3 ends with it too.
TEST(Replicator, ACrashedOriginIsRelayedBySurvivors) {
  Cluster c(3, 14);
  c.run(5);
  c.at(1).store.gc_add(kGc, Key::index(4), 10);
  c.settle();
  c.net.link(1, 3).down = true;
  c.at(1).store.gc_add(kGc, Key::index(4), 7);
  c.run(20);
  EXPECT_EQ(c.at(2).store.gc_value(kGc, Key::index(4)), 17u);
  EXPECT_EQ(c.at(3).store.gc_value(kGc, Key::index(4)), 10u);
  // crash: the process and its maps are gone; a new incarnation starts empty
  c.nodes.erase(c.nodes.begin());
  c.net.link(1, 3).down = false;
  c.add(1, 5000);
  c.members();
  c.settle();
  EXPECT_EQ(c.at(3).store.gc_value(kGc, Key::index(4)), 17u) << "node 2 relayed what it held of the old incarnation";
  EXPECT_GE(c.at(2).rep->stats().gone, 1u);
  EXPECT_GE(c.at(2).rep->stats().relayed_cells, 1u);
  c.at(1).store.gc_add(kGc, Key::index(4), 1);
  c.settle();
  for (uint32_t id : {1u, 2u, 3u}) EXPECT_EQ(c.at(id).store.gc_value(kGc, Key::index(4)), 18u) << id;
  c.expect_converged("after the restart");
}

// ---- folding crashed origins (docs/state.md 3.12) ------------------------------------------------

// A counter update only (no set adds: a slot with live adds of a folded origin stays reserved
// until removes make them dead, which a test of the fold would have to wait for).
void counter_op(Node& n, Expect& e, std::mt19937_64& rng) {
  ++e.ops;
  counter_update(n, e, rng, rng() % 3);
}

// The crashed node's last updates reach one survivor only: it runs until node `to` holds
// every version of node `from` (over whatever the links do).
void deliver_only_to(Cluster& c, uint32_t from, uint32_t to) {
  Origin o = c.at(from).rep->self();
  for (int ms = 0; ms < 10000; ++ms) {
    c.step();  // its tick stamps what it did since the last one
    auto r = c.at(to).rep->received();
    if (r.count(o) && r.at(o) >= c.at(from).rep->stats().version) return;
  }
  ADD_FAILURE() << "node " << to << " never held node " << from << "'s last version";
}

void expect_folded(Cluster& c, const Origin& g, const std::string& what) {
  for (auto& n : c.nodes) {
    EXPECT_TRUE(n->rep->folded().count(g)) << what << ": node " << n->id;
    EXPECT_EQ(n->rep->stats().folded_gone, 1u) << what << ": node " << n->id;
    for (auto& [s, o] : n->rep->slots()) EXPECT_NE(o, g) << what << ": node " << n->id << " still holds its slot";
    EXPECT_TRUE(n->rep->gone().empty()) << what << ": node " << n->id << " still announces a gone origin";
    EXPECT_EQ(n->rep->stats().store_errors, 0u);
  }
}

// Four instances on a lossy, duplicating, reordering network. Node 1 crashes after its last
// updates reached node 2 only (others never got them directly) and comes back as a new
// incarnation that never heard of the old one. While every instance keeps updating (the new
// node 1 too), the survivors relay the old origin, announce their relay versions, and fold it:
// every replica ends with the sequential reference's values, no slot of the dead origin, the
// same retired totals, and the late messages of the dead origin refused.
TEST(Replicator, ACrashedOriginIsFoldedWhileTheOthersKeepReplicating) {
  for (uint32_t seed : {21u, 22u, 23u, 24u, 25u, 26u, 27u, 28u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(4, seed);
    sim::Link lossy{.delay_us = 300, .jitter_us = 1500, .loss = 0.15, .dup = 0.1};
    c.net.set_all(lossy);
    std::mt19937_64 rng(seed);
    Expect e;
    std::set<uint32_t> removed;
    for (int ms = 0; ms < 200; ++ms) {
      counter_op(c.at(1), e, rng);
      for (int k = 0; k < 2; ++k) random_op(*c.nodes[1 + rng() % 3], e, rng, removed);
      c.step();
    }
    // node 1's last words reach node 2 only
    c.net.link(1, 3).down = c.net.link(1, 4).down = true;
    c.net.capture = true;  // its datagrams, for a replay after the fold
    for (int ms = 0; ms < 30; ++ms) {
      counter_op(c.at(1), e, rng);
      c.step();
    }
    deliver_only_to(c, 1, 2);
    Origin g = c.at(1).rep->self();
    c.nodes.erase(c.nodes.begin());
    c.net.link(1, 3).down = c.net.link(1, 4).down = false;
    c.add(1, 9000);  // restarted: a new incarnation with empty maps
    c.members();
    for (int ms = 0; ms < 1500; ++ms) {
      for (int k = 0; k < 2; ++k) random_op(*c.nodes[rng() % c.nodes.size()], e, rng, removed);
      c.step();
    }
    c.net.capture = false;
    c.net.set_all({.delay_us = 300});
    c.settle();
    c.run(3000);  // folds, then the end of the announcements
    expect_folded(c, g, "after the restart");
    c.expect_converged("after the fold");
    for (auto& node : c.nodes) expect_values(*node, e, removed);
    EXPECT_GE(c.at(1).rep->stats().gone_adopted, 1u) << "the new incarnation learnt of the old one from the others";
    uint64_t relayed = 0;
    for (auto& node : c.nodes) relayed += node->rep->stats().relayed_cells;
    EXPECT_GT(relayed, 0u);
    uint64_t retired = 0;
    for (auto& [k, v] : e.gck) retired += c.at(3).store.gc_cell(kGcKeyed, key8(k))->retired;
    EXPECT_GT(retired, 0u) << "the dead origin's counts moved into the retired totals";
    for (auto& node : c.nodes)
      for (auto& p : node->rep->peers()) EXPECT_EQ(p.wire_version, kWireVersion);
    // the dead incarnation's datagrams, delivered again after the fold, change nothing
    size_t stale = 0;
    for (auto& [from, to, d] : c.net.captured) {
      uint64_t inc = 0;
      for (size_t i = 16; i < 24; ++i) inc = inc << 8 | d[i];
      if (from != Node::addr_of(1) || inc != g.incarnation) continue;
      c.net.inject({from, 4795}, {to, 4795}, d);
      ++stale;
    }
    EXPECT_GT(stale, 0u);
    c.run(50);
    c.expect_converged("after stale datagrams of the dead origin");
    for (auto& node : c.nodes) expect_values(*node, e, removed);
  }
}

// Removed from the LSDB without a leave (no restart), during a partition between the two
// survivors: nobody folds while one cannot hear the other (the condition needs every member),
// a joiner arriving meanwhile takes part, and after the heal all three fold to the same values.
TEST(Replicator, AFoldWaitsForAPartitionToHealAndIncludesAJoiner) {
  Cluster c(3, 31);
  c.run(5);
  std::mt19937_64 rng(31);
  Expect e;
  std::set<uint32_t> removed;
  for (int i = 0; i < 300; ++i) counter_op(*c.nodes[i % 3], e, rng);
  c.settle();
  c.net.link(1, 3).down = true;
  for (int i = 0; i < 50; ++i) counter_op(c.at(1), e, rng);
  deliver_only_to(c, 1, 2);
  Origin g = c.at(1).rep->self();
  c.nodes.erase(c.nodes.begin());
  c.members();
  c.net.link(2, 3).down = c.net.link(3, 2).down = true;
  c.run(1000);
  for (uint32_t id : {2u, 3u}) EXPECT_EQ(c.at(id).rep->stats().gone, 0u) << "within the grace, not gone yet";
  c.run(2000);
  for (uint32_t id : {2u, 3u}) {
    EXPECT_EQ(c.at(id).rep->stats().gone, 1u) << id;
    EXPECT_EQ(c.at(id).rep->stats().folded_gone, 0u) << id << ": folded during a partition";
  }
  // a joiner arrives (from node 2) while the fold is pending
  Node& j = c.add(4);
  c.members();
  c.run(2);
  ASSERT_TRUE(j.rep->join(2).has_value());
  for (int ms = 0; ms < 5000 && j.rep->join_state() != JoinState::Done; ++ms) {
    if (ms % 4 == 0) counter_op(c.at(2), e, rng);
    c.step();
  }
  ASSERT_EQ(j.rep->join_state(), JoinState::Done);
  c.run(1000);
  // the joiner may fold already (it hears both survivors), the survivors may not
  for (uint32_t id : {2u, 3u}) EXPECT_EQ(c.at(id).rep->stats().folded_gone, 0u) << id;
  c.net.link(2, 3).down = c.net.link(3, 2).down = false;
  c.settle();
  c.run(3000);
  expect_folded(c, g, "after the heal");
  c.expect_converged("after the heal");
  for (auto& node : c.nodes) expect_values(*node, e, removed);
}

// Three instances with a 5-s node grace that counted `ops` updates and acknowledged them all.
struct NodeLossCase {
  explicit NodeLossCase(uint32_t seed, int ops) : c(3, seed, cfg()), rng(seed) {
    c.run(5);
    for (int i = 0; i < ops; ++i) counter_op(*c.nodes[i % 3], e, rng);
    c.settle();
  }
  static ReplicatorConfig cfg() {
    ReplicatorConfig r;
    r.node_gone_grace_us = 5'000'000;
    return r;
  }
  Cluster c;
  std::mt19937_64 rng;
  Expect e;
  std::set<uint32_t> removed;
};

// A whole node dies (docs/state.md 3.13): its router leaves the SPF tree of every survivor but
// its VNF LSA stays in their LSDBs (nobody is left to withdraw it), so the survivors list its
// instance `lost`. It is not gone after the ordinary grace (a partition that heals must not cost
// a restart), it is after the node grace; the survivors fold it to the reference's values. When
// the node comes back its instance is a new incarnation that joins from a snapshot: the old
// incarnation's counts are in the retired totals once, never again in a slot.
TEST(Replicator, ADeadNodeIsFoldedAfterTheNodeGraceAndItsReturnIsNotCountedTwice) {
  NodeLossCase t(51, 300);
  auto& [c, rng, e, removed] = t;
  c.net.link(1, 3).down = true;
  for (int i = 0; i < 50; ++i) counter_op(c.at(1), e, rng);
  deliver_only_to(c, 1, 2);  // its last counts reached node 2 only
  Origin g = c.at(1).rep->self();
  Endpoint dead_addr = c.at(1).transport.me();
  c.nodes.erase(c.nodes.begin());
  c.net.link(1, 3).down = false;
  auto with_lost = [&] {
    auto v = c.member_list();
    v.push_back({1, dead_addr, true});
    return v;
  };
  for (auto& n : c.nodes) n->rep->set_members(with_lost());
  for (int ms = 0; ms < 3000; ++ms) {
    if (ms % 10 == 0) counter_op(*c.nodes[ms / 10 % 2], e, rng);
    c.step();
  }
  for (uint32_t id : {2u, 3u}) {
    EXPECT_EQ(c.at(id).rep->stats().gone, 0u) << id << ": gone after the ordinary grace, its node only lost";
    bool pending = false;
    for (auto& p : c.at(id).rep->peers())
      if (p.id == 1) pending = !p.member && p.node_lost && p.gone_in_us > 0 && p.gone_in_us <= 2'000'000;
    EXPECT_TRUE(pending) << id << ": the status shows the node grace running";
  }
  c.run(2500);
  for (uint32_t id : {2u, 3u}) {
    EXPECT_EQ(c.at(id).rep->stats().gone, 1u) << id;
    EXPECT_EQ(c.at(id).rep->stats().gone_node_lost, 1u) << id;
  }
  c.settle();
  c.run(3000);
  expect_folded(c, g, "after the node grace");
  c.expect_converged("after the fold");
  for (auto& node : c.nodes) expect_values(*node, e, removed);
  // the node comes back: its instance restarts with empty maps, joins from node 2
  Node& back = c.add(1, 9000);
  c.members();
  c.run(2);
  ASSERT_TRUE(back.rep->join(2).has_value());
  for (int ms = 0; ms < 5000 && back.rep->join_state() != JoinState::Done; ++ms) c.step();
  ASSERT_EQ(back.rep->join_state(), JoinState::Done);
  for (int i = 0; i < 100; ++i) {
    counter_op(*c.nodes[i % 3], e, rng);
    c.step();
  }
  c.settle();
  c.run(1000);
  c.expect_converged("after the return");
  for (auto& node : c.nodes) {
    expect_values(*node, e, removed);
    for (auto& [s, o] : node->rep->slots()) EXPECT_NE(o, g) << "node " << node->id << " holds the old slot again";
  }
}

// A node lost and found again within the node grace (a partition that healed in time): its
// instance was never gone, it is a member again and nothing is folded or refused.
TEST(Replicator, ANodeFoundAgainWithinTheNodeGraceStaysAMember) {
  NodeLossCase t(52, 100);
  auto& [c, rng, e, removed] = t;
  for (uint32_t a : {2u, 3u}) c.net.link(1, a).down = c.net.link(a, 1).down = true;
  auto lost1 = [&](uint32_t except) {
    std::vector<Replicator::Member> v;
    for (auto& n : c.nodes) v.push_back({n->id, n->transport.me(), n->id == 1 && except != 1});
    return v;
  };
  for (uint32_t id : {2u, 3u}) c.at(id).rep->set_members(lost1(id));
  // node 1 loses the other two the same way
  std::vector<Replicator::Member> v1;
  for (auto& n : c.nodes) v1.push_back({n->id, n->transport.me(), n->id != 1});
  c.at(1).rep->set_members(v1);
  for (int ms = 0; ms < 4000; ++ms) {
    if (ms % 10 == 0) counter_op(*c.nodes[ms / 10 % 3], e, rng);
    c.step();
  }
  for (uint32_t a : {2u, 3u}) c.net.link(1, a).down = c.net.link(a, 1).down = false;
  c.members();
  c.settle();
  c.run(6000);
  for (auto& n : c.nodes) {
    EXPECT_EQ(n->rep->stats().gone, 0u) << n->id;
    EXPECT_EQ(n->rep->stats().gone_sender, 0u) << n->id;
  }
  c.expect_converged("after the heal");
  for (auto& node : c.nodes) expect_values(*node, e, removed);
}

// A message of an origin declared gone is refused and counted (its inputs are frozen): here
// node 2's LSDB dropped a live instance, which keeps sending; node 3 still lists it, adopts the
// declaration from node 2's gone section, and tells node 1, which counts that it was declared
// gone (an operator restarts it: a new incarnation).
TEST(Replicator, MessagesOfAGoneOriginAreRefused) {
  Cluster c(3, 41);
  c.run(5);
  c.at(1).store.gc_add(kGc, Key::index(1), 4);
  c.settle();
  c.at(2).rep->set_members(c.member_list(1));
  c.run(2500);
  EXPECT_EQ(c.at(2).rep->stats().gone, 1u);
  EXPECT_EQ(c.at(3).rep->stats().gone_adopted, 1u);
  c.at(1).store.gc_add(kGc, Key::index(1), 3);
  c.run(500);
  for (uint32_t id : {2u, 3u}) {
    EXPECT_EQ(c.at(id).store.gc_value(kGc, Key::index(1)), 4u) << id << ": a frozen origin's new counts are not taken";
    EXPECT_GT(c.at(id).rep->stats().gone_sender, 0u) << id;
  }
  EXPECT_GT(c.at(1).rep->stats().declared_gone_self, 0u) << "it learns that the others declared it gone";
}

// ---- forged, replayed, rotated -------------------------------------------------------------------

TEST(Replicator, ForgedAndReplayedMessagesAreRefusedAndCounted) {
  Cluster c(2, 15);
  c.run(5);
  c.net.capture = true;
  c.at(1).store.gc_add(kGc, Key::index(3), 4);
  c.settle();
  c.net.capture = false;
  uint64_t before = c.at(2).store.gc_value(kGc, Key::index(3));
  ASSERT_EQ(before, 4u);
  // replay everything node 1 sent to node 2
  size_t replayed = 0;
  for (auto& [from, to, bytes] : c.net.captured)
    if (from == Node::addr_of(1)) {
      c.net.inject(c.at(1).transport.me(), c.at(2).transport.me(), bytes);
      ++replayed;
    }
  uint64_t replay0 = c.at(2).rep->gate().rejected(Reject::Replay);
  c.run(2);
  EXPECT_EQ(c.at(2).rep->gate().rejected(Reject::Replay) - replay0, replayed);
  // forged: a sender with another key claiming to be node 1
  sim::Net other(1);
  Node forger(c.net, schema(), 1, 1001, {}, sim::test_keys({1}, 1));
  auto wrong = Keyring::make({{1, std::vector<uint8_t>(32, 0x99)}}, 1);
  ASSERT_TRUE(wrong.has_value());
  forger.rep->set_keyring(*wrong);
  forger.rep->set_members({{2, c.at(2).transport.me()}});
  forger.store.gc_add(kGc, Key::index(3), 1000);
  for (int i = 0; i < 300; ++i) {
    c.net.clock.advance(1000);
    forger.rep->poll();
    c.at(2).rep->poll();
  }
  EXPECT_GT(c.at(2).rep->gate().rejected(Reject::BadTag), 0u);
  EXPECT_EQ(c.at(2).store.gc_value(kGc, Key::index(3)), before) << "nothing forged was merged";
}

TEST(Replicator, KeyRotationWithoutRestart) {
  Cluster c(3, 16);
  c.run(5);
  auto tick_ops = [&](int ms) {
    for (int i = 0; i < ms; ++i) {
      for (auto& n : c.nodes) n->store.gc_add(kGc, Key::index(1), 1);
      c.step();
    }
  };
  tick_ops(50);
  for (auto& n : c.nodes) n->rep->set_keyring(sim::test_keys({1, 2}, 1));  // new key installed
  tick_ops(50);
  for (auto& n : c.nodes) n->rep->set_keyring(sim::test_keys({1, 2}, 2));  // switched, one by one
  tick_ops(50);
  for (auto& n : c.nodes) n->rep->set_keyring(sim::test_keys({2}, 2));     // old key removed
  tick_ops(50);
  c.settle();
  for (auto& n : c.nodes) {
    EXPECT_EQ(n->store.gc_value(kGc, Key::index(1)), 600u) << n->id;
    EXPECT_EQ(n->rep->gate().rejected_total(), 0u) << "no message refused during the rollover";
    EXPECT_GT(n->rep->gate().by_key().at(1), 0u);
    EXPECT_GT(n->rep->gate().by_key().at(2), 0u);
  }
}

}  // namespace
}  // namespace anychain::state
