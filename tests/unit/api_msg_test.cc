#include "ospf/api_msg.h"

#include <gtest/gtest.h>

#include "ospf/lsa.h"

using namespace anychain::ospf;
using namespace anychain::ospf::api;

namespace {

Bytes small_lsa() {
  VnfInfo v{0x0a640001, 32, 7, 40, 150, 0x01010101, kVnfFlagNshAware};
  return *build_vnf_lsa(v, 200, 0x01010101);
}

std::vector<Message> every_message() {
  return {
      {1, RegisterOpaqueType{10, 200}},
      {2, UnregisterOpaqueType{10, 200}},
      {3, RegisterEvent{{typemask_bit(1) | typemask_bit(2) | typemask_bit(10), Origin::Any, {}}}},
      {4, SyncLsdb{{0xFFFF, Origin::Self, {0, 0x00000001}}}},
      {5, OriginateRequest{0, 0, small_lsa()}},
      {6, DeleteRequest{0, 10, 200, 0, 7}},
      {7, SyncReachable{}},
      {8, SyncIsm{}},
      {9, SyncNsm{}},
      {10, SyncRouterId{}},
      {10, Reply{-5}},
      {0, ReadyNotify{10, 200, 0}},
      {4, LsaUpdateNotify{{0, 0, true, small_lsa()}}},
      {0, LsaDeleteNotify{{0, 1, false, small_lsa()}}},
      {0, NewIf{0x0a000001, 0}},
      {0, DelIf{0x0a000001}},
      {0, IsmChange{0x0a000001, 0, 7}},
      {0, NsmChange{0x0a000001, 0x0a000002, 0x02020202, 9}},
      {0, ReachableChange{{1, 2, 3}, {4}}},
      {0, RouterIdChange{0x01010101}},
  };
}

}  // namespace

TEST(ApiMsg, TypemaskBitIsOneShiftedByTypeMinusOne) {
  EXPECT_EQ(typemask_bit(1), 0x0001);
  EXPECT_EQ(typemask_bit(2), 0x0002);
  EXPECT_EQ(typemask_bit(10), 0x0200);
  EXPECT_EQ(typemask_bit(11), 0x0400);
}

TEST(ApiMsg, RoundTripEveryMessage) {
  for (const auto& m : every_message()) {
    auto bytes = encode(m);
    ASSERT_TRUE(bytes) << to_string(m.type()) << ": " << bytes.error().str();
    ASSERT_GE(bytes->size(), kHeaderSize + 4) << "never a zero-length body: " << to_string(m.type());
    EXPECT_EQ((*bytes)[0], kVersion);
    EXPECT_EQ((*bytes)[1], static_cast<std::uint8_t>(m.type()));
    EXPECT_EQ(((*bytes)[2] << 8 | (*bytes)[3]) + kHeaderSize, bytes->size());
    auto back = decode(*bytes);
    ASSERT_TRUE(back) << to_string(m.type()) << ": " << back.error().str();
    EXPECT_EQ(*back, m) << to_string(m.type());
  }
}

TEST(ApiMsg, RegisterOpaqueTypeBytes) {
  auto b = encode({0x01020304, RegisterOpaqueType{10, 200}});
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (Bytes{1, 1, 0, 4, 1, 2, 3, 4, 10, 200, 0, 0}));
}

TEST(ApiMsg, SyncRequestsCarryFourZeroBytes) {
  for (Body body : {Body{SyncReachable{}}, Body{SyncIsm{}}, Body{SyncNsm{}}, Body{SyncRouterId{}}}) {
    auto b = encode({9, body});
    ASSERT_TRUE(b);
    ASSERT_EQ(b->size(), 12u);
    EXPECT_EQ((*b)[3], 4);
    EXPECT_EQ((*b)[8] | (*b)[9] | (*b)[10] | (*b)[11], 0);
  }
}

TEST(ApiMsg, RegisterEventBytes) {
  auto b = encode({5, RegisterEvent{{0x0203, Origin::Any, {0x0a000000}}}});
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (Bytes{1, 3, 0, 8, 0, 0, 0, 5, 0x02, 0x03, 2, 1, 10, 0, 0, 0}));
}

TEST(ApiMsg, DeleteRequestBytes) {
  auto b = encode({6, DeleteRequest{0, 10, 200, 0, 0x000007}});
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (Bytes{1, 6, 0, 12, 0, 0, 0, 6, 0, 0, 0, 0, 10, 200, 0, 0, 0, 0, 0, 7}));
  EXPECT_FALSE(encode({6, DeleteRequest{0, 10, 200, 0, 0x1000000}}));
}

TEST(ApiMsg, ReplyErrcodeIsSigned) {
  Bytes raw{1, 10, 0, 4, 0, 0, 0, 9, 0xFB, 0, 0, 0};
  auto m = decode(raw);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<Reply>(m->body).errcode, -5);
  EXPECT_EQ(m->seq, 9u);
  EXPECT_EQ(to_string(static_cast<ApiErr>(-5)), "OPAQUETYPEINUSE");
}

TEST(ApiMsg, EncodeRefusesOversizeLsa) {
  Bytes lsa(1501, 0);
  lsa[18] = 1501 >> 8;
  lsa[19] = 1501 & 0xFF;
  auto b = encode({1, OriginateRequest{0, 0, lsa}});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, EMSGSIZE);
}

TEST(ApiMsg, DecodeRejectsBadVersion) {
  Bytes raw{2, 10, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0};
  auto m = decode(raw);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, EPROTO);
}

TEST(ApiMsg, DecodeRejectsWrongBodySizes) {
  // Reply with a 5-byte body (fixed size 4): oversize for its type is a framing error.
  EXPECT_FALSE(decode(Bytes{1, 10, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0}));
  // Length field disagrees with what is there.
  EXPECT_FALSE(decode(Bytes{1, 10, 0, 4, 0, 0, 0, 1, 0, 0, 0}));
  // Truncated header.
  EXPECT_FALSE(decode(Bytes{1, 10, 0}));
  // LSA notify whose embedded LSA length field lies.
  auto ok = encode({0, LsaUpdateNotify{{0, 0, false, small_lsa()}}});
  ASSERT_TRUE(ok);
  Bytes bad = *ok;
  bad[kHeaderSize + 12 + 19] += 4;
  EXPECT_EQ(decode(bad).error().code, EBADMSG);
  // Reachable change whose counts do not match.
  EXPECT_FALSE(decode(Bytes{1, 18, 0, 8, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1}));
  // Unknown type.
  EXPECT_EQ(decode(Bytes{1, 99, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0}).error().code, EBADMSG);
}

TEST(ApiMsg, StreamDecoderReassemblesByteByByte) {
  Bytes stream;
  auto msgs = every_message();
  for (const auto& m : msgs) {
    auto b = encode(m);
    ASSERT_TRUE(b);
    stream.insert(stream.end(), b->begin(), b->end());
  }
  StreamDecoder d;
  std::vector<Message> got;
  for (auto byte : stream) {
    d.feed(ByteView(&byte, 1));
    for (;;) {
      auto n = d.next();
      ASSERT_TRUE(n) << n.error().str();
      if (!*n) break;
      got.push_back(std::move(**n));
    }
  }
  EXPECT_EQ(got, msgs);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ApiMsg, StreamDecoderOversizeLsaNotifyIsStickyProtocolError) {
  StreamDecoder d;
  // Header announcing a 1513-byte LSA_UPDATE_NOTIFY body (> 12 + 1500).
  Bytes hdr{1, 12, 0x05, 0xE9, 0, 0, 0, 0};
  d.feed(hdr);
  auto n = d.next();
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, EPROTO);
  auto good = encode({0, ReadyNotify{10, 200, 0}});
  d.feed(*good);
  EXPECT_FALSE(d.next()) << "framing is lost: the error must stay";
  d.reset();
  d.feed(*good);
  auto again = d.next();
  ASSERT_TRUE(again && *again);
}

TEST(ApiMsg, StreamDecoderMaxSizeLsaNotifyAccepted) {
  Bytes lsa(1500, 0);
  lsa[3] = 10;
  lsa[18] = 1500 >> 8;
  lsa[19] = 1500 & 0xFF;
  auto b = encode({0, LsaUpdateNotify{{0, 0, false, lsa}}});
  ASSERT_TRUE(b);
  StreamDecoder d;
  d.feed(*b);
  auto n = d.next();
  ASSERT_TRUE(n && *n);
  EXPECT_EQ(std::get<LsaUpdateNotify>((*n)->body).lsa.size(), 1500u);
}

TEST(ApiMsg, StreamDecoderSkipsBadBodyButKeepsFraming) {
  StreamDecoder d;
  d.feed(Bytes{1, 99, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0});  // unknown type, framing fine
  auto good = encode({3, Reply{0}});
  d.feed(*good);
  auto first = d.next();
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, EBADMSG);
  auto second = d.next();
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->seq, 3u);
}
