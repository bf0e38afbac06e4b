// The built-in NF programs (bpf/nf_<kind>.bpf.c, docs/nf.md) loaded by anychain-nf's own loader
// (agent/nf/loader.h, without attaching) and run with BPF_PROG_TEST_RUN: exact bytes out for the
// firewall, the monitor and the NAT, with MD type 1 and 2, IPv4 and IPv6, every drop with its
// counter; their state read back through the published ids (agent/nf/maps.h, state.h) as
// `anychain state` reads it; the NAT's reclaim, and two CPUs taking ports at once. The FTC hop
// inside the same programs: nf_ftc_bpf_test.cc.
#include <set>
#include <thread>

#include "nf/crdt.h"
#include "nf_bpf_fixture.h"

namespace anychain::test {
namespace {

using namespace nfbpf;

uint64_t tai_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}
// ---------------------------------------------------------------------------------- firewall

TEST_F(NfBpf, FirewallPassesWhatNoRuleDropsExactBytes) {
  load(firewall({"drop proto udp dport 53", "drop src 10.9.0.0/16"}));
  Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000));
  for (const Bytes& n : {md1(), md2()}) {
    Out o = run(to_nf(n, inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    EXPECT_EQ(hex(o.frame), hex(from_nf(n, inner)));
  }
  json s = state()["firewall"];
  EXPECT_EQ(s["default"], "pass");
  ASSERT_EQ(s["rules"].size(), 2u);
  EXPECT_EQ(s["rules"][0]["rule"], "drop proto udp dport 53");
  EXPECT_EQ(s["rules"][1]["rule"], "drop src 10.9.0.0/16");
  EXPECT_EQ(s["rules"][0]["packets"], 0u);
  EXPECT_EQ(s["default_hits"]["packets"], 2u);
  EXPECT_EQ(s["default_hits"]["bytes"], 2 * inner.size());
  EXPECT_EQ(count(AC_NF_FW_PASSED), 2u);
  outcomes_add_up();
}

TEST_F(NfBpf, FirewallDropsByTheFirstMatchingRuleCounted) {
  load(firewall({"pass src 10.1.0.7", "drop proto udp dport 53", "drop src 10.1.0.0/16"}));
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.1", "10.2.0.2", udp(40000, 53)))).verdict, XDP_DROP);
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.1", "10.2.0.2", udp(40000, 54)))).verdict, XDP_DROP);  // rule 2
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.7", "10.2.0.2", udp(40000, 53)))).verdict, XDP_TX);    // rule 0
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.3.0.1", "10.2.0.2", udp(40000, 54)))).verdict, XDP_TX);    // default
  json s = state()["firewall"];
  EXPECT_EQ(s["rules"][0]["packets"], 1u);
  EXPECT_EQ(s["rules"][1]["packets"], 1u);
  EXPECT_EQ(s["rules"][2]["packets"], 1u);
  EXPECT_EQ(s["default_hits"]["packets"], 1u);
  EXPECT_EQ(count(AC_NF_FW_DROPPED), 2u);
  EXPECT_EQ(count(AC_NF_DROP_FILTERED), 2u);
  EXPECT_EQ(count(AC_NF_FW_PASSED), 2u);
  outcomes_add_up();
}

// A rule's family is that of its prefixes; "any" matches both
TEST_F(NfBpf, FirewallFamiliesPortsAndFragments) {
  auto p = firewall({"pass src fd00:1::/64 proto udp", "drop proto tcp dport 22", "pass proto udp sport 1-1023",
                     "pass src 10.1.0.0/16 dst any"},
                    true);
  load(p);
  Bytes v6 = ipv6("fd00:1::1", "fd00:2::2", udp(40000, 9000));
  Out o = run(to_nf(md1(kHash, AC_NSH_NP_IPV6), v6));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(kHash, AC_NSH_NP_IPV6), v6)));
  EXPECT_EQ(run(to_nf(md1(kHash, AC_NSH_NP_IPV6), ipv6("fd00:9::1", "fd00:2::2", udp(40000, 9000)))).verdict,
            XDP_DROP);  // default drop
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.1", "10.2.0.2", L4{IPPROTO_TCP, 4000, 22, {}}))).verdict, XDP_DROP);
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.5.0.1", "10.2.0.2", udp(500, 9000)))).verdict, XDP_TX);  // sport 1-1023
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.5.0.1", "10.2.0.2", udp(5000, 9000)))).verdict, XDP_DROP);
  // a non-first fragment has no ports: rules with ports do not match it, the prefix rule does
  Bytes frag = ipv4("10.5.0.1", "10.2.0.2", udp(500, 9000), 64, 0x0010);
  EXPECT_EQ(run(to_nf(md1(), frag)).verdict, XDP_DROP);
  Bytes frag2 = ipv4("10.1.0.1", "10.2.0.2", udp(500, 9000), 64, 0x0010);
  EXPECT_EQ(run(to_nf(md1(), frag2)).verdict, XDP_TX);
  outcomes_add_up();
}

TEST_F(NfBpf, BadNshAndInnerPacketsAreDroppedAndCounted) {
  load(firewall({}));
  Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000));
  Bytes good = to_nf(md1(), inner);
  Bytes not_nsh = good;
  not_nsh[12] = 0x08;
  not_nsh[13] = 0x00;
  Bytes v1 = good;
  v1[14] |= 0x40;  // version 1
  Bytes md3 = good;
  md3[16] = 0x03;
  Bytes md1_long = good;
  md1_long[15] = (md1_long[15] & 0xc0) | 7;  // MD type 1 must be 6 words
  Bytes si0 = to_nf(md1(kHash, AC_NSH_NP_IPV4, 0), inner);
  Bytes cut = Bytes(good.begin(), good.begin() + 14 + 12);
  for (const Bytes& f : {not_nsh, v1, md3, md1_long, si0, cut}) EXPECT_EQ(run(f).verdict, XDP_DROP) << hex(f);
  EXPECT_EQ(count(AC_NF_DROP_BAD_NSH), 6u);
  // the inner header truncated or lying about its length
  Bytes short_ip = to_nf(md1(), Bytes(inner.begin(), inner.begin() + 12));
  Bytes long_len = to_nf(md1(), inner);
  long_len[14 + 24 + 2] = 0x40;  // total length 16384
  EXPECT_EQ(run(short_ip).verdict, XDP_DROP);
  EXPECT_EQ(run(long_len).verdict, XDP_DROP);
  EXPECT_EQ(count(AC_NF_DROP_BAD_INNER), 2u);
  // not IP (an Ethernet frame inside): returned unprocessed
  Bytes ethernet = eth(kHost, kNf, 0x88b5, {Bytes(46, 1)});
  Out o = run(to_nf(md1(kHash, AC_NSH_NP_ETH), ethernet));
  EXPECT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(kHash, AC_NSH_NP_ETH), ethernet)));
  EXPECT_EQ(count(AC_NF_NOT_IP), 1u);
  outcomes_add_up();
}

// ----------------------------------------------------------------------------------- monitor


const json* flow_of(const json& flows, const std::string& src, uint16_t sport) {
  for (const auto& f : flows)
    if (f.value("src", "") == src && f.value("sport", 0) == sport) return &f;
  return nullptr;
}

TEST_F(NfBpf, MonitorCountsEveryFlowAndTheTotal) {
  load(monitor());
  Bytes a = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));  // 100 bytes
  Bytes b = ipv4("10.1.0.3", "10.2.0.2", udp(40001, 9000, 172)); // 200 bytes
  for (int i = 0; i < 5; ++i) {
    Out o = run(to_nf(md1(0x1111), a));
    ASSERT_EQ(o.verdict, XDP_TX);
    EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x1111), a)));
  }
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run(to_nf(md2(0x2222), b)).verdict, XDP_TX);
  json s = state();
  json m = s["monitor"];
  EXPECT_EQ(m["total"]["packets"], 8u);
  EXPECT_EQ(m["total"]["bytes"], 5 * 100u + 3 * 200u);
  ASSERT_EQ(m["flows"].size(), 2u);
  const json* fa = flow_of(m["flows"], "10.1.0.1", 40000);
  const json* fb = flow_of(m["flows"], "10.1.0.3", 40001);
  ASSERT_TRUE(fa && fb) << m.dump();
  EXPECT_EQ((*fa)["packets"], 5u);
  EXPECT_EQ((*fa)["bytes"], 500u);
  EXPECT_EQ((*fa)["proto"], "udp");
  EXPECT_EQ((*fa)["dst"], "10.2.0.2");
  EXPECT_EQ((*fa)["dport"], 9000);
  EXPECT_EQ((*fa)["partition"]["spi"], kSpi);
  EXPECT_EQ((*fa)["partition"]["hash"], "0x00001111");
  EXPECT_EQ((*fb)["packets"], 3u);
  EXPECT_EQ((*fb)["bytes"], 600u);
  EXPECT_EQ(s["counters"]["mon_new_flow"], 2u);
  EXPECT_EQ(s["ftc"]["records"], 2u);
  EXPECT_EQ(s["ftc"]["counters"]["ftc_no_ctrl"], 8u);
  EXPECT_EQ(s["ftc"]["counters"]["ftc_log_appended"], 0u) << "not an FTC chain: no log";
  outcomes_add_up();
}

TEST_F(NfBpf, MonitorIpv6FlowsByDigestNamedForState) {
  load(monitor());
  Bytes v6 = ipv6("fd00:1::1", "fd00:2::2", udp(40000, 9000));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(run(to_nf(md1(kHash, AC_NSH_NP_IPV6), v6)).verdict, XDP_TX);
  auto recs = maps_->head_records();
  ASSERT_TRUE(recs && recs->size() == 1);
  const ac_st_slot& sl = recs->front().second.slot[0];
  ASSERT_EQ(sl.klen, AC_NF_KEY6_LEN);
  uint32_t src[4], dst[4];
  inet_pton(AF_INET6, "fd00:1::1", src);
  inet_pton(AF_INET6, "fd00:2::2", dst);
  uint8_t digest[16];
  ac_nf_digest6(src, dst, IPPROTO_UDP, htons(40000), htons(9000), digest);
  EXPECT_EQ(Bytes(sl.key, sl.key + 16), Bytes(digest, digest + 16));
  json f = state()["monitor"]["flows"][0];
  EXPECT_EQ(f["src"], "fd00:1::1");
  EXPECT_EQ(f["dst"], "fd00:2::2");
  EXPECT_EQ(f["sport"], 40000);
  EXPECT_EQ(f["packets"], 2u);
  EXPECT_EQ(f["bytes"], 2 * v6.size());
}

// Flows whose hashes collide share a partition of AC_ST_SLOTS keys: the fifth is passed, uncounted
TEST_F(NfBpf, MonitorAFullPartitionPassesUncounted) {
  load(monitor());
  for (uint16_t i = 0; i < AC_ST_SLOTS + 1; ++i)
    ASSERT_EQ(run(to_nf(md1(0x77), ipv4("10.1.0.1", "10.2.0.2", udp(40000 + i, 9000)))).verdict, XDP_TX);
  EXPECT_EQ(count(AC_NF_MON_COUNTED), AC_ST_SLOTS);
  EXPECT_EQ(count(AC_NF_MON_UNCOUNTED), 1u);
  EXPECT_EQ(state()["monitor"]["total"]["packets"], AC_ST_SLOTS + 1u);
}

// A flow idle past the timeout counts from 0 again (the reset is a transaction of its own flow)
TEST_F(NfBpf, MonitorIdleFlowStartsAgain) {
  load(monitor());
  Bytes a = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run(to_nf(md1(), a)).verdict, XDP_TX);
  set_idle_jiffies(1);
  usleep(30'000);  // several ticks at any HZ
  ASSERT_EQ(run(to_nf(md1(), a)).verdict, XDP_TX);
  EXPECT_EQ(state()["monitor"]["flows"][0]["packets"], 1u);
  EXPECT_EQ(count(AC_NF_MON_NEW_FLOW), 2u);
}

// --------------------------------------------------------------------------------------- NAT


TEST_F(NfBpf, NatTranslatesOutAndBackExactBytes) {
  load(nat());
  // outbound: the first flow gets the pool's first port
  Bytes out1 = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  Out o = run(to_nf(md1(), out1));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  // its second packet: the same mapping
  o = run(to_nf(md1(), out1));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  // another flow (another partition): the next port
  o = run(to_nf(md2(0x5555), ipv4("10.1.0.2", "198.51.100.7", udp(40000, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md2(0x5555), ipv4("192.0.2.10", "198.51.100.7", udp(20033, 9000)))));
  // the reply to the first flow: back to the inside address and port
  Bytes reply = ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032));
  o = run(to_nf(md1(0x9999), reply));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x9999), ipv4("198.51.100.7", "10.1.0.1", udp(9000, 40000)))));
  // a reply from another peer port, or to a port without mapping: dropped
  EXPECT_EQ(run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9001, 20032)))).verdict, XDP_DROP);
  EXPECT_EQ(run(to_nf(md1(0x9999), ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20040)))).verdict, XDP_DROP);
  EXPECT_EQ(count(AC_NF_NAT_REV_MISS), 2u);
  EXPECT_EQ(count(AC_NF_NAT_NEW), 2u);
  EXPECT_EQ(count(AC_NF_NAT_OUT), 3u);
  EXPECT_EQ(count(AC_NF_NAT_IN), 1u);
  json s = state()["nat"];
  EXPECT_EQ(s["address"], "192.0.2.10");
  EXPECT_EQ(s["ports"], "20032-20095");
  EXPECT_EQ(s["pool"]["size"], 64u);
  EXPECT_EQ(s["pool"]["used"], 2u);
  ASSERT_EQ(s["mappings"].size(), 2u);
  const json* m = flow_of(s["mappings"], "10.1.0.1", 40000);
  ASSERT_TRUE(m) << s.dump();
  EXPECT_EQ((*m)["external"], "192.0.2.10");
  EXPECT_EQ((*m)["external_port"], 20032);
  EXPECT_EQ((*m)["dst"], "198.51.100.7");
  EXPECT_EQ((*m)["reply_path"], true);
  outcomes_add_up();
}

TEST_F(NfBpf, NatTcpAndIcmpEchoChecksums) {
  load(nat());
  L4 syn{IPPROTO_TCP, 5555, 443, Bytes(20, 0x11)};
  Out o = run(to_nf(md1(), ipv4("10.1.0.1", "198.51.100.7", syn)));
  ASSERT_EQ(o.verdict, XDP_TX);
  L4 syn_out = syn;
  syn_out.sport = 20032;
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", syn_out))));
  o = run(to_nf(md1(0x42), icmp4("10.1.0.1", "198.51.100.7", 8, 0x1234)));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x42), icmp4("192.0.2.10", "198.51.100.7", 8, 20033))));
  o = run(to_nf(md1(0x43), icmp4("198.51.100.7", "192.0.2.10", 0, 20033)));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x43), icmp4("198.51.100.7", "10.1.0.1", 0, 0x1234))));
  // a UDP datagram without checksum keeps none
  Bytes nocsum = ipv4("10.1.0.2", "198.51.100.7", udp(1000, 53));
  nocsum[26] = nocsum[27] = 0;
  o = run(to_nf(md1(0x44), nocsum));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(o.frame[14 + 24 + 26], 0);
  EXPECT_EQ(o.frame[14 + 24 + 27], 0);
}

TEST_F(NfBpf, NatRefusesWhatItCannotTranslate) {
  load(nat("20032-20033"));
  // IPv6 passes untranslated
  Bytes v6 = ipv6("fd00:1::1", "fd00:2::2", udp(40000, 9000));
  Out o = run(to_nf(md1(kHash, AC_NSH_NP_IPV6), v6));
  EXPECT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(kHash, AC_NSH_NP_IPV6), v6)));
  EXPECT_EQ(count(AC_NF_NAT_NOT_IPV4), 1u);
  // GRE, ICMP other than echo, a non-first fragment: dropped
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.1", "198.51.100.7", L4{47, 0, 0, Bytes(8, 0)}))).verdict, XDP_DROP);
  EXPECT_EQ(run(to_nf(md1(), icmp4("10.1.0.1", "198.51.100.7", 3, 0))).verdict, XDP_DROP);
  EXPECT_EQ(run(to_nf(md1(), ipv4("10.1.0.1", "198.51.100.7", udp(1, 2), 64, 0x0010))).verdict, XDP_DROP);
  EXPECT_EQ(count(AC_NF_NAT_UNSUPPORTED), 3u);
  // a pool of two ports: the third flow finds none
  for (uint32_t i = 0; i < 3; ++i)
    EXPECT_EQ(run(to_nf(md1(0x100 + i), ipv4("10.1.0.1", "198.51.100.7", udp(1000 + i, 53)))).verdict,
              i < 2 ? XDP_TX : XDP_DROP);
  EXPECT_EQ(count(AC_NF_NAT_NO_PORT), 1u);
  EXPECT_EQ(state()["nat"]["pool"]["used"], 2u);
  outcomes_add_up();
}

// Reclaim: a record idle past timeout + grace is deleted, its port given back; a mapping reset
// by an idle transaction leaves a new port to the flow and the old one to the reclaim.
TEST_F(NfBpf, NatReclaimsIdleMappingsAndTheirPorts) {
  nf::LoadOptions o;
  o.reclaim_grace = std::chrono::seconds(0);
  nf::Params p = nat();
  p.idle_timeout_s = 1;
  load(p, o);
  Bytes a = ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000));
  ASSERT_EQ(run(to_nf(md1(), a)).verdict, XDP_TX);
  // the shared table's entries expire by CLOCK_TAI: that clock is moved with the test's
  auto t0 = std::chrono::steady_clock::now();
  const uint64_t tai0 = tai_now_ns();
  auto r = nf_->reclaim(t0, tai0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->records, 0u);
  r = nf_->reclaim(t0 + std::chrono::milliseconds(500), tai0 + 500'000'000ULL);
  EXPECT_EQ(r->records, 0u) << "not idle long enough";
  r = nf_->reclaim(t0 + std::chrono::seconds(2), tai0 + 2'000'000'000ULL);
  EXPECT_EQ(r->records, 1u);
  EXPECT_EQ(r->mappings, 1u);
  json s = state()["nat"];
  EXPECT_EQ(s["pool"]["used"], 0u);
  EXPECT_TRUE(s["mappings"].empty());
  // the flow again: port 20032 is free again
  Out out = run(to_nf(md1(), a));
  EXPECT_EQ(hex(out.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  // idle in the program's clock: the next packet resets the mapping and takes a new port
  set_idle_jiffies(1);
  usleep(30'000);
  out = run(to_nf(md1(), a));
  EXPECT_EQ(hex(out.frame), hex(from_nf(md1(), ipv4("192.0.2.10", "198.51.100.7", udp(20033, 9000)))));
  EXPECT_EQ(state()["nat"]["pool"]["used"], 2u);
  r = nf_->reclaim(std::chrono::steady_clock::now(), tai_now_ns() + 2'000'000'000ULL);
  EXPECT_EQ(r->mappings, 1u) << "20032's reply entry has no mapping any more (its shared entry expired)";
  EXPECT_EQ(r->held, 0u);
  s = state()["nat"];
  EXPECT_EQ(s["pool"]["used"], 1u);
  ASSERT_EQ(s["mappings"].size(), 1u);
  EXPECT_EQ(s["mappings"][0]["external_port"], 20033);
}

// Two CPUs map flows at once: every flow gets its own port, none is lost or given twice.
TEST_F(NfBpf, NatTwoCpusNeverGiveOnePortTwice) {
  if (libbpf_num_possible_cpus() < 2 || std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 CPUs";
  load(nat("10000-11023"));
  constexpr int kFlows = 400;  // per CPU
  std::vector<std::set<uint16_t>> got(2);
  auto worker = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
    for (int i = 0; i < kFlows; ++i) {
      // both CPUs map the same flows: one of them creates each mapping, both translate with it
      Bytes in = to_nf(md1(0x1000 + i), ipv4("10.1.0.1", "198.51.100.7", udp(static_cast<uint16_t>(30000 + i), 53)));
      Out o = run(in);
      if (o.verdict != XDP_TX) continue;
      got[cpu].insert(static_cast<uint16_t>(o.frame[14 + 24 + 20] << 8 | o.frame[14 + 24 + 21]));
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(got[0].size(), static_cast<size_t>(kFlows));
  EXPECT_EQ(got[0], got[1]) << "both CPUs translated every flow with the same port";
  json s = state()["nat"];
  EXPECT_EQ(s["mappings"].size(), static_cast<size_t>(kFlows));
  EXPECT_EQ(s["pool"]["used"], kFlows) << "ports taken by the CPU that lost a race were given back";
  EXPECT_EQ(count(AC_NF_NAT_NEW), static_cast<uint64_t>(kFlows));
}


// The published ids are the loaded objects'
TEST_F(NfBpf, PublishedIdsOpenTheLoadedObjects) {
  load(nat());
  const nf::Published& p = nf_->published();
  EXPECT_EQ(p.name, "t-nat");
  EXPECT_EQ(p.kind, nf::Kind::Nat);
  EXPECT_EQ(p.instance_id, 9u);
  EXPECT_EQ(p.pid, getpid());
  EXPECT_GT(p.incarnation, 1'600'000'000'000'000'000ULL);
  EXPECT_EQ(p.program, "nf_nat");
  EXPECT_GT(p.prog_id, 0u);
  for (const char* m : {"nf_head", "nf_replica", "nf_peers", "nf_ftc_cfg", "nf_ftc_stats", "nf_overflow", "nf_hold",
                        "nf_stats", "nf_nat_cfg", "nf_nat_ports", "nf_nat_rev"}) {
    EXPECT_GT(p.map_id(m), 0u) << m;
    EXPECT_TRUE(maps_->has(m)) << m;
  }
  ASSERT_TRUE(p.crdt.has_value()) << "the shared mapping table (docs/state.md 4.3)";
  ASSERT_EQ(p.crdt->objects.size(), 2u);
  EXPECT_EQ(p.crdt->objects[0].map, "nat_shared");
  EXPECT_EQ(p.crdt->objects[0].kind, "winner-map");
  EXPECT_EQ(p.crdt->objects[0].map_id, p.map_id("nat_shared"));
  EXPECT_EQ(p.crdt->objects[1].map, "nat_fwd") << "outbound packets of another instance's flows (4.3)";
  EXPECT_EQ(p.crdt->objects[1].kind, "winner-map");
  EXPECT_EQ(p.crdt->objects[1].key_size, sizeof(ac_nf_nat_fkey));
  EXPECT_EQ(p.crdt->objects[1].map_id, p.map_id("nat_fwd"));
  EXPECT_EQ(p.crdt->objects[1].expire_s, 300u + nf::kNatSharedGrace);
  EXPECT_EQ(p.crdt->merge_prog_id, p.progs.at("nf_nat_merge"));
  auto j = nf::to_json(p);
  auto back = nf::published_from_json(j);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(nf::to_json(*back), j);
  // an instance whose process is gone is refused
  nf::Published gone = p;
  gone.pid = 0x3fffffff;
  EXPECT_FALSE(nf::InstanceMaps::open(gone).has_value());
}

// An object with the shared-state maps (the CRDT test program) publishes the ids issue 14 needs.
TEST_F(NfBpf, AnObjectWithSharedStatePublishesItsMergeProgramAndMaps) {
  nf::Params p = monitor();
  nf::LoadOptions o;
  o.object_path = ANYCHAIN_CRDT_OBJECT;
  load(p, o);
  const nf::Published& pub = nf_->published();
  ASSERT_TRUE(pub.crdt.has_value());
  EXPECT_EQ(pub.crdt->merge_prog_id, pub.progs.at("crdt_merge"));
  EXPECT_EQ(pub.crdt->ctl_map_id, pub.map_id("ac_crdt_ctl"));
  EXPECT_EQ(pub.crdt->changes_map_id, pub.map_id("ac_crdt_changes"));
  EXPECT_EQ(pub.crdt->stats_map_id, pub.map_id("ac_crdt_stats"));
  EXPECT_GE(maps_->prog_fd("crdt_merge"), 0);
}

}  // namespace
}  // namespace anychain::test
