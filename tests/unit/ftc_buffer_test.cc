// The egress buffer's release rules and bounds, the ingress forwarder's coalescing, pruning by
// commit vector, piggyback room and propagating packets (docs/ftc.md Section 5).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "ftc/buffer.h"

namespace anychain::ftc {
namespace {

constexpr uint32_t kSpi = 9, kHash = 77, kIngress = 0x0a000001;
const Flow kFlow{kSpi, kHash};

Log log_of(uint16_t id, uint32_t seq, uint8_t held = 1, uint8_t inc = 0, uint8_t count = 1) {
  Log l;
  l.mbox = {id, inc, static_cast<uint8_t>(255 - id)};
  l.seq = seq;
  l.held = held;
  l.count = count;
  if (count) l.writes.push_back({1, false, Bytes{static_cast<uint8_t>(seq)}, Bytes{static_cast<uint8_t>(id)}});
  return l;
}

Nsh at_egress(std::vector<Log> logs, std::vector<Commit> commits = {}, bool propagating = false, uint8_t f = 1) {
  Nsh n;
  n.spi = kSpi;
  n.si = 250;
  n.other.push_back(flow_hash_tlv(kHash));
  n.ctrl = Ctrl{static_cast<uint8_t>(propagating ? AC_FTC_CTRL_PROPAGATING : 0), f, kIngress};
  n.logs = std::move(logs);
  n.commits = std::move(commits);
  return n;
}

TEST(FtcBuffer, APacketWithEverythingReplicatedLeavesAtOnce) {
  EgressBuffer b;
  auto a = b.receive(at_egress({}), 1, 100, 0);
  EXPECT_EQ(a.fate, EgressBuffer::Fate::Released);
  EXPECT_EQ(a.released, std::vector<uint64_t>{1});
  EXPECT_FALSE(a.feedback.has_value());
}

TEST(FtcBuffer, HeldUntilTheCommitOfItsWrappedLogsThenFifo) {
  EgressBuffer b;
  // the chain's last middlebox (3) logged seq 1, 2, 3 on three packets
  auto a1 = b.receive(at_egress({log_of(3, 1)}), 1, 100, 0);
  EXPECT_EQ(a1.fate, EgressBuffer::Fate::Held);
  ASSERT_TRUE(a1.feedback.has_value());
  EXPECT_EQ(a1.feedback->ingress, kIngress);
  ASSERT_EQ(a1.feedback->logs.size(), 1u);
  EXPECT_TRUE(a1.feedback->logs[0].wrapped()) << "returned logs are marked WRAPPED";
  EXPECT_EQ(b.receive(at_egress({log_of(3, 2)}), 2, 100, 1).fate, EgressBuffer::Fate::Held);
  EXPECT_EQ(b.receive(at_egress({log_of(3, 3)}), 3, 100, 2).fate, EgressBuffer::Fate::Held);
  EXPECT_EQ(b.held(), 3u);
  // a packet whose head made no new transaction reads seq 3: a no-op log, held behind them
  EXPECT_EQ(b.receive(at_egress({log_of(3, 3, 1, 0, 0)}), 4, 100, 3).fate, EgressBuffer::Fate::Held);
  // the next packet brings the tail's commit of seq 2: packets 1 and 2 leave, in order
  auto a5 = b.receive(at_egress({log_of(3, 4)}, {{{3, 0, 252}, 2}}), 5, 100, 4);
  EXPECT_EQ(a5.fate, EgressBuffer::Fate::Held);
  EXPECT_EQ(a5.released, (std::vector<uint64_t>{1, 2}));
  // a propagating packet with the commit of 4 releases the rest and is consumed
  auto a6 = b.receive(at_egress({}, {{{3, 0, 252}, 4}}, true), 6, 60, 5);
  EXPECT_EQ(a6.fate, EgressBuffer::Fate::Consumed);
  EXPECT_EQ(a6.released, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(b.held(), 0u);
  EXPECT_EQ(b.stats().released, 5u);
  // a later packet already covered by the commit vector leaves at once
  EXPECT_EQ(b.receive(at_egress({log_of(3, 4, 1, 0, 0)}), 7, 100, 6).fate, EgressBuffer::Fate::Released);
}

TEST(FtcBuffer, ALaterPacketNeverOvertakesAHeldOne) {
  EgressBuffer b;
  b.receive(at_egress({log_of(3, 1)}), 1, 100, 0);
  // a packet with nothing to wait for (its flow had no transaction at 3? impossible in one
  // flow, but its requirement being met must still not reorder the flow)
  auto a = b.receive(at_egress({}), 2, 100, 1);
  EXPECT_EQ(a.fate, EgressBuffer::Fate::Held);
  auto c = b.receive(at_egress({}, {{{3, 0, 252}, 1}}), 3, 100, 2);
  EXPECT_EQ(c.released, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(FtcBuffer, ACommitOfANewerIncarnationDropsWhatTheOldOneMayHaveLost) {
  EgressBuffer b;
  b.receive(at_egress({log_of(3, 10)}), 1, 100, 0);
  // instance 3 failed; its replacement (incarnation 1) continued from the recovered seq 9
  auto a = b.receive(at_egress({log_of(3, 10, 1, 1)}, {{{3, 1, 252}, 10}}), 2, 100, 1);
  EXPECT_EQ(a.dropped, std::vector<uint64_t>{1}) << "seq 10 of incarnation 0 is not seq 10 of incarnation 1";
  EXPECT_EQ(a.released, std::vector<uint64_t>{2});
  EXPECT_EQ(b.stats().fenced, 1u);
}

TEST(FtcBuffer, BoundsDropNewPacketsAndExpireOldOnes) {
  EgressBuffer b(BufferLimits{.packets = 3, .bytes = 1000, .per_flow = 2, .max_hold_ns = 100, .feedback_every_ns = 10});
  EXPECT_EQ(b.receive(at_egress({log_of(3, 1)}), 1, 400, 0).fate, EgressBuffer::Fate::Held);
  EXPECT_EQ(b.receive(at_egress({log_of(3, 2)}), 2, 400, 0).fate, EgressBuffer::Fate::Held);
  auto full = b.receive(at_egress({log_of(3, 3)}), 3, 100, 0);
  EXPECT_EQ(full.fate, EgressBuffer::Fate::Dropped) << "per-flow limit";
  EXPECT_TRUE(full.feedback.has_value()) << "its logs still go back: dropping it is a lost packet";
  Nsh other = at_egress({log_of(3, 1)});
  other.other[0] = flow_hash_tlv(kHash + 1);
  EXPECT_EQ(b.receive(other, 4, 300, 0).fate, EgressBuffer::Fate::Dropped) << "bytes";
  EXPECT_EQ(b.stats().full, 2u);
  // feedback of held packets is re-sent until they leave
  EXPECT_TRUE(b.due_feedback(5).empty());
  EXPECT_EQ(b.due_feedback(10).size(), 2u);
  EXPECT_TRUE(b.due_feedback(15).empty());
  EXPECT_EQ(b.expire(99).size(), 0u);
  EXPECT_EQ(b.expire(100), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(b.held(), 0u);
  EXPECT_EQ(b.held_bytes(), 0u);
  EXPECT_EQ(b.stats().expired, 2u);
  Nsh not_ftc = at_egress({});
  not_ftc.ctrl.reset();
  EXPECT_EQ(b.receive(not_ftc, 9, 10, 0).fate, EgressBuffer::Fate::Dropped);
}

TEST(FtcForwarder, CoalescesNeighboursPrunesOnCommitAndIgnoresDuplicates) {
  IngressForwarder fw;
  Feedback fb{kFlow, kIngress, 1, {log_of(3, 1)}};
  fw.feedback(fb, 0);
  fw.feedback(fb, 0);  // at-least-once: a duplicate
  EXPECT_EQ(fw.pending(kFlow), 1u);
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 2), log_of(4, 1)}}, 1);
  EXPECT_EQ(fw.pending(kFlow), 2u) << "3's seq 1 and 2 coalesced";
  EXPECT_EQ(fw.coalesced(), 1u);
  auto pb = fw.piggyback(kFlow);
  ASSERT_EQ(pb.size(), 2u);
  EXPECT_EQ(pb[0].mbox.id, 3);
  EXPECT_EQ(pb[0].count, 2);
  EXPECT_EQ(pb[0].from(), 1u);
  EXPECT_EQ(pb[0].seq, 2u);
  EXPECT_EQ(pb[0].writes.size(), 2u);
  EXPECT_TRUE(pb[0].wrapped());
  EXPECT_EQ(pb[1].mbox.id, 4) << "middleboxes in the order they came back";
  // a no-op covered by a pending log adds nothing
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 2, 1, 0, 0)}}, 2);
  EXPECT_EQ(fw.pending(kFlow), 2u);
  // commits prune
  CommitVector cv;
  commit_merge(cv, {{3, 0, 252}, 2});
  fw.released(kFlow, cv);
  EXPECT_EQ(fw.pending(kFlow), 1u);
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 2)}}, 3);
  EXPECT_EQ(fw.pending(kFlow), 1u) << "a committed log is not pending again";
  commit_merge(cv, {{4, 0, 251}, 1});
  fw.released(kFlow, cv);
  EXPECT_EQ(fw.pending(kFlow), 0u);
  EXPECT_EQ(fw.flows(), 0u);
}

TEST(FtcForwarder, ANewIncarnationVoidsTheOldOnesLogs) {
  IngressForwarder fw;
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 5)}}, 0);
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 5, 1, 1)}}, 1);
  auto pb = fw.piggyback(kFlow);
  ASSERT_EQ(pb.size(), 1u);
  EXPECT_EQ(pb[0].mbox.inc, 1);
  fw.feedback({kFlow, kIngress, 1, {log_of(3, 6, 1, 0)}}, 2);
  EXPECT_EQ(fw.pending(kFlow), 1u) << "a late log of the fenced incarnation is ignored";
}

TEST(FtcForwarder, DataPacketsCarryWhatFitsPropagatingPacketsTheRest) {
  IngressForwarder fw(ForwarderLimits{.propagate_after_ns = 1000});
  // f = 4: share 44 bytes; a log of 13 + 16 bytes of writes is over it
  Log big = log_of(3, 1);
  big.writes[0].key = Bytes(13, 1);
  big.writes[0].value = Bytes(16, 1);
  ASSERT_GT(big.tlv_len(), ac_ftc_share(4));
  std::vector<Log> logs = {log_of(5, 1), big, log_of(6, 1), log_of(7, 1)};
  fw.feedback({kFlow, kIngress, 4, logs}, 0);
  auto pb = fw.piggyback(kFlow);
  std::set<uint16_t> ids;
  for (const auto& l : pb) ids.insert(l.mbox.id);
  EXPECT_EQ(ids, (std::set<uint16_t>{5, 6, 7})) << "the big log goes only in propagating packets";
  EXPECT_TRUE(fw.due(999).empty());
  auto due = fw.due(1000);
  ASSERT_EQ(due.size(), 1u);
  size_t n = 0;
  for (const auto& p : due[0].packets) {
    size_t bytes = 0;
    for (const auto& l : p) bytes += l.tlv_len();
    EXPECT_LE(AC_FTC_FIXED_LEN + bytes + 4 + 8 * 4, size_t{AC_NSH_MAX_LEN});
    n += p.size();
  }
  EXPECT_EQ(n, 4u) << "every pending log propagates";
  EXPECT_TRUE(fw.due(1500).empty()) << "not again before propagate_after";
  EXPECT_EQ(fw.due(2000).size(), 1u) << "until committed, again";
}

// A data packet carries at most f x share bytes of returned logs (docs/ftc.md 5.2): the
// classifier pushes them in front of the frame, whose headroom is about 216 bytes. f = 1: a
// monitor's logs of 52 bytes that do not coalesce (count 255 reached), three pending: two ride
// (104 bytes, the third would make 156 > 128), every one propagates.
TEST(FtcForwarder, DataPacketsCarryAtMostFTimesTheShare) {
  IngressForwarder fw(ForwarderLimits{.propagate_after_ns = 1000});
  std::vector<Log> logs;
  for (uint32_t k = 0; k < 3; ++k) {
    Log l = log_of(7, 255 * (k + 1), 1, 0, 255);
    l.writes[0].key = Bytes(13, 1);
    l.writes[0].value = Bytes(16, static_cast<uint8_t>(k));
    ASSERT_EQ(l.tlv_len(), 52u);
    logs.push_back(l);
  }
  fw.feedback({kFlow, kIngress, 1, logs}, 0);
  EXPECT_EQ(fw.pending(kFlow), 3u) << "count 255 each: none coalesce";
  auto pb = fw.piggyback(kFlow);
  size_t bytes = 0;
  for (const auto& l : pb) bytes += l.tlv_len();
  EXPECT_EQ(pb.size(), 2u);
  EXPECT_LE(bytes, size_t{1} * ac_ftc_share(1));
  auto due = fw.due(1000);
  ASSERT_EQ(due.size(), 1u);
  size_t n = 0;
  for (const auto& p : due[0].packets) n += p.size();
  EXPECT_EQ(n, 3u) << "propagating packets carry every pending log";
}

TEST(FtcForwarder, CoalescingKeepsTheLatestValueAndRespectsTheShare) {
  Log a = log_of(3, 1), b = log_of(3, 2);
  b.writes[0].key = a.writes[0].key;
  b.writes[0].value = Bytes{42};
  auto m = coalesce(a, b, ac_ftc_share(1));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->writes.size(), 1u);
  EXPECT_EQ(m->writes[0].value, Bytes{42});
  EXPECT_EQ(m->count, 2);
  EXPECT_FALSE(coalesce(a, log_of(3, 3), 128).has_value()) << "not neighbours";
  EXPECT_FALSE(coalesce(a, log_of(3, 2, 1, 1), 128).has_value()) << "another incarnation";
  Log wide = log_of(3, 2);
  wide.writes[0].key = Bytes(16, 1);
  wide.writes[0].value = Bytes(32, 1);
  EXPECT_FALSE(coalesce(a, wide, ac_ftc_share(4)).has_value()) << "over the share";
}


TEST(FtcBuffer, CommittedLogsAreNotReturnedToTheForwarder) {
  EgressBuffer b;
  b.receive(at_egress({log_of(3, 1)}), 1, 100, 0);
  b.receive(at_egress({}, {{{3, 0, 252}, 1}}), 2, 100, 1);  // the tail's commit of seq 1
  auto a = b.receive(at_egress({log_of(3, 1, 1, 0, 0)}), 3, 100, 2);
  EXPECT_EQ(a.fate, EgressBuffer::Fate::Released);
  EXPECT_FALSE(a.feedback.has_value()) << "a no-op at the committed seq: held f + 1 times already";
  auto c = b.receive(at_egress({log_of(3, 1, 1, 0, 0), log_of(4, 1)}), 4, 100, 3);
  ASSERT_TRUE(c.feedback.has_value());
  ASSERT_EQ(c.feedback->logs.size(), 1u) << "only the uncommitted one";
  EXPECT_EQ(c.feedback->logs[0].mbox.id, 4u);
  EXPECT_TRUE(b.holding(kFlow));
  EXPECT_FALSE(b.holding(Flow{kSpi, kHash + 1}));
}

// What the fast path's chain end decides from ac_ftc_egress (ac_ftc_egress_covers on
// egress_entry(cv)) is what the buffer's covered() decides from the commit vector itself, for
// every middlebox, incarnation and sequence, while the vector fits the entry; a larger vector or
// held packets make the partition slow.
TEST(FtcEgressEntry, TheChainsEndCoversExactlyWhatTheBufferWould) {
  std::mt19937 rng(13);
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  for (int trial = 0; trial < 2000; ++trial) {
    CommitVector cv;
    const uint32_t n = pick(AC_FTC_EGRESS_MBOXES + 1);
    for (uint32_t i = 0; i < n; ++i)
      commit_merge(cv, Commit{Mbox{static_cast<uint16_t>(1 + pick(3)), static_cast<uint8_t>(pick(3) + 254),
                                   static_cast<uint8_t>(250 + pick(2))},
                              pick(6)});
    ASSERT_LE(cv.size(), size_t{AC_FTC_EGRESS_MBOXES});
    const ac_ftc_egress e = egress_entry(&cv, false);
    ASSERT_EQ(e.slow, 0u);
    ASSERT_EQ(e.n, cv.size());
    for (int q = 0; q < 20; ++q) {
      const Mbox m{static_cast<uint16_t>(1 + pick(4)), static_cast<uint8_t>(pick(3) + 254),
                   static_cast<uint8_t>(250 + pick(2))};
      const uint32_t seq = pick(7);
      EXPECT_EQ(ac_ftc_egress_covers(&e, m.word(), seq) != 0, covered(cv, m, seq) == Coverage::Covered)
          << "mbox " << m.id << "/" << int(m.inc) << "/" << int(m.si) << " seq " << seq << " trial " << trial;
    }
  }
  // no entry at all: only seq 0, as the buffer with an empty vector
  EXPECT_TRUE(ac_ftc_egress_covers(nullptr, Mbox{3, 0, 252}.word(), 0));
  EXPECT_FALSE(ac_ftc_egress_covers(nullptr, Mbox{3, 0, 252}.word(), 1));
  const ac_ftc_egress none = egress_entry(nullptr, false);
  EXPECT_EQ(none.slow, 0u);
  EXPECT_EQ(none.n, 0u);
  EXPECT_EQ(egress_entry(nullptr, true).slow, 1u) << "held packets: every packet to the buffer";
  CommitVector big;
  for (uint16_t id = 1; id <= AC_FTC_EGRESS_MBOXES + 1; ++id) commit_merge(big, Commit{Mbox{id, 0, 250}, 1});
  const ac_ftc_egress e = egress_entry(&big, false);
  EXPECT_EQ(e.slow, 1u) << "a vector the entry cannot hold: the buffer decides";
  EXPECT_EQ(e.n, 0u);
}

}  // namespace
}  // namespace anychain::ftc
