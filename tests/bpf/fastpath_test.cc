// Packet in -> verdict and exact bytes out, for every path of the fast path and every malformed
// case (each checks its drop counter). Runs in a private netns/bpffs (see fastpath_fixture).
#include <linux/if_ether.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>
#include <set>
#include <utility>

#include <bpf/libbpf.h>

#include "anychain/slowpath.h"
#include "fastpath_fixture.h"

namespace anychain::test {
namespace {

Bytes frame(const Mac& dst, const Mac& src, uint16_t type, const Bytes& payload) {
  Bytes b = eth(dst, src, type);
  append(b, payload);
  return b;
}

int prog() { return FastPathEnv::dataplane().prog_fd(); }

struct Flow {
  std::string src, dst;
  L4 l4;
  Bytes ip(uint8_t ttl = 64) const {
    return src.find(':') != std::string::npos ? ipv6(src, dst, l4, ttl) : ipv4(src, dst, l4, ttl);
  }
  uint8_t np() const { return src.find(':') != std::string::npos ? AC_NSH_NP_IPV6 : AC_NSH_NP_IPV4; }
  uint16_t ethertype() const { return src.find(':') != std::string::npos ? ETH_P_IPV6 : ETH_P_IP; }
  uint32_t hash(bool sym = false) const { return flow_hash(src, dst, l4, sym); }
  friend void PrintTo(const Flow& f, std::ostream* os) { *os << f.src << " -> " << f.dst; }
};

const Flow kV4{"192.168.1.10", "203.0.113.10", {}};
const Flow kV6{"2001:db8:5::10", "2001:db8:99::10", {}};

Nsh nsh_for(const Flow& f, uint32_t spi, uint8_t si, uint8_t ttl) {
  Nsh n;
  n.spi = spi;
  n.si = si;
  n.ttl = ttl;
  n.next_proto = f.np();
  n.ctx[0] = f.hash();
  return n;
}

class FastPath : public ::testing::TestWithParam<Flow> {};

// What the local NSH-aware VNF (behind vnf0) receives for flow f.
Bytes nsh_at_vnf0(const Flow& f, uint32_t spi, uint8_t si, uint8_t ttl) {
  Bytes b = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(b, nsh(nsh_for(f, spi, si, ttl)));
  append(b, f.ip());
  return b;
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

// A test's own rule set and path (SPI, SI 255) for the scope; the fixture's come back after.
// restore: what the path was in the fixture (nullopt: it did not exist).
struct ScopedChain {
  ScopedChain(std::vector<dp::PolicyRule> rules, uint32_t spi, uint8_t si, uint32_t service, bool last,
              std::optional<std::pair<uint32_t, bool>> restore = std::nullopt)
      : spi_(spi), si_(si), restore_(restore) {
    auto& d = FastPathEnv::dataplane();
    ok_ = d.set_policies(rules).has_value() && d.set_path(spi, si, service, last).has_value();
  }
  ~ScopedChain() {
    auto& d = FastPathEnv::dataplane();
    (void)d.set_policies(fixture_rules());
    if (restore_) (void)d.set_path(spi_, si_, restore_->first, restore_->second);
    else (void)d.del_path(spi_, si_);
  }
  bool ok_ = false;
  uint32_t spi_;
  uint8_t si_;
  std::optional<std::pair<uint32_t, bool>> restore_;
};

// One rule: everything to f's destination (a host prefix), optionally TCP/80 only, -> spi.
std::vector<dp::PolicyRule> rule_for(const Flow& f, uint32_t spi, bool tcp80 = false) {
  std::vector<dp::PolicyRule> r(1);
  r[0].dst = *dp::parse_prefix(f.dst + (f.np() == AC_NSH_NP_IPV6 ? "/128" : "/32"));
  r[0].spi = spi;
  if (tcp80) {
    r[0].proto = IPPROTO_TCP;
    r[0].dport_lo = r[0].dport_hi = 80;
  }
  return r;
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

// The flow cache and the next-hop cache are per CPU: tests of their state run on one CPU.
class PinCpu {
 public:
  PinCpu() {
    sched_getaffinity(0, sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) throw std::runtime_error("sched_setaffinity");
  }
  ~PinCpu() { sched_setaffinity(0, sizeof old_, &old_); }

 private:
  cpu_set_t old_;
};

// 7: flow cache: hits keep a flow on its instance across table changes; a withdrawn instance's
// entries are never used again.
TEST(FlowCache, HitsSurviveTableChangeAndWithdrawalRebalances) {
  PinCpu pin;
  auto& d = FastPathEnv::dataplane();
  Flow f{"192.168.7.7", "203.0.113.77", {}};
  f.l4.sport = 4242;
  const Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, f.ip());
  const Mac other = {0x02, 0, 0, 0, 0xa0, 0x03};
  dp::Instance b{.id = kInstLocalB, .local = true, .nsh_aware = true,
                 .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = other, .if_mac = kVnf0Host};
  ASSERT_TRUE(d.set_instance(b).has_value());

  Counters c;
  auto r1 = run_prog(prog(), "src0", in);
  EXPECT_EQ(Bytes(r1.out.begin(), r1.out.begin() + 6), Bytes(kVnf0Peer.begin(), kVnf0Peer.end()));
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), 1u);
  auto flows = d.flows();
  ASSERT_TRUE(flows.has_value());
  bool found = false;
  for (const auto& e : *flows)
    found |= e.spi == 100 && e.si == 255 && e.hash == f.hash() && e.instance_id == kInstLocal;
  EXPECT_TRUE(found);

  auto moved = d.set_wcmp_table(kSvcLocal, table_of(kInstLocalB));
  ASSERT_TRUE(moved.has_value());
  EXPECT_DOUBLE_EQ(*moved, 1.0);
  auto r2 = run_prog(prog(), "src0", in);
  EXPECT_EQ(Bytes(r2.out.begin(), r2.out.begin() + 6), Bytes(kVnf0Peer.begin(), kVnf0Peer.end()));
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 1u);

  ASSERT_TRUE(d.del_instance(kInstLocal).has_value());
  auto r3 = run_prog(prog(), "src0", in);
  EXPECT_EQ(Bytes(r3.out.begin(), r3.out.begin() + 6), Bytes(other.begin(), other.end()));
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_STALE), 1u);

  // restore the fixture
  dp::Instance local{.id = kInstLocal, .local = true, .nsh_aware = true,
                     .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer, .if_mac = kVnf0Host};
  auto gen = d.set_instance(local);
  ASSERT_TRUE(gen.has_value());
  ASSERT_TRUE(d.set_wcmp_table(kSvcLocal, table_of(kInstLocal)).has_value());
  ASSERT_TRUE(d.flush_flows().has_value());
  auto r4 = run_prog(prog(), "src0", in);
  EXPECT_EQ(Bytes(r4.out.begin(), r4.out.begin() + 6), Bytes(kVnf0Peer.begin(), kVnf0Peer.end()));
}

Bytes nsh_frame(const Nsh& n, const Bytes& inner = kV4.ip());

Bytes dst_mac(const RunResult& r) { return Bytes(r.out.begin(), r.out.begin() + 6); }
Bytes mac_bytes(const Mac& m) { return Bytes(m.begin(), m.end()); }

// 7b: a hit takes the path data from the cache way (no ac_paths lookup) while the path epoch is
// unchanged, whatever else is written; any set_path/del_path makes the next packet re-read it.
TEST(FlowCache, HitSkipsPathLookupUntilThePathEpochChanges) {
  PinCpu pin;
  auto& d = FastPathEnv::dataplane();
  Nsh n = nsh_for(kV4, 100, 255, 30);
  n.ctx[0] = 0x5eed0001;
  const Bytes in = nsh_frame(n);
  const int paths = d.map_fd("ac_paths");
  const uint32_t key = htonl(AC_SPI_SI(100, 255));
  ac_path saved{};
  ASSERT_EQ(bpf_map_lookup_elem(paths, &key, &saved), 0);

  ASSERT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);  // fills the way
  // unrelated writes: config, an instance, a WCMP table, an interface; and the path itself is
  // removed behind the dataplane library's back (no epoch bump)
  auto cfg = d.config();
  ASSERT_TRUE(cfg.has_value());
  ASSERT_TRUE(d.set_config(*cfg).has_value());
  dp::Instance remote{.id = kInstRemote, .local = false};
  inet_pton(AF_INET, kRemoteEndpoint, &remote.endpoint);
  remote.vni = 7;
  ASSERT_TRUE(d.set_instance(remote).has_value());
  ASSERT_TRUE(d.set_wcmp_table(kSvcRemote, table_of(kInstRemote)).has_value());
  ASSERT_TRUE(d.set_interface(FastPathEnv::ifindex("vnf1"), AC_IF_VNF, kInstProxy, kVnf1Host).has_value());
  ASSERT_EQ(bpf_map_delete_elem(paths, &key), 0);
  {
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT) << "a hit must not need ac_paths";
    EXPECT_EQ(dst_mac(r), mac_bytes(kVnf0Peer));
    EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 1u);
    EXPECT_EQ(c.delta(AC_DROP_NO_PATH), 0u);
  }
  // any path write bumps the epoch: the path is re-read, and it is gone
  ASSERT_TRUE(d.set_path(100, 253, 0, true).has_value());
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_NO_PATH), 1u);
  }
  // back, through the library (same counter slot): a miss (the way was freed), then hits
  ASSERT_EQ(bpf_map_update_elem(paths, &key, &saved, BPF_ANY), 0);
  ASSERT_TRUE(d.set_path(100, 255, kSvcLocal, false).has_value());
  {
    Counters c;
    auto p0 = d.path_stats(100, 255);
    ASSERT_TRUE(p0.has_value());
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
    EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 1u);
    EXPECT_EQ(d.path_stats(100, 255)->packets - p0->packets, 2u) << "hits count per (SPI, SI) too";
  }
  // the path moves to another service: the cached instance (of the old service) is not used
  ASSERT_TRUE(d.set_path(100, 255, kSvcRemote, false).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(dst_mac(r), mac_bytes(kCore0Peer));
    EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), 1u);
  }
  // and to a last hop: popped and routed
  ASSERT_TRUE(d.set_path(100, 255, 0, true).has_value());
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
    EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u);
  }
  ASSERT_TRUE(d.set_path(100, 255, kSvcLocal, false).has_value());
  auto r = run_prog(prog(), "vnf0", in);
  EXPECT_EQ(dst_mac(r), mac_bytes(kVnf0Peer));
}

// 7b': when the path moves to another service whose pick fails, the way must not keep the old
// service's instance: every following packet is dropped too, none goes to the old instance.
TEST(FlowCache, ServiceChangeForgetsTheOldInstanceEvenWhenThePickFails) {
  PinCpu pin;
  auto& d = FastPathEnv::dataplane();
  Nsh n = nsh_for(kV4, 100, 255, 30);
  n.ctx[0] = 0x5eed0002;
  const Bytes in = nsh_frame(n);
  ASSERT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
  ASSERT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);  // cached on the local instance
  ASSERT_TRUE(d.set_path(100, 255, 9, false).has_value());  // service 9 has no WCMP table
  Counters c;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_DROP) << i;
  EXPECT_EQ(c.delta(AC_DROP_NO_INSTANCE), 3u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 0u);
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 0u);
  ASSERT_TRUE(d.set_path(100, 255, kSvcLocal, false).has_value());
  EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
}

// 7c: a set holds AC_FLOW_WAYS flows; one more evicts the least recently used way, and every
// packet is still forwarded correctly.
TEST(FlowCache, FullSetEvictsItsLeastRecentlyUsedWay) {
  PinCpu pin;
  auto& d = FastPathEnv::dataplane();
  ASSERT_TRUE(d.flush_flows().has_value());
  const uint32_t spsi = htonl(AC_SPI_SI(100, 255)), mask = d.flow_sets() - 1;
  const uint32_t target = ac_flow_set_of(spsi, 0xfeed0000u, mask);
  std::vector<uint32_t> h;
  for (uint32_t x = 0xfeed0000u; h.size() < AC_FLOW_WAYS + 1; ++x)
    if (ac_flow_set_of(spsi, x, mask) == target) h.push_back(x);
  auto send = [&](uint32_t hash) {
    Nsh n = nsh_for(kV4, 100, 255, 30);
    n.ctx[0] = hash;
    auto r = run_prog(prog(), "vnf0", nsh_frame(n));
    Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
    n.ttl = 29;
    append(want, nsh(n));
    append(want, kV4.ip());
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(r.out), hex(want)) << "hash " << hash;
  };
  // the LRU order is by the coarse clock: one tick is at most 10 ms
  auto tick = [] { usleep(25000); };
  auto cached = [&] {
    std::set<uint32_t> in;
    auto fl = d.flows();
    EXPECT_TRUE(fl.has_value());
    for (const auto& e : *fl)
      if (e.spi == 100 && e.si == 255 && e.set == target) in.insert(e.hash);
    return in;
  };
  Counters c;
  for (size_t i = 0; i < AC_FLOW_WAYS; ++i) {
    send(h[i]);
    tick();
  }
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), AC_FLOW_WAYS);
  EXPECT_EQ(cached(), std::set<uint32_t>(h.begin(), h.begin() + AC_FLOW_WAYS));
  send(h[0]);  // h[0] becomes the most recently used; h[1] is now the least
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 1u);
  tick();
  send(h[AC_FLOW_WAYS]);  // one more flow in the full set
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), AC_FLOW_WAYS + 1);
  std::set<uint32_t> want(h.begin(), h.end());
  want.erase(h[1]);
  EXPECT_EQ(cached(), want);
  tick();
  send(h[0]);  // still cached
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_HIT), 2u);
  send(h[1]);  // evicted: misses, is forwarded alike, and evicts the next LRU way (h[2])
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), AC_FLOW_WAYS + 2);
  want.insert(h[1]);
  want.erase(h[2]);
  EXPECT_EQ(cached(), want);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), AC_FLOW_WAYS + 4);
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_STALE), 0u);
}

// 9: next-hop cache: a remote instance's FIB result is reused until it expires or the instance
// changes; NO_NEIGH is never cached.
class NextHopCache : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = d().config();
    ASSERT_TRUE(c.has_value());
    saved_ = *c;
    ASSERT_TRUE(d().flush_nexthops().has_value());
  }
  void TearDown() override {
    sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:02 dev core0 nud permanent");
    sh("ip neigh del 10.0.0.3 dev core0 2>/dev/null");
    EXPECT_TRUE(d().set_config(saved_).has_value());
    dp::Instance remote{.id = kInstRemote, .local = false};
    inet_pton(AF_INET, kRemoteEndpoint, &remote.endpoint);
    remote.vni = 7;
    EXPECT_TRUE(d().set_instance(remote).has_value());
    EXPECT_TRUE(d().flush_nexthops().has_value());
  }
  static dp::Dataplane& d() { return FastPathEnv::dataplane(); }
  void ttl(uint64_t ns) {
    dp::Config c = saved_;
    c.nexthop_ttl_ns = ns;
    ASSERT_TRUE(d().set_config(c).has_value());
  }
  static RunResult to_remote() {
    return run_prog(prog(), "vnf0", nsh_frame(nsh_for(kV4, 100, 254, 30)));
  }
  static constexpr Mac kMoved = {0x02, 0, 0, 0, 0xc0, 0x09};
  PinCpu pin_;
  dp::Config saved_;
};

TEST_F(NextHopCache, UsedUntilItExpires) {
  ttl(500'000'000);  // 500 ms
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
  ASSERT_EQ(sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:09 dev core0 nud permanent"), 0);
  Counters c;
  auto cachedr = to_remote();
  EXPECT_EQ(cachedr.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(cachedr), mac_bytes(kCore0Peer)) << "within the TTL the cached next hop is used";
  usleep(700000);
  auto fresh = to_remote();
  EXPECT_EQ(fresh.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(fresh), mac_bytes(kMoved)) << "after the TTL the FIB is asked again";
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 2u);
}

TEST_F(NextHopCache, InstanceChangeTakesEffectAtOnce) {
  ttl(60'000'000'000ULL);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
  ASSERT_EQ(sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:09 dev core0 nud permanent"), 0);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
  dp::Instance remote{.id = kInstRemote, .local = false};
  inet_pton(AF_INET, kRemoteEndpoint, &remote.endpoint);
  remote.vni = 8;  // a change: new generation
  ASSERT_TRUE(d().set_instance(remote).has_value());
  auto r = to_remote();
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(r), mac_bytes(kMoved));
  EXPECT_EQ(get32(r.out, 14 + 20 + 8 + 4) >> 8, 8u) << "VNI of the new generation";
  // flush_nexthops() forgets a cached result at once too
  ASSERT_EQ(sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:02 dev core0 nud permanent"), 0);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kMoved));
  ASSERT_TRUE(d().flush_nexthops().has_value());
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
}

TEST_F(NextHopCache, ZeroTtlAsksTheFibForEveryPacket) {
  ttl(0);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
  ASSERT_EQ(sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:09 dev core0 nud permanent"), 0);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kMoved));
}

TEST_F(NextHopCache, NoNeighbourIsNeverCached) {
  ttl(60'000'000'000ULL);
  Flow f{"192.168.1.10", "198.18.0.5", {}};
  const Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, f.ip());
  Counters c;
  EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_PASS);
  EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_PASS);
  EXPECT_EQ(c.delta(AC_PASS_NO_NEIGH), 2u);
  ASSERT_EQ(sh("ip neigh replace 10.0.0.3 lladdr 02:00:00:00:c0:09 dev core0 nud permanent"), 0);
  auto r = run_prog(prog(), "src0", in);
  EXPECT_EQ(r.verdict, XDP_REDIRECT) << "the neighbour is used as soon as it is known";
  EXPECT_EQ(dst_mac(r), mac_bytes(kMoved));
  EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
}

TEST(FastPathStats, PathAndInstanceCountersCount) {
  auto& d = FastPathEnv::dataplane();
  auto p0 = d.path_stats(100, 255);
  auto i0 = d.instance_stats(kInstLocal);
  ASSERT_TRUE(p0 && i0);
  for (int i = 0; i < 5; ++i) run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  EXPECT_EQ(d.path_stats(100, 255)->packets - p0->packets, 5u);
  EXPECT_EQ(d.instance_stats(kInstLocal)->packets - i0->packets, 5u);
}

TEST(Policies, NewRuleSetReplacesTheOldAtomically) {
  auto& d = FastPathEnv::dataplane();
  Flow f{"192.168.1.1", "100.64.0.1", {}};
  const Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, f.ip());
  Counters c;
  EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_PASS);
  EXPECT_EQ(c.delta(AC_PASS_NOT_OURS), 1u);
  std::vector<dp::PolicyRule> one(1);
  one[0].dst = *dp::parse_prefix("100.64.0.0/10");
  one[0].spi = 100;
  ASSERT_TRUE(d.set_policies(one).has_value());
  EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_REDIRECT);
  // the old rules are gone
  EXPECT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip())).verdict, XDP_PASS);
  std::vector<dp::PolicyRule> bad(1);
  bad[0].dst = *dp::parse_prefix("100.64.0.0/10");
  bad[0].spi = 1u << 24;
  EXPECT_FALSE(d.set_policies(bad).has_value());
  ASSERT_TRUE(d.set_policies(fixture_rules()).has_value());
}

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

Bytes nsh_frame(const Nsh& n, const Bytes& inner) {
  Bytes b = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(b, nsh(n));
  append(b, inner);
  return b;
}

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

// 8: weights in, table swapped, the fast path's picks follow the weights; a change moves few flows
TEST(Wcmp, FastPathFollowsWeightsAndChangesMoveFewBuckets) {
  auto& d = FastPathEnv::dataplane();
  constexpr uint32_t kSvc = 5;
  const uint32_t ids[3] = {6, 7, 8};
  for (uint32_t id : ids) {
    dp::Instance in{.id = id, .local = true, .nsh_aware = true,
                    .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")),
                    .mac = {0x02, 0, 0, 0, 0xb0, static_cast<uint8_t>(id)}, .if_mac = kVnf0Host};
    ASSERT_TRUE(d.set_instance(in).has_value());
  }
  ASSERT_TRUE(d.set_path(500, 255, kSvc, false).has_value());
  auto shares = [&](int flows) {
    std::map<uint8_t, int> n;
    uint32_t h = 12345;
    for (int i = 0; i < flows; ++i) {
      h = h * 1103515245u + 12345u;  // distinct flow hashes
      Nsh x = nsh_for(kV4, 500, 255, 30);
      x.ctx[0] = h;
      auto r = run_prog(prog(), "vnf0", nsh_frame(x));
      if (r.verdict == XDP_REDIRECT) ++n[r.out[5]];
    }
    return n;
  };
  const dp::WcmpMember half[] = {{6, 1}, {7, 1}};
  auto m1 = d.set_wcmp_weights(kSvc, half);
  ASSERT_TRUE(m1.has_value());
  auto s1 = shares(4000);
  EXPECT_NEAR(s1[6] / 4000.0, 0.5, 0.03);
  EXPECT_NEAR(s1[7] / 4000.0, 0.5, 0.03);
  ASSERT_TRUE(d.flush_flows().has_value());
  const dp::WcmpMember third[] = {{6, 2}, {7, 2}, {8, 1}};
  auto m2 = d.set_wcmp_weights(kSvc, third);
  ASSERT_TRUE(m2.has_value());
  EXPECT_GE(*m2, 0.19);  // the new instance must get its 20 %
  EXPECT_LE(*m2, 0.21);  // and only that much moves
  auto s2 = shares(4000);
  EXPECT_NEAR(s2[6] / 4000.0, 0.4, 0.03);
  EXPECT_NEAR(s2[7] / 4000.0, 0.4, 0.03);
  EXPECT_NEAR(s2[8] / 4000.0, 0.2, 0.03);
  const dp::WcmpMember none[] = {{6, 0}};
  EXPECT_FALSE(d.set_wcmp_weights(kSvc, none).has_value()) << "all-zero weights are refused";
  ASSERT_TRUE(d.del_path(500, 255).has_value());
  ASSERT_TRUE(d.del_wcmp_table(kSvc).has_value());
}

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


// ---- one placement per flow, whatever CPU its packets run on ----

// Runs the calling thread on one CPU for the scope.
class OnCpu {
 public:
  explicit OnCpu(int cpu) {
    sched_getaffinity(0, sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) throw std::runtime_error("sched_setaffinity");
  }
  ~OnCpu() { sched_setaffinity(0, sizeof old_, &old_); }

 private:
  cpu_set_t old_;
};

class FlowAffinity : public ::testing::Test {
 protected:
  static constexpr uint32_t kSvc = 11, kSpi = 510, kA = 30, kB = 31;
  static Mac mac_of(uint32_t id) { return {0x02, 0, 0, 0, 0xaf, static_cast<uint8_t>(id)}; }
  void SetUp() override {
    ASSERT_GE(libbpf_num_possible_cpus(), 2) << "these tests need two CPUs";
    auto& d = FastPathEnv::dataplane();
    for (uint32_t id : {kA, kB}) {
      dp::Instance in{.id = id, .local = true, .nsh_aware = true,
                      .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = mac_of(id),
                      .if_mac = kVnf0Host, .service_id = kSvc};
      ASSERT_TRUE(d.set_instance(in).has_value());
    }
    ASSERT_TRUE(d.set_path(kSpi, 255, kSvc, false).has_value());
    ASSERT_TRUE(d.set_wcmp_table(kSvc, table_of(kA)).has_value());
    ASSERT_TRUE(d.flush_flows().has_value());
  }
  void TearDown() override {
    auto& d = FastPathEnv::dataplane();
    (void)d.del_path(kSpi, 255);
    (void)d.del_wcmp_table(kSvc);
    (void)d.del_instance(kA);
    (void)d.del_instance(kB);
  }
  // the instance a packet of flow `hash` is delivered to (by the VNF MAC it is sent to), 0 = dropped
  static uint32_t send(uint32_t hash) {
    Nsh n = nsh_for(kV4, kSpi, 255, 30);
    n.ctx[0] = hash;
    auto r = run_prog(prog(), "vnf0", nsh_frame(n));
    if (r.verdict != XDP_REDIRECT) return 0;
    return r.out[5];
  }
};

// The issue this fixes: a flow's first packet on CPU 0, a weight change, its next packet on
// CPU 1. Each CPU's cache used to make its own WCMP pick: two instances for one flow.
TEST_F(FlowAffinity, AWeightChangeBetweenTwoCpusKeepsTheFlowOnItsInstance) {
  auto& d = FastPathEnv::dataplane();
  const uint32_t flow = 0x1234567;
  {
    OnCpu c0(0);
    EXPECT_EQ(send(flow), kA);
  }
  ASSERT_TRUE(d.set_wcmp_table(kSvc, table_of(kB)).has_value());  // every bucket moves to B
  {
    OnCpu c1(1);
    Counters c;
    EXPECT_EQ(send(flow), kA) << "CPU 1 must use the flow's placement, not its own pick";
    EXPECT_EQ(c.delta(AC_NOTE_CACHE_MISS), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_HIT), 1u);
    EXPECT_EQ(send(0x7654321), kB) << "a new flow follows the new table";
  }
  {
    OnCpu c0(0);
    EXPECT_EQ(send(flow), kA);
    EXPECT_EQ(send(0x7654321), kB) << "placed on CPU 1, the same on CPU 0";
  }
}

// When the instance dies, the flow moves once: the first CPU to notice places it again and every
// other CPU takes that placement.
TEST_F(FlowAffinity, AFlowOffADeadInstanceMovesOnceForEveryCpu) {
  auto& d = FastPathEnv::dataplane();
  const uint32_t flow = 0xabcdef1;
  for (int cpu : {0, 1}) {
    OnCpu on(cpu);
    EXPECT_EQ(send(flow), kA);
  }
  ASSERT_TRUE(d.set_wcmp_table(kSvc, table_of(kB)).has_value());
  ASSERT_TRUE(d.del_instance(kA).has_value());
  Counters c;
  for (int cpu : {1, 0}) {
    OnCpu on(cpu);
    EXPECT_EQ(send(flow), kB) << "cpu " << cpu;
  }
  EXPECT_EQ(c.delta(AC_NOTE_CACHE_STALE), 2u);
  EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_NEW), 1u) << "placed again once";
  EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_HIT), 1u) << "the other CPU took that placement";
}

// Both CPUs place the same new flows at the same time while the table changes under them: the
// first writer wins and every packet of a flow, on either CPU, goes to one instance.
TEST_F(FlowAffinity, ConcurrentFirstPacketsOnTwoCpusAgree) {
  auto& d = FastPathEnv::dataplane();
  constexpr int kFlows = 3000, kRounds = 4;
  std::vector<std::array<std::set<uint32_t>, 2>> seen(kFlows);
  std::atomic<int> ready{0};
  auto worker = [&](int cpu) {
    OnCpu on(cpu);
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    for (int round = 0; round < kRounds; ++round)
      for (int i = 0; i < kFlows; ++i) seen[i][cpu].insert(send(0x9e3779b9u * static_cast<uint32_t>(i + 1)));
  };
  std::thread t0(worker, 0), t1(worker, 1);
  // swap the table back and forth while the CPUs place flows
  for (int k = 0; k < 40; ++k) {
    ASSERT_TRUE(d.set_wcmp_table(kSvc, table_of(k % 2 ? kA : kB)).has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  t0.join();
  t1.join();
  int split = 0;
  for (const auto& s : seen) {
    std::set<uint32_t> all = s[0];
    all.insert(s[1].begin(), s[1].end());
    split += all.size() != 1 || all.count(0);
  }
  EXPECT_EQ(split, 0) << "flows placed on two instances (or dropped)";
}
}  // namespace
}  // namespace anychain::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new anychain::test::FastPathEnv);
  return RUN_ALL_TESTS();
}
