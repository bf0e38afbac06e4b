#include "ospf/lsa.h"

#include <gtest/gtest.h>

using namespace anychain::ospf;

namespace {

// Router-LSA of 1.1.1.1: p2p to 2.2.2.2, transit to DR 10.1.0.1 (one TOS entry), a stub
// network and a virtual link with two TOS entries.
const Bytes kRouterLsa = {
    0x00, 0x01, 0x02, 0x01,  // age 1, options 0x02, type 1
    1, 1, 1, 1,              // LSID
    1, 1, 1, 1,              // adv router
    0x80, 0x00, 0x00, 0x03,  // seq
    0x12, 0x34, 0x00, 84,    // checksum, length 84
    0x01, 0x00, 0x00, 0x04,  // flags (B), 0, 4 links
    2, 2, 2, 2, 10, 0, 0, 1, 1, 0, 0x00, 25,            // p2p, metric 25
    10, 1, 0, 1, 10, 1, 0, 2, 2, 1, 0x00, 10,           // transit, 1 TOS, metric 10
    4, 0, 0x00, 0x14,                                   //   TOS 4 metric 20
    10, 0, 0, 0, 255, 255, 255, 252, 3, 0, 0x00, 25,    // stub 10.0.0.0/30
    3, 3, 3, 3, 10, 0, 0, 9, 4, 2, 0x01, 0x00,          // virtual, 2 TOS, metric 256
    2, 0, 0, 7, 8, 0, 0, 9,                             //   TOS entries
};

// Network-LSA for DR 10.1.0.1, /24, attached 1.1.1.1 and 4.4.4.4.
const Bytes kNetworkLsa = {
    0x00, 0x05, 0x02, 0x02, 10, 1, 0, 1, 4, 4, 4, 4, 0x80, 0x00, 0x00, 0x01, 0xAB, 0xCD, 0x00, 32,
    255, 255, 255, 0, 1, 1, 1, 1, 4, 4, 4, 4,
};

// VNF opaque LSA: type 10, opaque type 200, instance 7.
const Bytes kVnfLsa = {
    0x00, 0x00, 0x00, 0x0A, 200, 0, 0, 7, 1, 1, 1, 1, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 76,
    1, 0, 0, 0,                               // version 1, reserved
    0, 1, 0, 5, 10, 100, 0, 0, 24, 0, 0, 0,   // service 10.100.0.0/24 (padded to 8)
    0, 2, 0, 4, 0, 0, 0, 7,                   // instance id 7
    0, 3, 0, 4, 0, 0, 0, 40,                  // cost 40
    0, 4, 0, 4, 0, 0, 0, 150,                 // capacity 150
    0, 5, 0, 4, 1, 1, 1, 1,                   // NSH endpoint 1.1.1.1
    0, 6, 0, 4, 0, 0, 0, 1,                   // flags: NSH-aware
};

ByteView body(const Bytes& lsa) { return ByteView(lsa).subspan(kLsaHeaderSize); }

Bytes with_length(Bytes b) {
  b[18] = static_cast<std::uint8_t>(b.size() >> 8);
  b[19] = static_cast<std::uint8_t>(b.size());
  return b;
}

}  // namespace

TEST(Lsa, HeaderFixture) {
  auto h = parse_lsa_header(kRouterLsa);
  ASSERT_TRUE(h) << h.error().str();
  EXPECT_EQ(h->age, 1);
  EXPECT_EQ(h->options, 2);
  EXPECT_EQ(h->type, 1);
  EXPECT_EQ(h->id, 0x01010101u);
  EXPECT_EQ(h->adv_router, 0x01010101u);
  EXPECT_EQ(h->seq, static_cast<std::int32_t>(0x80000003u));
  EXPECT_EQ(h->checksum, 0x1234);
  EXPECT_EQ(h->length, 84);
}

TEST(Lsa, RouterLsaFixture) {
  auto r = parse_router_lsa(body(kRouterLsa));
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->flags, 1);
  ASSERT_EQ(r->links.size(), 4u);
  EXPECT_EQ(r->links[0], (RouterLink{0x02020202, 0x0a000001, LinkType::PointToPoint, 25, {}}));
  EXPECT_EQ(r->links[1], (RouterLink{0x0a010001, 0x0a010002, LinkType::Transit, 10, {0x04000014}}));
  EXPECT_EQ(r->links[2], (RouterLink{0x0a000000, 0xfffffffc, LinkType::Stub, 25, {}}));
  EXPECT_EQ(r->links[3], (RouterLink{0x03030303, 0x0a000009, LinkType::Virtual, 256, {0x02000007, 0x08000009}}));
  // Re-encoding gives the same bytes.
  auto h = parse_lsa_header(kRouterLsa);
  auto again = build_router_lsa(*h, *r);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, kRouterLsa);
}

TEST(Lsa, RouterLsaTruncatedEverywhereIsRejected) {
  for (std::size_t cut = 0; cut < kRouterLsa.size() - kLsaHeaderSize; ++cut) {
    auto r = parse_router_lsa(body(kRouterLsa).first(cut));
    EXPECT_FALSE(r) << "cut at " << cut;
    if (!r) {
      EXPECT_EQ(r.error().code, EBADMSG);
    }
  }
}

TEST(Lsa, RouterLsaTrailingBytesAndBadLinkTypeRejected) {
  Bytes longer = kRouterLsa;
  longer.insert(longer.end(), {0, 0, 0, 0});
  EXPECT_FALSE(parse_router_lsa(body(longer)));
  Bytes bad = kRouterLsa;
  bad[20 + 4 + 8] = 5;  // link type 5
  EXPECT_FALSE(parse_router_lsa(body(bad)));
}

TEST(Lsa, NetworkLsaFixture) {
  auto h = parse_lsa_header(kNetworkLsa);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->type, 2);
  EXPECT_EQ(h->adv_router, 0x04040404u);
  auto n = parse_network_lsa(body(kNetworkLsa));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->mask, 0xffffff00u);
  EXPECT_EQ(n->routers, (std::vector<std::uint32_t>{0x01010101, 0x04040404}));
  auto again = build_network_lsa(*h, *n);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, kNetworkLsa);
  EXPECT_FALSE(parse_network_lsa(body(kNetworkLsa).first(3)));
  EXPECT_FALSE(parse_network_lsa(body(kNetworkLsa).first(10)));
}

TEST(Lsa, HeaderLengthMustMatch) {
  Bytes b = kNetworkLsa;
  b[19] = 36;  // over-long claim
  EXPECT_EQ(parse_lsa_header(b).error().code, EBADMSG);
  b[19] = 12;  // shorter than a header
  EXPECT_FALSE(parse_lsa_header(b));
  EXPECT_FALSE(parse_lsa_header(ByteView(kNetworkLsa).first(19)));
  Bytes extra = kNetworkLsa;
  extra.push_back(0);
  EXPECT_FALSE(parse_lsa_header(extra)) << "bytes beyond the length field";
}

TEST(Lsa, OpaqueLsidPacking) {
  EXPECT_EQ(opaque_lsid(200, 7), 0xC8000007u);
  EXPECT_EQ(opaque_lsid(200, 0x1234567), 0xC8234567u);
  EXPECT_EQ(opaque_type_of(0xC8000007u), 200);
  EXPECT_EQ(opaque_id_of(0xC8000007u), 7u);
}

TEST(VnfLsa, Fixture) {
  auto h = parse_lsa_header(kVnfLsa);
  ASSERT_TRUE(h) << h.error().str();
  EXPECT_EQ(opaque_type_of(h->id), 200);
  auto v = parse_vnf_payload(body(kVnfLsa));
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_EQ(*v, (VnfInfo{0x0a640000, 24, 7, 40, 150, 0x01010101, kVnfFlagNshAware}));
  EXPECT_TRUE(v->nsh_aware());
  auto built = build_vnf_lsa(*v, 200, 0x01010101);
  ASSERT_TRUE(built);
  Bytes expect = kVnfLsa;
  expect[12] = 0, expect[15] = 0;  // builder leaves seq to ospfd
  EXPECT_EQ(*built, expect);
}

TEST(VnfLsa, UnknownTlvSkipped) {
  Bytes b = kVnfLsa;
  Bytes unknown = {0x12, 0x34, 0, 3, 0xAA, 0xBB, 0xCC, 0};
  b.insert(b.begin() + 24, unknown.begin(), unknown.end());
  b = with_length(b);
  auto v = parse_vnf_payload(body(b));
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_EQ(v->cost, 40u);
}

TEST(VnfLsa, WrongVersionRejected) {
  Bytes b = kVnfLsa;
  b[20] = 2;
  auto v = parse_vnf_payload(body(b));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, EPROTONOSUPPORT);
}

TEST(VnfLsa, TruncatedEverywhereRejected) {
  // Payload: version 0..3, prefix 4..15, instance 16..23, cost 24..31, capacity 32..39,
  // NSH endpoint 40..47, flags 48..55. Only dropping the optional trailing flags TLV (cut at
  // 48) leaves a valid payload; every other cut is truncation or a missing mandatory TLV.
  for (std::size_t cut = 0; cut < kVnfLsa.size() - kLsaHeaderSize; ++cut) {
    if (cut == 48) {
      EXPECT_TRUE(parse_vnf_payload(body(kVnfLsa).first(cut)));
      continue;
    }
    EXPECT_FALSE(parse_vnf_payload(body(kVnfLsa).first(cut))) << "cut at " << cut;
  }
}

TEST(VnfLsa, MalformedTlvsRejected) {
  {
    Bytes b = kVnfLsa;
    b[24 + 3] = 200;  // service prefix TLV length runs past the end
    EXPECT_FALSE(parse_vnf_payload(body(b)));
  }
  {
    Bytes b = kVnfLsa;
    b[24 + 8] = 33;  // prefix length 33
    EXPECT_FALSE(parse_vnf_payload(body(b)));
  }
  {
    Bytes b = kVnfLsa;
    b[36 + 3] = 2;  // instance id with length 2
    EXPECT_FALSE(parse_vnf_payload(body(b)));
  }
  {
    Bytes b = kVnfLsa;  // duplicate cost TLV
    Bytes dup = {0, 3, 0, 4, 0, 0, 0, 1};
    b.insert(b.end(), dup.begin(), dup.end());
    EXPECT_FALSE(parse_vnf_payload(body(with_length(b))));
  }
  {
    Bytes b = kVnfLsa;  // cost TLV renamed to an unknown one: mandatory TLV missing
    b[44 + 1] = 0x77;
    auto v = parse_vnf_payload(body(b));
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("missing"), std::string::npos);
  }
}

TEST(VnfLsa, EncoderRefusesOversizeOpaqueData) {
  LsaHeader h;
  h.type = 10;
  h.id = opaque_lsid(200, 1);
  Bytes ok(kMaxOpaqueData, 0);
  auto a = build_opaque_lsa(h, ok);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), kMaxLsaSize);
  Bytes big(kMaxOpaqueData + 1, 0);
  auto b = build_opaque_lsa(h, big);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, EMSGSIZE);
  VnfInfo v{0x0a640001, 32, 0x1000000, 1, 1, 1, 0};
  EXPECT_FALSE(build_vnf_lsa(v, 200)) << "instance id must fit the 24-bit opaque id";
  v.instance_id = 1;
  v.service_len = 33;
  EXPECT_FALSE(build_vnf_lsa(v, 200));
}

// An FTC instance (docs/vnf-lsa.md): flags NSH-aware | FTC, then the Incarnation TLV 7.
namespace {
Bytes ftc_lsa(std::uint32_t incarnation) {
  Bytes b = kVnfLsa;
  b[kVnfLsa.size() - 1] = 0x5;  // flags: NSH-aware | FTC
  Bytes inc = {0, 7, 0, 4, static_cast<std::uint8_t>(incarnation >> 24), static_cast<std::uint8_t>(incarnation >> 16),
               static_cast<std::uint8_t>(incarnation >> 8), static_cast<std::uint8_t>(incarnation)};
  b.insert(b.end(), inc.begin(), inc.end());
  return with_length(b);
}
}  // namespace

TEST(VnfLsa, FtcFixture) {
  const Bytes lsa = ftc_lsa(3);
  ASSERT_EQ(lsa.size(), 84u);
  auto v = parse_vnf_payload(body(lsa));
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_TRUE(v->ftc());
  EXPECT_TRUE(v->nsh_aware());
  EXPECT_EQ(v->incarnation, 3u);
  auto built = build_vnf_lsa(*v, 200, 0x01010101);
  ASSERT_TRUE(built) << built.error().str();
  Bytes expect = lsa;
  expect[12] = 0, expect[15] = 0;
  EXPECT_EQ(*built, expect);
  // Incarnation 0 of an FTC instance is still encoded (the flag requires the TLV).
  v->incarnation = 0;
  auto zero = encode_vnf_payload(*v);
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->size(), 64u);
  auto back = parse_vnf_payload(*zero);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, *v);
}

TEST(VnfLsa, OldLsaWithoutFtcStillDecodes) {
  // The 76-byte LSA of before (no TLV 7, no FTC flag) decodes as incarnation 0, not FTC; a
  // non-FTC instance is encoded exactly as before.
  auto v = parse_vnf_payload(body(kVnfLsa));
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->ftc());
  EXPECT_EQ(v->incarnation, 0u);
  auto e = encode_vnf_payload(*v);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->size(), 56u);
}

TEST(VnfLsa, FtcFieldsBadInputRejected) {
  {
    Bytes b = ftc_lsa(256);  // incarnation over 8 bits
    auto v = parse_vnf_payload(body(b));
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, EBADMSG);
    EXPECT_NE(v.error().message.find("incarnation 256"), std::string::npos) << v.error().message;
  }
  {
    Bytes b = ftc_lsa(1);
    b[b.size() - 8 + 3] = 2;  // TLV 7 with length 2
    EXPECT_FALSE(parse_vnf_payload(body(b)));
  }
  {
    Bytes b = kVnfLsa;  // FTC flag without TLV 7
    b[kVnfLsa.size() - 1] = 0x5;
    auto v = parse_vnf_payload(body(b));
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("without the incarnation"), std::string::npos) << v.error().message;
  }
  {
    Bytes b = ftc_lsa(1);  // TLV 7 without the FTC flag
    b[kVnfLsa.size() - 1] = 0x1;
    auto v = parse_vnf_payload(body(b));
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("without the FTC flag"), std::string::npos) << v.error().message;
  }
  {
    Bytes b = ftc_lsa(1);  // duplicate TLV 7
    Bytes dup = {0, 7, 0, 4, 0, 0, 0, 2};
    b.insert(b.end(), dup.begin(), dup.end());
    EXPECT_FALSE(parse_vnf_payload(body(with_length(b))));
  }
  {
    Bytes b = ftc_lsa(1);  // TLV 7 cut short
    EXPECT_FALSE(parse_vnf_payload(body(b).first(body(b).size() - 2)));
  }
  VnfInfo v{0x0a640001, 32, 1, 1, 1, 1, kVnfFlagFtc, 256};
  EXPECT_FALSE(encode_vnf_payload(v)) << "incarnation over 255";
  v.flags = 0;
  v.incarnation = 1;
  EXPECT_FALSE(encode_vnf_payload(v)) << "incarnation without the FTC flag";
}
