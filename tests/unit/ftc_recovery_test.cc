// Recovery source selection (docs/ftc.md 7.4): head records from the successor, replica records
// from the predecessor, dead holders never chosen, shards of several successors united.
#include <gtest/gtest.h>

#include "ftc/recovery.h"

namespace anychain::ftc {
namespace {

constexpr uint32_t kSpi = 5;

Holding hold(uint16_t holder, uint16_t mbox, uint8_t si, uint32_t hash, uint32_t seq, uint8_t held,
             bool alive = true, uint8_t inc = 0) {
  Record r{seq, inc, held, {{{1, Bytes{static_cast<uint8_t>(seq)}}, Bytes{static_cast<uint8_t>(holder)}}}};
  return Holding{holder, alive, RecordKey{mbox, si, {kSpi, hash}}, r};
}

const Transfer* find(const RecoveryPlan& p, uint16_t mbox, uint32_t hash) {
  for (const auto& t : p.transfers)
    if (t.key.id == mbox && t.key.flow.hash == hash) return &t;
  return nullptr;
}

// Chain A(1, SI 255) -> X(2, SI 254) -> B(3, SI 253) -> C(4, SI 252), f = 2: X replicates A
// (and the chain's end via the wrap, not exercised here); X's group is X, B, C.
TEST(FtcRecovery, HeadFromTheSuccessorReplicaFromThePredecessor) {
  std::vector<Holding> h = {
      // X's head record of flow 100: B has seq 9 (distance 1), C seq 8 (distance 2)
      hold(3, 2, 254, 100, 9, 2), hold(4, 2, 254, 100, 8, 3),
      // A's record of flow 100: A (its head) seq 20, C has it? no: A's group is A, X, B
      hold(1, 1, 255, 100, 20, 1), hold(3, 1, 255, 100, 19, 3),
      // X held records of A (distance 1) too: gone with X
      hold(2, 1, 255, 100, 20, 2, false),
      // a flow X never saw: not X's business
      hold(1, 1, 255, 999, 3, 1),
  };
  Geometry geo{{{kSpi, {255}}}};
  auto p = plan_recovery(2, 1, h, geo);
  EXPECT_EQ(p.new_inc, 1);
  EXPECT_FALSE(p.conflict);
  ASSERT_EQ(p.transfers.size(), 2u);
  const Transfer* head = find(p, 2, 100);
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->source, 3) << "the first successor has the highest sequence";
  EXPECT_TRUE(head->head);
  EXPECT_EQ(head->rec.seq, 9u);
  const Transfer* rep = find(p, 1, 100);
  ASSERT_NE(rep, nullptr);
  EXPECT_EQ(rep->source, 1) << "the predecessor (here the head) has the most";
  EXPECT_FALSE(rep->head);
  EXPECT_EQ(find(p, 1, 999), nullptr);
  EXPECT_TRUE(p.lost.empty());
}

TEST(FtcRecovery, ADeadSuccessorIsSkippedAndOnlyDeadCopiesAreLost) {
  std::vector<Holding> h = {
      hold(3, 2, 254, 100, 9, 2, false), hold(4, 2, 254, 100, 8, 3),  // B dead too: C has 8
      hold(3, 2, 254, 200, 4, 2, false),                              // only B had flow 200
  };
  auto p = plan_recovery(2, 8, h, {});
  EXPECT_EQ(p.new_inc, 8);
  const Transfer* t = find(p, 2, 100);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->source, 4);
  EXPECT_EQ(t->rec.seq, 8u);
  ASSERT_EQ(p.lost.size(), 1u);
  EXPECT_EQ(p.lost[0].flow.hash, 200u);
}

// WCMP: X's flows go to B1 or B2 (two instances of the next service): each holds a shard, the
// plan unites them.
TEST(FtcRecovery, ShardsOfSeveralSuccessorsAreUnited) {
  std::vector<Holding> h;
  for (uint32_t flow = 0; flow < 10; ++flow) h.push_back(hold(flow % 2 ? 31 : 32, 2, 254, flow, flow + 1, 2));
  auto p = plan_recovery(2, 1, h, {});
  ASSERT_EQ(p.transfers.size(), 10u);
  for (uint32_t flow = 0; flow < 10; ++flow) {
    const Transfer* t = find(p, 2, flow);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->source, flow % 2 ? 31 : 32);
  }
}

TEST(FtcRecovery, NewestIncarnationThenHighestSequenceThenNearestAndConflicts) {
  std::vector<Holding> h = {
      hold(3, 2, 254, 1, 50, 2, true, 4), hold(4, 2, 254, 1, 3, 3, true, 5),  // 5 is newer
      hold(3, 2, 254, 2, 7, 3), hold(4, 2, 254, 2, 7, 2),                     // tie: nearer
      hold(3, 2, 254, 3, 0xfffffffe, 2), hold(4, 2, 254, 3, 1, 3),            // 1 is after the wrap
  };
  auto p = plan_recovery(2, 6, h, {});
  EXPECT_FALSE(p.conflict);
  EXPECT_EQ(find(p, 2, 1)->source, 4);
  EXPECT_EQ(find(p, 2, 2)->source, 4);
  EXPECT_EQ(find(p, 2, 3)->source, 4);
  // a holder fenced by a newer replacement: this one must stand down
  EXPECT_TRUE(plan_recovery(2, 5, {hold(3, 2, 254, 1, 1, 2, true, 6)}, {}).conflict);
  // incarnations wrap
  EXPECT_FALSE(plan_recovery(2, 0, {hold(3, 2, 254, 1, 1, 2, true, 255)}, {}).conflict);
  EXPECT_TRUE(plan_recovery(2, 255, {hold(3, 2, 254, 1, 1, 2, true, 0)}, {}).conflict);
}

TEST(FtcRecovery, ReplicaRecordsOnlyOfTheMiddleboxesXReplicatesAndNeverFromX) {
  std::vector<Holding> h = {
      hold(3, 2, 254, 100, 9, 2),
      hold(1, 1, 255, 100, 20, 1),   // SI 255: replicated by X
      hold(4, 4, 252, 100, 6, 1),    // SI 252: after X, X does not replicate it
      hold(2, 1, 255, 100, 21, 2),   // X's own copy (reported by a stale view): never a source
  };
  auto p = plan_recovery(2, 1, h, Geometry{{{kSpi, {255}}}});
  EXPECT_NE(find(p, 1, 100), nullptr);
  EXPECT_EQ(find(p, 1, 100)->source, 1);
  EXPECT_EQ(find(p, 4, 100), nullptr);
  // a stateless X has no head records: nothing to plan, replica records come lazily
  auto s = plan_recovery(9, 1, h, Geometry{{{kSpi, {255, 254}}}});
  EXPECT_TRUE(s.transfers.empty());
}

}  // namespace
}  // namespace anychain::ftc
