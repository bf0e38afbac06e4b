// The slow path's packet work (agent/slowpath): decoding handed-over frames, RFC 791
// fragmentation, ICMP errors and when they are forbidden, the SFC proxy's keys, VXLAN-GPE
// checks and re-injection frames, the ICMP rate limit. The sockets are tested in
// tests/integration/slow_path_lab_test.py.
#include <gtest/gtest.h>
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include "anychain/flow_hash.h"
#include "anychain/nsh.h"
#include "anychain/slowpath.h"
#include "slowpath/packet.h"
#include "slowpath/plan.h"
#include "slowpath/ratelimit.h"

namespace anychain::slowpath {
namespace {

using namespace std::chrono_literals;

// An IPv4 packet of `total` bytes: UDP 1000 -> 2000 with a counting payload, flags/offset word
// `frag` (0x4000 = DF), optional options (padded by the caller to whole words).
Bytes ipv4(size_t total, uint16_t frag, uint16_t id = 0x1234, Bytes options = {}, uint8_t proto = 17,
           const char* src = "192.0.2.10", const char* dst = "198.51.100.20") {
  const size_t ihl = 20 + options.size();
  Bytes p(total, 0);
  p[0] = static_cast<uint8_t>(0x40 | ihl / 4);
  put_be16(&p[2], static_cast<uint16_t>(total));
  put_be16(&p[4], id);
  put_be16(&p[6], frag);
  p[8] = 64;
  p[9] = proto;
  inet_pton(AF_INET, src, &p[12]);
  inet_pton(AF_INET, dst, &p[16]);
  std::copy(options.begin(), options.end(), p.begin() + 20);
  put_be16(&p[10], inet_checksum({p.data(), ihl}));
  for (size_t i = ihl; i < total; ++i) p[i] = static_cast<uint8_t>(i * 7);
  if (proto == 17) {
    put_be16(&p[ihl], 1000);
    put_be16(&p[ihl + 2], 2000);
    put_be16(&p[ihl + 4], static_cast<uint16_t>(total - ihl));
    p[ihl + 6] = p[ihl + 7] = 0;
  }
  return p;
}

Bytes ipv6(size_t total, uint8_t next = 17, const char* src = "2001:db8::10", const char* dst = "2001:db8:1::20") {
  Bytes p(total, 0);
  p[0] = 0x60;
  put_be16(&p[4], static_cast<uint16_t>(total - 40));
  p[6] = next;
  p[7] = 64;
  inet_pton(AF_INET6, src, &p[8]);
  inet_pton(AF_INET6, dst, &p[24]);
  for (size_t i = 40; i < total; ++i) p[i] = static_cast<uint8_t>(i);
  return p;
}

const Mac kVnf = {0x02, 0, 0, 0, 0x0f, 1}, kHost = {0x02, 0, 0, 0, 0x0f, 2}, kSlow = {0x02, 0, 0, 0, 0x5e, 1};

Bytes eth(const Mac& d, const Mac& s, uint16_t type) {
  Bytes b(d.begin(), d.end());
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(static_cast<uint8_t>(type >> 8));
  b.push_back(static_cast<uint8_t>(type));
  return b;
}

Bytes md1_nsh(uint32_t spi, uint8_t si, uint8_t np) {
  Bytes n(AC_NSH_MD1_LEN, 0);
  put_be16(&n[0], static_cast<uint16_t>(62 << 6 | 6));  // version 0, TTL 62, 6 words
  n[2] = AC_NSH_MD_TYPE1;
  n[3] = np;
  put_be32(&n[4], spi << 8 | si);
  put_be32(&n[8], 0xabcdef01);  // flow hash
  return n;
}

// What the fast path hands over: [eth ff.. <- slow][ac_slow_hdr][packet]
Bytes handed(uint16_t mtu, uint32_t to_ifindex, uint16_t inner_off, const Bytes& packet) {
  Bytes f = eth({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kSlow, AC_ETH_P_SLOW);
  Bytes h(kSlowHdrLen, 0);
  h[0] = AC_SLOW_VERSION;
  h[1] = AC_SLOW_TOO_BIG;
  put_be16(&h[2], mtu);
  put_be32(&h[4], to_ifindex);
  put_be16(&h[8], inner_off);
  f.insert(f.end(), h.begin(), h.end());
  f.insert(f.end(), packet.begin(), packet.end());
  return f;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Reassemble IPv4 fragments (as a receiver would, by offset) into the original payload.
Bytes reassemble(const std::vector<Bytes>& frags, size_t* first_ihl = nullptr) {
  std::map<size_t, Bytes> parts;
  for (const auto& f : frags) {
    const size_t ihl = (f[0] & 0xf) * 4u;
    const size_t off = (be16(&f[6]) & 0x1fff) * 8u;
    if (off == 0 && first_ihl) *first_ihl = ihl;
    parts[off] = Bytes(f.begin() + static_cast<long>(ihl), f.begin() + be16(&f[2]));
  }
  Bytes out;
  for (const auto& [off, p] : parts) {
    EXPECT_EQ(off, out.size()) << "fragments are contiguous";
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

TEST(SlowPathParse, AcceptsWhatTheFastPathSendsAndNamesWhatIsWrong) {
  const Bytes inner = ipv4(300, 0);
  const Bytes pkt = cat({eth(kVnf, kHost, AC_ETH_P_NSH), md1_nsh(10, 255, AC_NSH_NP_IPV4), inner});
  const Bytes frame = handed(200, 7, 14 + AC_NSH_MD1_LEN, pkt);
  auto h = parse_handed_over(frame);
  ASSERT_TRUE(h.has_value()) << h.error().message;
  EXPECT_EQ(h->mtu, 200);
  EXPECT_EQ(h->to_ifindex, 7u);
  EXPECT_EQ(Bytes(h->inner().begin(), h->inner().end()), inner);
  EXPECT_EQ(h->prefix().size(), 14u + AC_NSH_MD1_LEN);

  struct Bad {
    const char* what;
    Bytes frame;
    const char* says;
  };
  Bytes wrong_version = handed(200, 7, 38, pkt);
  wrong_version[14] = 2;
  Bytes wrong_reason = handed(200, 7, 38, pkt);
  wrong_reason[15] = 9;
  Bytes wrong_type = handed(200, 7, 38, pkt);
  wrong_type[13] = 0x00;
  const Bad bad[] = {
      {"short", Bytes(20, 0), "shorter than"},
      {"EtherType", wrong_type, "is not the slow path's"},
      {"version", wrong_version, "version 2"},
      {"reason", wrong_reason, "unknown slow path reason 9"},
      {"offset beyond", handed(200, 7, 4000, pkt), "outside a packet"},
      {"offset inside NSH", handed(200, 7, 16, pkt), "inside the NSH"},
      {"mtu 0", handed(0, 7, 38, pkt), "MTU 0"},
      {"remote without outer headers", handed(200, 0, 38, pkt), "without its outer"},
      {"inner not IP", handed(200, 7, 14 + 8, pkt), "IP version"},
  };
  for (const auto& b : bad) {
    auto r = parse_handed_over(b.frame);
    ASSERT_FALSE(r.has_value()) << b.what;
    EXPECT_NE(r.error().message.find(b.says), std::string::npos) << b.what << ": " << r.error().message;
  }
}

TEST(SlowPathFragment, Rfc791PiecesThatReassembleToTheOriginal) {
  const Bytes p = ipv4(1500, 0);
  auto f = fragment_ipv4(p, 1476);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  ASSERT_EQ(f->size(), 2u);
  const Bytes& a = (*f)[0];
  const Bytes& b = (*f)[1];
  EXPECT_EQ(a.size(), 20u + 1456u) << "largest multiple of 8 that fits 1476";
  EXPECT_EQ(be16(&a[6]), 0x2000) << "MF, offset 0";
  EXPECT_EQ(be16(&b[6]), 1456 / 8) << "last: no MF";
  for (const auto& x : *f) {
    EXPECT_LE(x.size(), 1476u);
    EXPECT_EQ(be16(&x[4]), 0x1234) << "identification kept";
    EXPECT_EQ(be16(&x[2]), x.size()) << "total length";
    EXPECT_EQ(inet_checksum({x.data(), 20}), 0) << "header checksum";
    EXPECT_EQ(x[9], 17);
  }
  EXPECT_EQ(reassemble(*f), Bytes(p.begin() + 20, p.end()));

  // a small MTU: many pieces, every one but the last a multiple of 8
  f = fragment_ipv4(p, 100);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->size(), (1480 + 79) / 80);
  for (size_t i = 0; i + 1 < f->size(); ++i) EXPECT_EQ(((*f)[i].size() - 20) % 8, 0u);
  EXPECT_EQ(reassemble(*f), Bytes(p.begin() + 20, p.end()));
  // it fits already: one piece, unchanged
  f = fragment_ipv4(p, 1500);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->size(), 1u);
  EXPECT_EQ((*f)[0], p);
}

TEST(SlowPathFragment, OptionsWithTheCopyFlagGoToEveryFragmentTheOthersOnlyToTheFirst) {
  // router alert (0x94, copied, 4 bytes), NOP, record route (0x07, not copied, 7 bytes): 12 bytes
  const Bytes opts = {0x94, 4, 0, 0, 0x01, 0x07, 7, 4, 0, 0, 0, 0};
  const Bytes p = ipv4(1000, 0, 0x4242, opts);
  auto f = fragment_ipv4(p, 400);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  ASSERT_GE(f->size(), 3u);
  EXPECT_EQ((*f)[0][0] & 0xf, 8) << "the first keeps all 12 bytes of options";
  EXPECT_TRUE(std::equal(opts.begin(), opts.end(), (*f)[0].begin() + 20));
  for (size_t i = 1; i < f->size(); ++i) {
    const Bytes& x = (*f)[i];
    EXPECT_EQ(x[0] & 0xf, 6) << "later ones: router alert only, one word";
    EXPECT_EQ(Bytes(x.begin() + 20, x.begin() + 24), (Bytes{0x94, 4, 0, 0}));
    EXPECT_EQ(inet_checksum({x.data(), 24}), 0);
    EXPECT_LE(x.size(), 400u);
  }
  size_t ihl = 0;
  EXPECT_EQ(reassemble(*f, &ihl), Bytes(p.begin() + 32, p.end()));
  EXPECT_EQ(ihl, 32u);
  // a malformed option is refused, not copied blindly
  const Bytes broken = {0x94, 9, 0, 0};
  auto r = fragment_ipv4(ipv4(1000, 0, 1, broken), 400);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("options"), std::string::npos);
}

TEST(SlowPathFragment, AFragmentIsSplitAtItsOwnOffsetAndKeepsItsMf) {
  const Bytes p = ipv4(1020, 0x2000 | 100);  // MF, offset 800
  auto f = fragment_ipv4(p, 500);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ(be16(&(*f)[0][6]), 0x2000 | 100);
  EXPECT_EQ(be16(&(*f)[1][6]), 0x2000 | (100 + 480 / 8));
  EXPECT_EQ(be16(&(*f)[2][6]), 0x2000 | (100 + 960 / 8)) << "still not the datagram's last fragment";
  const Bytes last = ipv4(1020, 100);  // the datagram's last fragment
  f = fragment_ipv4(last, 500);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(be16(&f->back()[6]), 100 + 960 / 8) << "its last piece has no MF";
}

TEST(SlowPathFragment, RefusesWhatCannotBeSplit) {
  auto r = fragment_ipv4(ipv4(1500, 0), 27);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, EMSGSIZE);
  EXPECT_NE(r.error().message.find("no room for 8 bytes"), std::string::npos);
  EXPECT_FALSE(fragment_ipv4(ipv4(1500, 0x4000), 1000).has_value()) << "DF";
  EXPECT_FALSE(fragment_ipv4(ipv6(1500), 1000).has_value()) << "IPv6 is never fragmented on the way";
  Bytes lying = ipv4(1500, 0);
  put_be16(&lying[2], 3000);
  EXPECT_FALSE(fragment_ipv4(lying, 1000).has_value()) << "total length beyond the packet";
}

TEST(SlowPathIcmp, FragNeededQuotesTheHeaderAndCarriesTheMtu) {
  const Bytes p = ipv4(1500, 0x4000);
  Bytes m = icmp4_frag_needed(p, 1476);
  ASSERT_EQ(m.size(), 8u + kIcmp4QuoteMax) << "the whole error fits 576 bytes";
  EXPECT_EQ(m[0], 3);
  EXPECT_EQ(m[1], 4);
  EXPECT_EQ(be16(&m[4]), 0) << "unused";
  EXPECT_EQ(be16(&m[6]), 1476) << "next-hop MTU";
  EXPECT_EQ(inet_checksum(m), 0);
  EXPECT_TRUE(std::equal(m.begin() + 8, m.end(), p.begin())) << "the original header and data";
  // a short packet is quoted whole; an MTU below 68 is reported as 68
  m = icmp4_frag_needed(ipv4(100, 0x4000), 20);
  EXPECT_EQ(m.size(), 108u);
  EXPECT_EQ(be16(&m[6]), 68);
}

TEST(SlowPathIcmp, PacketTooBigNeverBelow1280AndFitsTheMinimumMtu) {
  const Bytes p = ipv6(1500);
  Bytes m = icmp6_packet_too_big(p, 1476);
  ASSERT_EQ(m.size(), 8u + kIcmp6QuoteMax);
  EXPECT_EQ(m[0], 2);
  EXPECT_EQ(m[1], 0);
  EXPECT_EQ(be32(&m[4]), 1476u);
  EXPECT_TRUE(std::equal(m.begin() + 8, m.end(), p.begin()));
  EXPECT_EQ(be32(&icmp6_packet_too_big(p, 1000)[4]), 1280u);
}

TEST(SlowPathIcmp, NeverAboutErrorsLaterFragmentsOrGroupAddresses) {
  struct Case {
    const char* what;
    Bytes ip;
    const char* forbidden;  // nullptr: allowed
  };
  Bytes echo = ipv4(1500, 0x4000, 1, {}, 1);
  echo[20] = 8;  // echo request
  Bytes unreach = ipv4(1500, 0x4000, 1, {}, 1);
  unreach[20] = 3;
  Bytes icmp6_err = ipv6(1500, 58);
  icmp6_err[40] = 1;  // destination unreachable
  Bytes icmp6_echo = ipv6(1500, 58);
  icmp6_echo[40] = 128;
  Bytes v6_frag_later = ipv6(1500, 44);
  v6_frag_later[40] = 17;
  put_be16(&v6_frag_later[42], 185 << 3);
  Bytes v6_hbh_err = ipv6(1500, 0);  // hop-by-hop, then ICMPv6 time exceeded
  v6_hbh_err[40] = 58;
  v6_hbh_err[41] = 0;
  v6_hbh_err[48] = 3;
  const Case cases[] = {
      {"UDP", ipv4(1500, 0x4000), nullptr},
      {"ICMP echo", echo, nullptr},
      {"ICMP error", unreach, "an ICMP error"},
      {"later fragment", ipv4(1500, 0x4000 | 10), "a fragment other than the first"},
      {"source 0.0.0.0", ipv4(1500, 0x4000, 1, {}, 17, "0.0.0.0"), "not a single host"},
      {"multicast source", ipv4(1500, 0x4000, 1, {}, 17, "224.0.0.5"), "not a single host"},
      {"loopback source", ipv4(1500, 0x4000, 1, {}, 17, "127.0.0.1"), "not a single host"},
      {"broadcast destination", ipv4(1500, 0x4000, 1, {}, 17, "192.0.2.1", "255.255.255.255"), "multicast or broadcast"},
      {"multicast destination", ipv4(1500, 0x4000, 1, {}, 17, "192.0.2.1", "239.1.2.3"), "multicast or broadcast"},
      {"IPv6 UDP", ipv6(1500), nullptr},
      {"IPv6 to a group (RFC 4443 2.4(e.3))", ipv6(1500, 17, "2001:db8::1", "ff0e::1"), nullptr},
      {"ICMPv6 echo", icmp6_echo, nullptr},
      {"ICMPv6 error", icmp6_err, "an ICMP error"},
      {"ICMPv6 error behind hop-by-hop", v6_hbh_err, "an ICMP error"},
      {"IPv6 later fragment", v6_frag_later, "a fragment other than the first"},
      {"IPv6 unspecified source", ipv6(1500, 17, "::"), "not a single host"},
      {"IPv6 multicast source", ipv6(1500, 17, "ff02::1"), "not a single host"},
  };
  for (const auto& c : cases) {
    auto f = inner_facts(c.ip);
    ASSERT_TRUE(f.has_value()) << c.what;
    auto why = icmp_forbidden(*f);
    if (!c.forbidden) {
      EXPECT_FALSE(why.has_value()) << c.what << ": " << why.value_or("");
    } else {
      ASSERT_TRUE(why.has_value()) << c.what;
      EXPECT_NE(why->find(c.forbidden), std::string::npos) << c.what << ": " << *why;
    }
  }
}

TEST(SlowPathPlan, EachCaseAsTheDocSays) {
  std::deque<Bytes> frames;  // a HandedOver points into its frame: keep them
  auto parse_kept = [&](Bytes f) {
    frames.push_back(std::move(f));
    return parse_handed_over(frames.back());
  };
  // IPv4 without DF for a local NSH-aware VNF: frames with its Ethernet header and NSH
  const Bytes prefix = cat({eth(kVnf, kHost, AC_ETH_P_NSH), md1_nsh(10, 255, AC_NSH_NP_IPV4)});
  const Bytes inner = ipv4(1500, 0);
  auto h = parse_kept(handed(1476, 7, static_cast<uint16_t>(prefix.size()), cat({prefix, inner})));
  ASSERT_TRUE(h.has_value());
  auto p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->kind, Plan::Kind::Fragments);
  ASSERT_EQ(p->sends.size(), 2u);
  for (const auto& s : p->sends) {
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), s.begin())) << "every fragment carries the NSH";
    EXPECT_LE(s.size() - prefix.size(), 1476u);
  }
  EXPECT_FALSE(p->proxy.has_value());

  // the same with DF: an error to the source, no fragments
  h = parse_kept(handed(1476, 7, static_cast<uint16_t>(prefix.size()), cat({prefix, ipv4(1500, 0x4000)})));
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, Plan::Kind::IcmpError);
  EXPECT_EQ(to_string(p->source), "192.0.2.10");
  EXPECT_EQ(be16(&p->icmp[6]), 1476);

  // IPv6: packet too big
  const Bytes v6prefix = cat({eth(kVnf, kHost, AC_ETH_P_NSH), md1_nsh(10, 255, AC_NSH_NP_IPV6)});
  h = parse_kept(handed(1476, 7, static_cast<uint16_t>(v6prefix.size()), cat({v6prefix, ipv6(1500)})));
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, Plan::Kind::IcmpError);
  EXPECT_EQ(p->icmp[0], 2);
  EXPECT_EQ(to_string(p->source), "2001:db8::10");

  // for another node: UDP payloads [VXLAN-GPE][NSH][fragment] to the outer destination
  Bytes outer(36, 0);
  outer[0] = 0x45;
  outer[9] = 17;
  inet_pton(AF_INET, "10.255.0.2", &outer[16]);
  put_be16(&outer[22], 4790);
  outer[28] = AC_GPE_FLAG_I | AC_GPE_FLAG_P;
  outer[31] = AC_GPE_NP_NSH;
  const Bytes nsh = md1_nsh(10, 254, AC_NSH_NP_IPV4);
  const Bytes rpkt = cat({eth(kVnf, kHost, 0x0800), outer, nsh, inner});
  h = parse_kept(handed(1440, 0, static_cast<uint16_t>(14 + 36 + nsh.size()), rpkt));
  ASSERT_TRUE(h.has_value()) << h.error().message;
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->kind, Plan::Kind::Fragments);
  char dst[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &p->remote, dst, sizeof dst);
  EXPECT_STREQ(dst, "10.255.0.2");
  EXPECT_EQ(p->remote_port, 4790);
  ASSERT_EQ(p->sends.size(), 2u);
  for (const auto& s : p->sends) {
    EXPECT_TRUE(std::equal(outer.begin() + 28, outer.end(), s.begin())) << "VXLAN-GPE header first";
    EXPECT_TRUE(std::equal(nsh.begin(), nsh.end(), s.begin() + 8)) << "then the NSH";
    EXPECT_LE(s.size() - 8 - nsh.size(), 1440u);
  }

  // a proxied VNF (bare IPv4): the flow's and the datagram's proxy keys, as the fast path has them
  const Bytes bare = eth(kVnf, kHost, 0x0800);
  h = parse_kept(handed(1400, 9, 14, cat({bare, inner})));
  ASSERT_TRUE(h.has_value()) << h.error().message;
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->kind, Plan::Kind::Fragments);
  ASSERT_TRUE(p->proxy.has_value());
  ac_tuple t{};
  t.family = 4;
  t.proto = 17;
  std::memcpy(&t.src[0], &inner[12], 4);
  std::memcpy(&t.dst[0], &inner[16], 4);
  t.sport = htons(1000);
  t.dport = htons(2000);
  EXPECT_EQ(p->proxy->flow, ac_flow_hash(&t, 0, AC_PROXY_HASH_SEED));
  t.sport = htons(0x1234);  // the identification, as loaded
  t.dport = 0;
  EXPECT_EQ(p->proxy->datagram, ac_flow_hash(&t, 0, AC_PROXY_FRAG_SEED));
  EXPECT_FALSE(p->proxy->fragment);
  // every fragment has the datagram key the plan copies the held NSH to
  for (const auto& s : p->sends) {
    auto k = proxy_keys(std::span<const uint8_t>(s).subspan(14));
    ASSERT_TRUE(k.has_value());
    EXPECT_TRUE(k->fragment);
    EXPECT_EQ(k->datagram, p->proxy->datagram);
  }

  // unfragmentable and forbidden
  h = parse_kept(handed(20, 7, static_cast<uint16_t>(prefix.size()), cat({prefix, inner})));
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, Plan::Kind::Unfragmentable);
  Bytes err = ipv4(1500, 0x4000, 1, {}, 1);
  err[20] = 11;  // time exceeded
  h = parse_kept(handed(1476, 7, static_cast<uint16_t>(prefix.size()), cat({prefix, err})));
  p = plan_too_big(*h);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, Plan::Kind::IcmpForbidden);
}

TEST(SlowPathGpe, ChecksAndReinjectionFrame) {
  Bytes payload(8, 0);
  payload[0] = AC_GPE_FLAG_I | AC_GPE_FLAG_P;
  payload[3] = AC_GPE_NP_NSH;
  Bytes n = md1_nsh(10, 255, AC_NSH_NP_IPV4);
  payload.insert(payload.end(), n.begin(), n.end());
  Bytes in = ipv4(3000, 0);
  payload.insert(payload.end(), in.begin(), in.end());
  EXPECT_TRUE(check_vxlan_gpe(payload).has_value());
  Bytes no_p = payload;
  no_p[0] = AC_GPE_FLAG_I;
  Bytes not_nsh = payload;
  not_nsh[3] = AC_GPE_NP_IPV4;
  Bytes long_nsh = Bytes(payload.begin(), payload.begin() + 20);  // NSH says 24 bytes, 12 follow
  for (const auto& [what, b, says] : {std::tuple{"P clear", no_p, "P bit"}, std::tuple{"not NSH", not_nsh, "not NSH"},
                                      std::tuple{"NSH beyond", long_nsh, "outside the datagram"}}) {
    auto r = check_vxlan_gpe(b);
    ASSERT_FALSE(r.has_value()) << what;
    EXPECT_NE(r.error().message.find(says), std::string::npos) << what << ": " << r.error().message;
  }

  in_addr from{}, to{};
  inet_pton(AF_INET, "10.255.0.1", &from);
  inet_pton(AF_INET, "10.255.0.2", &to);
  Bytes f = reinjection_frame(kSlow, kHost, from, 0xc123, to, 4790, payload);
  ASSERT_EQ(f.size(), 14u + 28 + payload.size());
  EXPECT_TRUE(std::equal(kSlow.begin(), kSlow.end(), f.begin())) << "to the fast path's end";
  EXPECT_EQ(be16(&f[12]), 0x0800);
  EXPECT_EQ(be16(&f[16]), 28 + payload.size());
  EXPECT_EQ(inet_checksum({f.data() + 14, 20}), 0);
  EXPECT_EQ(be32(&f[26]), ntohl(from.s_addr));
  EXPECT_EQ(be32(&f[30]), ntohl(to.s_addr));
  EXPECT_EQ(be16(&f[34]), 0xc123);
  EXPECT_EQ(be16(&f[36]), 4790);
  EXPECT_EQ(be16(&f[38]), 8 + payload.size());
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), f.begin() + 42));
}

TEST(SlowPathRateLimit, BurstThenOnePerSecondPerDestinationAndATotal) {
  IcmpLimiter l;
  IcmpLimiter::Key a{}, b{};
  a[1] = 1;
  b[1] = 2;
  auto t0 = IcmpLimiter::Clock::now();
  int sent = 0;
  for (int i = 0; i < 20; ++i) sent += l.allow(a, t0);
  EXPECT_EQ(sent, 6) << "a burst of 6";
  EXPECT_TRUE(l.allow(b, t0)) << "another destination has its own bucket";
  EXPECT_FALSE(l.allow(a, t0 + 500ms));
  EXPECT_TRUE(l.allow(a, t0 + 1100ms)) << "one more after a second";
  EXPECT_FALSE(l.allow(a, t0 + 1200ms));

  IcmpLimiter total(IcmpLimits{.per_destination_per_s = 1, .per_destination_burst = 6, .total_per_s = 10,
                               .total_burst = 5, .max_destinations = 3});
  int n = 0;
  for (uint8_t i = 0; i < 50; ++i) {
    IcmpLimiter::Key k{};
    k[1] = i;
    n += total.allow(k, t0);
  }
  EXPECT_EQ(n, 5) << "the node's bucket bounds all destinations together";
  EXPECT_LE(total.destinations(), 3u) << "bounded memory";
}

}  // namespace
}  // namespace anychain::slowpath
