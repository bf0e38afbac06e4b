// One FTC hop in C++ (docs/ftc.md 3.5): head append, no-op, replica apply, tail strip and
// commit, gaps, propagating and filtered packets, stubs, and every drop reason.
#include <gtest/gtest.h>

#include "ftc/hop.h"

namespace anychain::ftc {
namespace {

constexpr uint32_t kSpi = 42, kHash = 0x11223344, kIngress = 0x0a000001;

Nsh ingress(uint8_t f, uint8_t si = 255, std::vector<Log> pending = {}) {
  Nsh n;
  n.spi = kSpi;
  n.si = si;
  n.other.push_back(flow_hash_tlv(kHash));
  n.ctrl = Ctrl{0, f, kIngress};
  n.logs = std::move(pending);
  return n;
}

Bytes enc(const Nsh& n) {
  auto b = encode_nsh(n);
  EXPECT_TRUE(b.has_value()) << b.error().message;
  return *b;
}

Nsh dec(const Bytes& b) {
  auto n = decode_nsh(b);
  EXPECT_TRUE(n.has_value()) << n.error().message;
  return *n;
}

// a per-flow packet counter: table 1, key "c", value one byte
NfFn counter(int* calls = nullptr) {
  return [calls](Transaction* tx) {
    if (calls) ++*calls;
    if (!tx) return NfResult{};
    auto v = tx->get(1, Bytes{'c'});
    uint8_t n = v ? (*v)[0] : 0;
    EXPECT_TRUE(tx->put(1, Bytes{'c'}, Bytes{static_cast<uint8_t>(n + 1)}).has_value());
    return NfResult{};
  };
}
NfFn reader() {
  return [](Transaction* tx) {
    if (tx) (void)tx->get(1, Bytes{'c'});
    return NfResult{};
  };
}

// Pass the NSH along hops (SI decremented after each, as the NF does).
Bytes through(Bytes nsh, const HopConfig& cfg, Store& st, const NfFn& nf, HopResult* out = nullptr) {
  auto r = run_hop(cfg, st, nsh, nf);
  if (out) *out = r;
  EXPECT_EQ(r.verdict, Verdict::Forward) << r.detail;
  Bytes b = r.nsh;
  if (!b.empty()) b[7] -= 1;
  return b;
}

TEST(FtcHop, HeadAppendsItsLogAfterTheExistingTlvs) {
  Store st(7, 2);
  HopConfig cfg{7, true, {}};
  HopResult r;
  Bytes out = through(enc(ingress(1)), cfg, st, counter(), &r);
  Nsh want = ingress(1, 254);
  Log l;
  l.mbox = {7, 2, 255};
  l.seq = 1;
  l.writes = {{1, false, Bytes{'c'}, Bytes{1}}};
  want.logs.push_back(l);
  EXPECT_EQ(out, enc(want));
  EXPECT_EQ(r.stats[AC_FTC_ST_LOG_APPENDED], 1u);
  EXPECT_EQ(st.head({7, 255, {kSpi, kHash}})->seq, 1u);
}

TEST(FtcHop, NothingWrittenAppendsANoOpLog) {
  Store st(7, 0);
  HopConfig cfg{7, true, {}};
  through(enc(ingress(1)), cfg, st, counter());
  HopResult r;
  Bytes out = through(enc(ingress(1)), cfg, st, reader(), &r);
  Nsh n = dec(out);
  ASSERT_EQ(n.logs.size(), 1u);
  EXPECT_TRUE(n.logs[0].noop());
  EXPECT_EQ(n.logs[0].seq, 1u) << "the sequence the transaction read";
  EXPECT_EQ(n.logs[0].tlv_len(), 16u);
  EXPECT_EQ(r.stats[AC_FTC_ST_NOOP_APPENDED], 1u);
}

TEST(FtcHop, ReplicasApplyAndTheTailStrips) {
  for (uint8_t f = 1; f <= 4; ++f) {
    SCOPED_TRACE(::testing::Message() << "f " << f);
    std::vector<Store> st;
    for (uint16_t id = 1; id <= f + 1; ++id) st.emplace_back(id, 0);
    Bytes pkt = enc(ingress(f));
    for (uint16_t i = 0; i <= f; ++i) {
      HopResult r;
      pkt = through(pkt, HopConfig{static_cast<uint16_t>(i + 1), i == 0, {}}, st[i], counter(), &r);
      Nsh n = dec(pkt);
      if (i == 0) {
        ASSERT_EQ(n.logs.size(), 1u);
        EXPECT_EQ(n.logs[0].held, 1);
      } else if (i < f) {
        ASSERT_EQ(n.logs.size(), 1u);
        EXPECT_EQ(n.logs[0].held, i + 1) << "one more copy";
        EXPECT_EQ(r.stats[AC_FTC_ST_APPLIED], 1u);
      } else {
        EXPECT_TRUE(n.logs.empty()) << "the (f+1)-th holder is the tail";
        EXPECT_EQ(r.stats[AC_FTC_ST_TAIL_STRIPPED], 1u);
        EXPECT_TRUE(n.commits.empty()) << "a log that did not wrap needs no commit";
      }
      if (i > 0) {
        const Record* rec = st[i].replica({1, 255, {kSpi, kHash}});
        ASSERT_NE(rec, nullptr);
        EXPECT_EQ(rec->seq, 1u);
        EXPECT_EQ(rec->held, i + 1);
        EXPECT_EQ(rec->kv, st[0].head({1, 255, {kSpi, kHash}})->kv);
      }
    }
  }
}

TEST(FtcHop, TheTailOfAWrappedLogAddsACommitEntry) {
  // f = 2: the returned log of the chain's last middlebox (5, held 2 at the egress) reaches hop 1
  Log back;
  back.mbox = {5, 0, 253};
  back.seq = 3;
  back.count = 3;
  back.held = 2;
  back.flags = AC_FTC_LOG_WRAPPED;
  back.writes = {{1, false, Bytes{'x'}, Bytes{3}}};
  Store st(1, 0);
  // hop 1 already holds seq 1..2 of middlebox 5 from an earlier round
  Log first = back;
  first.seq = 2;
  first.count = 2;
  ASSERT_EQ(*st.apply({5, 253, {kSpi, kHash}}, first, 3), Outcome::Applied);
  HopResult r;
  Bytes out = through(enc(ingress(2, 255, {back})), HopConfig{1, true, {}}, st, counter(), &r);
  Nsh n = dec(out);
  ASSERT_EQ(n.logs.size(), 1u) << "the wrapped log is stripped, the hop's own appended";
  EXPECT_EQ(n.logs[0].mbox.id, 1);
  ASSERT_EQ(n.commits.size(), 1u);
  EXPECT_EQ(n.commits[0], (Commit{{5, 0, 253}, 3}));
  EXPECT_EQ(r.stats[AC_FTC_ST_COMMITS], 1u);
  // the commit TLV is the last one, after the own log
  Bytes tail(out.end() - 12, out.end());
  EXPECT_EQ(tail, (Bytes{0xff, 0xf6, 0x03, 0x08, 0x00, 0x05, 0x00, 0xfd, 0, 0, 0, 3}));
  // a later hop keeps the commit and merges its own entries into it
  Log back2 = back;
  back2.mbox = {6, 0, 252};
  back2.seq = 1;
  back2.count = 1;
  back2.held = 2;
  Nsh in2 = dec(out);
  in2.si = 254;
  in2.logs.insert(in2.logs.begin(), back2);
  Store st2(2, 0);
  Bytes out2 = through(enc(in2), HopConfig{2, false, {}}, st2, counter());
  Nsh n2 = dec(out2);
  ASSERT_EQ(n2.commits.size(), 2u);
  EXPECT_EQ(n2.commits[1], (Commit{{6, 0, 252}, 1}));
  ASSERT_EQ(n2.logs.size(), 1u) << "hop 2 is the tail of 6's log, a replica of 1's";
  EXPECT_EQ(n2.logs[0].held, 2);
}

TEST(FtcHop, AGapHoldsThePacketUntouchedAndARerunIsIdempotent) {
  Store head(1, 0), replica(2, 0);
  HopConfig hc{1, true, {}}, rc{2, true, {}};
  Bytes p1 = through(enc(ingress(1)), hc, head, counter());
  Bytes p2 = through(enc(ingress(1)), hc, head, counter());
  // p2 overtakes p1
  int calls = 0;
  auto r = run_hop(rc, replica, p2, counter(&calls));
  EXPECT_EQ(r.verdict, Verdict::Hold);
  EXPECT_EQ(r.reason, AC_FTC_ST_GAP);
  ASSERT_TRUE(r.gap.has_value());
  EXPECT_EQ(*r.gap, (RecordKey{1, 255, {kSpi, kHash}}));
  EXPECT_EQ(calls, 0) << "the NF does not run on a held packet";
  EXPECT_EQ(replica.replica(*r.gap), nullptr);
  EXPECT_TRUE(replica.heads().empty());
  // p1 arrives, then the held p2 is re-run
  through(p1, rc, replica, counter());
  HopResult again;
  through(p2, rc, replica, counter(), &again);
  EXPECT_EQ(replica.replica(*r.gap)->seq, 2u);
  EXPECT_EQ(replica.head({2, 254, {kSpi, kHash}})->seq, 2u) << "two packets, two transactions";
  // a duplicate of p2 applies nothing more but is a packet the NF sees
  HopResult dup;
  through(p2, rc, replica, counter(), &dup);
  EXPECT_EQ(dup.stats[AC_FTC_ST_SATISFIED], 1u);
  EXPECT_EQ(replica.replica(*r.gap)->seq, 2u);
}

TEST(FtcHop, PropagatingPacketsSkipTheNfButNotTheProtocol) {
  Store head(1, 0), replica(2, 0);
  Bytes p = through(enc(ingress(1)), HopConfig{1, true, {}}, head, counter());
  Nsh n = dec(p);
  n.ctrl->flags = AC_FTC_CTRL_PROPAGATING;
  int calls = 0;
  HopResult r;
  Bytes out = through(enc(n), HopConfig{2, true, {}}, replica, counter(&calls), &r);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(r.stats[AC_FTC_ST_PROPAGATING], 1u);
  EXPECT_EQ(replica.replica({1, 255, {kSpi, kHash}})->seq, 1u) << "applied";
  Nsh o = dec(out);
  EXPECT_TRUE(o.logs.empty()) << "stripped, nothing appended";
  EXPECT_TRUE(o.ctrl->propagating());
}

TEST(FtcHop, AFilteredPacketBecomesPropagatingWithItsLogs) {
  Store st(3, 0);
  auto firewall = [](Transaction*) { return NfResult{true}; };
  HopResult r;
  Bytes out = through(enc(ingress(2)), HopConfig{3, false, {}}, st, firewall, &r);
  EXPECT_TRUE(r.filtered);
  EXPECT_EQ(r.stats[AC_FTC_ST_FILTERED], 1u);
  EXPECT_TRUE(dec(out).ctrl->propagating());
  // a stateful NF that refuses a packet still logs its transaction
  Store nat(4, 0);
  auto refuse = [](Transaction* tx) {
    EXPECT_TRUE(tx->put(1, Bytes{'r'}, Bytes{1}).has_value());
    return NfResult{true};
  };
  Bytes out2 = through(enc(ingress(2)), HopConfig{4, true, {}}, nat, refuse);
  Nsh n = dec(out2);
  EXPECT_TRUE(n.ctrl->propagating());
  ASSERT_EQ(n.logs.size(), 1u);
  EXPECT_EQ(n.logs[0].seq, 1u);
}

TEST(FtcHop, ALogOverTheShareTravelsAsAStub) {
  Store st(1, 0);
  auto monitor = [](Transaction* tx) {
    EXPECT_TRUE(tx->put(1, Bytes(13, 1), Bytes(16, 2)).has_value());  // 4 + 13 + 16 bytes of writes
    return NfResult{};
  };
  HopResult r;
  Bytes out = through(enc(ingress(4)), HopConfig{1, true, {}}, st, monitor, &r);
  EXPECT_TRUE(r.stubbed);
  EXPECT_EQ(r.stats[AC_FTC_ST_STUB], 1u);
  ASSERT_TRUE(r.own.has_value());
  EXPECT_EQ(r.own->writes.size(), 1u) << "the whole log, for the propagating packet";
  Nsh n = dec(out);
  ASSERT_EQ(n.logs.size(), 1u);
  EXPECT_TRUE(n.logs[0].stub());
  EXPECT_TRUE(n.logs[0].writes.empty());
  EXPECT_EQ(n.logs[0].seq, 1u);
  EXPECT_EQ(n.logs[0].count, 1);
  // f = 3: the same log fits
  Store st3(1, 0);
  HopResult r3;
  through(enc(ingress(3)), HopConfig{1, true, {}}, st3, monitor, &r3);
  EXPECT_FALSE(r3.stubbed);
  // a replica that sees the stub before the log's propagating packet waits for it
  Store rep(2, 0);
  auto held = run_hop(HopConfig{2, false, {}}, rep, out, counter());
  EXPECT_EQ(held.verdict, Verdict::Hold);
  Nsh prop = ingress(4);
  prop.ctrl->flags = AC_FTC_CTRL_PROPAGATING;
  prop.logs.push_back(*r.own);
  through(enc(prop), HopConfig{2, false, {}}, rep, counter());
  HopResult after;
  through(out, HopConfig{2, false, {}}, rep, counter(), &after);
  EXPECT_EQ(after.stats[AC_FTC_ST_SATISFIED], 1u);
}

TEST(FtcHop, DropsNameTheirReason) {
  Store head(1, 0);
  Bytes p = through(enc(ingress(1)), HopConfig{1, true, {}}, head, counter());
  // a log of this very instance came back: the chain is shorter than f + 1
  auto own = run_hop(HopConfig{1, true, {}}, head, p, counter());
  EXPECT_EQ(own.verdict, Verdict::Drop);
  EXPECT_EQ(own.reason, AC_FTC_ST_OWN_LOG);
  // a log of an instance nf_peers does not list
  Store other(2, 0);
  auto unknown = run_hop(HopConfig{2, true, [](uint16_t id) { return id != 1; }}, other, p, counter());
  EXPECT_EQ(unknown.reason, AC_FTC_ST_UNKNOWN_MBOX);
  EXPECT_EQ(unknown.stats[AC_FTC_ST_UNKNOWN_MBOX], 1u);
  // a log of a fenced incarnation
  ASSERT_EQ(*other.apply({1, 255, {kSpi, kHash}}, dec(p).logs[0], 2), Outcome::Applied);
  other.fence({1, 255, {kSpi, kHash}}, 1);
  Bytes p2 = through(enc(ingress(1)), HopConfig{1, true, {}}, head, counter());
  auto stale = run_hop(HopConfig{2, true, {}}, other, p2, counter());
  EXPECT_EQ(stale.reason, AC_FTC_ST_STALE);
  // malformed
  Bytes bad = p;
  bad[bad.size() - 1] ^= 0xff;  // the log's padding
  EXPECT_EQ(run_hop(HopConfig{2, true, {}}, other, bad, counter()).reason, AC_FTC_ST_BAD_TLV);
  // no flow hash TLV
  Nsh nohash = ingress(1);
  nohash.other.clear();
  EXPECT_EQ(run_hop(HopConfig{2, true, {}}, other, enc(nohash), counter()).reason, AC_FTC_ST_BAD_TLV);
}

// After a recovery the forwarder may still return logs of the fenced incarnation: they belong to
// earlier packets (which the buffer drops), so the carrier strips them and goes on.
TEST(FtcHop, AStaleReturnedLogIsStrippedNotTheCarrier) {
  Store st(1, 0);
  Log old;
  old.mbox = {5, 0, 253};
  old.seq = 9;
  old.held = 1;
  old.flags = AC_FTC_LOG_WRAPPED;
  old.writes = {{1, false, Bytes{'x'}, Bytes{9}}};
  ASSERT_EQ(*st.apply({5, 253, {kSpi, kHash}}, [] {
    Log l;
    l.mbox = {5, 1, 253};
    l.seq = 8;
    l.count = 8;
    l.writes = {{1, false, Bytes{'x'}, Bytes{8}}};
    return l;
  }(), 2), Outcome::Applied);
  HopResult r;
  Bytes out = through(enc(ingress(2, 255, {old})), HopConfig{1, true, {}}, st, counter(), &r);
  EXPECT_EQ(r.stats[AC_FTC_ST_STALE], 1u);
  Nsh n = dec(out);
  ASSERT_EQ(n.logs.size(), 1u);
  EXPECT_EQ(n.logs[0].mbox.id, 1) << "only the hop's own log left";
  EXPECT_TRUE(n.commits.empty()) << "nothing committed for a fenced log";
  EXPECT_EQ(st.replica({5, 253, {kSpi, kHash}})->seq, 8u);
}

TEST(FtcHop, NotAnFtcPacketIsLeftAlone) {
  Nsh n = ingress(1);
  n.ctrl.reset();
  Store st(1, 0);
  bool got_tx = true;
  auto r = run_hop(HopConfig{1, true, {}}, st, enc(n), [&](Transaction* tx) {
    got_tx = tx != nullptr;
    return NfResult{};
  });
  EXPECT_EQ(r.verdict, Verdict::Plain);
  EXPECT_FALSE(got_tx) << "no state without FTC";
  EXPECT_EQ(r.nsh, enc(n));
  EXPECT_TRUE(st.heads().empty());
}

TEST(FtcHop, AnNshFullOfForeignTlvsOverflowsAndIsDropped) {
  Nsh n = ingress(1);
  for (int i = 0; i < 2; ++i) n.other.push_back(Tlv{0x0123, 1, 100, Bytes(100, 0xee)});
  Store st(1, 0);
  auto r = run_hop(HopConfig{1, true, {}}, st, enc(n), counter());
  EXPECT_EQ(r.verdict, Verdict::Drop);
  EXPECT_EQ(r.reason, AC_FTC_ST_OVERFLOW);
}

TEST(FtcHop, AFullStoreRefusesTheFlow) {
  Store st(1, 0, 0);
  bool got_tx = true;
  HopResult r;
  Bytes out = through(enc(ingress(1)), HopConfig{1, true, {}}, st, [&](Transaction* tx) {
    got_tx = tx != nullptr;
    return NfResult{!got_tx};  // the NF refuses the flow
  }, &r);
  EXPECT_FALSE(got_tx);
  EXPECT_EQ(r.stats[AC_FTC_ST_STORE_FULL], 1u);
  EXPECT_TRUE(dec(out).ctrl->propagating());
}

}  // namespace
}  // namespace anychain::ftc
