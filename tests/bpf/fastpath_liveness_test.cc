// The agent's dataplane liveness signal (ac_inst_returned, docs/agent.md "Liveness"): the fast
// path counts, per local instance, the chain traffic that comes back from it on its veth (a held
// flow's packet back to the proxy, a valid NSH frame from an NSH-aware VNF) and nothing else the
// VNF's side sends: ARP, IPv6 neighbour discovery, a flow the proxy holds nothing for, bad NSH.
#include <linux/if_ether.h>
#include <netinet/in.h>

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

uint64_t returned(uint32_t id) {
  auto c = FastPathEnv::dataplane().instance_returned(id);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().str());
  return c ? c->packets : 0;
}

// An ARP reply (or request) from the VNF's side to the host side's MAC, as a VNF's kernel sends
// with its program dead.
Bytes arp_from(const Mac& to, const Mac& from, bool reply) {
  Bytes b = eth(to, from, ETH_P_ARP);
  put16(b, 1);       // Ethernet
  put16(b, 0x0800);  // IPv4
  put8(b, 6);
  put8(b, 4);
  put16(b, reply ? 2 : 1);
  append(b, Bytes(from.begin(), from.end()));
  put32(b, 0x0a000002);
  append(b, Bytes(to.begin(), to.end()));
  put32(b, 0x0a000001);
  return b;
}

// An IPv6 neighbour advertisement (ICMPv6 136), unicast to the host side.
Bytes nd_from(const Mac& to, const Mac& from) {
  L4 l4;
  l4.proto = IPPROTO_ICMPV6;
  l4.payload = Bytes{136, 0, 0, 0, 0x60, 0, 0, 0};
  append(l4.payload, Bytes(16, 0));
  return frame(to, from, ETH_P_IPV6, ipv6("fe80::2", "fe80::1", l4, 255));
}

// NSH-unaware VNF behind vnf1: a held flow's packet back counts, nothing else it sends does.
TEST(InstanceReturned, ProxyReturnCountsOnlyHeldFlows) {
  Flow f = kV4;
  f.l4.proto = IPPROTO_TCP;
  f.l4.dport = 80;
  f.l4.sport = 4711;
  f.dst = "203.0.113.202";  // rule 0: TCP/80 to .128/25 -> SPI 200 (the proxied VNF)
  const uint64_t before = returned(kInstProxy);
  Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(in, nsh(nsh_for(f, 200, 255, 40)));
  append(in, f.ip());
  ASSERT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
  EXPECT_EQ(returned(kInstProxy), before) << "delivered, not returned";

  // what a VNF whose program is dead still sends on its veth
  Counters c;
  EXPECT_EQ(run_prog(prog(), "vnf1", arp_from(kVnf1Host, kVnf1Peer, true)).verdict, XDP_PASS);
  EXPECT_EQ(run_prog(prog(), "vnf1", arp_from(kVnf1Host, kVnf1Peer, false)).verdict, XDP_PASS);
  const Mac bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(run_prog(prog(), "vnf1", arp_from(bcast, kVnf1Peer, false)).verdict, XDP_PASS);  // gratuitous
  EXPECT_EQ(run_prog(prog(), "vnf1", nd_from(kVnf1Host, kVnf1Peer)).verdict, XDP_PASS);
  Flow other = f;
  other.l4.sport = 4712;  // a flow the proxy holds nothing for
  EXPECT_EQ(run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, other.ethertype(), other.ip())).verdict, XDP_PASS);
  EXPECT_EQ(c.delta(AC_PASS_PROXY_MISS), 2u) << "the ND and the unknown flow";
  EXPECT_EQ(returned(kInstProxy), before) << "no chain traffic came back";

  // the held flow's packet back: chain traffic
  auto back = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, f.ethertype(), f.ip()));
  EXPECT_EQ(back.verdict, XDP_REDIRECT);
  EXPECT_EQ(returned(kInstProxy), before + 1);
}

// NSH-aware VNF: a valid NSH frame from its veth counts; ARP, ND and an NSH the forwarder refuses
// do not. vnf0 is made a VNF interface (kInstLocal) for the test.
TEST(InstanceReturned, NshAwareReturnCountsValidNshOnly) {
  auto& d = FastPathEnv::dataplane();
  const int vnf0 = FastPathEnv::ifindex("vnf0");
  ASSERT_TRUE(d.set_interface(vnf0, AC_IF_VNF, kInstLocal, kVnf0Host).has_value());
  struct Restore {
    ~Restore() { (void)FastPathEnv::dataplane().set_interface(FastPathEnv::ifindex("vnf0"), 0, 0, kVnf0Host); }
  } restore;
  const uint64_t before = returned(kInstLocal);
  EXPECT_EQ(run_prog(prog(), "vnf0", arp_from(kVnf0Host, kVnf0Peer, true)).verdict, XDP_PASS);
  EXPECT_EQ(run_prog(prog(), "vnf0", nd_from(kVnf0Host, kVnf0Peer)).verdict, XDP_PASS);
  Bytes bad = nsh_frame(nsh_for(kV4, 100, 254, 30));
  bad[14] |= 0xc0;  // NSH version 3
  EXPECT_EQ(run_prog(prog(), "vnf0", bad).verdict, XDP_DROP);
  EXPECT_EQ(returned(kInstLocal), before) << "nothing of the chain's came back";

  auto r = run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 100, 254, 30)));
  EXPECT_NE(r.verdict, XDP_PASS);
  EXPECT_EQ(returned(kInstLocal), before + 1);
  // frames from a veth that is not a VNF's are nobody's answer
  ASSERT_TRUE(d.set_interface(vnf0, 0, 0, kVnf0Host).has_value());
  run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 100, 254, 30)));
  EXPECT_EQ(returned(kInstLocal), before + 1);
}

}  // namespace
}  // namespace anychain::test
