// Unit tests of the lab tools' frame processing (no sockets).
#include "tools/packet.h"

#include <gtest/gtest.h>

#include "common/packet.h"
#include "tools/common.h"

namespace anychain::tools {
namespace {

using namespace anychain::test;

const Mac kVnfMac{0x02, 0, 0, 0, 0, 0x0b};
const Mac kSffMac{0x02, 0, 0, 0, 0, 0x0a};
constexpr std::size_t kSiOff = kEthHdrLen + 7;

Bytes nsh_frame(std::uint8_t md, int family, std::uint8_t si = 255, const Bytes& tlvs = {},
                const Bytes* payload = nullptr) {
  const Bytes p = payload ? *payload : lab_payload(7, 3, 10);
  const Bytes ip = udp_packet(family, p);
  const Bytes h = nsh(md, 0x123456, si, family == 4 ? AC_NSH_NP_IPV4 : AC_NSH_NP_IPV6, tlvs);
  return eth(kVnfMac, kSffMac, AC_ETH_P_NSH, {h, ip});
}

std::uint32_t served(const Bytes& f, std::size_t ip_off, unsigned slot) {
  const bool v4 = (f[ip_off] >> 4) == 4;
  const std::size_t payload = ip_off + (v4 ? 20 : 40) + 8;
  return get32(f, payload + AC_LAB_OFF_SERVED_BY + 4 * slot);
}

TEST(NshParse, ValidMd1AndMd2) {
  const Bytes h1 = nsh(AC_NSH_MD_TYPE1, 42, 200, AC_NSH_NP_IPV4);
  auto p1 = parse_nsh(h1);
  ASSERT_TRUE(p1.has_value());
  EXPECT_EQ(p1->length, 24u);
  EXPECT_EQ(p1->spi, 42u);
  EXPECT_EQ(p1->si, 200u);
  EXPECT_EQ(p1->ttl, unsigned{AC_NSH_DEFAULT_TTL});
  EXPECT_EQ(p1->md_type, 1u);

  Bytes tlvs = flow_hash_tlv(1);
  const Bytes t2 = flow_hash_tlv(2);
  tlvs.insert(tlvs.end(), t2.begin(), t2.end());
  const Bytes h2 = nsh(AC_NSH_MD_TYPE2, 7, 9, AC_NSH_NP_IPV6, tlvs);
  auto p2 = parse_nsh(h2);
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(p2->length, 24u);
  EXPECT_EQ(p2->next_proto, unsigned{AC_NSH_NP_IPV6});
  // MD2 without any TLV is legal (length 2 words).
  EXPECT_TRUE(parse_nsh(nsh(AC_NSH_MD_TYPE2, 7, 9, AC_NSH_NP_IPV4)).has_value());
}

TEST(NshParse, Malformed) {
  Bytes bad_ver = nsh(AC_NSH_MD_TYPE1, 1, 1, 1);
  bad_ver[0] |= 0x40;
  EXPECT_EQ(parse_nsh(bad_ver).error(), NshError::kVersion);

  Bytes short_len = nsh(AC_NSH_MD_TYPE1, 1, 1, 1);
  set16(short_len, 0, AC_NSH_W0(0, 63, 1));  // 4 bytes: shorter than base + SP header
  EXPECT_EQ(parse_nsh(short_len).error(), NshError::kLength);

  Bytes beyond = nsh(AC_NSH_MD_TYPE1, 1, 1, 1);
  set16(beyond, 0, AC_NSH_W0(0, 63, 20));  // 80 bytes in a 24-byte buffer
  EXPECT_EQ(parse_nsh(beyond).error(), NshError::kTruncated);

  EXPECT_EQ(parse_nsh(Bytes(5, 0)).error(), NshError::kTruncated);

  Bytes md3 = nsh(AC_NSH_MD_TYPE1, 1, 1, 1);
  md3[2] = 3;
  EXPECT_EQ(parse_nsh(md3).error(), NshError::kMdType);

  Bytes md1_len = nsh(AC_NSH_MD_TYPE2, 1, 1, 1, flow_hash_tlv(5));  // 16 bytes ...
  md1_len[2] = AC_NSH_MD_TYPE1;                                    // ... but says MD1
  EXPECT_EQ(parse_nsh(md1_len).error(), NshError::kMdType);

  Bytes tlv = flow_hash_tlv(5);
  tlv[3] = 9;  // value of 9 bytes (12 padded) overruns the 8-byte TLV area
  EXPECT_EQ(parse_nsh(nsh(AC_NSH_MD_TYPE2, 1, 1, 1, tlv)).error(), NshError::kTlv);
  Bytes half = {0xff, 0xf6, 0, 4};  // a TLV header announcing 4 bytes of value; none follow
  EXPECT_EQ(parse_nsh(nsh(AC_NSH_MD_TYPE2, 1, 1, 1, half)).error(), NshError::kTlv);
}

TEST(NshFrame, Md1Ipv4StampsDecrementsAndSwaps) {
  Bytes f = nsh_frame(AC_NSH_MD_TYPE1, 4, 255);
  const Bytes orig = f;
  auto r = process_nsh_frame(f, 0xabcdef01, 1);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  EXPECT_TRUE(r.stamped);
  EXPECT_EQ(f[kSiOff], 254);
  EXPECT_TRUE(std::equal(f.begin(), f.begin() + 6, kSffMac.begin()));
  EXPECT_TRUE(std::equal(f.begin() + 6, f.begin() + 12, kVnfMac.begin()));
  const std::size_t ip = kEthHdrLen + 24;
  EXPECT_EQ(served(f, ip, 1), 0xabcdef01u);
  EXPECT_EQ(served(f, ip, 0), 0u);
  EXPECT_EQ(get16(f, ip + 20 + 6), 0u) << "IPv4 UDP checksum is set to 0";
  EXPECT_TRUE(udp_csum_ok(f, ip));
  // Nothing else changed: IP header, ports, flow id, seq, timestamp, padding.
  for (std::size_t i = 12; i < f.size(); ++i) {
    const bool changed_field = i == kSiOff || (i >= ip + 26 && i < ip + 28) ||
                               (i >= ip + 28 + 20 + 4 && i < ip + 28 + 20 + 8);
    if (!changed_field) {
      EXPECT_EQ(f[i], orig[i]) << "byte " << i;
    }
  }
}

TEST(NshFrame, Md2Ipv6RecomputesChecksum) {
  for (unsigned slot = 0; slot < AC_LAB_SLOTS; ++slot) {
    Bytes f = nsh_frame(AC_NSH_MD_TYPE2, 6, 10, flow_hash_tlv(99));
    auto r = process_nsh_frame(f, 1000 + slot, slot);
    ASSERT_EQ(r.verdict, Verdict::kForward);
    EXPECT_TRUE(r.stamped);
    EXPECT_EQ(f[kSiOff], 9);
    const std::size_t ip = kEthHdrLen + 16;
    EXPECT_EQ(served(f, ip, slot), 1000 + slot);
    EXPECT_NE(get16(f, ip + 40 + 6), 0u);
    EXPECT_TRUE(udp_csum_ok(f, ip)) << "slot " << slot;
  }
}

TEST(NshFrame, NonLabPacketsForwardedUnchanged) {
  Bytes other(40, 0x5a);
  Bytes f = nsh_frame(AC_NSH_MD_TYPE1, 6, 5, {}, &other);
  const Bytes orig = f;
  auto r = process_nsh_frame(f, 1, 0);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  EXPECT_FALSE(r.stamped);
  EXPECT_EQ(f[kSiOff], 4);
  EXPECT_TRUE(std::equal(f.begin() + 24 + kEthHdrLen, f.end(), orig.begin() + 24 + kEthHdrLen));
}

TEST(NshFrame, DropsAndIgnores) {
  Bytes si0 = nsh_frame(AC_NSH_MD_TYPE1, 4, 0);
  EXPECT_EQ(process_nsh_frame(si0, 1, 0).verdict, Verdict::kSiZero);

  Bytes v = nsh_frame(AC_NSH_MD_TYPE1, 4);
  v[kEthHdrLen] |= 0x80;
  auto rv = process_nsh_frame(v, 1, 0);
  EXPECT_EQ(rv.verdict, Verdict::kMalformed);
  EXPECT_EQ(rv.nsh_error, NshError::kVersion);

  // Next protocol IPv6 but the inner packet is IPv4.
  Bytes np = nsh_frame(AC_NSH_MD_TYPE1, 4);
  np[kEthHdrLen + 3] = AC_NSH_NP_IPV6;
  EXPECT_EQ(process_nsh_frame(np, 1, 0).verdict, Verdict::kMalformed);

  // Inner IPv4 total length beyond the frame.
  Bytes trunc = nsh_frame(AC_NSH_MD_TYPE1, 4);
  trunc.resize(trunc.size() - 10);
  auto rt = process_nsh_frame(trunc, 1, 0);
  EXPECT_EQ(rt.verdict, Verdict::kMalformed);
  EXPECT_FALSE(rt.nsh_error.has_value());

  const Bytes ip = udp_packet(4, lab_payload(1, 1));
  Bytes plain = eth(kVnfMac, kSffMac, kEthPIpv4, {ip});
  EXPECT_EQ(process_nsh_frame(plain, 1, 0).verdict, Verdict::kIgnored);
}

TEST(NshFrame, EthernetNextProtocol) {
  const Bytes ip = udp_packet(4, lab_payload(1, 1));
  const Bytes inner = eth(kVnfMac, kSffMac, kEthPIpv4, {ip});
  const Bytes h = nsh(AC_NSH_MD_TYPE1, 1, 3, AC_NSH_NP_ETH);
  Bytes f = eth(kVnfMac, kSffMac, AC_ETH_P_NSH, {h, inner});
  auto r = process_nsh_frame(f, 77, 2);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  EXPECT_TRUE(r.stamped);
  EXPECT_EQ(served(f, kEthHdrLen + 24 + kEthHdrLen, 2), 77u);
}

TEST(PlainFrame, StampsIpv4AndIpv6) {
  for (int family : {4, 6}) {
    const Bytes ip = udp_packet(family, lab_payload(5, 6, 100));
    Bytes f = eth(kVnfMac, kSffMac, family == 4 ? kEthPIpv4 : kEthPIpv6, {ip});
    // Ethernet padding after the IP packet must be left alone and not confuse the parser.
    f.resize(f.size() + 6, 0);
    auto r = process_plain_frame(f, 31, 3);
    ASSERT_EQ(r.verdict, Verdict::kForward) << family;
    EXPECT_TRUE(r.stamped);
    EXPECT_EQ(served(f, kEthHdrLen, 3), 31u);
    EXPECT_TRUE(udp_csum_ok(f, kEthHdrLen));
    EXPECT_TRUE(std::equal(f.begin(), f.begin() + 6, kSffMac.begin()));
  }
  Bytes arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(process_plain_frame(arp, 1, 0).verdict, Verdict::kIgnored);
  const Bytes ip6 = udp_packet(6, lab_payload(5, 6));
  Bytes mislabeled = eth(kVnfMac, kSffMac, kEthPIpv4, {ip6});
  EXPECT_EQ(process_plain_frame(mislabeled, 1, 0).verdict, Verdict::kMalformed);
}

TEST(PlainFrame, NeighbourDiscoveryIsLinkControl) {
  // ICMPv6 neighbour solicitation (type 135) in a bare IPv6 frame.
  Bytes ip(40 + 24, 0);
  ip[0] = 0x60;
  set16(ip, 4, 24);
  ip[6] = 58;
  ip[7] = 255;
  ip[40] = 135;
  Bytes f = eth(kVnfMac, kSffMac, kEthPIpv6, {ip});
  EXPECT_EQ(classify_frame(f, false), FrameKind::kLinkControl);
  EXPECT_EQ(process_plain_frame(f, 1, 0).verdict, Verdict::kIgnored);
  ip[40] = 128;  // echo request: ordinary traffic, served (forwarded without a stamp)
  f = eth(kVnfMac, kSffMac, kEthPIpv6, {ip});
  EXPECT_EQ(classify_frame(f, false), FrameKind::kService);
  EXPECT_EQ(process_plain_frame(f, 1, 0).verdict, Verdict::kForward);
  EXPECT_EQ(classify_frame(f, true), FrameKind::kOther);
  const Bytes h = nsh(AC_NSH_MD_TYPE1, 1, 9, AC_NSH_NP_IPV6);
  const Bytes nf = eth(kVnfMac, kSffMac, AC_ETH_P_NSH, {h, ip});
  EXPECT_EQ(classify_frame(nf, true), FrameKind::kService);
  EXPECT_EQ(classify_frame(nf, false), FrameKind::kOther);
}

TEST(Ipv6, ExtensionHeadersAndFragments) {
  Bytes ip = udp_packet(6, lab_payload(1, 2));
  // Insert an 8-byte destination options header before UDP.
  Bytes opts = {17, 0, 1, 4, 0, 0, 0, 0};  // next = UDP, len 0 (8 bytes), PadN
  ip.insert(ip.begin() + 40, opts.begin(), opts.end());
  ip[6] = 60;
  set16(ip, 4, static_cast<std::uint16_t>(get16(ip, 4) + 8));
  UdpLocation loc;
  ASSERT_EQ(locate_udp(ip, loc), IpParse::kUdp);
  EXPECT_EQ(loc.l4_offset, 48u);
  EXPECT_EQ(stamp_lab_payload(ip, 5, 0), Stamp::kStamped);
  EXPECT_TRUE(udp_checksum_ok(ip, loc));

  Bytes frag = udp_packet(6, lab_payload(1, 2));
  frag[6] = 44;
  EXPECT_EQ(stamp_lab_payload(frag, 5, 0), Stamp::kNotLab);
  Bytes v4frag = udp_packet(4, lab_payload(1, 2));
  set16(v4frag, 6, 0x2000);  // MF
  EXPECT_EQ(stamp_lab_payload(v4frag, 5, 0), Stamp::kNotLab);
}

TEST(Checksum, AgreesWithReference) {
  for (std::size_t n : {0u, 1u, 2u, 3u, 37u, 1500u}) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
    EXPECT_EQ(csum_fold(csum_add(0, b)), inet_csum(b.data(), b.size())) << n;
  }
}

TEST(LabPayload, RoundTrip) {
  LabPayload p;
  p.flow_id = 0x11223344;
  p.seq = 9;
  p.send_ts_ns = 0x0102030405060708ULL;
  p.served_by = {1, 2, 3, 0xffffffff};
  Bytes b(AC_LAB_PAYLOAD_LEN);
  write_lab_payload(b, p);
  EXPECT_EQ(get32(b, 0), AC_LAB_MAGIC);
  EXPECT_EQ(get32(b, 12), 0x01020304u);  // big-endian timestamp, high word first
  auto q = read_lab_payload(b);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->flow_id, p.flow_id);
  EXPECT_EQ(q->send_ts_ns, p.send_ts_ns);
  EXPECT_EQ(q->served_by, p.served_by);
  b[0] ^= 1;
  EXPECT_FALSE(read_lab_payload(b).has_value());
  EXPECT_FALSE(read_lab_payload(std::span<const std::uint8_t>(b.data(), 35)).has_value());
  static_assert(sizeof(ac_lab_payload) == AC_LAB_PAYLOAD_LEN);
}

TEST(TokenBucketTest, LimitsToRateAfterBurst) {
  TokenBucket tb(100, 10, 0);
  int passed = 0;
  // 1000 packets spread evenly over one second: burst + about 100.
  for (int i = 0; i < 1000; ++i) passed += tb.take(static_cast<std::uint64_t>(i) * 1'000'000);
  EXPECT_GE(passed, 100);
  EXPECT_LE(passed, 112);
  TokenBucket unlimited(0, 0, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.take(0));
  // All at one instant: only the burst passes.
  TokenBucket instant(1000, 5, 0);
  int burst = 0;
  for (int i = 0; i < 100; ++i) burst += instant.take(42);
  EXPECT_EQ(burst, 5);
}

TEST(Json, KeysInTheOrderWrittenAndEscaped) {
  Json j = {{"a", std::uint64_t{1}}, {"s", "x\"y\\\n"}, {"arr", {1, 2.5, Json::object()}}, {"b", true}};
  EXPECT_EQ(j.dump(), R"({"a":1,"s":"x\"y\\\n","arr":[1,2.5,{}],"b":true})");
}

}  // namespace
}  // namespace anychain::tools
