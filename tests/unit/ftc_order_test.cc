// FTC ordering (docs/ftc.md 3.3-3.4): the order rule, serial arithmetic, per-partition
// sequence numbers as the thesis's dependency vectors, incarnation fencing, and head
// transactions with their limits.
#include <gtest/gtest.h>

#include "ftc/store.h"

namespace anychain::ftc {
namespace {

Log tx(uint16_t id, uint32_t seq, uint8_t count = 1, uint8_t inc = 0, uint8_t value = 1) {
  Log l;
  l.mbox = {id, inc, 255};
  l.seq = seq;
  l.count = count;
  if (count) l.writes.push_back({1, false, Bytes{static_cast<uint8_t>(seq)}, Bytes{value}});
  return l;
}
Log noop(uint16_t id, uint32_t seq) {
  Log l = tx(id, seq, 0);
  return l;
}

// docs/ftc.md 3.4, row by row: (have, record incarnation, MAX, log incarnation, seq, count, stub)
struct OrderCase {
  int have;
  uint8_t rinc;
  uint32_t max;
  uint8_t inc;
  uint32_t seq, count;
  int stub;
  enum ac_ftc_order want;
  const char* why;
};

const OrderCase kOrderCases[] = {
    {0, 0, 0, 0, 1, 1, 0, AC_FTC_APPLY, "a partition's first transaction"},
    {0, 0, 0, 0, 3, 3, 0, AC_FTC_APPLY, "a coalesced log from the start"},
    {0, 0, 0, 0, 2, 1, 0, AC_FTC_GAP, "seq 1 is missing"},
    {0, 0, 0, 0, 0, 0, 0, AC_FTC_SATISFIED, "a no-op on an empty partition"},
    {0, 0, 0, 0, 4, 0, 0, AC_FTC_GAP, "a no-op read state we do not have"},
    {0, 0, 0, 0, 1, 1, 1, AC_FTC_GAP, "a stub needs its writes first"},
    {1, 0, 10, 0, 11, 1, 0, AC_FTC_APPLY, ""},
    {1, 0, 10, 0, 10, 1, 0, AC_FTC_SATISFIED, "replayed"},
    {1, 0, 10, 0, 3, 1, 0, AC_FTC_SATISFIED, "old duplicate"},
    {1, 0, 10, 0, 12, 1, 0, AC_FTC_GAP, "skipped 11"},
    {1, 0, 10, 0, 15, 5, 0, AC_FTC_APPLY, "coalesced 11..15"},
    {1, 0, 10, 0, 15, 8, 0, AC_FTC_APPLY, "coalesced 8..15 overlaps"},
    {1, 0, 10, 0, 15, 4, 0, AC_FTC_GAP, "coalesced 12..15 leaves 11 out"},
    {1, 0, 10, 0, 10, 0, 0, AC_FTC_SATISFIED, "no-op at MAX"},
    {1, 0, 10, 0, 11, 0, 0, AC_FTC_GAP, "no-op ahead"},
    {1, 0, 10, 0, 10, 1, 1, AC_FTC_SATISFIED, "stub whose writes arrived"},
    {1, 0, 10, 0, 11, 1, 1, AC_FTC_GAP, "stub ahead of its writes"},
    {1, 5, 10, 4, 11, 1, 0, AC_FTC_STALE, "a fenced incarnation"},
    {1, 5, 10, 4, 2, 1, 0, AC_FTC_STALE, ""},
    {1, 5, 10, 6, 11, 1, 0, AC_FTC_APPLY, "the replacement continues"},
    {1, 255, 10, 0, 11, 1, 0, AC_FTC_APPLY, "incarnation 255 -> 0 is newer"},
    {1, 0, 10, 255, 11, 1, 0, AC_FTC_STALE, "255 is older than 0"},
};

TEST(FtcOrder, TheRuleTable) {
  for (const auto& c : kOrderCases)
    EXPECT_EQ(ac_ftc_order(c.have, c.rinc, c.max, c.inc, c.seq, c.count, c.stub), c.want)
        << c.why << " (have " << c.have << ", MAX " << c.max << ", seq " << c.seq << ", count " << c.count << ")";
}

TEST(FtcOrder, SequenceNumbersWrap) {
  EXPECT_TRUE(ac_ftc_seq_le(0xfffffffeu, 0xffffffffu));
  EXPECT_TRUE(ac_ftc_seq_le(0xffffffffu, 0u));
  EXPECT_FALSE(ac_ftc_seq_le(2u, 0xfffffff0u));
  EXPECT_EQ(ac_ftc_order(1, 0, 0xffffffffu, 0, 0, 1, 0), AC_FTC_APPLY) << "MAX + 1 wraps to 0";
  EXPECT_EQ(ac_ftc_order(1, 0, 0xffffffffu, 0, 1, 1, 0), AC_FTC_GAP);
  EXPECT_EQ(ac_ftc_order(1, 0, 2, 0, 0xffffffffu, 1, 0), AC_FTC_SATISFIED) << "before the wrap";
}

// The thesis's Fig. 4.3 with anychain's per-partition sequence numbers: two partitions of one
// middlebox, logs arriving out of order. A gap in one partition holds only that partition; the
// other applies at once (concurrent replication); the held log applies when the gap closes.
TEST(FtcOrder, DependencyVectorsHoldOnlyTheirPartition) {
  Store replica(2, 0);
  RecordKey p1{1, 255, {7, 100}}, p2{1, 255, {7, 200}};
  // head order: p1#1, p2#1, p1#2, p2#2; arrival: p1#2, p2#2, p2#1, p1#1
  EXPECT_EQ(*replica.apply(p1, tx(1, 2), 2), Outcome::Gap);
  EXPECT_EQ(*replica.apply(p2, tx(1, 2), 2), Outcome::Gap);
  EXPECT_EQ(replica.replica(p1), nullptr) << "nothing applied on a gap";
  EXPECT_EQ(*replica.apply(p2, tx(1, 1), 2), Outcome::Applied) << "p2 does not wait for p1";
  EXPECT_EQ(*replica.apply(p2, tx(1, 2), 2), Outcome::Applied) << "the held log applies now";
  EXPECT_EQ(replica.replica(p1), nullptr);
  EXPECT_EQ(*replica.apply(p1, tx(1, 1), 2), Outcome::Applied);
  EXPECT_EQ(*replica.apply(p1, tx(1, 2), 2), Outcome::Applied);
  EXPECT_EQ(replica.replica(p1)->seq, 2u);
  EXPECT_EQ(replica.replica(p2)->seq, 2u);
  EXPECT_EQ(replica.replica(p1)->kv.size(), 2u);
  EXPECT_EQ(replica.replica(p1)->held, 2);
  // the same middlebox at another SI (two hops of one chain) is another partition
  RecordKey other_si{1, 254, {7, 100}};
  EXPECT_EQ(*replica.apply(other_si, [] { Log l = tx(1, 1); l.mbox.si = 254; return l; }(), 2), Outcome::Applied);
  EXPECT_EQ(replica.replica(p1)->seq, 2u);
}

TEST(FtcOrder, DuplicatesAndReplaysApplyOnce) {
  Store replica(2, 0);
  RecordKey p{1, 255, {7, 1}};
  EXPECT_EQ(*replica.apply(p, tx(1, 1, 1, 0, 10), 2), Outcome::Applied);
  EXPECT_EQ(*replica.apply(p, tx(1, 2, 1, 0, 20), 2), Outcome::Applied);
  // a replay of seq 1 carrying a different value must not roll the state back
  EXPECT_EQ(*replica.apply(p, tx(1, 1, 1, 0, 99), 2), Outcome::Satisfied);
  EXPECT_EQ(replica.replica(p)->kv.at({1, Bytes{1}}), Bytes{10});
  EXPECT_EQ(replica.replica(p)->seq, 2u);
  EXPECT_EQ(*replica.apply(p, noop(1, 2), 2), Outcome::Satisfied);
  EXPECT_EQ(*replica.apply(p, noop(1, 3), 2), Outcome::Gap);
}

TEST(FtcOrder, CoalescedLogsOverlapCorrectly) {
  Store replica(2, 0);
  RecordKey p{1, 255, {7, 1}};
  ASSERT_EQ(*replica.apply(p, tx(1, 1, 1, 0, 1), 2), Outcome::Applied);
  ASSERT_EQ(*replica.apply(p, tx(1, 2, 1, 0, 2), 2), Outcome::Applied);
  // a coalesced log 1..3: the latest value of every key written in the range
  Log c;
  c.mbox = {1, 0, 255};
  c.seq = 3;
  c.count = 3;
  c.writes = {{1, false, Bytes{1}, Bytes{1}}, {1, false, Bytes{2}, Bytes{2}}, {1, true, Bytes{9}, {}}};
  EXPECT_EQ(*replica.apply(p, c, 2), Outcome::Applied);
  EXPECT_EQ(replica.replica(p)->seq, 3u);
  EXPECT_EQ(replica.replica(p)->kv.size(), 2u);
}

TEST(FtcOrder, FencedIncarnationIsStaleAndTheReplacementContinues) {
  Store replica(2, 0);
  RecordKey p{1, 255, {7, 1}};
  ASSERT_EQ(*replica.apply(p, tx(1, 1, 1, 0), 2), Outcome::Applied);
  replica.fence(p, 1);  // recovery took this record as the source for incarnation 1
  EXPECT_EQ(*replica.apply(p, tx(1, 2, 1, 0), 2), Outcome::Stale) << "the old instance's in-flight log";
  EXPECT_EQ(*replica.apply(p, tx(1, 2, 1, 1), 2), Outcome::Applied) << "the replacement continues at 2";
  EXPECT_EQ(replica.replica(p)->inc, 1);
  // fencing never moves an incarnation backwards
  replica.fence(p, 0);
  EXPECT_EQ(replica.replica(p)->inc, 1);
}

TEST(FtcOrder, InstallNeverMovesARecordBackwards) {
  Store s(2, 0);
  RecordKey p{1, 255, {7, 1}};
  Record r5{5, 0, 2, {{{1, Bytes{1}}, Bytes{5}}}};
  Record r3{3, 0, 2, {{{1, Bytes{1}}, Bytes{3}}}};
  EXPECT_TRUE(s.install_replica(p, r5));
  EXPECT_FALSE(s.install_replica(p, r3));
  EXPECT_EQ(s.replica(p)->seq, 5u);
  Record r2_newer{2, 1, 2, {}};
  EXPECT_TRUE(s.install_replica(p, r2_newer)) << "a newer incarnation wins whatever its sequence";
}

TEST(FtcStore, TransactionsNumberWritesAndLogThem) {
  Store head(1, 3);
  Flow flow{7, 42};
  auto l1 = head.transact(flow, 255, [](Transaction& t) {
    EXPECT_FALSE(t.get(1, Bytes{1}).has_value());
    ASSERT_TRUE(t.put(1, Bytes{1}, Bytes{10}).has_value());
    ASSERT_TRUE(t.put(1, Bytes{1}, Bytes{11}).has_value());  // a key written twice is one write
    EXPECT_EQ(t.get(1, Bytes{1}), Bytes{11});
  });
  ASSERT_TRUE(l1.has_value());
  EXPECT_EQ(l1->count, 1);
  EXPECT_EQ(l1->seq, 1u);
  EXPECT_EQ(l1->mbox, (Mbox{1, 3, 255}));
  ASSERT_EQ(l1->writes.size(), 1u);
  EXPECT_EQ(l1->writes[0].value, Bytes{11});
  auto l2 = head.transact(flow, 255, [](Transaction& t) { EXPECT_EQ(t.get(1, Bytes{1}), Bytes{11}); });
  ASSERT_TRUE(l2.has_value());
  EXPECT_TRUE(l2->noop()) << "nothing written: a no-op log at the current sequence";
  EXPECT_EQ(l2->seq, 1u);
  auto l3 = head.transact(flow, 255, [](Transaction& t) { ASSERT_TRUE(t.del(1, Bytes{1}).has_value()); });
  EXPECT_EQ(l3->seq, 2u);
  EXPECT_TRUE(l3->writes.at(0).del);
}

TEST(FtcStore, TransactionLimitsRefuseWithoutWriting) {
  Store head(1, 0);
  head.transact({7, 1}, 255, [](Transaction& t) {
    for (uint8_t k = 0; k < AC_ST_SLOTS; ++k) ASSERT_TRUE(t.put(1, Bytes{k}, Bytes{k}).has_value());
    auto fifth = t.put(1, Bytes{9}, Bytes{9});
    EXPECT_FALSE(fifth.has_value()) << "a partition holds 4 keys";
    EXPECT_FALSE(t.get(1, Bytes{9}).has_value());
    EXPECT_FALSE(t.put(2, Bytes(17, 1), {}).has_value());
    EXPECT_FALSE(t.put(1, Bytes{0}, Bytes(33, 1)).has_value());
    // a deleted key keeps its slot until the commit, as in BPF
    ASSERT_TRUE(t.del(1, Bytes{0}).has_value());
    EXPECT_FALSE(t.put(1, Bytes{9}, Bytes{9}).has_value());
  });
  auto big = head.transact({7, 2}, 255, [](Transaction& t) {
    ASSERT_TRUE(t.put(1, Bytes(16, 1), Bytes(32, 1)).has_value());
    ASSERT_TRUE(t.put(1, Bytes(16, 2), Bytes(32, 2)).has_value());
    auto over = t.put(1, Bytes(16, 3), Bytes(32, 3));
    ASSERT_FALSE(over.has_value());
    EXPECT_NE(over.error().message.find("size limit"), std::string::npos);
  });
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->writes.size(), 2u);
  EXPECT_LE(big->value_len(), size_t{AC_FTC_LOG_MAX});
}

TEST(FtcStore, FullStoresRefuse) {
  Store s(1, 0, 2, 1);
  EXPECT_TRUE(s.transact({1, 1}, 255, [](Transaction&) {}).has_value());
  EXPECT_TRUE(s.transact({1, 2}, 255, [](Transaction&) {}).has_value());
  EXPECT_FALSE(s.transact({1, 3}, 255, [](Transaction&) {}).has_value());
  EXPECT_TRUE(s.transact({1, 1}, 255, [](Transaction&) {}).has_value()) << "existing partitions still work";
  EXPECT_EQ(*s.apply({9, 255, {1, 1}}, tx(9, 1), 2), Outcome::Applied);
  EXPECT_FALSE(s.apply({9, 255, {1, 2}}, tx(9, 1), 2).has_value()) << "replica store full";
}

}  // namespace
}  // namespace anychain::ftc
