// The fast path's state: flow cache (per CPU), the flows' shared placement (every CPU), the
// next-hop and last-hop caches, the proxy's held NSH, WCMP tables, counters per path and
// instance, policy banks. Over 500 lines: one fixture per cache, each short, over the shared
// node of fastpath_cases.h; splitting them would only scatter the caches' tests.
#include <bpf/libbpf.h>
#include <linux/if_ether.h>

#include <array>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

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
                 .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = other, .if_mac = kVnf0Host, .service_id = kSvcLocal};
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
                     .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer, .if_mac = kVnf0Host,
                     .service_id = kSvcLocal};
  auto gen = d.set_instance(local);
  ASSERT_TRUE(gen.has_value());
  ASSERT_TRUE(d.set_wcmp_table(kSvcLocal, table_of(kInstLocal)).has_value());
  ASSERT_TRUE(d.flush_flows().has_value());
  auto r4 = run_prog(prog(), "src0", in);
  EXPECT_EQ(Bytes(r4.out.begin(), r4.out.begin() + 6), Bytes(kVnf0Peer.begin(), kVnf0Peer.end()));
}

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
  dp::Instance remote{.id = kInstRemote, .local = false, .service_id = kSvcRemote};
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
    dp::Instance remote{.id = kInstRemote, .local = false, .service_id = kSvcRemote};
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
  // 3 s: the neighbour change between the two packets forks ip(8), which takes far more than a
  // shorter TTL inside the TCG-emulated VM of the VM tests on a loaded host
  ttl(3'000'000'000ULL);
  EXPECT_EQ(dst_mac(to_remote()), mac_bytes(kCore0Peer));
  ASSERT_EQ(sh("ip neigh replace 10.0.0.2 lladdr 02:00:00:00:c0:09 dev core0 nud permanent"), 0);
  Counters c;
  auto cachedr = to_remote();
  EXPECT_EQ(cachedr.verdict, XDP_REDIRECT);
  EXPECT_EQ(dst_mac(cachedr), mac_bytes(kCore0Peer)) << "within the TTL the cached next hop is used";
  usleep(3'200'000);
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
  dp::Instance remote{.id = kInstRemote, .local = false, .service_id = kSvcRemote};
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

// 10: last-hop cache: the end of a chain reuses the FIB's answer for the inner packet's
// addresses until it expires or the agent flushes the cache; other addresses, a packet longer
// than the route's MTU and a zero TTL ask the FIB.
class LastHopCache : public NextHopCache {
 protected:
  static constexpr char kNeigh4[] = "10.0.0.2";
  static constexpr char kNeigh6[] = "2001:db8:1::2";
  // VXLAN-GPE from another node at the chain's last SI: decap, pop, route the inner packet
  static RunResult last_hop(const Flow& f, size_t payload = 0) {
    Flow g = f;
    if (payload) g.l4.payload = Bytes(payload, 0xab);
    Bytes inner = nsh(nsh_for(g, 100, 253, 60));
    append(inner, g.ip());
    Bytes in = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(in, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size()));
    append(in, inner);
    return run_prog(prog(), "core0", in);
  }
  static void move_neighbour(const Flow& f, const Mac& to) {
    const bool v6 = f.np() == AC_NSH_NP_IPV6;
    ASSERT_EQ(sh(std::string(v6 ? "ip -6" : "ip") + " neigh replace " + (v6 ? kNeigh6 : kNeigh4) + " lladdr " +
                 mac_str(to) + " dev core0 nud permanent"),
              0);
  }
  void TearDown() override {
    sh(std::string("ip -6 neigh replace ") + kNeigh6 + " lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
    NextHopCache::TearDown();
  }
};

TEST_F(LastHopCache, UsedUntilItExpiresOrIsFlushed) {
  for (const Flow& f : {kV4, kV6}) {
    SCOPED_TRACE(f.dst);
    ASSERT_TRUE(d().flush_nexthops().has_value());
    ttl(3'000'000'000ULL);  // 3 s: room for a loaded host or a TCG VM between the lookups below
    Counters c;
    EXPECT_EQ(dst_mac(last_hop(f)), mac_bytes(kCore0Peer));
    move_neighbour(f, kMoved);
    auto cached = last_hop(f);
    EXPECT_EQ(cached.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(cached.out), hex(frame(kCore0Peer, kCore0, f.ethertype(), f.ip(63))))
        << "within the TTL the cached answer is used, bytes as from the FIB";
    usleep(3'200'000);
    EXPECT_EQ(dst_mac(last_hop(f)), mac_bytes(kMoved)) << "after the TTL the FIB is asked again";
    move_neighbour(f, kCore0Peer);
    EXPECT_EQ(dst_mac(last_hop(f)), mac_bytes(kMoved)) << "cached again";
    ASSERT_TRUE(d().flush_nexthops().has_value());
    EXPECT_EQ(dst_mac(last_hop(f)), mac_bytes(kCore0Peer)) << "a flush forgets it at once";
    EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 5u);
  }
}

TEST_F(LastHopCache, OnlyTheSameAddressesShareAnAnswer) {
  ttl(60'000'000'000ULL);
  EXPECT_EQ(dst_mac(last_hop(kV4)), mac_bytes(kCore0Peer));
  move_neighbour(kV4, kMoved);
  Flow other_port = kV4;
  other_port.l4.sport = static_cast<uint16_t>(kV4.l4.sport + 1);
  EXPECT_EQ(dst_mac(last_hop(other_port)), mac_bytes(kCore0Peer))
      << "ports are not part of the key (the default L3 multipath hash does not read them)";
  Flow other_dst = kV4;
  other_dst.dst = "203.0.113.11";
  Flow other_src = kV4;
  other_src.src = "192.168.1.11";
  Flow other_proto = kV4;
  other_proto.l4.proto = IPPROTO_TCP;
  for (const Flow& f : {other_dst, other_src, other_proto}) {
    SCOPED_TRACE(f.src + " > " + f.dst);
    EXPECT_EQ(dst_mac(last_hop(f)), mac_bytes(kMoved)) << "another key asks the FIB";
  }
}

TEST_F(LastHopCache, LongerThanTheRouteMtuAsksTheFib) {
  ttl(60'000'000'000ULL);
  // forwarding reads a route's MTU only when it is locked (ip_mtu_from_fib_result)
  ASSERT_EQ(sh("ip route replace 203.0.113.0/24 via 10.0.0.2 mtu lock 600"), 0);
  ASSERT_TRUE(d().flush_nexthops().has_value());
  EXPECT_EQ(last_hop(kV4, 200).verdict, XDP_REDIRECT);
  Counters c;
  auto big = last_hop(kV4, 900);
  ASSERT_EQ(sh("ip route replace 203.0.113.0/24 via 10.0.0.2"), 0);
  EXPECT_EQ(big.verdict, XDP_PASS) << "the FIB says fragmentation needed: the stack sends it or the ICMP";
  EXPECT_EQ(c.delta(AC_PASS_LAST_HOP), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 0u);
}

TEST_F(LastHopCache, ZeroTtlAsksTheFibForEveryPacket) {
  ttl(0);
  EXPECT_EQ(dst_mac(last_hop(kV4)), mac_bytes(kCore0Peer));
  move_neighbour(kV4, kMoved);
  EXPECT_EQ(dst_mac(last_hop(kV4)), mac_bytes(kMoved));
}

// A flush is one bump of the FIB generation (ac_config.fib_gen), which set_config() keeps; the
// entries carry the generation they were filled in, and every AC_FIB_GEN_FLUSH bumps the slots
// are emptied as well, so a 16-bit generation that comes back finds no entry of its own.
TEST_F(LastHopCache, AFlushIsOneGenerationBumpThatSetConfigKeeps) {
  const int cfg_fd = d().map_fd("ac_config");
  const int lh_fd = d().map_fd("ac_lasthop");
  auto gen = [&] {
    uint32_t zero = 0;
    ac_config v{};
    EXPECT_EQ(bpf_map_lookup_elem(cfg_fd, &zero, &v), 0);
    return v.fib_gen;
  };
  __be32 src[4] = {}, dst[4] = {};
  ASSERT_EQ(inet_pton(AF_INET, kV4.src.c_str(), &src[0]), 1);
  ASSERT_EQ(inet_pton(AF_INET, kV4.dst.c_str(), &dst[0]), 1);
  uint32_t slot = ac_lasthop_slot(src, dst, static_cast<uint32_t>(FastPathEnv::ifindex("core0")));
  auto entries = [&] {  // the slot's filled entries (one per CPU that routed the flow)
    std::vector<ac_lasthop> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    EXPECT_EQ(bpf_map_lookup_elem(lh_fd, &slot, v.data()), 0);
    std::vector<ac_lasthop> filled;
    for (const auto& e : v)
      if (e.expires) filled.push_back(e);
    return filled;
  };
  ttl(60'000'000'000ULL);
  const uint16_t g0 = gen();
  ASSERT_TRUE(d().flush_nexthops().has_value());
  EXPECT_EQ(gen(), static_cast<uint16_t>(g0 + 1));
  ttl(60'000'000'000ULL);
  EXPECT_EQ(gen(), static_cast<uint16_t>(g0 + 1)) << "set_config() keeps the generation";
  EXPECT_EQ(last_hop(kV4).verdict, XDP_REDIRECT);
  auto e = entries();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].fib_gen, static_cast<uint16_t>(g0 + 1));
  // bump up to the last generation before a multiple of AC_FIB_GEN_FLUSH: the entry stays (stale)
  while ((gen() + 1u) % AC_FIB_GEN_FLUSH != 0) ASSERT_TRUE(d().flush_nexthops().has_value());
  EXPECT_EQ(entries().size(), 1u) << "a bump alone leaves the slots as they are";
  ASSERT_TRUE(d().flush_nexthops().has_value());
  EXPECT_EQ(gen() % AC_FIB_GEN_FLUSH, 0u);
  EXPECT_TRUE(entries().empty()) << "every AC_FIB_GEN_FLUSH bumps the slots are emptied";
  move_neighbour(kV4, kMoved);
  EXPECT_EQ(dst_mac(last_hop(kV4)), mac_bytes(kMoved));
}

// 11: the SFC proxy holds a flow's latest NSH: a packet with the NSH already held leaves the
// entry as it is, one with another NSH replaces it.
TEST(ProxyHold, KeepsTheLatestNshOfAFlow) {
  PinCpu pin;
  auto& d = FastPathEnv::dataplane();
  const int fd = d.map_fd("ac_proxy");
  ac_proxy_key k{}, next{};
  while (bpf_map_get_next_key(fd, nullptr, &next) == 0) {
    k = next;
    ASSERT_EQ(bpf_map_delete_elem(fd, &k), 0);
  }
  Flow f = kV4;
  f.l4.proto = IPPROTO_TCP;
  f.l4.dport = 80;
  f.dst = "203.0.113.200";  // rule 0: TCP/80 to .128/25 -> SPI 200, the proxied VNF
  auto held = [&] {
    ac_proxy_key key{};
    EXPECT_EQ(bpf_map_get_next_key(fd, nullptr, &key), 0);
    EXPECT_NE(bpf_map_get_next_key(fd, &key, &next), 0) << "one flow, one entry";
    ac_proxy_entry e{};
    EXPECT_EQ(bpf_map_lookup_elem(fd, &key, &e), 0);
    return Bytes(e.nsh, e.nsh + e.len);
  };
  auto deliver = [&](uint8_t ttl) {
    Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
    append(in, nsh(nsh_for(f, 200, 255, ttl)));
    append(in, f.ip());
    EXPECT_EQ(run_prog(prog(), "vnf0", in).verdict, XDP_REDIRECT);
  };
  deliver(40);
  EXPECT_EQ(hex(held()), hex(nsh(nsh_for(f, 200, 255, 39))));
  deliver(40);
  EXPECT_EQ(hex(held()), hex(nsh(nsh_for(f, 200, 255, 39)))) << "the same NSH again";
  deliver(30);
  EXPECT_EQ(hex(held()), hex(nsh(nsh_for(f, 200, 255, 29)))) << "another NSH replaces it";
  auto back = run_prog(prog(), "vnf1", frame(kVnf1Host, kVnf1Peer, f.ethertype(), f.ip()));
  EXPECT_EQ(back.verdict, XDP_REDIRECT);
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

// ---- one placement per flow, whatever CPU its packets run on ----

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
