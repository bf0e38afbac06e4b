// What arrives that is not a well-formed chain packet for this node: every pass-through and
// malformed case with its verdict and counter; interfaces; a VNI naming another node's choice.
#include <linux/if_ether.h>

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

// Interfaces with an ifindex of AC_IFACE_DIRECT or more live in the overflow hash: classified
// alike, and forgotten alike; an interface without a role is refused.
TEST(Interfaces, LargeIfindexUsesTheOverflowTable) {
  auto& d = FastPathEnv::dataplane();
  const int big = AC_IFACE_DIRECT + 1000;
  ASSERT_EQ(sh("ip link add name srcbig index " + std::to_string(big) + " type veth peer name srcbigp"), 0);
  ASSERT_EQ(FastPathEnv::ifindex("srcbig"), big);
  const Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip());
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "srcbig", in).verdict, XDP_PASS);
    EXPECT_EQ(c.delta(AC_PASS_NO_IFACE), 1u) << "an interface the agent has not described";
  }
  ASSERT_TRUE(d.set_interface(big, AC_IF_CLASSIFY, 0, kSrc0).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "srcbig", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(r.out), hex(nsh_at_vnf0(kV4, 100, 255, AC_NSH_DEFAULT_TTL - 1)));
    EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 1u);
  }
  ASSERT_TRUE(d.del_interface(big).has_value());
  ASSERT_TRUE(d.del_interface(FastPathEnv::ifindex("src0")).has_value());
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "srcbig", in).verdict, XDP_PASS);
    EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_PASS) << "a cleared array slot is unknown";
    EXPECT_EQ(c.delta(AC_PASS_NO_IFACE), 2u);
    EXPECT_EQ(c.delta(AC_NOTE_CLASSIFIED), 0u);
  }
  ASSERT_TRUE(d.set_interface(FastPathEnv::ifindex("src0"), AC_IF_CLASSIFY, 0, kSrc0).has_value());
  auto bad = d.set_interface(big, 1u << 30, 0, kSrc0);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("unknown role"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(d.set_interface(0, AC_IF_CLASSIFY, 0, kSrc0).has_value());
  ASSERT_EQ(sh("ip link del srcbig"), 0);
}

// Last hop with an Ethernet payload: the inner frame goes to the stack as received here.
TEST(LastHop, EthernetPayloadIsHandedToTheStack) {
  Nsh n = nsh_for(kV4, 100, 253, 20);
  n.next_proto = AC_NSH_NP_ETH;
  Bytes innerframe = frame(kCore0, kCore0Peer, ETH_P_IP, kV4.ip());
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(n));
  append(in, innerframe);
  Counters c;
  auto r = run_prog(prog(), "vnf0", in);
  EXPECT_EQ(r.verdict, XDP_PASS);
  EXPECT_EQ(hex(r.out), hex(innerframe));
  EXPECT_EQ(c.delta(AC_PASS_LAST_HOP), 1u);
}

// ---- pass-through and malformed input: verdict plus its counter ----

struct BadCase {
  std::string name;
  std::string ifname;
  Bytes frame;
  int verdict;
  uint32_t reason;
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
};


std::vector<BadCase> bad_cases() {
  std::vector<BadCase> v;
  Nsh ok = nsh_for(kV4, 100, 254, 30);
  {
    Nsh n = ok;
    n.md_type = AC_NSH_MD_TYPE2;
    n.tlvs = flow_hash_tlv(1);
    n.len_words = 40;  // 160 bytes of NSH in a short packet
    v.push_back({"NshLengthBeyondPacket", "vnf0", nsh_frame(n, Bytes(8, 0)), XDP_DROP, AC_DROP_NSH_TRUNCATED});
  }
  {
    Bytes b = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
    append(b, Bytes{0x00, 0x06});  // 2 bytes of NSH
    v.push_back({"NshTruncatedBase", "vnf0", b, XDP_DROP, AC_DROP_NSH_TRUNCATED});
  }
  {
    Nsh n = ok;
    n.md_type = AC_NSH_MD_TYPE2;
    n.tlvs = tlv(AC_MD_CLASS, AC_TLV_FLOW_HASH, Bytes{1, 2, 3, 4}, 12);  // claims 12, header has 4
    v.push_back({"Md2TlvOverrun", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_TLV});
  }
  {
    Nsh n = ok;
    n.md_type = AC_NSH_MD_TYPE2;
    n.tlvs = Bytes{0xff, 0xf6, 0x01};  // 3 bytes: a TLV header cut short
    n.len_words = 3;
    v.push_back({"Md2PartialTlvHeader", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_TLV});
  }
  {
    Nsh n = ok;
    n.md_type = 0x3;
    v.push_back({"UnknownMdType", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_MD_TYPE});
  }
  {
    Nsh n = ok;
    n.len_words = 4;  // MD1 must be 6 words
    v.push_back({"Md1WrongLength", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_MD_TYPE});
  }
  {
    Nsh n = ok;
    n.ver = 1;
    v.push_back({"BadVersion", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_VERSION});
  }
  {
    Nsh n = ok;
    n.next_proto = 0x42;
    v.push_back({"UnknownNextProtocol", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NSH_NEXT_PROTO});
  }
  {
    Nsh n = ok;
    n.ttl = 1;
    v.push_back({"TtlExpiresHere", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_TTL});
  }
  {
    Nsh n = ok;
    n.si = 0;
    v.push_back({"SiZero", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_SI_ZERO});
  }
  {
    Nsh n = ok;
    n.spi = 999;
    v.push_back({"UnknownPath", "vnf0", nsh_frame(n), XDP_DROP, AC_DROP_NO_PATH});
  }
  {
    Bytes b = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(b, Bytes(10, 0x45));
    v.push_back({"TruncatedOuterIpv4", "core0", b, XDP_DROP, AC_DROP_TRUNCATED});
  }
  Bytes inner = nsh(ok);
  append(inner, kV4.ip());
  {
    Bytes b = eth(kCore0, kCore0Peer, ETH_P_IP);
    Bytes outer = gpe_outer(kRemoteEndpoint, kLocalEndpoint, 1234, inner.size());
    outer.resize(20 + 8 + 4);  // VXLAN-GPE header cut in half
    append(b, outer);
    v.push_back({"TruncatedVxlanGpe", "core0", b, XDP_DROP, AC_DROP_TRUNCATED});
  }
  {
    Bytes b = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(b, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 1234, inner.size(), AC_GPE_NP_IPV4));
    append(b, inner);
    v.push_back({"VxlanGpeWrongNextProtocol", "core0", b, XDP_DROP, AC_DROP_GPE_NEXT_PROTO});
  }
  {
    Bytes b = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(b, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 1234, inner.size(), AC_GPE_NP_NSH, AC_GPE_FLAG_I));
    append(b, inner);
    v.push_back({"VxlanGpeWithoutPBit", "core0", b, XDP_DROP, AC_DROP_GPE_FLAGS});
  }
  {
    Bytes arp = eth(Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kSrcHost, ETH_P_ARP);
    append(arp, Bytes(28, 0));
    v.push_back({"BroadcastArpIsNotOurs", "src0", arp, XDP_PASS, AC_PASS_MULTICAST});
    Bytes unicast = eth(kSrc0, kSrcHost, ETH_P_ARP);
    append(unicast, Bytes(28, 0));
    v.push_back({"UnicastArpIsNotOurs", "src0", unicast, XDP_PASS, AC_PASS_NOT_OURS});
  }
  {
    Flow f{"192.168.1.1", "8.8.8.8", {}};
    v.push_back({"NoPolicyMatch", "src0", frame(kSrc0, kSrcHost, ETH_P_IP, f.ip()), XDP_PASS, AC_PASS_NOT_OURS});
    v.push_back({"IpOnUnconfiguredInterface", "core0", frame(kCore0, kCore0Peer, ETH_P_IP, kV4.ip()), XDP_PASS,
                 AC_PASS_NOT_OURS});
    v.push_back({"ProxyMissIsNotChainTraffic", "vnf1", frame(kVnf1Host, kVnf1Peer, ETH_P_IP, f.ip()), XDP_PASS,
                 AC_PASS_PROXY_MISS});
  }
  return v;
}

class Malformed : public ::testing::TestWithParam<BadCase> {};

TEST_P(Malformed, VerdictAndCounter) {
  const BadCase& bc = GetParam();
  Counters c;
  auto r = run_prog(prog(), bc.ifname, bc.frame);
  EXPECT_EQ(r.verdict, bc.verdict);
  EXPECT_EQ(c.delta(bc.reason), 1u) << dp::reason_name(bc.reason);
  if (bc.verdict == XDP_PASS) {
    EXPECT_EQ(hex(r.out), hex(bc.frame)) << "passed packets stay untouched";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Malformed, ::testing::ValuesIn(bad_cases()),
                         [](const auto& i) { return i.param.name; });

// From another node, the VNI names the instance the sender chose: delivered to it when it is
// local (whatever this node's own table says), so two nodes never bounce a flow between them.
TEST(FromOtherNode, VniNamingALocalInstanceIsDeliveredThere) {
  auto& d = FastPathEnv::dataplane();
  constexpr uint32_t kSvc = 6, kLocal = 9;
  dp::Instance local{.id = kLocal, .local = true, .nsh_aware = true,
                     .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer,
                     .if_mac = kVnf0Host, .service_id = kSvc};
  ASSERT_TRUE(d.set_instance(local).has_value());
  ASSERT_TRUE(d.set_path(600, 255, kSvc, false).has_value());
  ASSERT_TRUE(d.set_wcmp_table(kSvc, table_of(kInstRemote)).has_value());  // this node would pick remote
  auto gpe_in = [&](uint32_t vni) {
    Bytes inner = nsh(nsh_for(kV4, 600, 255, 50));
    append(inner, kV4.ip());
    Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(in, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc001, inner.size(), AC_GPE_NP_NSH,
                         AC_GPE_FLAG_I | AC_GPE_FLAG_P, vni));
    append(in, inner);
    return run_prog(prog(), "core0", in);
  };
  Counters c;
  auto named = gpe_in(kLocal);
  EXPECT_EQ(named.verdict, XDP_REDIRECT);
  EXPECT_EQ(Bytes(named.out.begin(), named.out.begin() + 6), Bytes(kVnf0Peer.begin(), kVnf0Peer.end()));
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS) + c.delta(AC_NOTE_CACHE_HIT), 0u) << "no selection when the VNI names it";
  auto unnamed = gpe_in(0);
  EXPECT_EQ(unnamed.verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u) << "VNI 0: this node selects";
  auto other = gpe_in(kInstLocal);  // a local instance, but of another service
  EXPECT_EQ(other.verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 2u) << "an instance of another service is not taken";
  // the named instance is withdrawn here: the sending node owns the choice and will place the
  // flow again; this node does not re-place it (a moved flow moves once)
  ASSERT_TRUE(d.del_instance(kLocal).has_value());
  auto gone = gpe_in(kLocal);
  EXPECT_EQ(gone.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_INSTANCE_GONE), 1u);
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 2u) << "not re-steered by this node's own table";
  ASSERT_TRUE(d.del_path(600, 255).has_value());
  ASSERT_TRUE(d.del_instance(kLocal).has_value());
}

TEST(NoInstance, ServiceWithoutTableDropsCounted) {
  auto& d = FastPathEnv::dataplane();
  ASSERT_TRUE(d.set_path(400, 255, 9, false).has_value());
  Counters c;
  auto r = run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 400, 255, 9)));
  EXPECT_EQ(r.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_NO_INSTANCE), 1u);
  ASSERT_TRUE(d.del_path(400, 255).has_value());
}

}  // namespace
}  // namespace anychain::test
