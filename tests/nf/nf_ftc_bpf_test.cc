// FTC inside the built-in NF programs (docs/ftc.md 10, phase B item 1), run with
// BPF_PROG_TEST_RUN on the objects anychain-nf loads: the head's log (docs/ftc.md 2.5's example
// byte for byte), the NAT's mapping logged once then no-ops, a filtered packet turned
// propagating, and the replica side on real NFs: a predecessor's log applied to the replica
// store and stripped by its tail, a returned (wrapped) log committed, a log of an unknown
// middlebox refused, a gap dropped without a hold socket, each with exact bytes.
#include "nf_bpf_fixture.h"

#include <bpf/libbpf.h>

#include <chrono>
#include <thread>

#include "nf/hold.h"

namespace anychain::test {
namespace {

using namespace nfbpf;

// What the classifier of an FTC chain (f = 1, ingress 10.0.0.1) sends a hop at SI si: flow hash
// and control TLV, no logs
ftc::Nsh ftc_head(uint8_t si) {
  ftc::Nsh n;
  n.spi = kSpi;
  n.si = si;
  n.other.push_back(ftc::flow_hash_tlv(kHash));
  n.ctrl = ftc::Ctrl{0, 1, 0x0a000001};
  return n;
}

// FTC switched on by the chain (the control TLV): the same program appends its log. This is the
// packet of docs/ftc.md 2.5: instance 7, SPI 42, hash 0x11223344, the flow's 5th packet of 100
// bytes, f = 1, ingress 10.0.0.1.
TEST_F(NfBpf, MonitorWithFtcAppendsTheLogOfTheDesignExample) {
  load(monitor(7));
  Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));
  auto in = ftc::encode_nsh(ftc_head(255));
  ASSERT_TRUE(in.has_value());
  Out o;
  for (int i = 0; i < 5; ++i) {
    o = run(to_nf(*in, inner));
    ASSERT_EQ(o.verdict, XDP_TX);
  }
  const Bytes want_nsh = {
      0x0f, 0xd4, 0x02, 0x01, 0x00, 0x00, 0x2a, 0xff,  // 20 words, MD2, IPv4; SPI 42, SI 255
      0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,  // flow hash
      0xff, 0xf6, 0x04, 0x08, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,  // control
      0xff, 0xf6, 0x02, 0x2d,                          // log, 45 bytes
      0x00, 0x01, 0x01, 0x01, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x05,
      0x01, 0x00, 0x0d, 0x10,
      0x0a, 0x01, 0x00, 0x01, 0x0a, 0x02, 0x00, 0x02, 0x11, 0x9c, 0x40, 0x23, 0x28,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf4,
      0x00, 0x00, 0x00};
  EXPECT_EQ(hex(o.frame), hex(from_nf(want_nsh, inner)));
  EXPECT_EQ(count(AC_NF_MON_COUNTED), 5u);
  EXPECT_EQ(state()["ftc"]["counters"]["ftc_log_appended"], 5u);
}


// FTC on: the mapping is the head's write (key the 5-tuple, value address and port); the
// flow's next packet logs a no-op.
TEST_F(NfBpf, NatWithFtcLogsTheMappingOnceThenNoOps) {
  load(nat());
  auto in = ftc::encode_nsh(ftc_head(254));
  ASSERT_TRUE(in.has_value());
  Bytes inner = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  Bytes translated = ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000));
  for (uint32_t i = 0; i < 2; ++i) {
    Out o = run(to_nf(*in, inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    auto got = ftc::decode_nsh(Bytes(o.frame.begin() + 14, o.frame.end()));
    ASSERT_TRUE(got.has_value()) << got.error().message;
    ASSERT_EQ(got->logs.size(), 1u);
    const ftc::Log& l = got->logs[0];
    EXPECT_EQ(l.mbox.id, 9);
    EXPECT_EQ(l.mbox.si, 254);
    EXPECT_EQ(l.seq, 1u);
    if (i == 0) {
      ASSERT_EQ(l.writes.size(), 1u);
      EXPECT_EQ(l.writes[0].table, AC_NF_TABLE_FLOW);
      EXPECT_EQ(hex(l.writes[0].key), hex({10, 1, 0, 1, 198, 51, 100, 7, 17, 0x9c, 0x40, 0x23, 0x28}));
      EXPECT_EQ(hex(l.writes[0].value), hex({192, 0, 2, 10, 0x4e, 0x40, 0, 0}));
    } else {
      EXPECT_TRUE(l.noop()) << "the mapping exists: nothing written";
    }
    size_t nsh_len = (o.frame[15] & 0x3f) * 4;
    EXPECT_EQ(hex(Bytes(o.frame.begin() + 14 + nsh_len, o.frame.end())), hex(translated));
  }
}

// A filtered packet of an FTC chain leaves as a propagating packet: inner removed, flag set.
TEST_F(NfBpf, FirewallWithFtcTurnsAFilteredPacketIntoAPropagatingOne) {
  load(firewall({"drop proto udp dport 53"}));
  const ftc::Nsh n = ftc_head(255);
  auto in = ftc::encode_nsh(n);
  Out o = run(to_nf(*in, ipv4("10.1.0.1", "10.2.0.2", udp(40000, 53))));
  ASSERT_EQ(o.verdict, XDP_TX);
  ftc::Nsh want = n;
  want.ctrl->flags = AC_FTC_CTRL_PROPAGATING;
  auto wb = ftc::encode_nsh(want);
  EXPECT_EQ(hex(o.frame), hex(from_nf(*wb, {})));
  EXPECT_EQ(count(AC_NF_FW_DROPPED), 1u);
  EXPECT_EQ(count(AC_NF_DROP_FILTERED), 0u) << "not dropped: propagated";
}

// ------------------------------------------------------------------ replicas and tails on real NFs

// The monitor's (instance 7, head SI 255) first log of the flow 10.1.0.1:40000 -> 198.51.100.7:9000
// (60 bytes of inner packet): packets 1, bytes 60, held 1. It arrives at the next hop (SI 254).
const Bytes kMonLog1 = {
    0xff, 0xf6, 0x02, 0x2d,                          // log TLV, 45 bytes
    0x00, 0x01, 0x01, 0x01, 0x00, 0x07, 0x00, 0xff,  // held 1, 1 write, count 1; instance 7, inc 0, SI 255
    0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0d, 0x10,  // seq 1; table 1, klen 13, vlen 16
    0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23, 0x28,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    0x00, 0x00, 0x00};
const Bytes kFlowKey = {0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23, 0x28};

// Base header (given length in words, MD2, IPv4, SPI 42, SI), flow hash, control (f, 10.0.0.1)
Bytes head_of(uint8_t words, uint8_t si, uint8_t f) {
  return {0x0f, static_cast<uint8_t>(0xc0 | words), 0x02, 0x01, 0x00, 0x00, 0x2a, si,
          0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,
          0xff, 0xf6, 0x04, 0x08, 0x00, f, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01};
}
Bytes cat(Bytes a, const Bytes& b) {
  append(a, b);
  return a;
}
// The monitor's log with another sequence number, held count or flags
Bytes mon_log(uint32_t seq, uint8_t held = 1, uint8_t flags = 0) {
  Bytes l = kMonLog1;
  l[4] = flags;
  l[5] = held;
  l[12] = seq >> 24, l[13] = seq >> 16, l[14] = seq >> 8, l[15] = seq & 0xff;
  l[40] = static_cast<uint8_t>(seq);            // packets = seq
  l[48] = static_cast<uint8_t>(0x3c * seq);     // bytes = 60 per packet
  return l;
}

class NfFtcReplica : public NfBpf {
 protected:
  void peer(uint32_t id) const {
    uint32_t v = 1;
    ASSERT_EQ(bpf_map_update_elem(maps_->fd("nf_peers"), &id, &v, 0), 0);
  }
  uint64_t ftc(const char* name) const { return state()["ftc"]["counters"].value(name, uint64_t{0}); }
  // The replica record of the monitor's partition, if any
  std::optional<ac_st_rec> replica_of_monitor() const {
    auto r = maps_->replica_records();
    EXPECT_TRUE(r.has_value());
    if (!r) return std::nullopt;
    for (const auto& [k, rec] : *r)
      if (k.id == 7 && k.spi_si == (kSpi << 8 | 255) && k.hash == kHash) return rec;
    return std::nullopt;
  }
  static Bytes inner() { return ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000)); }
};

// f = 1, the NAT after the monitor: it applies the monitor's log to its replica store (held
// becomes 2 = f + 1, so it is the tail), strips it, runs its own transaction and appends its own
// log (the new mapping), exact bytes; the replica record holds the monitor's value at seq 1.
TEST_F(NfFtcReplica, NatAppliesAndStripsItsPredecessorsLogAsTheTail) {
  load(nat());
  peer(7);
  Out o = run(to_nf(cat(cat(head_of(20, 254, 1), kMonLog1), {}), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  const Bytes want_nsh = cat(head_of(18, 254, 1), {
      0xff, 0xf6, 0x02, 0x25,                          // the NAT's log, 37 bytes
      0x00, 0x01, 0x01, 0x01, 0x00, 0x09, 0x00, 0xfe,  // held 1, 1 write, count 1; instance 9, SI 254
      0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0d, 0x08,  // seq 1; table 1, klen 13, vlen 8
      0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23, 0x28,
      0xc0, 0x00, 0x02, 0x0a, 0x4e, 0x40, 0x00, 0x00,  // 192.0.2.10:20032
      0x00, 0x00, 0x00});
  EXPECT_EQ(hex(o.frame), hex(from_nf(want_nsh, ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  auto rec = replica_of_monitor();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->seq, 1u);
  EXPECT_EQ(rec->held, 2);
  ASSERT_TRUE(rec->slot[0].flags & AC_ST_USED);
  EXPECT_EQ(hex(Bytes(rec->slot[0].key, rec->slot[0].key + rec->slot[0].klen)), hex(kFlowKey));
  EXPECT_EQ(hex(Bytes(rec->slot[0].val, rec->slot[0].val + rec->slot[0].vlen)),
            hex({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x3c}));
  EXPECT_EQ(ftc("ftc_applied"), 1u);
  EXPECT_EQ(ftc("ftc_tail_stripped"), 1u);
  EXPECT_EQ(ftc("ftc_log_appended"), 1u);
  // the same packet again (a duplicate): satisfied, nothing applied twice; the NAT's no-op
  o = run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(ftc("ftc_satisfied"), 1u);
  EXPECT_EQ(ftc("ftc_applied"), 1u);
  EXPECT_EQ(replica_of_monitor()->seq, 1u);
  outcomes_add_up();
}

// f = 1, a log the buffer returned (WRAPPED) reaches its tail: stripped and committed; the commit
// TLV is the last one, after the NAT's own log.
TEST_F(NfFtcReplica, NatCommitsAWrappedLogAtItsTail) {
  load(nat());
  peer(7);
  Out o = run(to_nf(cat(head_of(20, 254, 1), mon_log(1, 1, AC_FTC_LOG_WRAPPED)), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  const size_t nsh_len = (o.frame[15] & 0x3f) * 4;
  const Bytes nsh_out(o.frame.begin() + 14, o.frame.begin() + 14 + nsh_len);
  EXPECT_EQ(nsh_len, 84u) << "base, hash, control, the NAT's log (44), commit (12)";
  EXPECT_EQ(hex(Bytes(nsh_out.end() - 12, nsh_out.end())),
            hex({0xff, 0xf6, 0x03, 0x08, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x01}));
  auto d = ftc::decode_nsh(nsh_out);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  ASSERT_EQ(d->logs.size(), 1u);
  EXPECT_EQ(d->logs[0].mbox.id, 9);
  ASSERT_EQ(d->commits.size(), 1u);
  EXPECT_EQ(d->commits[0].seq, 1u);
  EXPECT_EQ(ftc("ftc_commits"), 1u);
}

// f = 2, the firewall between the monitor and the NAT: a stateless replica hop. It applies the
// monitor's log, counts itself in held (2 < f + 1: not the tail, the log stays) and appends
// nothing: the NSH leaves as it came with held 2 and SI - 1.
TEST_F(NfFtcReplica, FirewallIsAReplicaThatKeepsTheLogWithHeldCounted) {
  nf::Params fw = firewall({"drop proto udp dport 53"});
  fw.instance_id = 8;  // firewall() is instance 7, the monitor's id: its own log would be refused
  load(fw);
  peer(7);
  const Bytes in_nsh = cat(head_of(20, 254, 2), kMonLog1);
  Out o = run(to_nf(in_nsh, inner()));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(head_of(20, 254, 2), mon_log(1, 2)), inner())));
  auto rec = replica_of_monitor();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->seq, 1u);
  EXPECT_EQ(ftc("ftc_applied"), 1u);
  EXPECT_EQ(ftc("ftc_tail_stripped"), 0u);
  EXPECT_EQ(ftc("ftc_log_appended") + ftc("ftc_noop_appended"), 0u) << "stateless: no log of its own";
}

// A stateless hop on an FTC packet that carries no log and no commit (the firewall in a flow's
// steady state, once no returned logs ride): nothing to replicate, strip, commit or append, so
// the NSH leaves exactly as it came (foreign TLVs in place), only SI - 1, without a rebuild.
TEST_F(NfFtcReplica, AStatelessHopLeavesAnNshWithoutLogsAsItCame) {
  nf::Params fw = firewall({"drop proto udp dport 53"});
  fw.instance_id = 8;
  load(fw);
  peer(7);
  const Bytes foreign = {0x01, 0x23, 0x45, 0x04, 0xde, 0xad, 0xbe, 0xef};  // class 0x0123, type 0x45
  Bytes in_nsh = cat(head_of(9, 254, 1), foreign);
  Out o = run(to_nf(in_nsh, inner()));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(in_nsh, inner())));
  EXPECT_EQ(ftc("ftc_applied") + ftc("ftc_tail_stripped") + ftc("ftc_commits"), 0u);
  EXPECT_EQ(count(AC_NF_DROP_FTC), 0u);
  outcomes_add_up();
}

// Out of order: seq 3 while the replica is at 1 is a gap. Without a hold socket (no anychain-nf
// queue yet) the frame is dropped and counted, nothing applied; seq 2 then 3 apply in order.
// A log of a middlebox nf_peers does not list is refused, and so is one of the hop's own id.
TEST_F(NfFtcReplica, GapsAreDroppedWithoutAHoldSocketAndUnknownMiddleboxesRefused) {
  load(nat());
  peer(7);
  ASSERT_EQ(run(to_nf(cat(head_of(20, 254, 1), mon_log(1)), inner())).verdict, XDP_TX);
  EXPECT_EQ(run(to_nf(cat(head_of(20, 254, 1), mon_log(3)), inner())).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_gap"), 1u);
  EXPECT_EQ(ftc("ftc_hold_unavailable"), 1u);
  EXPECT_EQ(replica_of_monitor()->seq, 1u);
  for (uint32_t seq : {2u, 3u}) ASSERT_EQ(run(to_nf(cat(head_of(20, 254, 1), mon_log(seq)), inner())).verdict, XDP_TX);
  auto rec = replica_of_monitor();
  EXPECT_EQ(rec->seq, 3u);
  EXPECT_EQ(rec->slot[0].val[7], 3) << "packets 3";
  Bytes foreign = mon_log(1);
  foreign[9] = 40;  // instance 40: not a peer
  EXPECT_EQ(run(to_nf(cat(head_of(20, 254, 1), foreign), inner())).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_unknown_mbox"), 1u);
  Bytes own = mon_log(1);
  own[9] = 9;  // the NAT's own id: the chain is misconfigured
  peer(9);
  EXPECT_EQ(run(to_nf(cat(head_of(20, 254, 1), own), inner())).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_own_log"), 1u);
  outcomes_add_up();
}

// ------------------------------------------------------------------ the replica-only hop (5.4)

nf::Params replica_hop(uint32_t id = 8) {
  nf::Params p;
  p.kind = nf::Kind::Replica;
  p.instance_id = id;
  return p;
}

// f = 1: the replica hop is the monitor's tail: it applies the log, strips it and appends
// nothing; the NSH leaves with base, hash and control only, the inner packet untouched.
TEST_F(NfFtcReplica, ReplicaHopAppliesStripsAndAppendsNothing) {
  load(replica_hop());
  peer(7);
  Out o = run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner()));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(head_of(7, 254, 1), inner())));
  auto rec = replica_of_monitor();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->seq, 1u);
  EXPECT_EQ(rec->held, 2);
  EXPECT_EQ(hex(Bytes(rec->slot[0].key, rec->slot[0].key + rec->slot[0].klen)), hex(kFlowKey));
  EXPECT_EQ(ftc("ftc_applied"), 1u);
  EXPECT_EQ(ftc("ftc_tail_stripped"), 1u);
  EXPECT_EQ(ftc("ftc_log_appended") + ftc("ftc_noop_appended"), 0u);
  EXPECT_EQ(state()["ftc"]["records"], 0u) << "no head store";
  EXPECT_EQ(state()["ftc"]["replica_records"], 1u);
  outcomes_add_up();
}

// The replica store's default room (anychain-nf's LoadOptions and the config's replica_records):
// the FTC recovery bench's 10,000 flows through one predecessor must all fit. Until the default
// was a head store's partitions times the largest f, 4096 records did not: one partition more and
// its log was refused (ftc_replica_full), its packet dropped and its state not recoverable.
TEST_F(NfFtcReplica, TheDefaultReplicaStoreHoldsTenThousandPartitionsOfAPredecessor) {
  load(replica_hop());
  peer(7);
  constexpr uint32_t kFlows = 10000;
  for (uint32_t i = 0; i < kFlows; ++i) {
    Bytes nsh = cat(head_of(20, 254, 1), kMonLog1);
    const uint32_t hash = 0x51000000u + i;  // the flow hash TLV's value: one partition per flow
    nsh[12] = hash >> 24, nsh[13] = hash >> 16, nsh[14] = hash >> 8, nsh[15] = hash & 0xff;
    Out o = run(to_nf(nsh, inner()));
    ASSERT_EQ(o.verdict, XDP_TX) << "partition " << i << ": " << state()["ftc"]["counters"].dump();
  }
  EXPECT_EQ(ftc("ftc_replica_full"), 0u);
  EXPECT_EQ(ftc("ftc_applied"), kFlows);
  EXPECT_EQ(state()["ftc"]["replica_records"], kFlows);
  outcomes_add_up();
}

// A replica store too small for its predecessor's partitions: the logs of the partitions beyond
// it are refused (ftc_replica_full), as anychain-nf reads them (Nf::ftc_counter) for its warning.
TEST_F(NfFtcReplica, AFullReplicaStoreRefusesLogsAndAnychainNfWarnsOnce) {
  nf::LoadOptions lo;
  lo.replica_records = 4;
  load(replica_hop(), lo);
  peer(7);
  for (uint32_t i = 0; i < 6; ++i) {
    Bytes nsh = cat(head_of(20, 254, 1), kMonLog1);
    const uint32_t hash = 0x52000000u + i;
    nsh[12] = hash >> 24, nsh[13] = hash >> 16, nsh[14] = hash >> 8, nsh[15] = hash & 0xff;
    run(to_nf(nsh, inner()));
  }
  EXPECT_EQ(ftc("ftc_applied"), 4u);
  EXPECT_EQ(ftc("ftc_replica_full"), 2u);
  auto rf = nf_->ftc_counter(AC_FTC_ST_REPLICA_FULL);
  ASSERT_TRUE(rf.has_value()) << rf.error().str();
  EXPECT_EQ(*rf, 2u);
  auto sf = nf_->ftc_counter(AC_FTC_ST_STORE_FULL);
  ASSERT_TRUE(sf.has_value());
  nf::StoreFullWatch w(lo.flows, lo.replica_records);
  auto m = w.update(*sf, *rf, std::chrono::steady_clock::now());
  ASSERT_TRUE(m.has_value());
  EXPECT_NE(m->find("2 logs of predecessors refused"), std::string::npos) << *m;
  EXPECT_NE(m->find("it holds 4 records"), std::string::npos) << *m;
  outcomes_add_up();
}

// f = 2: not the tail, the log stays with held 2; a returned log at its tail is committed; a plain
// packet (MD type 1: a chain without FTC) is returned as it came, SI - 1.
TEST_F(NfFtcReplica, ReplicaHopKeepsLogsItIsNotTheTailOfAndCommitsWrappedOnes) {
  load(replica_hop());
  peer(7);
  Out o = run(to_nf(cat(head_of(20, 254, 2), kMonLog1), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(head_of(20, 254, 2), mon_log(1, 2)), inner())));
  // seq 2, returned by the buffer with held 2 = f: this hop makes the third copy and commits it
  o = run(to_nf(cat(head_of(20, 254, 2), mon_log(2, 2, AC_FTC_LOG_WRAPPED)), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(head_of(10, 254, 2), {0xff, 0xf6, 0x03, 0x08, 0x00, 0x07, 0x00, 0xff, 0x00,
                                                                  0x00, 0x00, 0x02}),
                                      inner())));
  EXPECT_EQ(ftc("ftc_commits"), 1u);
  EXPECT_EQ(replica_of_monitor()->seq, 2u);
  const Bytes plain = md1();
  o = run(to_nf(plain, inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(plain, inner())));
  EXPECT_EQ(ftc("ftc_no_ctrl"), 1u);
  outcomes_add_up();
}

// ------------------------------------------------------------------ propagating packets and stubs (2.6, 5.3)

// The control TLV with PROPAGATING set
Bytes prop_head_of(uint8_t words, uint8_t si, uint8_t f) {
  Bytes h = head_of(words, si, f);
  h[20] = AC_FTC_CTRL_PROPAGATING;
  return h;
}

// A propagating packet reaches the NAT (f = 1): the monitor's log is applied and stripped (the
// NAT is its tail), the NAT does not run (no inner packet: no mapping, no port, no log of its
// own) and the NSH goes on, SI - 1, still propagating.
TEST_F(NfFtcReplica, NatAppliesAnIncomingPropagatingPacketWithoutRunning) {
  load(nat());
  peer(7);
  Out o = run(to_nf(cat(prop_head_of(20, 254, 1), kMonLog1), {}));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(prop_head_of(7, 254, 1), {})));
  EXPECT_EQ(replica_of_monitor()->seq, 1u);
  EXPECT_EQ(count(AC_NF_PROPAGATING), 1u);
  EXPECT_EQ(count(AC_NF_NAT_NEW), 0u);
  EXPECT_EQ(ftc("ftc_propagating"), 1u);
  EXPECT_EQ(ftc("ftc_log_appended") + ftc("ftc_noop_appended"), 0u);
  EXPECT_EQ(state()["ftc"]["records"], 0u) << "no transaction ran";
  outcomes_add_up();
}

// An NSH of six TLVs (the flow hash, the control TLV, three TLVs of another MD class, one of them
// empty, the monitor's log; 100 bytes: not a multiple of 8) at a replica that is not the tail (f =
// 2): the hop walks and rebuilds the first four TLVs in line and the rest with bpf_loop, reads the
// NSH and writes it back in place in 8-byte words with a 4-byte last one (bpf/nf_state.h). Every
// TLV leaves in its order, the log with its held count raised, exact bytes; once with an inner
// packet and once as a propagating packet that ends with its NSH.
TEST_F(NfFtcReplica, ALongNshIsWalkedAndRebuiltWholeInPlace) {
  load(replica_hop());
  peer(7);
  const Bytes foreign = {0x01, 0x01, 0x01, 0x04, 0x01, 0x02, 0x03, 0x04,   // class 0x0101 type 1, 4 bytes
                         0x01, 0x01, 0x02, 0x00,                           // type 2, empty
                         0x01, 0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};  // type 3, 4 bytes
  const Bytes nsh = cat(cat(head_of(25, 254, 2), foreign), kMonLog1);
  ASSERT_EQ(nsh.size(), 100u);
  Out o = run(to_nf(nsh, inner()));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(cat(head_of(25, 254, 2), foreign), mon_log(1, 2)), inner())));
  EXPECT_EQ(replica_of_monitor()->seq, 1u);

  Bytes prop = cat(cat(prop_head_of(25, 254, 2), foreign), mon_log(2));
  o = run(to_nf(prop, {}));
  ASSERT_EQ(o.verdict, XDP_TX) << state().dump();
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(cat(prop_head_of(25, 254, 2), foreign), mon_log(2, 2)), {})));
  EXPECT_EQ(replica_of_monitor()->seq, 2u);
  EXPECT_EQ(ftc("ftc_applied"), 2u);
  EXPECT_EQ(ftc("ftc_bad_tlv"), 0u);
  outcomes_add_up();
}

// A transaction of two writes: the monitor's partition (one flow hash) holds two flows; after its
// idle time the next packet's transaction deletes both keys and counts its own flow anew, so its
// log carries two writes (the first encoded in line, the second by bpf_loop): a delete of the
// other flow's key and the put of its own counters, in slot order.
TEST_F(NfBpf, MonitorLogsATransactionOfTwoWrites) {
  nf::Params p = monitor(7);
  p.idle_timeout_s = 1;
  load(p);
  auto in = ftc::encode_nsh(ftc_head(255));
  ASSERT_TRUE(in.has_value());
  const Bytes a = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));
  const Bytes b = ipv4("10.1.0.3", "10.2.0.2", udp(40001, 9000, 72));
  ASSERT_EQ(run(to_nf(*in, a)).verdict, XDP_TX);
  ASSERT_EQ(run(to_nf(*in, b)).verdict, XDP_TX);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));  // past 1 s of idle, in jiffies
  Out o = run(to_nf(*in, b));
  ASSERT_EQ(o.verdict, XDP_TX);
  auto got = ftc::decode_nsh(Bytes(o.frame.begin() + 14, o.frame.end()));
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->logs.size(), 1u);
  const ftc::Log& l = got->logs[0];
  EXPECT_EQ(l.seq, 3u);
  ASSERT_EQ(l.writes.size(), 2u);
  EXPECT_TRUE(l.writes[0].del);
  EXPECT_EQ(hex(l.writes[0].key), hex({10, 1, 0, 1, 10, 2, 0, 2, 17, 0x9c, 0x40, 0x23, 0x28}));
  EXPECT_FALSE(l.writes[1].del);
  EXPECT_EQ(hex(l.writes[1].key), hex({10, 1, 0, 3, 10, 2, 0, 2, 17, 0x9c, 0x41, 0x23, 0x28}));
  EXPECT_EQ(hex(l.writes[1].value), hex({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100}));
}

// The stub of the monitor's log (seq 1, f = 4: 52 bytes over the share of 44)
const Bytes kMonStub1 = {0xff, 0xf6, 0x02, 0x0c, 0x02, 0x01, 0x00, 0x01, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x01};

// f = 4: the monitor's log (49 bytes of TLV, 52 padded) is over the share (44): the packet
// carries the 16-byte STUB and the whole log goes to the ring buffer with what anychain-nf needs
// to send it (partition, f, ingress, Ethernet header, next protocol); HoldQueue builds the
// propagating packet from it, exact bytes.
TEST_F(NfBpf, MonitorOverItsShareLeavesAStubAndTheWholeLogInTheRing) {
  load(monitor(7));
  Bytes in_nsh = head_of(7, 255, 4);
  Bytes inner4 = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  Out o = run(to_nf(in_nsh, inner4));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(head_of(11, 255, 4), kMonStub1), inner4)));
  EXPECT_EQ(state()["ftc"]["counters"]["ftc_stub"], 1u);
  std::vector<ac_nf_overflow> got;
  ring_buffer* rb = ring_buffer__new(
      maps_->fd("nf_overflow"),
      [](void* ctx, void* data, size_t size) {
        if (size >= sizeof(ac_nf_overflow)) static_cast<std::vector<ac_nf_overflow>*>(ctx)->push_back(*static_cast<ac_nf_overflow*>(data));
        return 0;
      },
      &got, nullptr);
  ASSERT_NE(rb, nullptr);
  ring_buffer__consume(rb);
  ring_buffer__free(rb);
  ASSERT_EQ(got.size(), 1u);
  const ac_nf_overflow& r = got[0];
  EXPECT_EQ(r.o.spi_si, kSpi << 8 | 255);
  EXPECT_EQ(r.o.hash, kHash);
  EXPECT_EQ(r.o.f, 4);
  EXPECT_EQ(r.o.len, 45u);
  EXPECT_EQ(hex(Bytes(r.o.log, r.o.log + r.o.len)), hex(Bytes(kMonLog1.begin() + 4, kMonLog1.begin() + 4 + 45)));
  EXPECT_EQ(r.ingress, 0x0a000001u);
  EXPECT_EQ(r.next_proto, AC_NSH_NP_IPV4);
  const Bytes arrived = to_nf(in_nsh, inner4);
  EXPECT_EQ(hex(Bytes(r.eth, r.eth + 14)), hex(Bytes(arrived.begin(), arrived.begin() + 14)));
  // the propagating packet anychain-nf sends out of eth0: to the fast path, SI - 1, the whole log
  Bytes want = eth(kHost, kNf, AC_ETH_P_NSH);
  append(want, cat(prop_head_of(20, 254, 4), kMonLog1));
  EXPECT_EQ(hex(nf::HoldQueue::propagating_frame(r)), hex(want));
}

// The stub reaches the NAT before its propagating packet (f = 4): a gap (no record yet), dropped
// here without a hold socket; the propagating packet applies the whole log (held 2, kept: the
// NAT is not the tail), the NAT does not run; the stub re-sent is then satisfied, the NAT maps
// the flow and appends its own log (37 bytes: within the share of 44).
TEST_F(NfFtcReplica, NatHoldsAStubUntilItsPropagatingPacketArrives) {
  load(nat());
  peer(7);
  const Bytes stubbed = to_nf(cat(head_of(11, 254, 4), kMonStub1), inner());
  EXPECT_EQ(run(stubbed).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_gap"), 1u);
  EXPECT_EQ(ftc("ftc_hold_unavailable"), 1u);
  EXPECT_FALSE(replica_of_monitor().has_value());
  Out o = run(to_nf(cat(prop_head_of(20, 254, 4), kMonLog1), {}));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(prop_head_of(20, 254, 4), mon_log(1, 2)), {})));
  EXPECT_EQ(replica_of_monitor()->seq, 1u);
  o = run(stubbed);
  ASSERT_EQ(o.verdict, XDP_TX);
  Bytes stub2 = kMonStub1;
  stub2[5] = 2;  // held 2
  const Bytes nat_log = {0xff, 0xf6, 0x02, 0x25, 0x00, 0x01, 0x01, 0x01, 0x00, 0x09, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x01,
                         0x01, 0x00, 0x0d, 0x08, 0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23,
                         0x28, 0xc0, 0x00, 0x02, 0x0a, 0x4e, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(hex(o.frame), hex(from_nf(cat(cat(head_of(22, 254, 4), stub2), nat_log),
                                      ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  EXPECT_EQ(ftc("ftc_satisfied"), 1u);
  EXPECT_EQ(ftc("ftc_applied"), 1u);
  outcomes_add_up();
}

// ------------------------------------------------------------------ the verifier's work

// Every NF program's processed-instruction count (bpf_prog_info.verified_insns, the figure the
// verifier's log ends with) stays under 400,000: 40 % of BPF_COMPLEXITY_LIMIT_INSNS (1,000,000,
// the same on this kernel and on Debian 12's 6.1, whose VM tests load these programs), so a
// change that doubles a program's verification cost still loads everywhere. The figures are
// printed for docs/ftc.md 3.6.
TEST_F(NfBpf, VerifierWorkOfEveryNfStaysWellUnderTheLimit) {
  constexpr uint32_t kBound = 400'000;
  for (const nf::Params& p : {firewall({"drop proto udp dport 53"}), monitor(7), nat(), replica_hop()}) {
    load(p);
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(nf_->prog_fd(), &info, &len), 0);
    ASSERT_GT(info.verified_insns, 0u) << "the kernel reports no verified_insns (5.16+)";
    std::printf("%-9s %s: %u instructions processed by the verifier\n", std::string(nf::to_string(p.kind)).c_str(),
                nf_->published().program.c_str(), info.verified_insns);
    RecordProperty(std::string(nf::to_string(p.kind)) + "_verified_insns", static_cast<int>(info.verified_insns));
    EXPECT_LT(info.verified_insns, kBound) << nf_->published().program;
  }
}

// ------------------------------------------------------------------ the FTC control and reclaiming (6.2)

// The control file's peers and incarnation reach the maps: a log of a listed peer is accepted,
// the same log after a control without it is refused; the incarnation is nf_ftc_cfg's and goes
// into the instance's own logs.
TEST_F(NfFtcReplica, ControlSetsPeersAndTheIncarnation) {
  load(nat());
  EXPECT_EQ(run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner())).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_unknown_mbox"), 1u);
  nf::FtcControl c;
  c.incarnation = 3;
  c.peers = {{7, 0, 60}, {12, 1, 300}};
  ASSERT_TRUE(nf_->apply_control(c).has_value());
  Out o = run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner()));
  ASSERT_EQ(o.verdict, XDP_TX);
  auto d = ftc::decode_nsh(Bytes(o.frame.begin() + 14, o.frame.begin() + 14 + (o.frame[15] & 0x3f) * 4));
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->logs.size(), 1u);
  EXPECT_EQ(d->logs[0].mbox.inc, 3) << "the NAT's own log carries its incarnation";
  json st = state();
  EXPECT_EQ(st["ftc"]["incarnation"], 3);
  EXPECT_EQ(st["ftc"]["peers"], json({{"7", 0}, {"12", 1}}));
  EXPECT_EQ(st["process"]["control_loads"], 1u);
  c.peers = {{12, 1, 300}};
  ASSERT_TRUE(nf_->apply_control(c).has_value());
  Bytes next = mon_log(2);
  EXPECT_EQ(run(to_nf(cat(head_of(20, 254, 1), next), inner())).verdict, XDP_DROP);
  EXPECT_EQ(ftc("ftc_unknown_mbox"), 2u);
  EXPECT_EQ(state()["ftc"]["peers"], json({{"12", 1}}));
}

// Replica records are reclaimed after their head's idle timeout (the peer's idle_timeout_s), head
// records after the NF's own plus the grace; a replica record kept alive by no-ops and duplicates
// (last_used moves on SATISFIED) is not reclaimed while they come.
TEST_F(NfFtcReplica, ReplicaRecordsAreReclaimedAfterTheirHeadsIdleTimeout) {
  load(nat());
  nf::FtcControl c;
  c.peers = {{7, 0, 2}};
  ASSERT_TRUE(nf_->apply_control(c).has_value());
  ASSERT_EQ(run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner())).verdict, XDP_TX);
  using namespace std::chrono_literals;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = nf_->reclaim(t0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->replicas, 0u);
  // the same log again a few ticks later: satisfied, the record is in use
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner())).verdict, XDP_TX);
  ASSERT_EQ(ftc("ftc_satisfied"), 1u);
  r = nf_->reclaim(t0 + 1500ms);
  EXPECT_EQ(r->replicas, 0u) << "used 1.5 s ago at most";
  r = nf_->reclaim(t0 + 3s);
  EXPECT_EQ(r->replicas, 0u) << "last seen used at t0 + 1.5 s";
  r = nf_->reclaim(t0 + 3500ms + 1ms);
  EXPECT_EQ(r->replicas, 1u);
  EXPECT_EQ(r->records, 0u) << "the NAT's head record: 300 s + 30 s";
  EXPECT_FALSE(replica_of_monitor().has_value());
  EXPECT_EQ(state()["process"]["replica_reclaimed"], 1u);
  EXPECT_EQ(state()["ftc"]["records"], 1u);
  r = nf_->reclaim(t0 + 331s + 1500ms);
  EXPECT_EQ(r->records, 1u);
  EXPECT_EQ(state()["process"]["head_reclaimed"], 1u);
  // a peer with idle_timeout_s 0: its replica records are never reclaimed
  c.peers = {{7, 0, 0}};
  ASSERT_TRUE(nf_->apply_control(c).has_value());
  ASSERT_EQ(run(to_nf(cat(head_of(20, 254, 1), kMonLog1), inner())).verdict, XDP_TX);
  EXPECT_EQ(nf_->reclaim(t0 + 400s)->replicas, 0u);
  EXPECT_EQ(nf_->reclaim(t0 + 9000s)->replicas, 0u);
}

}  // namespace
}  // namespace anychain::test
