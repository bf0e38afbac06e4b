// The fast path on real networks: only frames for the interface's own MAC, RFC 8300's TTL and
// OAM rules, packets too big for their next hop (the slow path), the outer header of VXLAN-GPE,
// fragments.
#include <linux/if_ether.h>

#include "anychain/slowpath.h"

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

// ---- the fast path on real networks: MAC filter, RFC 8300 edges, packets too big ----

// What the program does with frames that are not addressed to the interface's own unicast MAC:
// nothing. They go to the stack as they came, so a bridge port or a promiscuous NIC keeps its
// L2 behaviour and no other node's copy is forwarded.
TEST(MacFilter, FramesForAnotherHostOrAGroupAreNotActedOn) {
  const Mac other = {0x02, 0, 0, 0, 0xee, 0x01};
  const Mac bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const Mac v6mcast = {0x33, 0x33, 0, 0, 0, 0x01};
  Nsh n = nsh_for(kV4, 100, 254, 30);
  Bytes nshbody = nsh(n);
  append(nshbody, kV4.ip());
  Bytes gpe = gpe_outer("192.0.2.2", kLocalEndpoint, 0xc001, nshbody.size(), AC_GPE_NP_NSH,
                        AC_GPE_FLAG_I | AC_GPE_FLAG_P, kInstLocal);
  append(gpe, nshbody);
  struct Case {
    const char* what;
    const char* ifname;
    Bytes in;
    uint32_t reason;
  };
  const Case cases[] = {
      {"NSH for another MAC", "vnf0", frame(other, kVnf0Peer, AC_ETH_P_NSH, nshbody), AC_PASS_OTHER_HOST},
      {"VXLAN-GPE to our endpoint in a frame for another MAC", "core0", frame(other, kCore0Peer, ETH_P_IP, gpe),
       AC_PASS_OTHER_HOST},
      {"classifiable IPv4 for another MAC", "src0", frame(other, kSrcHost, ETH_P_IP, kV4.ip()), AC_PASS_OTHER_HOST},
      {"classifiable IPv6 for another MAC", "src0", frame(other, kSrcHost, ETH_P_IPV6, kV6.ip()),
       AC_PASS_OTHER_HOST},
      {"broadcast NSH", "vnf0", frame(bcast, kVnf0Peer, AC_ETH_P_NSH, nshbody), AC_PASS_MULTICAST},
      {"broadcast VXLAN-GPE", "core0", frame(bcast, kCore0Peer, ETH_P_IP, gpe), AC_PASS_MULTICAST},
      {"multicast classifiable IPv6", "src0", frame(v6mcast, kSrcHost, ETH_P_IPV6, kV6.ip()), AC_PASS_MULTICAST},
  };
  for (const auto& c : cases) {
    Counters k;
    auto r = run_prog(prog(), c.ifname, c.in);
    EXPECT_EQ(r.verdict, XDP_PASS) << c.what;
    EXPECT_EQ(hex(r.out), hex(c.in)) << c.what << ": passed untouched";
    EXPECT_EQ(k.delta(c.reason), 1u) << c.what;
    EXPECT_EQ(k.delta(AC_NOTE_CLASSIFIED) + k.delta(AC_NOTE_GPE_DECAP), 0u) << c.what;
  }
  // the same frames addressed to the interface are chain traffic (control for the cases above)
  Counters k;
  EXPECT_EQ(run_prog(prog(), "vnf0", frame(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH, nshbody)).verdict, XDP_REDIRECT);
  EXPECT_EQ(run_prog(prog(), "core0", frame(kCore0, kCore0Peer, ETH_P_IP, gpe)).verdict, XDP_REDIRECT);
  EXPECT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip())).verdict, XDP_REDIRECT);
  EXPECT_EQ(k.delta(AC_NOTE_GPE_DECAP), 1u);
  EXPECT_EQ(k.delta(AC_NOTE_CLASSIFIED), 1u);
}

// RFC 8300 sec. 2.2: the TTL is decremented before the lookup, 0 decrements to 63, and a packet
// whose TTL reaches 0 is not forwarded.
TEST(NshTtl, ZeroDecrementsTo63AndIsForwarded) {
  Counters c;
  auto r = run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 100, 254, 0)));
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
  // [eth][IPv4][UDP][GPE][NSH]: the NSH's first word carries the TTL
  const size_t nsh_at = 14 + 20 + 8 + 8;
  EXPECT_EQ(AC_NSH_W0_TTL(get16(r.out, nsh_at)), 63u);
  EXPECT_EQ(c.delta(AC_DROP_TTL), 0u);
}

// RFC 8300 sec. 2.2: an SFF without OAM support SHOULD discard packets with the O bit: the
// default, counted; forwarding them is a setting.
TEST(NshOam, DroppedByDefaultForwardedWhenConfigured) {
  auto& d = FastPathEnv::dataplane();
  Bytes in = nsh_frame(nsh_for(kV4, 100, 254, 30));
  in[14] |= 0x20;  // O bit: the third bit of the base header
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_OAM), 1u);
  }
  auto saved = d.config();
  ASSERT_TRUE(saved.has_value());
  dp::Config on = *saved;
  on.oam_forward = true;
  ASSERT_TRUE(d.set_config(on).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
    EXPECT_EQ(r.out[14 + 36] & 0x20, 0x20) << "the O bit is carried on (it MUST NOT be modified)";
  }
  ASSERT_TRUE(d.set_config(*saved).has_value());
}

// Packets too big for their next hop: to the agent's slow path with the room the inner packet
// has there (the agent fragments IPv4 without DF and answers ICMP otherwise: the fast path hands
// over the same frame either way), or dropped and counted when there is no slow path.
class TooBig : public ::testing::Test {
 protected:
  static constexpr uint32_t kSvcSmall = 9, kSvcSmallProxy = 10;
  static constexpr uint32_t kInstSmall = 20, kInstSmallProxy = 21;
  static constexpr uint16_t kSmallMtu = 200;
  static inline const Mac kSlow = {0x02, 0, 0, 0, 0x5e, 0x01};
  void SetUp() override {
    auto& d = FastPathEnv::dataplane();
    must("ip link add slow0 address " + mac_str(kSlow) + " type veth peer name slow0p");
    must("ip link set slow0 up && ip link set slow0p up");
    auto c = d.config();
    ASSERT_TRUE(c.has_value());
    saved_ = *c;
    dp::Instance small{.id = kInstSmall, .local = true, .nsh_aware = true,
                       .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer,
                       .if_mac = kVnf0Host, .service_id = kSvcSmall, .mtu = kSmallMtu};
    ASSERT_TRUE(d.set_instance(small).has_value());
    dp::Instance proxied{.id = kInstSmallProxy, .local = true, .nsh_aware = false,
                         .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf1")), .mac = kVnf1Peer,
                         .if_mac = kVnf1Host, .service_id = kSvcSmallProxy, .mtu = kSmallMtu};
    ASSERT_TRUE(d.set_instance(proxied).has_value());
    ASSERT_TRUE(d.set_wcmp_table(kSvcSmall, table_of(kInstSmall)).has_value());
    ASSERT_TRUE(d.set_wcmp_table(kSvcSmallProxy, table_of(kInstSmallProxy)).has_value());
    ASSERT_TRUE(d.set_path(800, 255, kSvcSmall, false).has_value());
    ASSERT_TRUE(d.set_path(801, 255, kSvcSmallProxy, false).has_value());
  }
  void TearDown() override {
    auto& d = FastPathEnv::dataplane();
    EXPECT_TRUE(d.set_config(saved_).has_value());
    (void)d.del_interface(static_cast<uint32_t>(FastPathEnv::ifindex("slow0")));
    (void)d.del_path(800, 255);
    (void)d.del_path(801, 255);
    (void)d.del_wcmp_table(kSvcSmall);
    (void)d.del_wcmp_table(kSvcSmallProxy);
    (void)d.del_instance(kInstSmall);
    (void)d.del_instance(kInstSmallProxy);
    sh("ip link del slow0 2>/dev/null");
  }
  void enable_slow_path() {
    auto& d = FastPathEnv::dataplane();
    const auto idx = static_cast<uint32_t>(FastPathEnv::ifindex("slow0"));
    ASSERT_TRUE(d.set_interface(idx, AC_IF_SLOW_PATH, 0, kSlow).has_value());
    dp::Config c = saved_;
    c.slow_ifindex = idx;
    ASSERT_TRUE(d.set_config(c).has_value());
  }
  // the slow path's framing of a packet that was to leave as `sent`
  static Bytes punted(uint16_t mtu, uint32_t to_ifindex, uint16_t inner_off, const Bytes& sent) {
    Bytes b = eth(Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kSlow, AC_ETH_P_SLOW);
    put8(b, AC_SLOW_VERSION);
    put8(b, AC_SLOW_TOO_BIG);
    put16(b, mtu);
    put32(b, to_ifindex);
    put16(b, inner_off);
    append(b, Bytes(6, 0));
    append(b, sent);
    return b;
  }
  // an inner packet of `size` bytes: IPv4 with or without DF, or IPv6
  static Bytes inner(int kind, size_t size) {
    L4 l4;
    l4.payload = Bytes(size - (kind == 2 ? 40 : 20) - 8, 0x5a);
    if (kind == 2) return ipv6("2001:db8:5::10", "2001:db8:99::10", l4);
    return ipv4("192.168.1.10", "203.0.113.10", l4, 64, kind == 0 ? 0x4000 : 0);
  }
  static std::vector<dp::PolicyRule> rule_to(uint32_t spi) {
    auto rules = fixture_rules();
    for (auto& r : rules) r.spi = r.spi == 100 ? spi : r.spi;
    return rules;
  }
  dp::Config saved_;
};

TEST_F(TooBig, ToALocalNshAwareVnfGoesToTheSlowPathWithTheRoomLeft) {
  auto& d = FastPathEnv::dataplane();
  ASSERT_TRUE(d.set_policies(rule_to(800)).has_value());
  enable_slow_path();
  const char* names[] = {"IPv4 DF", "IPv4 without DF", "IPv6"};
  for (int kind = 0; kind < 3; ++kind) {
    Bytes pkt = inner(kind, kSmallMtu);  // fits the MTU alone, not with the NSH
    Counters c;
    auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, kind == 2 ? ETH_P_IPV6 : ETH_P_IP, pkt));
    EXPECT_EQ(r.verdict, XDP_REDIRECT) << names[kind];
    Nsh n;
    n.spi = 800;
    n.si = 255;
    n.ttl = AC_NSH_DEFAULT_TTL - 1;
    n.next_proto = kind == 2 ? AC_NSH_NP_IPV6 : AC_NSH_NP_IPV4;
    n.ctx[0] = kind == 2 ? flow_hash("2001:db8:5::10", "2001:db8:99::10", L4{})
                         : flow_hash("192.168.1.10", "203.0.113.10", L4{});
    Bytes sent = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
    append(sent, nsh(n));
    append(sent, pkt);
    const auto vnf0 = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0"));
    EXPECT_EQ(hex(r.out), hex(punted(kSmallMtu - AC_NSH_MD1_LEN, vnf0, 14 + AC_NSH_MD1_LEN, sent))) << names[kind];
    EXPECT_EQ(c.delta(AC_FWD_SLOW_PATH), 1u) << names[kind];
    EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 0u) << names[kind];
  }
  // one byte less than the MTU with its NSH: delivered
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, inner(0, kSmallMtu - AC_NSH_MD1_LEN)));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
  ASSERT_TRUE(d.set_policies(fixture_rules()).has_value());
}

TEST_F(TooBig, ToAProxiedVnfCountsTheBarePacket) {
  auto& d = FastPathEnv::dataplane();
  ASSERT_TRUE(d.set_policies(rule_to(801)).has_value());
  enable_slow_path();
  Counters c;
  Bytes fits = inner(0, kSmallMtu);  // the bare packet is what crosses the veth
  EXPECT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, fits)).verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_PROXY), 1u);
  Bytes big = inner(1, kSmallMtu + 1);
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, big));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  const auto vnf1 = static_cast<uint32_t>(FastPathEnv::ifindex("vnf1"));
  EXPECT_EQ(hex(r.out), hex(punted(kSmallMtu, vnf1, 14, frame(kVnf1Peer, kVnf1Host, ETH_P_IP, big))));
  EXPECT_EQ(c.delta(AC_FWD_SLOW_PATH), 1u);
  ASSERT_TRUE(d.set_policies(fixture_rules()).has_value());
}

TEST_F(TooBig, WithoutASlowPathTheDropIsCounted) {
  auto& d = FastPathEnv::dataplane();
  ASSERT_TRUE(d.set_policies(rule_to(800)).has_value());
  Counters c;
  EXPECT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, inner(0, 1000))).verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_TOO_BIG), 1u);
  EXPECT_EQ(c.delta(AC_DROP_FIB), 0u);
  ASSERT_TRUE(d.set_policies(fixture_rules()).has_value());
}

// To another node: the route's MTU (core0: 1500) must hold the outer headers and the NSH too.
TEST_F(TooBig, ToARemoteInstanceUsesTheRoutesMtu) {
  enable_slow_path();
  for (size_t size : {size_t{1500} - 36 - AC_NSH_MD1_LEN, size_t{1500} - 36 - AC_NSH_MD1_LEN + 1}) {
    L4 l4;
    l4.payload = Bytes(size - 28, 0x33);
    Bytes pkt = ipv4("192.168.1.10", "203.0.113.10", l4, 64, 0x4000);
    Nsh n = nsh_for(kV4, 100, 254, 30);
    n.ctx[0] = flow_hash("192.168.1.10", "203.0.113.10", l4);
    Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
    append(in, nsh(n));
    append(in, pkt);
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT) << size;
    if (size == 1500 - 36 - AC_NSH_MD1_LEN) {
      EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u) << "fits exactly";
      continue;
    }
    EXPECT_EQ(c.delta(AC_FWD_SLOW_PATH), 1u);
    EXPECT_EQ(c.delta(AC_DROP_FIB), 0u) << "too big is not 'no route'";
    // the punted frame: header, then [eth][IPv4][UDP][GPE][NSH][inner] as built for the remote
    ASSERT_GT(r.out.size(), 30u + 36u + AC_NSH_MD1_LEN);
    EXPECT_EQ(get16(r.out, 12), AC_ETH_P_SLOW);
    EXPECT_EQ(get16(r.out, 16), 1500 - 36 - AC_NSH_MD1_LEN) << "room for the inner packet";
    EXPECT_EQ(get32(r.out, 18), 0u) << "for another node";
    EXPECT_EQ(get16(r.out, 22), 14 + 36 + AC_NSH_MD1_LEN);
    Bytes tail(r.out.begin() + 30 + 14 + 36 + AC_NSH_MD1_LEN, r.out.end());
    EXPECT_EQ(hex(tail), hex(pkt)) << "the inner packet is whole";
  }
}

// The outer IPv4 header of VXLAN-GPE: DF set, ID 0 (an atomic datagram, RFC 6864 sec. 4.1).
TEST(VxlanGpeOuter, AtomicDatagram) {
  auto r = run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 100, 254, 30)));
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(get16(r.out, 14 + 4), 0u) << "ID";
  EXPECT_EQ(get16(r.out, 14 + 6), 0x4000u) << "DF, no MF, offset 0";
  EXPECT_EQ(inet_csum(r.out.data() + 14, 20), 0u) << "header checksum";
}

// Fragments of UDP to our endpoint (VXLAN-GPE split by the underlay) go to the stack, which
// reassembles them for the agent's socket.
TEST(VxlanGpeFragment, PassedToTheStackCounted) {
  L4 l4;
  l4.sport = 0xc001;
  l4.dport = AC_VXLAN_GPE_PORT;
  for (uint16_t frag : {uint16_t{0x2000}, uint16_t{0x0010}}) {  // first (MF), a later one
    Bytes in = frame(kCore0, kCore0Peer, ETH_P_IP, ipv4("192.0.2.2", kLocalEndpoint, l4, 64, frag));
    Counters c;
    auto r = run_prog(prog(), "core0", in);
    EXPECT_EQ(r.verdict, XDP_PASS);
    EXPECT_EQ(hex(r.out), hex(in));
    EXPECT_EQ(c.delta(AC_PASS_GPE_FRAGMENT), 1u);
  }
}

// The SFC proxy keys a fragment by its datagram: a fragment without ports (not the first) comes
// back with the NSH held for the first one.
TEST(ProxyFragments, EveryFragmentOfADatagramFindsItsNsh) {
  L4 l4;
  l4.proto = IPPROTO_TCP;
  l4.dport = 80;
  Bytes first = ipv4("192.168.1.10", "203.0.113.200", l4, 64, 0x2000);  // MF
  Bytes later = ipv4("192.168.1.10", "203.0.113.200", L4{.proto = IPPROTO_TCP, .sport = 0, .dport = 0}, 64, 0x0003);
  later[4] = first[4];  // same identification
  later[5] = first[5];
  later[10] = later[11] = 0;
  uint16_t ck = inet_csum(later.data(), 20);
  later[10] = ck >> 8;
  later[11] = ck & 0xff;
  // fragments are classified on addresses and protocol (no ports in most of them)
  ScopedChain chain(rule_for(Flow{"192.168.1.10", "203.0.113.200", l4}, 200), 200, 254, kSvcLocal, false,
                    std::pair<uint32_t, bool>{0, true});
  ASSERT_TRUE(chain.ok_);
  Counters c;
  // the first fragment is classified (chain 200 -> proxied VNF): the proxy holds its NSH
  ASSERT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, first)).verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_PROXY), 1u);
  // a later fragment of the same datagram comes back from the VNF: same NSH restored
  auto back = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, ETH_P_IP, later));
  EXPECT_EQ(back.verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_NOTE_PROXY_RETURN), 1u);
  EXPECT_EQ(c.delta(AC_PASS_PROXY_MISS), 0u);
}

// State replication (docs/state.md 3.10): IPv4/UDP to our endpoint on the configured port goes
// to the agent's AF_XDP socket of its RX queue; with no socket on the queue (as here) it is
// passed to the stack untouched, where the agent's UDP socket gets it. Counted either way; not
// intercepted while replication is off, nor when addressed elsewhere; the port cannot be the
// VXLAN-GPE port. (A socket in the map: tests/state/transport_netns_test.cc.)
TEST(StateReplicationPort, PassedWithoutSocketCountedOffWhenUnset) {
  auto& d = FastPathEnv::dataplane();
  auto saved = d.config();
  ASSERT_TRUE(saved.has_value());
  L4 l4;
  l4.sport = 4795;
  l4.dport = 4795;
  const Bytes ours = frame(kCore0, kCore0Peer, ETH_P_IP, ipv4("192.0.2.2", kLocalEndpoint, l4, 64));
  const Bytes elsewhere = frame(kCore0, kCore0Peer, ETH_P_IP, ipv4("192.0.2.2", "192.0.2.9", l4, 64));
  {
    Counters c;
    auto r = run_prog(prog(), "core0", ours);
    EXPECT_EQ(r.verdict, XDP_PASS);
    EXPECT_EQ(c.delta(AC_PASS_STATE_NO_XSK) + c.delta(AC_FWD_STATE_XSK), 0u) << "replication off (port 0)";
  }
  dp::Config on = *saved;
  on.state_port = 4795;
  ASSERT_TRUE(d.set_config(on).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "core0", ours);
    EXPECT_EQ(r.verdict, XDP_PASS);
    EXPECT_EQ(hex(r.out), hex(ours));
    EXPECT_EQ(c.delta(AC_PASS_STATE_NO_XSK), 1u);
    EXPECT_EQ(c.delta(AC_FWD_STATE_XSK), 0u);
  }
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "core0", elsewhere).verdict, XDP_PASS);
    EXPECT_EQ(c.delta(AC_PASS_STATE_NO_XSK), 0u) << "not to our endpoint";
  }
  dp::Config clash = *saved;
  clash.state_port = clash.gpe_port;
  auto r = d.set_config(clash);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().str().find("VXLAN-GPE port"), std::string::npos) << r.error().str();
  ASSERT_TRUE(d.set_config(*saved).has_value());
}

}  // namespace
}  // namespace anychain::test
