// Expiry of shared-state entries (agent/state/expiry.*, docs/state.md 3.11) on the C++ twin:
// a set element is removed `after` its last add was first seen here, a new add restarts its age,
// an add the remove did not observe wins; a winner-map entry is deleted once its merged `seen` is
// older than `after` on every replica alike, and a late record of it is deleted again. Then the
// same through replicators over the simulated network: one replica's expiry removes the flag on
// every replica.
#include <gtest/gtest.h>

#include <map>

#include "sim.h"
#include "state/expiry.h"

namespace anychain::state {
namespace {

using namespace std::chrono_literals;
using Tp = std::chrono::steady_clock::time_point;
enum : uint8_t { kGc = 1, kSet = 2, kReg = 3 };

const Schema& schema() {
  static const Schema s = *Schema::make({
      {.id = kGc, .kind = Kind::GCounter, .name = "gc", .cells = 4},
      {.id = kSet, .kind = Kind::AwSet, .name = "flagged", .cells = 64, .key_size = 4},
      {.id = kReg, .kind = Kind::RegMap, .name = "shared", .cells = 64, .key_size = 4},
  });
  return s;
}
Key key4(uint32_t v) { return Key::bytes(&v, 4); }
constexpr uint64_t kSec = 1'000'000'000ULL;

// Ship every set element and register of `from` to `to`, each slot of `from` into the slot `to`
// gave its origin (`slots`: from's slot -> to's): what the replicator sends, as records.
void ship(TwinStore& from, TwinStore& to, std::map<uint8_t, uint8_t> slots) {
  std::vector<std::pair<uint8_t, Key>> cells;
  ASSERT_TRUE(from.cells([&](uint8_t o, const Key& k) { cells.emplace_back(o, k); }).has_value());
  for (auto& [o, k] : cells) {
    if (o == kGc) continue;
    (void)from.read(o, k, kAllSlots, [&](uint8_t s, const CellValue& v) {
      ASSERT_TRUE(o == kReg || slots.contains(s)) << "slot " << int(s);
      const uint8_t d = o == kReg ? 0 : slots[s];
      ASSERT_TRUE(to.merge(o, k, d, v, 0).has_value());
    });
  }
}

TEST(Expiry, AFlagIsRemovedAfterItsTimeAndANewAddRestartsIt) {
  TwinStore a(schema());
  Expiry e({{kSet, 60s}});
  const Tp t0{};
  ASSERT_TRUE(a.set_add(kSet, key4(7)));
  ASSERT_TRUE(e.sweep(a, t0, 0).has_value());
  ASSERT_TRUE(e.sweep(a, t0 + 59s, 0).has_value());
  EXPECT_TRUE(a.set_contains(kSet, key4(7))) << "59 s after its add";
  // another instance flags it again at t0 + 30 s (a new add, merged): the age restarts at the
  // first sweep that sees it
  TwinStore b(schema());
  ASSERT_TRUE(b.set_add(kSet, key4(7)));
  ship(b, a, {{0, 1}});
  ASSERT_TRUE(e.sweep(a, t0 + 60s, 0).has_value());
  EXPECT_TRUE(a.set_contains(kSet, key4(7))) << "the new add restarted its age at t0 + 60 s";
  EXPECT_EQ(e.stats().set_removed, 0u);
  ASSERT_TRUE(e.sweep(a, t0 + 119s, 0).has_value());
  EXPECT_TRUE(a.set_contains(kSet, key4(7)));
  std::vector<Key> changed;
  ASSERT_TRUE(a.changes([&](uint8_t, const Key& k) { changed.push_back(k); }).has_value());
  ASSERT_TRUE(e.sweep(a, t0 + 120s, 0).has_value());
  EXPECT_FALSE(a.set_contains(kSet, key4(7))) << "60 s after the last add was seen";
  EXPECT_EQ(e.stats().set_removed, 1u);
  // the remove is a change the replicator sends, and it observed both adds
  changed.clear();
  ASSERT_TRUE(a.changes([&](uint8_t, const Key& k) { changed.push_back(k); }).has_value());
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0], key4(7));
  const ac_awset_elem* el = a.set_cell(kSet, key4(7));
  ASSERT_NE(el, nullptr);
  EXPECT_EQ(el->rm[0], 1u);
  EXPECT_EQ(el->rm[1], 1u);
  // b receives the remove: gone there too; b's concurrent third add (not observed) wins
  ASSERT_TRUE(b.set_add(kSet, key4(7)));
  ship(a, b, {{0, 1}, {1, 0}});
  EXPECT_TRUE(b.set_contains(kSet, key4(7))) << "an add the remove did not observe wins";
  TwinStore c(schema());
  ship(a, c, {{0, 1}, {1, 2}});
  EXPECT_FALSE(c.set_contains(kSet, key4(7))) << "a replica holding only the observed adds";
  // an element absent at a sweep forgets its age; removed elements are not removed again
  ASSERT_TRUE(e.sweep(a, t0 + 500s, 0).has_value());
  EXPECT_EQ(e.stats().set_removed, 1u);
  EXPECT_EQ(e.stats().errors, 0u);
}

TEST(Expiry, AWinnerMapEntryIsDeletedByItsMergedSeenOnEveryReplica) {
  TwinStore a(schema()), b(schema());
  Expiry ea({{kReg, 90s}}), eb({{kReg, 90s}});
  ac_reg_value v{};
  v.writer = 1;
  v.seen = 1000 * kSec;
  v.data[0] = 9;
  ASSERT_TRUE(a.reg_insert(kReg, key4(1), v).has_value());
  v.seen = 1050 * kSec;
  v.data[0] = 3;
  ASSERT_TRUE(a.reg_insert(kReg, key4(2), v).has_value());
  ship(a, b, {{0, 1}, {1, 0}});
  // b used entry 1 later: its seen moves, replicated back to a (max)
  b.reg_seen(kReg, key4(1), 1080 * kSec);
  ship(b, a, {{0, 1}});
  ASSERT_EQ(a.reg_get(kReg, key4(1))->seen, 1080 * kSec);
  for (auto p : {std::pair{&a, &ea}, std::pair{&b, &eb}}) {
    ASSERT_TRUE(p.second->sweep(*p.first, Tp{}, 1140 * kSec).has_value());
    EXPECT_TRUE(p.first->reg_get(kReg, key4(2)).has_value()) << "seen 90 s ago: kept";
    ASSERT_TRUE(p.second->sweep(*p.first, Tp{}, 1141 * kSec).has_value());
    EXPECT_FALSE(p.first->reg_get(kReg, key4(2)).has_value()) << "seen 91 s ago: deleted";
    EXPECT_TRUE(p.first->reg_get(kReg, key4(1)).has_value()) << "its merged seen is b's, 61 s ago";
  }
  // a late record of the deleted entry re-creates it with its old seen: deleted again
  TwinStore late(schema());
  v.seen = 1050 * kSec;
  ASSERT_TRUE(late.reg_insert(kReg, key4(2), v).has_value());
  ship(late, b, {{0, 3}});
  ASSERT_TRUE(b.reg_get(kReg, key4(2)).has_value());
  ASSERT_TRUE(eb.sweep(b, Tp{}, 1142 * kSec).has_value());
  EXPECT_FALSE(b.reg_get(kReg, key4(2)).has_value());
  EXPECT_EQ(eb.stats().reg_deleted, 2u);
  ASSERT_TRUE(ea.sweep(a, Tp{}, 1171 * kSec).has_value());
  EXPECT_FALSE(a.reg_get(kReg, key4(1)).has_value()) << "91 s after the merged seen";
  EXPECT_EQ(ea.stats().reg_deleted, 2u);
}

TEST(Expiry, NeverAndBadRules) {
  TwinStore a(schema());
  ASSERT_TRUE(a.set_add(kSet, key4(1)));
  Expiry never({{kSet, 0s}});
  ASSERT_TRUE(never.sweep(a, Tp{}, 0).has_value());
  ASSERT_TRUE(never.sweep(a, Tp{} + 1000000s, 0).has_value());
  EXPECT_TRUE(a.set_contains(kSet, key4(1)));
  Expiry counter({{kGc, 1s}});
  auto r = counter.sweep(a, Tp{}, 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("object 1"), std::string::npos) << r.error().message;
  Expiry missing({{42, 1s}});
  EXPECT_FALSE(missing.sweep(a, Tp{}, 0).has_value());
  EXPECT_FALSE(a.local_remove(kSet, key4(99)).has_value()) << "no such element";
  EXPECT_FALSE(a.local_remove(kReg, key4(1)).has_value()) << "not a set";
  EXPECT_FALSE(a.local_delete(kSet, key4(1)).has_value()) << "not a winner map";
}

// Three replicators: an element flagged on two of them expires on the replica that sweeps it and
// the remove reaches the others; the third never swept, yet holds it removed.
TEST(Expiry, ARemoveMadeByExpiryReplicatesToEveryReplica) {
  sim::Net net(7);
  std::vector<std::unique_ptr<sim::Node>> nodes;
  for (uint32_t id = 1; id <= 3; ++id) nodes.push_back(std::make_unique<sim::Node>(net, schema(), id, 1000 + id, ReplicatorConfig{}));
  std::vector<Replicator::Member> m;
  for (auto& n : nodes) m.push_back({n->id, n->transport.me()});
  for (auto& n : nodes) n->rep->set_members(m);
  auto run = [&](int ms) {
    for (int i = 0; i < ms; ++i) {
      net.clock.advance(1000);
      for (auto& n : nodes) n->rep->poll();
    }
  };
  ASSERT_TRUE(nodes[0]->store.set_add(kSet, key4(5)));
  ASSERT_TRUE(nodes[1]->store.set_add(kSet, key4(5)));
  run(300);
  for (auto& n : nodes) ASSERT_TRUE(n->store.set_contains(kSet, key4(5))) << "node " << n->id;
  Expiry e({{kSet, 10s}});
  const Tp t0{};
  ASSERT_TRUE(e.sweep(nodes[2]->store, t0, 0).has_value());
  ASSERT_TRUE(e.sweep(nodes[2]->store, t0 + 10s, 0).has_value());
  EXPECT_EQ(e.stats().set_removed, 1u);
  run(300);
  for (auto& n : nodes) EXPECT_FALSE(n->store.set_contains(kSet, key4(5))) << "node " << n->id;
  EXPECT_TRUE(sim::canonical(*nodes[0], schema()) == sim::canonical(*nodes[1], schema()));
  EXPECT_TRUE(sim::canonical(*nodes[0], schema()) == sim::canonical(*nodes[2], schema()));
}

}  // namespace
}  // namespace anychain::state
