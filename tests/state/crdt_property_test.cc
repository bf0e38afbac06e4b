// CRDT laws and convergence of the objects of include/anychain/crdt.h through the C++ twin
// (agent/state/twin_store.h), against a sequential reference that knows nothing of slots.
//
//  - Laws: the joins are idempotent, commutative and associative on random cells; applying a set
//    of slot records gives the same cell in every order and with duplicates.
//  - Convergence: random operation histories over 2..10 replicas. Replicas ship their deltas
//    (the records of the cells they changed) at random moments; the network delivers them in a
//    random order, duplicating and losing some, while operations continue (so removes observe
//    partial knowledge). Then one round of anti-entropy (every replica's full state to every
//    other). Every replica must then hold the same per-origin state, and its merged values must
//    equal the sequential reference: counters the sum of all increments, sketches and filters the
//    cells of one sketch that saw every increment, the set the add-wins outcome of the dots each
//    remove observed, the map the largest value written.
//  - Every order: a small history whose messages are delivered in every permutation (with fixed
//    duplication/loss patterns): the same final state every time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "state/twin_store.h"

namespace anychain::state {
namespace {

enum : uint8_t { kGc = 1, kGcKeyed = 2, kPn = 3, kCms = 4, kCbf = 5, kSet = 6, kReg = 7 };

Schema test_schema() {
  auto s = Schema::make({
      {.id = kGc, .kind = Kind::GCounter, .name = "gc", .cells = 8},
      {.id = kGcKeyed, .kind = Kind::GCounter, .name = "gck", .cells = 64, .key_size = 8},
      {.id = kPn, .kind = Kind::PNCounter, .name = "pn", .cells = 4},
      {.id = kCms, .kind = Kind::CountMin, .name = "cms", .cells = 3 * 16, .rows = 3},
      {.id = kCbf, .kind = Kind::CountingBloom, .name = "cbf", .cells = 64, .rows = 3},
      {.id = kSet, .kind = Kind::AwSet, .name = "set", .cells = 64, .key_size = 4},
      {.id = kReg, .kind = Kind::RegMap, .name = "reg", .cells = 64, .key_size = 4},
  });
  if (!s) throw std::runtime_error(s.error().str());
  return *s;
}

Key key8(uint64_t v) { return Key::bytes(&v, 8); }
Key key4(uint32_t v) { return Key::bytes(&v, 4); }

// ---------------------------------------------------------------------------------------------
// Laws on random cells

class Laws : public ::testing::TestWithParam<uint32_t> {
 protected:
  std::mt19937_64 rng{GetParam()};
  uint64_t small() { return rng() % 50; }

  ac_gcounter gc() {
    ac_gcounter c{};
    for (auto& s : c.slot) s = rng() % 3 ? small() : 0;
    c.retired = rng() % 2 ? small() : 0;
    c.others = std::accumulate(c.slot + 1, c.slot + AC_CRDT_SLOTS, c.retired);
    return c;
  }
  ac_awset_elem set() {
    ac_awset_elem e{};
    for (int s = 0; s < AC_CRDT_SLOTS; ++s) {
      e.add[s] = static_cast<uint32_t>(small());
      e.rm[s] = static_cast<uint32_t>(rng() % (e.add[s] + 1));
    }
    return e;
  }
  ac_reg_value reg() {
    ac_reg_value v{};
    v.seen = small();
    v.writer = static_cast<uint32_t>(rng() % 4);
    for (int i = 0; i < 3; ++i) v.data[i] = static_cast<uint8_t>(rng() % 3);  // frequent ties
    return v;
  }
};

template <class T>
bool same(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// The three laws of a join on random states: idempotent, commutative, associative.
template <class T, class Gen, class Join>
void expect_lattice(Gen gen, Join join, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    T a = gen(), b = gen(), c = gen();
    T aa = a;
    join(aa, a);
    EXPECT_TRUE(same(aa, a)) << "idempotent";
    T ab = a, ba = b;
    join(ab, b);
    join(ba, a);
    EXPECT_TRUE(same(ab, ba)) << "commutative";
    T ab_c = ab, bc = b, a_bc = a;
    join(ab_c, c);
    join(bc, c);
    join(a_bc, bc);
    EXPECT_TRUE(same(ab_c, a_bc)) << "associative";
  }
}

TEST_P(Laws, GCounterJoin) {
  expect_lattice<ac_gcounter>([&] { return gc(); }, [](ac_gcounter& x, const ac_gcounter& y) { ac_gc_join(&x, &y); }, 200);
  for (int i = 0; i < 100; ++i) {
    ac_gcounter a = gc(), b = gc(), ab = a;
    ac_gc_join(&ab, &b);
    EXPECT_GE(ac_gc_value(&ab), std::max(ac_gc_value(&a), ac_gc_value(&b))) << "join is an upper bound";
  }
}

TEST_P(Laws, PnCounterJoin) {
  expect_lattice<ac_pncounter>([&] { return ac_pncounter{gc(), gc()}; },
                               [](ac_pncounter& x, const ac_pncounter& y) { ac_pn_join(&x, &y); }, 200);
}

TEST_P(Laws, SetJoin) {
  expect_lattice<ac_awset_elem>([&] { return set(); }, [](ac_awset_elem& x, const ac_awset_elem& y) { ac_set_join(&x, &y); },
                                200);
}

TEST_P(Laws, RegisterMerge) {
  expect_lattice<ac_reg_value>([&] { return reg(); }, [](ac_reg_value& x, const ac_reg_value& y) { ac_reg_merge(&x, &y); },
                               500);
  for (int i = 0; i < 500; ++i) {
    ac_reg_value a = reg(), b = reg(), aa = a, ab = a;
    EXPECT_EQ(ac_reg_merge(&aa, &a), 0) << "merging itself changes nothing";
    ac_reg_merge(&ab, &b);
    EXPECT_GE(ac_reg_cmp(&ab, &a), 0);
    EXPECT_GE(ac_reg_cmp(&ab, &b), 0);
    EXPECT_EQ(ab.seen, std::max(a.seen, b.seen));
  }
}

// Slot records (the delta form) applied in any order, any number of times, give one cell; and
// that cell's remote part equals the join of the records.
TEST_P(Laws, SlotRecordsInAnyOrderWithDuplicates) {
  for (int round = 0; round < 100; ++round) {
    struct Rec {
      uint32_t slot;
      uint64_t v;
    };
    std::vector<Rec> recs;
    for (int i = 0; i < 12; ++i) recs.push_back({static_cast<uint32_t>(1 + rng() % 15), small()});
    ac_gcounter want{};
    for (const Rec& r : recs) want.slot[r.slot] = std::max<uint64_t>(want.slot[r.slot], r.v);
    want.others = std::accumulate(want.slot + 1, want.slot + AC_CRDT_SLOTS, uint64_t{0});
    for (int order = 0; order < 10; ++order) {
      std::vector<Rec> seq = recs;
      for (int d = 0; d < 4; ++d) seq.push_back(recs[rng() % recs.size()]);  // duplicates
      std::shuffle(seq.begin(), seq.end(), rng);
      ac_gcounter c{};
      for (const Rec& r : seq) ac_gc_merge_slot(&c, r.slot, r.v);
      EXPECT_TRUE(same(c, want)) << "round " << round << " order " << order;
    }
    ac_gcounter own{};
    own.slot[0] = 5;
    EXPECT_EQ(ac_gc_merge_slot(&own, 0, 99), 0) << "the own slot is never merged";
    EXPECT_EQ(own.slot[0], 5u);
  }
}

// Folding a gone origin's slot (docs/state.md 3.12). The protocol folds only once every replica
// holds the same value of that slot and the same retired total; on such states folding is a
// homomorphism of the join (fold(a) join fold(b) = fold(a join b)), keeps every value, and the
// folded states still form a lattice (idempotent, commutative, associative joins, also mixed
// with later updates of the live slots). Folding different views of the slot would not: a
// replica that folded less than another keeps its lower retired total after the join (max),
// which is why the fold waits for every member's relay.
TEST_P(Laws, FoldingAgreedViewsKeepsTheLaws) {
  auto fold = [](ac_gcounter x, uint32_t s) {
    ac_gc_fold(&x, s);
    return x;
  };
  bool disagreement_loses = false;
  for (int round = 0; round < 200; ++round) {
    const uint32_t s = 1 + static_cast<uint32_t>(rng() % (AC_CRDT_SLOTS - 1));
    const uint64_t v = small(), r = small();
    auto agreed = [&] {  // a replica's cell once it holds the agreed view of slot s
      ac_gcounter c = gc();
      c.slot[s] = v;
      c.retired = r;
      c.others = std::accumulate(c.slot + 1, c.slot + AC_CRDT_SLOTS, c.retired);
      return c;
    };
    ac_gcounter a = agreed(), b = agreed();
    ac_gcounter ab = a;
    ac_gc_join(&ab, &b);
    ac_gcounter fa = fold(a, s), fb = fold(b, s), fab = fa;
    ac_gc_join(&fab, &fb);
    EXPECT_TRUE(same(fab, fold(ab, s))) << "fold is a homomorphism of the join, round " << round;
    EXPECT_EQ(ac_gc_value(&fa), ac_gc_value(&a)) << "folding changes no value";
    EXPECT_EQ(ac_gc_value(&fab), ac_gc_value(&ab));
    EXPECT_EQ(fab.slot[s], 0u);
    // the folded states, with later updates of the other slots, are still a lattice
    expect_lattice<ac_gcounter>(
        [&] {
          ac_gcounter c = fold(agreed(), s);
          c.slot[s] = 0;  // the slot is free (or reused by a new origin that starts at zero)
          return c;
        },
        [](ac_gcounter& x, const ac_gcounter& y) { ac_gc_join(&x, &y); }, 3);
    // PN counters fold both halves
    ac_pncounter p{agreed(), agreed()}, q{agreed(), agreed()}, pq = p;
    ac_pn_join(&pq, &q);
    ac_pncounter fp = p, fq = q;
    for (ac_pncounter* x : {&fp, &fq}) {
      ac_gc_fold(&x->inc, s);
      ac_gc_fold(&x->dec, s);
    }
    ac_pncounter fpq = fp;
    ac_pn_join(&fpq, &fq);
    EXPECT_EQ(ac_pn_value(&fpq), ac_pn_value(&pq));
    // two gone origins folded from different views (one replica saw more of the first, the
    // other more of the second): the retired totals (joined by max) lose counts
    const uint32_t t = s % (AC_CRDT_SLOTS - 1) + 1;
    ac_gcounter c = agreed(), d = agreed();
    c.slot[s] = v + 1 + small();
    d.slot[t] = c.slot[t] + 1 + small();
    for (ac_gcounter* x : {&c, &d}) x->others = std::accumulate(x->slot + 1, x->slot + AC_CRDT_SLOTS, x->retired);
    ac_gcounter cd = c;
    ac_gc_join(&cd, &d);
    ac_gcounter fc = fold(fold(c, s), t), fcd = fold(fold(d, s), t);
    ac_gc_join(&fcd, &fc);
    if (t != s && ac_gc_value(&fcd) < ac_gc_value(&cd)) disagreement_loses = true;
  }
  EXPECT_TRUE(disagreement_loses) << "folding unequal views must be shown to lose counts";
}

INSTANTIATE_TEST_SUITE_P(Seeds, Laws, ::testing::Values(1u, 2u, 3u, 42u, 1234u));

// ---------------------------------------------------------------------------------------------
// Replicas, network, reference

struct Rec {
  uint8_t object;
  Key key;
  int origin;  // replica index; -1 for a retired total
  CellValue value;
};
using Msg = std::vector<Rec>;

// Replica r numbers origin o as slot (o - r) mod R: slot 0 is itself, as in the real system,
// and each replica's numbering differs.
class Cluster {
 public:
  explicit Cluster(int n) : n_(n) {
    for (int i = 0; i < n; ++i) stores_.emplace_back(test_schema());
    known_.resize(n);
  }
  int size() const { return n_; }
  TwinStore& at(int r) { return stores_[r]; }
  uint8_t slot(int r, int origin) const { return static_cast<uint8_t>((origin - r + n_) % n_); }
  int origin(int r, uint8_t slot) const { return (r + slot) % n_; }

  // The delta of replica r: the records of the cells it changed since its last delta.
  Msg delta(int r) {
    Msg m;
    std::vector<std::pair<uint8_t, Key>> cells;
    (void)stores_[r].changes([&](uint8_t o, const Key& k) { cells.emplace_back(o, k); });
    for (auto& [o, k] : cells) add_cell(r, o, k, kOwnSlot, m);
    return m;
  }
  // Everything replica r holds (anti-entropy, a snapshot).
  Msg full(int r) {
    Msg m;
    std::vector<std::pair<uint8_t, Key>> cells;
    (void)stores_[r].cells([&](uint8_t o, const Key& k) { cells.emplace_back(o, k); });
    for (auto& [o, k] : cells) add_cell(r, o, k, kAllSlots, m);
    return m;
  }
  void deliver(int to, const Msg& m) {
    for (const Rec& x : m) {
      uint8_t s = x.origin == -1 ? kRetiredSlot : x.origin == -2 ? 0 : slot(to, x.origin);
      (void)stores_[to].merge(x.object, x.key, s, x.value, 0);
      if (x.object == kSet && x.origin >= 0) {
        auto& k = known_[to][{x.key, x.origin}];
        k = std::max<uint64_t>(k, x.value.a);
      }
    }
  }
  // Replica r's knowledge of origin o's adds to a set element, as the reference sees it (the
  // largest add count of any record delivered to r, or r's own adds).
  uint64_t known(int r, const Key& k, int o) {
    auto it = known_[r].find({k, o});
    return it == known_[r].end() ? 0 : it->second;
  }
  void note_own_add(int r, const Key& k) { ++known_[r][{k, r}]; }

  // The per-origin state, numbered by origin: equal on every replica once they converged.
  std::map<std::tuple<uint8_t, Key, int>, CellValue> canonical(int r) {
    std::map<std::tuple<uint8_t, Key, int>, CellValue> out;
    Msg m = full(r);
    for (const Rec& x : m) out[{x.object, x.key, x.origin}] = x.value;
    return out;
  }

 private:
  void add_cell(int r, uint8_t o, const Key& k, SlotMask mask, Msg& m) {
    (void)stores_[r].read(o, k, mask, [&](uint8_t s, const CellValue& v) {
      // a register has no origin: the whole entry travels
      int from = o == kReg ? -2 : s == kRetiredSlot ? -1 : origin(r, s);
      m.push_back({o, k, from, v});
    });
  }
  int n_;
  std::vector<TwinStore> stores_;
  std::vector<std::map<std::pair<Key, int>, uint64_t>> known_;
};

struct Reference {
  std::map<uint32_t, uint64_t> gc, cms, cbf;        // cell -> total
  std::map<uint64_t, uint64_t> gck;                 // key -> total
  std::map<uint32_t, int64_t> pn;
  std::map<std::pair<uint32_t, int>, uint64_t> adds;      // (element, origin) -> adds
  std::map<std::pair<uint32_t, int>, uint64_t> observed;  // (element, origin) -> max removed
  std::map<uint32_t, ac_reg_value> reg;
  std::vector<uint64_t> cms_keys, cbf_keys;
};

// One random operation of replica r, applied to the replica and to the reference.
void random_op(Cluster& c, Reference& ref, int r, std::mt19937_64& rng) {
  TwinStore& s = c.at(r);
  switch (rng() % 8) {
    case 0: {
      uint32_t i = static_cast<uint32_t>(rng() % 8);
      uint64_t n = 1 + rng() % 5;
      s.gc_add(kGc, Key::index(i), n);
      ref.gc[i] += n;
      break;
    }
    case 1: {
      uint64_t k = rng() % 5;
      uint64_t n = 1 + rng() % 5;
      ASSERT_TRUE(s.gc_add(kGcKeyed, key8(k), n));
      ref.gck[k] += n;
      break;
    }
    case 2: {
      uint32_t i = static_cast<uint32_t>(rng() % 4);
      int64_t n = static_cast<int64_t>(rng() % 11) - 5;
      s.pn_add(kPn, Key::index(i), n);
      ref.pn[i] += n;
      break;
    }
    case 3: {
      uint64_t h = ac_mix64(rng() % 12);
      uint64_t n = 1 + rng() % 3;
      s.cms_add(kCms, h, n);
      for (uint32_t row = 0; row < 3; ++row) ref.cms[ac_cms_cell(h, row, 15)] += n;
      ref.cms_keys.push_back(h);
      break;
    }
    case 4: {
      uint64_t h = ac_mix64(100 + rng() % 12);
      s.cbf_add(kCbf, h, 1);
      for (uint32_t i = 0; i < 3; ++i) ref.cbf[ac_crdt_index(h, i, 63)] += 1;
      ref.cbf_keys.push_back(h);
      break;
    }
    case 5: {
      uint32_t e = static_cast<uint32_t>(rng() % 5);
      ASSERT_TRUE(s.set_add(kSet, key4(e)));
      c.note_own_add(r, key4(e));
      ++ref.adds[{e, r}];
      break;
    }
    case 6: {
      uint32_t e = static_cast<uint32_t>(rng() % 5);
      s.set_remove(kSet, key4(e));
      for (int o = 0; o < c.size(); ++o) {
        uint64_t k = c.known(r, key4(e), o);
        auto& obs = ref.observed[{e, o}];
        obs = std::max(obs, k);
      }
      break;
    }
    case 7: {
      uint32_t k = static_cast<uint32_t>(rng() % 4);
      if (rng() % 3 == 0) {
        uint64_t seen = rng() % 1000;
        if (s.reg_get(kReg, key4(k))) {
          s.reg_seen(kReg, key4(k), seen);
          auto& rv = ref.reg[k];
          rv.seen = std::max<uint64_t>(rv.seen, seen);
        }
        break;
      }
      ac_reg_value v{};
      v.seen = rng() % 1000;
      v.writer = static_cast<uint32_t>(r);
      v.data[0] = static_cast<uint8_t>(rng() % 4);
      v.data[47] = static_cast<uint8_t>(rng());
      bool existed = s.reg_get(kReg, key4(k)).has_value();
      s.reg_insert(kReg, key4(k), v);
      if (!existed) {
        auto it = ref.reg.find(k);
        if (it == ref.reg.end()) ref.reg[k] = v;
        else ac_reg_merge(&it->second, &v);
      }
      break;
    }
  }
}

// Everyone's full state to everyone else, reliably.
void anti_entropy(Cluster& c) {
  std::vector<Msg> full;
  for (int r = 0; r < c.size(); ++r) full.push_back(c.full(r));
  for (int r = 0; r < c.size(); ++r)
    for (int q = 0; q < c.size(); ++q)
      if (q != r) c.deliver(q, full[r]);
}

void expect_converged(Cluster& c, const Reference& ref, const std::string& what) {
  auto base = c.canonical(0);
  for (int r = 1; r < c.size(); ++r)
    EXPECT_TRUE(c.canonical(r) == base) << what << ": replica " << r << " differs from replica 0";
  for (int r = 0; r < c.size(); ++r) {
    TwinStore& s = c.at(r);
    for (uint32_t i = 0; i < 8; ++i)
      EXPECT_EQ(s.gc_value(kGc, Key::index(i)), ref.gc.count(i) ? ref.gc.at(i) : 0) << what << " gc " << i;
    for (auto& [k, v] : ref.gck) EXPECT_EQ(s.gc_value(kGcKeyed, key8(k)), v) << what << " gck " << k;
    for (uint32_t i = 0; i < 4; ++i)
      EXPECT_EQ(s.pn_value(kPn, Key::index(i)), ref.pn.count(i) ? ref.pn.at(i) : 0) << what << " pn " << i;
    for (uint32_t i = 0; i < 48; ++i)
      EXPECT_EQ(s.gc_value(kCms, Key::index(i)), ref.cms.count(i) ? ref.cms.at(i) : 0) << what << " cms " << i;
    for (uint64_t h : ref.cms_keys) {
      uint64_t want = UINT64_MAX;
      for (uint32_t row = 0; row < 3; ++row) want = std::min<uint64_t>(want, ref.cms.at(ac_cms_cell(h, row, 15)));
      EXPECT_EQ(s.cms_estimate(kCms, h), want) << what;
    }
    for (uint32_t i = 0; i < 64; ++i)
      EXPECT_EQ(s.gc_value(kCbf, Key::index(i)), ref.cbf.count(i) ? ref.cbf.at(i) : 0) << what << " cbf " << i;
    for (uint64_t h : ref.cbf_keys) EXPECT_GE(s.cbf_value(kCbf, h), 1u) << what;
    for (uint32_t e = 0; e < 5; ++e) {
      bool present = false;
      for (int o = 0; o < c.size(); ++o) {
        auto a = ref.adds.find({e, o});
        auto ob = ref.observed.find({e, o});
        uint64_t adds = a == ref.adds.end() ? 0 : a->second, rm = ob == ref.observed.end() ? 0 : ob->second;
        present |= adds > rm;
      }
      EXPECT_EQ(s.set_contains(kSet, key4(e)), present) << what << " set element " << e << " on replica " << r;
    }
    for (auto& [k, v] : ref.reg) {
      auto got = s.reg_get(kReg, key4(k));
      ASSERT_TRUE(got.has_value()) << what << " reg " << k;
      EXPECT_TRUE(same(*got, v)) << what << " reg " << k << " writer " << got->writer << " want " << v.writer;
    }
  }
}

struct ConvergenceCase {
  int replicas;
  uint32_t seed;
};
std::ostream& operator<<(std::ostream& os, const ConvergenceCase& c) {
  return os << c.replicas << " replicas, seed " << c.seed;
}

class Convergence : public ::testing::TestWithParam<ConvergenceCase> {};

// Random histories; deliveries in random order with duplication and loss, during the history.
TEST_P(Convergence, LossyDuplicatingReorderingNetworkThenAntiEntropy) {
  const auto [n, seed] = GetParam();
  std::mt19937_64 rng(seed);
  Cluster c(n);
  Reference ref;
  struct InFlight {
    int to;
    Msg m;
  };
  std::vector<InFlight> net;
  uint64_t lost = 0, dup = 0, delivered = 0;
  for (int step = 0; step < 60 * n; ++step) {
    int r = static_cast<int>(rng() % n);
    uint64_t what = rng() % 10;
    if (what < 6) {
      random_op(c, ref, r, rng);
    } else if (what < 8) {
      Msg m = c.delta(r);
      for (int q = 0; q < n; ++q)
        if (q != r) net.push_back({q, m});
    } else if (!net.empty()) {
      size_t i = rng() % net.size();  // any in-flight message: reordering
      InFlight f = net[i];
      uint64_t fate = rng() % 10;
      if (fate < 2) {
        ++lost;
      } else {
        c.deliver(f.to, f.m);
        ++delivered;
        if (fate == 9) {  // duplicated: stays in flight to be delivered again later
          ++dup;
          continue;
        }
      }
      net.erase(net.begin() + static_cast<long>(i));
    }
  }
  // Deliver what is left in a random order, still with loss and duplicates.
  std::shuffle(net.begin(), net.end(), rng);
  for (auto& f : net) {
    if (rng() % 5 == 0) continue;
    c.deliver(f.to, f.m);
    if (rng() % 5 == 0) c.deliver(f.to, f.m);
  }
  for (int r = 0; r < n; ++r) (void)c.delta(r);  // pending changes go by anti-entropy
  anti_entropy(c);
  expect_converged(c, ref, "after anti-entropy");
  RecordProperty("lost", static_cast<int>(lost));
  RecordProperty("duplicated", static_cast<int>(dup));
  RecordProperty("delivered", static_cast<int>(delivered));
}

std::vector<ConvergenceCase> convergence_cases() {
  std::vector<ConvergenceCase> v;
  for (int n = 2; n <= 10; ++n)
    for (uint32_t seed : {11u, 2024u, 77777u}) v.push_back({n, seed * 31u + static_cast<uint32_t>(n)});
  return v;
}
INSTANTIATE_TEST_SUITE_P(Histories, Convergence, ::testing::ValuesIn(convergence_cases()));

// Every permutation of the deliveries of a fixed history. With every message delivered once
// (any order) the replicas converge without anti-entropy; with a fixed pattern of losses and
// duplicates they converge after it; and every order ends in the same state.
TEST(EveryOrder, SameStateWhateverTheDeliveryOrder) {
  for (uint32_t seed : {5u, 6u, 7u}) {
    std::mt19937_64 rng(seed);
    // The history: each of 3 replicas does some operations, then ships one delta, twice.
    constexpr int n = 3;
    Cluster proto(n);
    Reference ref;
    std::vector<std::pair<int, Msg>> msgs;  // (to, message)
    for (int round = 0; round < 2; ++round)
      for (int r = 0; r < n; ++r) {
        for (int i = 0; i < 6; ++i) random_op(proto, ref, r, rng);
        Msg m = proto.delta(r);
        for (int q = 0; q < n; ++q)
          if (q != r) msgs.push_back({q, m});
      }
    ASSERT_EQ(msgs.size(), 12u);
    // Permute 7 of them exhaustively (5040 orders); the other 5 go first, in order.
    std::vector<int> order(7);
    std::iota(order.begin(), order.end(), 5);
    std::map<std::tuple<uint8_t, Key, int>, CellValue> first_once, first_lossy;
    int orders = 0;
    do {
      for (int pattern = 0; pattern < 2; ++pattern) {
        Cluster c = proto;  // the histories are done: only deliveries differ
        for (int i = 0; i < 5; ++i) c.deliver(msgs[i].first, msgs[i].second);
        for (size_t j = 0; j < order.size(); ++j) {
          auto& [to, m] = msgs[order[j]];
          if (pattern == 1 && j == 2) continue;  // lost
          c.deliver(to, m);
          if (pattern == 1 && j % 3 == 0) c.deliver(to, m);  // duplicated
        }
        if (pattern == 0) {
          auto s = c.canonical(0);
          for (int r = 1; r < n; ++r) ASSERT_TRUE(c.canonical(r) == s) << "no anti-entropy needed";
          if (orders == 0) first_once = s;
          ASSERT_TRUE(s == first_once) << "order " << orders << " ends elsewhere";
          expect_converged(c, ref, "every message once");
        } else {
          anti_entropy(c);
          auto s = c.canonical(0);
          if (orders == 0) first_lossy = s;
          ASSERT_TRUE(s == first_lossy) << "order " << orders << " ends elsewhere";
          if (orders % 500 == 0) expect_converged(c, ref, "lossy, then anti-entropy");
        }
      }
      ++orders;
    } while (std::next_permutation(order.begin(), order.end()));
    EXPECT_EQ(orders, 5040);
    EXPECT_TRUE(first_once == first_lossy);
  }
}

}  // namespace
}  // namespace anychain::state
