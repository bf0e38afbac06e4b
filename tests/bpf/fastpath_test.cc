// Packet in -> verdict and exact bytes out, for every path of the fast path (classify, deliver
// to a local, proxied or remote instance, VXLAN-GPE, last hop; IPv4 and IPv6 inner). The other
// fastpath_*_test.cc files of this binary: caches, bad input, real-network edges. Runs in a
// private netns/bpffs (see fastpath_fixture).
#include <linux/if_ether.h>

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

class FastPath : public ::testing::TestWithParam<Flow> {};

// One run and what it moved: the last hop's verdict counter, a note's, and a path's counter.
struct LastHopSeen {
  RunResult r;
  ac_counter last_hop, note, path;
};
// fwd: the verdict's counter (reported as last_hop).
LastHopSeen fwd_seen(const char* ifname, const Bytes& in, uint32_t fwd, uint32_t note, uint32_t spi, uint8_t si) {
  auto& d = FastPathEnv::dataplane();
  auto s0 = d.stats();
  auto p0 = d.path_stats(spi, si);
  LastHopSeen s{run_prog(prog(), ifname, in), {}, {}, {}};
  auto s1 = d.stats();
  auto p1 = d.path_stats(spi, si);
  EXPECT_TRUE(s0 && s1 && p0 && p1);
  if (!(s0 && s1 && p0 && p1)) return s;
  auto delta = [&](uint32_t slot) {
    return ac_counter{(*s1)[slot].packets - (*s0)[slot].packets, (*s1)[slot].bytes - (*s0)[slot].bytes};
  };
  s.last_hop = delta(fwd);
  s.note = delta(note);
  s.path = ac_counter{p1->packets - p0->packets, p1->bytes - p0->bytes};
  return s;
}

LastHopSeen last_hop_seen(const char* ifname, const Bytes& in, uint32_t note, uint32_t spi, uint8_t si) {
  return fwd_seen(ifname, in, AC_FWD_LAST_HOP, note, spi, si);
}

// Both runs routed the same frame to the last hop and moved every counter alike (packets and bytes).
void expect_same_last_hop(const LastHopSeen& first, const LastHopSeen& second, const Bytes& want,
                          const char* note_why) {
  for (const LastHopSeen* s : {&first, &second}) {
    EXPECT_EQ(s->r.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(s->r.out), hex(want));
    EXPECT_EQ(s->last_hop.packets, 1u);
    EXPECT_EQ(s->note.packets, 1u);
    EXPECT_EQ(s->path.packets, 1u);
  }
  EXPECT_EQ(second.last_hop.bytes, first.last_hop.bytes);
  EXPECT_EQ(second.note.bytes, first.note.bytes) << note_why;
  EXPECT_EQ(second.path.bytes, first.path.bytes);
}

// 1 + 4: classify at SI 255, deliver to the local NSH-aware VNF as NSH over Ethernet
TEST_P(FastPath, ClassifyToLocalNshAwareVnf) {
  const Flow& f = GetParam();
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, f.ethertype(), f.ip()));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  // TTL: the classifier's initial value, decremented by this node's SFF before its lookup
  EXPECT_EQ(hex(r.out), hex(nsh_at_vnf0(f, 100, 255, AC_NSH_DEFAULT_TTL - 1)));
  EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
}

// 2 + 4: NSH back from the VNF (SI 254) goes to a remote instance over VXLAN-GPE, MACs by FIB
TEST_P(FastPath, NshFromVnfToRemoteOverVxlanGpe) {
  const Flow& f = GetParam();
  Counters c;
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(nsh_for(f, 100, 254, 62)));
  append(in, f.ip());
  auto r = run_prog(prog(), "vnf0", in);

  Bytes inner = nsh(nsh_for(f, 100, 254, 61));  // TTL decremented by this forwarder
  append(inner, f.ip());
  Bytes want = eth(kCore0Peer, kCore0, ETH_P_IP);
  append(want, gpe_outer(kLocalEndpoint, kRemoteEndpoint, 0xc000 | (f.hash() & 0x3fff), inner.size(),
                         AC_GPE_NP_NSH, AC_GPE_FLAG_I | AC_GPE_FLAG_P, 7));
  append(want, inner);
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
}

// 2 + 6: VXLAN-GPE from another node at the last SI: decap, pop NSH, route inner by FIB
TEST_P(FastPath, VxlanGpeInLastHopRoutesInner) {
  const Flow& f = GetParam();
  Counters c;
  Bytes inner = nsh(nsh_for(f, 100, 253, 60));
  append(inner, f.ip());
  Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
  append(in, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size()));
  append(in, inner);
  auto r = run_prog(prog(), "core0", in);
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63))));
  EXPECT_EQ(c.delta(AC_NOTE_GPE_DECAP), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u);
}

// The same at the last hop with the flow's way cached: the outer headers and the NSH go in one
// move (ac_gpe_rx). Frame, verdict and every counter (packets and bytes) as the full path's.
TEST_P(FastPath, VxlanGpeInLastHopSameWithTheWayCached) {
  PinCpu pin;  // the flow cache is per CPU
  const Flow& f = GetParam();
  auto& d = FastPathEnv::dataplane();
  auto gpe_in = [&](uint8_t ttl) {
    Bytes inner = nsh(nsh_for(f, 100, 253, ttl));
    append(inner, f.ip());
    Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(in, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size()));
    append(in, inner);
    return in;
  };
  auto receive = [&] { return last_hop_seen("core0", gpe_in(60), AC_NOTE_GPE_DECAP, 100, 253); };
  ASSERT_TRUE(d.flush_flows().has_value());  // the first packet finds no way: the full path
  const LastHopSeen first = receive();
  const LastHopSeen second = receive();
  expect_same_last_hop(first, second, frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63)), "the note counts the frame as decapsulated");
  // an NSH whose TTL ends here is dropped, way cached or not
  Counters c;
  auto expired = run_prog(prog(), "core0", gpe_in(1));
  EXPECT_EQ(expired.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_TTL), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 0u);
  // an inner packet cut short behind the NSH takes the full path, which drops it as truncated
  Bytes cut = gpe_in(60);
  cut.resize(cut.size() - f.ip().size() + 10);
  Counters c2;
  auto truncated = run_prog(prog(), "core0", cut);
  EXPECT_EQ(truncated.verdict, XDP_DROP);
  EXPECT_EQ(c2.delta(AC_DROP_TRUNCATED), 1u);
  EXPECT_EQ(c2.delta(AC_DROP_NO_ROOM), 0u);
  EXPECT_EQ(c2.delta(AC_FWD_LAST_HOP), 0u);
}

// 2 + 4: VXLAN-GPE from another node that is not at its last hop: decap, then delivery to the
// local NSH-aware VNF its VNI names (SI 255), or (SI 254, VNI 0: this node selects) to the remote
// instance over VXLAN-GPE again. The flow is looked up once, in front of the forwarder
// (ac_gpe_rx), and the forwarder takes that lookup: exact bytes, verdict and every counter
// (packets and bytes) with the way missing (claimed by this packet) and with it cached.
TEST_P(FastPath, VxlanGpeInTransitExactBytesWithAndWithoutTheWay) {
  PinCpu pin;  // the flow cache is per CPU
  const Flow& f = GetParam();
  auto& d = FastPathEnv::dataplane();
  auto gpe_in = [&](uint8_t si, uint32_t vni, uint8_t ttl = 60) {
    Bytes inner = nsh(nsh_for(f, 100, si, ttl));
    append(inner, f.ip());
    Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(in, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size(), AC_GPE_NP_NSH,
                         AC_GPE_FLAG_I | AC_GPE_FLAG_P, vni));
    append(in, inner);
    return in;
  };
  Bytes inner = nsh(nsh_for(f, 100, 254, 59));  // TTL decremented by this forwarder
  append(inner, f.ip());
  Bytes to_remote = eth(kCore0Peer, kCore0, ETH_P_IP);
  append(to_remote, gpe_outer(kLocalEndpoint, kRemoteEndpoint, 0xc000 | (f.hash() & 0x3fff), inner.size(),
                              AC_GPE_NP_NSH, AC_GPE_FLAG_I | AC_GPE_FLAG_P, 7));
  append(to_remote, inner);
  struct Case {
    uint8_t si;
    uint32_t vni, fwd;
    Bytes want;
  };
  for (const Case& k : {Case{255, kInstLocal, AC_FWD_LOCAL_NSH, nsh_at_vnf0(f, 100, 255, 59)},
                        Case{254, 0, AC_FWD_REMOTE, to_remote}}) {
    SCOPED_TRACE(static_cast<int>(k.si));
    ASSERT_TRUE(d.flush_flows().has_value());  // the first packet finds no way
    const LastHopSeen cold = fwd_seen("core0", gpe_in(k.si, k.vni), k.fwd, AC_NOTE_GPE_DECAP, 100, k.si);
    const LastHopSeen warm = fwd_seen("core0", gpe_in(k.si, k.vni), k.fwd, AC_NOTE_GPE_DECAP, 100, k.si);
    expect_same_last_hop(cold, warm, k.want, "the note counts the frame as decapsulated");
    EXPECT_EQ(cold.note.bytes, gpe_in(k.si, k.vni).size() - (20 + 8 + 8)) << "[eth][NSH][inner]";
  }
  // an NSH whose TTL ends here is dropped (by the full path, after its decap), not delivered
  Counters c;
  auto expired = run_prog(prog(), "core0", gpe_in(255, kInstLocal, 1));
  EXPECT_EQ(expired.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_TTL), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 0u);
}

// VXLAN-GPE in transit to another node: the forwarder writes the new outer headers over the old
// ones (no bpf_xdp_adjust_head() when the old IPv4 header has no options, a forward move when it
// has). Whatever the old outer headers were (options of 0, 4 and 40 bytes, the longest), the
// frame out is the one the full path (decap, then a fresh encap) makes, byte for byte, with the
// flow's way and the next hop cached or not; and every counter the forwarder moves (the notes,
// the path's, the instance's) counts the frame as decapsulated, as when the outer headers came
// off first. Also to an instance without a neighbour (the frame to the stack encapsulated, as
// before) and for a packet without a path (dropped, counted decapsulated).
TEST_P(FastPath, VxlanGpeInTransitWritesOverTheOuterHeaders) {
  PinCpu pin;  // the flow cache and the next-hop cache are per CPU
  const Flow& f = GetParam();
  auto& d = FastPathEnv::dataplane();
  // [eth][IPv4 with `options` bytes of options][UDP][GPE][NSH (spi, si, TTL 60)][inner]
  auto gpe_in = [&](uint32_t spi, uint8_t si, size_t options) {
    Bytes inner = nsh(nsh_for(f, spi, si, 60));
    append(inner, f.ip());
    Bytes outer = gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size() + options);
    outer.insert(outer.begin() + 20, options, 0x01);  // NOP options
    outer[0] = static_cast<uint8_t>(0x40 | (20 + options) / 4);
    outer[10] = outer[11] = 0;
    const uint16_t c = inet_csum(outer.data(), 20 + options);
    outer[10] = static_cast<uint8_t>(c >> 8);
    outer[11] = static_cast<uint8_t>(c & 0xff);
    Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(in, outer);
    append(in, inner);
    return in;
  };
  auto out_to = [&](const Mac& dmac, const Mac& smac, const char* endpoint, uint32_t spi, uint8_t si,
                    uint32_t vni) {
    Bytes inner = nsh(nsh_for(f, spi, si, 59));  // TTL decremented by this forwarder
    append(inner, f.ip());
    Bytes want = eth(dmac, smac, ETH_P_IP);
    append(want, gpe_outer(kLocalEndpoint, endpoint, 0xc000 | (f.hash() & 0x3fff), inner.size(), AC_GPE_NP_NSH,
                           AC_GPE_FLAG_I | AC_GPE_FLAG_P, vni));
    append(want, inner);
    return want;
  };
  const Bytes to_remote = out_to(kCore0Peer, kCore0, kRemoteEndpoint, 100, 254, 7);
  for (size_t options : {0u, 4u, 40u}) {
    for (bool cached : {false, true}) {
      SCOPED_TRACE(std::to_string(options) + " bytes of options, way and next hop " + (cached ? "cached" : "empty"));
      if (!cached) {
        ASSERT_TRUE(d.flush_flows().has_value());
        ASSERT_TRUE(d.flush_nexthops().has_value());
      }
      const Bytes in = gpe_in(100, 254, options);
      const uint64_t decapsulated = in.size() - (20 + options + 8 + 8);  // [eth][NSH][inner]
      const uint32_t note = cached ? AC_NOTE_CACHE_HIT : AC_NOTE_CACHE_MISS;
      auto i0 = d.instance_stats(kInstRemote);
      Counters c;
      const LastHopSeen s = fwd_seen("core0", in, AC_FWD_REMOTE, AC_NOTE_GPE_DECAP, 100, 254);
      auto i1 = d.instance_stats(kInstRemote);
      EXPECT_EQ(s.r.verdict, XDP_REDIRECT);
      EXPECT_EQ(hex(s.r.out), hex(to_remote));
      EXPECT_EQ(s.last_hop.packets, 1u);
      EXPECT_EQ(s.last_hop.bytes, to_remote.size());
      EXPECT_EQ(s.note.packets, 1u);
      EXPECT_EQ(s.note.bytes, decapsulated);
      EXPECT_EQ(s.path.packets, 1u);
      EXPECT_EQ(s.path.bytes, decapsulated);
      EXPECT_EQ(c.delta(note), 1u);
      EXPECT_EQ(c.bytes(note), decapsulated) << "the cache note counts the frame as decapsulated";
      if (!cached) {
        EXPECT_EQ(c.bytes(AC_NOTE_AFFINITY_HIT) + c.bytes(AC_NOTE_AFFINITY_NEW), decapsulated);
      }
      ASSERT_TRUE(i0 && i1);
      EXPECT_EQ(i1->packets - i0->packets, 1u);
      EXPECT_EQ(i1->bytes - i0->bytes, decapsulated);
    }
  }
  // an instance whose next hop has no neighbour: to the stack encapsulated, to us from us
  for (size_t options : {0u, 4u}) {
    SCOPED_TRACE("no neighbour, " + std::to_string(options) + " bytes of options");
    Counters c;
    auto r = run_prog(prog(), "core0", gpe_in(300, 255, options));
    EXPECT_EQ(r.verdict, XDP_PASS);
    // no VNI configured: the instance's id names it
    EXPECT_EQ(hex(r.out), hex(out_to(kCore0, kCore0, kUnresolvedEndpoint, 300, 255, kInstNoNeigh)));
    EXPECT_EQ(c.delta(AC_PASS_NO_NEIGH), 1u);
  }
  // no path for the SPI: dropped, counted as decapsulated
  for (size_t options : {0u, 4u}) {
    SCOPED_TRACE("no path, " + std::to_string(options) + " bytes of options");
    Counters c;
    const Bytes in = gpe_in(999, 255, options);
    auto r = run_prog(prog(), "core0", in);
    EXPECT_EQ(r.verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_NO_PATH), 1u);
    EXPECT_EQ(c.bytes(AC_DROP_NO_PATH), in.size() - (20 + options + 8 + 8));
  }
}

// 5: NSH-unaware VNF: the proxy strips NSH on delivery and restores it (SI - 1) on return
TEST_P(FastPath, SfcProxyStripsAndRestores) {
  Flow f = GetParam();
  f.l4.proto = IPPROTO_TCP;
  f.l4.dport = 80;
  if (f.np() == AC_NSH_NP_IPV4) f.dst = "203.0.113.200";  // rule 0: TCP/80 to .128/25 -> SPI 200
  Counters c;
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(nsh_for(f, 200, 255, 40)));
  append(in, f.ip());
  auto r = run_prog(prog(), "vnf0", in);
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(frame(kVnf1Peer, kVnf1Host, f.ethertype(), f.ip())));
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_PROXY), 1u);

  // the VNF sends the bare packet back; NSH returns with SI 254 = last hop of chain 200
  auto back = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, f.ethertype(), f.ip()));
  EXPECT_EQ(back.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(back.out), hex(frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63))));
  EXPECT_EQ(c.delta(AC_NOTE_PROXY_RETURN), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u);
  auto ps = FastPathEnv::dataplane().path_stats(200, 254);
  ASSERT_TRUE(ps.has_value());
  EXPECT_GE(ps->packets, 1u);
}

// 5: a proxy return whose next SI this CPU's flow cache already knows as the chain's last hop is
// routed without putting the NSH back and popping it again: the frame, the verdict and every
// counter (packets and bytes, reasons and the path's) must be as on the full restore, which the
// first return takes (its way is not cached yet). An NSH the forwarder would drop still is.
TEST_P(FastPath, SfcProxyReturnAtTheLastHopSameWithTheWayCached) {
  PinCpu pin;  // the flow cache is per CPU
  Flow f = GetParam();
  f.l4.proto = IPPROTO_TCP;
  f.l4.dport = 80;
  f.l4.sport = 5151;
  if (f.np() == AC_NSH_NP_IPV4) f.dst = "203.0.113.201";  // rule 0: TCP/80 to .128/25 -> SPI 200
  auto& d = FastPathEnv::dataplane();
  auto deliver = [&](uint8_t ttl) {
    Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
    append(in, nsh(nsh_for(f, 200, 255, ttl)));
    append(in, f.ip());
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
  };
  auto give_back = [&] {
    return last_hop_seen("vnf1", frame(kVnf1Host, kVnf1Peer, f.ethertype(), f.ip()), AC_NOTE_PROXY_RETURN, 200, 254);
  };
  ASSERT_TRUE(d.flush_flows().has_value());  // the first return finds no way for SI 254
  deliver(40);
  const LastHopSeen first = give_back();
  const LastHopSeen second = give_back();
  expect_same_last_hop(first, second, frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63)), "the note counts the frame with its NSH");
  // a held NSH whose TTL ends here is dropped by the forwarder, way cached or not
  deliver(2);
  Counters c;
  auto expired = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, f.ethertype(), f.ip()));
  EXPECT_EQ(expired.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_TTL), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 0u);
}

// 3: MD type 2 classification carries the flow hash as anychain's TLV
TEST_P(FastPath, ClassifyMd2PushesHashTlv) {
  Flow f = GetParam();
  f.dst = f.np() == AC_NSH_NP_IPV6 ? "2001:db8:98::5" : "198.51.100.5";
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, f.ethertype(), f.ip()));
  Nsh n;
  n.md_type = AC_NSH_MD_TYPE2;
  n.spi = 100;
  n.si = 255;
  n.ttl = AC_NSH_DEFAULT_TTL - 1;
  n.next_proto = f.np();
  n.tlvs = flow_hash_tlv(f.hash());
  Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(n));
  append(want, f.ip());
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(want));
}


// 1 + 4: a classified packet whose instance is remote: NSH and the VXLAN-GPE headers are written
// in one move (the NSH never sits alone in front of the packet).
TEST_P(FastPath, ClassifyToRemoteOverVxlanGpe) {
  const Flow& f = GetParam();
  ScopedChain chain(rule_for(f, 600), 600, 255, kSvcRemote, false);
  ASSERT_TRUE(chain.ok_);
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, f.ethertype(), f.ip()));
  Bytes inner = nsh(nsh_for(f, 600, 255, AC_NSH_DEFAULT_TTL - 1));
  append(inner, f.ip());
  Bytes want = eth(kCore0Peer, kCore0, ETH_P_IP);
  append(want, gpe_outer(kLocalEndpoint, kRemoteEndpoint, 0xc000 | (f.hash() & 0x3fff), inner.size(),
                         AC_GPE_NP_NSH, AC_GPE_FLAG_I | AC_GPE_FLAG_P, 7));
  append(want, inner);
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 1u);
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
}

// 1 + 5: a classified packet for an NSH-unaware VNF is never given an NSH to strip: it leaves
// bare, the proxy holds the classifier's NSH, and the packet coming back carries it (SI - 1).
TEST_P(FastPath, ClassifyToProxiedVnfHoldsTheClassifiersNsh) {
  const Flow& f = GetParam();
  Flow web = f;
  web.l4.proto = IPPROTO_TCP;
  web.l4.dport = 80;
  // chain 200 continues at the local NSH-aware VNF (in the fixture it ends), so the restored
  // NSH is seen whole
  ScopedChain chain(rule_for(web, 200, true), 200, 254, kSvcLocal, false, std::pair<uint32_t, bool>{0, true});
  ASSERT_TRUE(chain.ok_);
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, web.ethertype(), web.ip()));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(frame(kVnf1Peer, kVnf1Host, web.ethertype(), web.ip())));
  EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_PROXY), 1u);

  auto back = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, web.ethertype(), web.ip()));
  EXPECT_EQ(back.verdict, XDP_REDIRECT);
  // TTL - 2: the classifying node's SFF, then this forwarder's hop after the VNF
  EXPECT_EQ(hex(back.out), hex(nsh_at_vnf0(web, 200, 254, AC_NSH_DEFAULT_TTL - 2)));
  EXPECT_EQ(c.delta(AC_NOTE_PROXY_RETURN), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
}

// 1 + 6: a chain that ends at once (its SI 255 is the last hop): the packet is routed as it came,
// no NSH pushed and popped.
TEST_P(FastPath, ClassifyIntoAnEndedChainRoutesThePacket) {
  const Flow& f = GetParam();
  ScopedChain chain(rule_for(f, 700), 700, 255, 0, true);
  ASSERT_TRUE(chain.ok_);
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, f.ethertype(), f.ip()));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(hex(r.out), hex(frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63))));
  EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u);
}

INSTANTIATE_TEST_SUITE_P(Inner, FastPath, ::testing::Values(kV4, kV6),
                         [](const auto& i) { return i.param.np() == AC_NSH_NP_IPV4 ? "IPv4" : "IPv6"; });

// MD2 from elsewhere: unknown TLVs skipped, our hash TLV found; without it the inner is hashed.
TEST(FastPathMd2, TlvWalkFindsHashAfterUnknownTlv) {
  const Flow& f = kV4;
  Nsh n;
  n.md_type = AC_NSH_MD_TYPE2;
  n.spi = 100;
  n.si = 254;
  n.ttl = 30;
  n.tlvs = tlv(0x0123, 0x45, Bytes{1, 2, 3, 4, 5, 6});
  append(n.tlvs, flow_hash_tlv(0xdeadbeef));
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(n));
  append(in, f.ip());
  auto r = run_prog(prog(), "vnf0", in);
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(get16(r.out, 14 + 20), 0xc000 | (0xdeadbeef & 0x3fff));  // UDP source port from the hash
  n.ttl = 29;
  Bytes inner = nsh(n);
  append(inner, f.ip());
  EXPECT_EQ(hex(Bytes(r.out.begin() + 50, r.out.end())), hex(inner));

  Nsh bare = n;
  bare.ttl = 30;
  bare.tlvs = tlv(0x0123, 0x45, Bytes{9, 9, 9, 9});
  Bytes in2 = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in2, nsh(bare));
  append(in2, f.ip());
  auto r2 = run_prog(prog(), "vnf0", in2);
  ASSERT_EQ(r2.verdict, XDP_REDIRECT);
  EXPECT_EQ(get16(r2.out, 14 + 20), 0xc000 | (f.hash() & 0x3fff));
}

// RFC 8300 Type is 8 bits: type 0x81 of our class is not the flow-hash TLV (0x01); the inner
// packet is hashed instead.
TEST(FastPathMd2, TypeWithTopBitSetIsNotTheHashTlv) {
  const Flow& f = kV4;
  Nsh n;
  n.md_type = AC_NSH_MD_TYPE2;
  n.spi = 100;
  n.si = 254;
  n.ttl = 30;
  n.tlvs = tlv(AC_MD_CLASS, 0x80 | AC_TLV_FLOW_HASH, Bytes{0xde, 0xad, 0xbe, 0xef});
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(n));
  append(in, f.ip());
  auto r = run_prog(prog(), "vnf0", in);
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(get16(r.out, 14 + 20), 0xc000 | (f.hash() & 0x3fff));
}

TEST(FastPathNeighbour, UnresolvedNextHopGoesToTheStackEncapsulated) {
  Flow f{"192.168.1.10", "198.18.0.5", {}};
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, f.ip()));
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(c.delta(AC_PASS_NO_NEIGH), 1u);
  ASSERT_GE(r.out.size(), 50u);
  EXPECT_EQ(Bytes(r.out.begin(), r.out.begin() + 6), Bytes(kSrc0.begin(), kSrc0.end()));  // to us
  EXPECT_EQ(Bytes(r.out.begin() + 6, r.out.begin() + 12), Bytes(kSrc0.begin(), kSrc0.end()))
      << "from us too (the stack sees a frame this host sent itself, not headroom bytes)";
  EXPECT_EQ(get16(r.out, 12), ETH_P_IP);
  EXPECT_EQ(get16(r.out, 14 + 22), AC_VXLAN_GPE_PORT);
}

TEST(FastPathHash, SymmetricPolicyHashesBothDirectionsAlike) {
  Flow ab{"192.168.1.10", "198.18.0.5", {}};
  Flow ba{"198.18.0.5", "192.168.1.10", {}};
  ba.l4.sport = ab.l4.dport;
  ba.l4.dport = ab.l4.sport;
  EXPECT_EQ(ab.hash(true), ba.hash(true));
  EXPECT_NE(ab.hash(false), ba.hash(false));
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, ab.ip()));
  ASSERT_GE(r.out.size(), 50u + 24);
  EXPECT_EQ(get32(r.out, 50 + 8), ab.hash(true));  // MD1 context word 0 after the GPE stack
}

}  // namespace
}  // namespace anychain::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new anychain::test::FastPathEnv);
  return RUN_ALL_TESTS();
}
