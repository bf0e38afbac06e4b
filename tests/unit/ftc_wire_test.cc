// FTC wire format (docs/ftc.md Section 2): exact bytes, round trips, and every malformed case
// refused with the rule it breaks.
#include <gtest/gtest.h>

#include "ftc/wire.h"

namespace anychain::ftc {
namespace {

const Bytes kKey = {0x0a, 0x01, 0x00, 0x01, 0x0a, 0x02, 0x00, 0x02, 0x11, 0x9c, 0x40, 0x23, 0x28};
const Bytes kVal = {0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0x01, 0xf4};

// The example of docs/ftc.md 2.5: the monitor (instance 7 at SI 255) counted a flow's 5th packet.
Nsh example() {
  Nsh n;
  n.spi = 42;
  n.si = 255;
  n.other.push_back(flow_hash_tlv(0x11223344));
  n.ctrl = Ctrl{0, 1, 0x0a000001};
  Log l;
  l.mbox = {7, 0, 255};
  l.seq = 5;
  l.writes.push_back({1, false, kKey, kVal});
  n.logs.push_back(l);
  return n;
}

const Bytes kExample = {
    0x0f, 0xd4, 0x02, 0x01,                          // ver 0, TTL 63, 20 words; MD2; IPv4
    0x00, 0x00, 0x2a, 0xff,                          // SPI 42, SI 255
    0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,  // flow hash
    0xff, 0xf6, 0x04, 0x08, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,  // control f = 1
    0xff, 0xf6, 0x02, 0x2d,                          // log TLV, 45 bytes
    0x00, 0x01, 0x01, 0x01,                          // flags, held 1, 1 write, count 1
    0x00, 0x07, 0x00, 0xff,                          // instance 7, incarnation 0, head SI 255
    0x00, 0x00, 0x00, 0x05,                          // seq 5
    0x01, 0x00, 0x0d, 0x10,                          // table 1, klen 13, vlen 16
    0x0a, 0x01, 0x00, 0x01, 0x0a, 0x02, 0x00, 0x02, 0x11, 0x9c, 0x40, 0x23, 0x28,
    0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0x01, 0xf4,
    0x00, 0x00, 0x00};

TEST(FtcWire, TheDocumentedExampleIsByteExact) {
  auto b = encode_nsh(example());
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(*b, kExample);
  auto n = decode_nsh(kExample);
  ASSERT_TRUE(n.has_value()) << n.error().message;
  EXPECT_EQ(*n, example());
  EXPECT_EQ(n->hash(), 0x11223344u);
}

TEST(FtcWire, LogsRoundTrip) {
  std::vector<Log> logs;
  Log noop;
  noop.count = 0;
  noop.seq = 77;
  noop.mbox = {9, 3, 254};
  logs.push_back(noop);
  Log stub = noop;
  stub.count = 2;
  stub.flags = AC_FTC_LOG_STUB;
  logs.push_back(stub);
  Log many;
  many.mbox = {16383, 255, 1};
  many.seq = 0xffffffff;
  many.count = 200;
  many.flags = AC_FTC_LOG_WRAPPED;
  many.held = 4;
  many.writes = {{1, false, Bytes(16, 0xaa), Bytes(32, 0xbb)}, {2, true, Bytes{1}, {}}, {3, false, Bytes{1, 2}, {}},
                 {255, false, Bytes(3, 9), Bytes(8, 7)}};
  logs.push_back(many);
  for (const auto& l : logs) {
    auto v = encode_log(l);
    ASSERT_TRUE(v.has_value()) << v.error().message;
    EXPECT_EQ(v->size(), l.value_len());
    auto d = decode_log(*v);
    ASSERT_TRUE(d.has_value()) << d.error().message;
    EXPECT_EQ(*d, l);
  }
  EXPECT_EQ(logs[0].tlv_len(), 16u) << "a no-op log is 16 bytes on the wire";
  EXPECT_EQ(many.value_len(), 12u + 4 + 48 + 4 + 1 + 4 + 2 + 4 + 3 + 8);
}

TEST(FtcWire, SharesLeaveRoomForFLogsAndFCommits) {
  EXPECT_EQ(ac_ftc_share(1), 128u);
  EXPECT_EQ(ac_ftc_share(2), 100u);
  EXPECT_EQ(ac_ftc_share(3), 64u);
  EXPECT_EQ(ac_ftc_share(4), 44u);
  for (uint32_t f = 1; f <= 4; ++f)
    EXPECT_LE(AC_FTC_FIXED_LEN + f * ac_ftc_share(f) + 4 + 8 * f, uint32_t{AC_NSH_MAX_LEN}) << "f " << f;
  // the NFs of docs/ftc.md 6.1 against the table of 2.6
  Log nat;
  nat.writes.push_back({1, false, Bytes(13, 1), Bytes(8, 2)});
  Log monitor;
  monitor.writes.push_back({1, false, Bytes(13, 1), Bytes(16, 2)});
  for (uint32_t f = 1; f <= 4; ++f) EXPECT_LE(nat.tlv_len(), ac_ftc_share(f)) << "NAT, f " << f;
  for (uint32_t f = 1; f <= 3; ++f) EXPECT_LE(monitor.tlv_len(), ac_ftc_share(f)) << "monitor, f " << f;
  EXPECT_GT(monitor.tlv_len(), ac_ftc_share(4)) << "the monitor's log is stubbed at f = 4";
}

TEST(FtcWire, EncodeRefusesWhatBreaksALimit) {
  Log l;
  l.writes = {{1, false, Bytes(16, 1), Bytes(32, 2)}, {2, false, Bytes(16, 1), Bytes(32, 2)}};
  EXPECT_TRUE(encode_log(l).has_value()) << "116 bytes fit";
  l.writes.push_back({3, false, Bytes(9, 1), {}});  // 129 bytes
  auto e = encode_log(l);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message.find("over the size limit"), std::string::npos) << e.error().message;

  Log k;
  k.writes = {{1, false, Bytes(17, 1), {}}};
  EXPECT_FALSE(encode_log(k).has_value());
  k.writes = {{1, false, Bytes{}, {}}};
  EXPECT_FALSE(encode_log(k).has_value());
  k.writes = {{1, false, Bytes{1}, Bytes(33, 0)}};
  EXPECT_FALSE(encode_log(k).has_value());
  k.writes = {{1, true, Bytes{1}, Bytes{1}}};
  EXPECT_FALSE(encode_log(k).has_value()) << "a delete carries no value";
  k.writes = {{1, false, Bytes{1}, {}}, {2, false, Bytes{1}, {}}, {3, false, Bytes{1}, {}}, {4, false, Bytes{1}, {}},
              {5, false, Bytes{1}, {}}};
  EXPECT_FALSE(encode_log(k).has_value()) << "five writes";
  Log noop;
  noop.count = 0;
  noop.writes = {{1, false, Bytes{1}, {}}};
  EXPECT_FALSE(encode_log(noop).has_value()) << "a no-op with writes";
  Log empty;
  EXPECT_FALSE(encode_log(empty).has_value()) << "a transaction without writes";

  Nsh n = example();
  for (int i = 0; i < 4; ++i) n.logs.push_back(n.logs.front());
  auto big = encode_nsh(n);
  ASSERT_FALSE(big.has_value()) << "5 logs of 52 bytes do not fit";
  EXPECT_NE(big.error().message.find("252"), std::string::npos);
}

// Malformed NSHs: each refused by decode_nsh with the rule (and by ac_ftc_walk, which BPF runs).
struct Bad {
  const char* name;
  std::function<void(Bytes&)> mutate;
  enum ac_ftc_err err;
};

class FtcWireBad : public ::testing::TestWithParam<Bad> {};

enum ac_ftc_err walk(const Bytes& nsh) {
  Window w{};
  std::copy(nsh.begin(), nsh.end(), w.begin());
  ac_ftc_view v;
  return ac_ftc_walk(w.data(), static_cast<uint32_t>(nsh.size()), &v);
}

TEST_P(FtcWireBad, IsRefusedWithItsReason) {
  Bytes b = kExample;
  GetParam().mutate(b);
  EXPECT_EQ(walk(b), GetParam().err) << GetParam().name;
  auto d = decode_nsh(b);
  ASSERT_FALSE(d.has_value()) << GetParam().name;
  EXPECT_NE(d.error().message.find(err_str(GetParam().err)), std::string::npos) << d.error().message;
}

constexpr size_t kLog = 28;  // the log TLV's header in kExample
void set_len_words(Bytes& b) { b[1] = static_cast<uint8_t>((b[1] & 0xc0) | (b.size() / 4)); }

INSTANTIATE_TEST_SUITE_P(
    Cases, FtcWireBad,
    ::testing::Values(
        Bad{"MD type 1", [](Bytes& b) { b[2] = 1; }, AC_FTC_E_MD},
        Bad{"truncated TLV: log value length 77", [](Bytes& b) { b[kLog + 3] = 77; }, AC_FTC_E_LEN},
        Bad{"log value shorter than its header",
            [](Bytes& b) {
              b.resize(kLog + 4 + 8, 0);
              b[kLog + 3] = 8;
              set_len_words(b);
            },
            AC_FTC_E_LOG_LEN},
        Bad{"log over the size limit (125 bytes)",
            [](Bytes& b) {
              b.resize(kLog + 4 + 128, 0);
              b[kLog + 3] = 125;
              set_len_words(b);
            },
            AC_FTC_E_LOG_LEN},
        Bad{"log version 1", [](Bytes& b) { b[kLog + 4] = 0x40; }, AC_FTC_E_LOG_VERSION},
        Bad{"unknown log flag", [](Bytes& b) { b[kLog + 4] = 0x04; }, AC_FTC_E_LOG_FLAGS},
        Bad{"held 0", [](Bytes& b) { b[kLog + 5] = 0; }, AC_FTC_E_LOG_HELD},
        Bad{"held f + 1 on the wire", [](Bytes& b) { b[kLog + 5] = 2; }, AC_FTC_E_LOG_HELD},
        Bad{"no-op with a write", [](Bytes& b) { b[kLog + 7] = 0; }, AC_FTC_E_LOG_COUNT},
        Bad{"stub with a write", [](Bytes& b) { b[kLog + 4] = AC_FTC_LOG_STUB; }, AC_FTC_E_LOG_COUNT},
        Bad{"transaction without writes", [](Bytes& b) { b[kLog + 6] = 0; }, AC_FTC_E_LOG_COUNT},
        Bad{"five writes", [](Bytes& b) { b[kLog + 6] = 5; }, AC_FTC_E_WRITE},
        Bad{"key of 17 bytes", [](Bytes& b) { b[kLog + 18] = 17; }, AC_FTC_E_WRITE},
        Bad{"empty key", [](Bytes& b) { b[kLog + 18] = 0; }, AC_FTC_E_WRITE},
        Bad{"value of 33 bytes", [](Bytes& b) { b[kLog + 19] = 33; }, AC_FTC_E_WRITE},
        Bad{"delete with a value", [](Bytes& b) { b[kLog + 17] = AC_FTC_W_DELETE; }, AC_FTC_E_WRITE},
        Bad{"write overruns the log", [](Bytes& b) { b[kLog + 19] = 18; }, AC_FTC_E_WRITE_OVERRUN},
        Bad{"two writes announced, one present", [](Bytes& b) { b[kLog + 6] = 2; }, AC_FTC_E_WRITE_OVERRUN},
        Bad{"non-zero padding", [](Bytes& b) { b.back() = 1; }, AC_FTC_E_PAD},
        Bad{"f = 0", [](Bytes& b) { b[21] = 0; }, AC_FTC_E_CTRL},
        Bad{"f = 5", [](Bytes& b) { b[21] = 5; }, AC_FTC_E_CTRL},
        Bad{"unknown control flag", [](Bytes& b) { b[20] = 0x80; }, AC_FTC_E_CTRL},
        Bad{"control reserved bits", [](Bytes& b) { b[23] = 1; }, AC_FTC_E_CTRL},
        Bad{"control TLV of 4 bytes",
            [](Bytes& b) {
              b[19] = 4;
              b.erase(b.begin() + 24, b.begin() + 28);
              set_len_words(b);
            },
            AC_FTC_E_CTRL},
        Bad{"logs without a control TLV",
            [](Bytes& b) {
              b.erase(b.begin() + 16, b.begin() + 28);
              set_len_words(b);
            },
            AC_FTC_E_CTRL},
        Bad{"two control TLVs",
            [](Bytes& b) {
              Bytes c(b.begin() + 16, b.begin() + 28);
              b.insert(b.begin() + 28, c.begin(), c.end());
              set_len_words(b);
            },
            AC_FTC_E_CTRL_DUP},
        Bad{"commit TLV of 6 bytes",
            [](Bytes& b) {
              Bytes c = {0xff, 0xf6, 0x03, 0x06, 0, 7, 0, 0xff, 0, 0, 0, 0};
              b.insert(b.end(), c.begin(), c.end());
              set_len_words(b);
            },
            AC_FTC_E_COMMIT},
        Bad{"commit TLV of 9 entries",
            [](Bytes& b) {
              b.erase(b.begin() + kLog, b.end());
              Bytes c = {0xff, 0xf6, 0x03, 72};
              c.resize(4 + 72, 0);
              b.insert(b.end(), c.begin(), c.end());
              set_len_words(b);
            },
            AC_FTC_E_COMMIT},
        Bad{"two commit TLVs",
            [](Bytes& b) {
              b.erase(b.begin() + kLog, b.end());
              Bytes c = {0xff, 0xf6, 0x03, 0x08, 0, 7, 0, 0xff, 0, 0, 0, 1};
              b.insert(b.end(), c.begin(), c.end());
              b.insert(b.end(), c.begin(), c.end());
              set_len_words(b);
            },
            AC_FTC_E_COMMIT},
        Bad{"nine logs",
            [](Bytes& b) {
              b.erase(b.begin() + kLog, b.end());
              Bytes noop = {0xff, 0xf6, 0x02, 0x0c, 0, 1, 0, 0, 0, 7, 0, 0xff, 0, 0, 0, 1};
              for (int i = 0; i < 9; ++i) b.insert(b.end(), noop.begin(), noop.end());
              set_len_words(b);
            },
            AC_FTC_E_TOO_MANY_LOGS}),
    [](const auto& info) {
      std::string s = info.param.name;
      for (auto& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return s;
    });

TEST(FtcWire, ForeignTlvsPassThroughInOrder) {
  Bytes b = kExample;
  // a foreign class's TLV (U bit set in its length byte) between the hash and the control TLV
  Bytes foreign = {0x01, 0x23, 0x07, 0x83, 0xde, 0xad, 0xbe, 0x00};
  b.insert(b.begin() + 16, foreign.begin(), foreign.end());
  set_len_words(b);
  auto n = decode_nsh(b);
  ASSERT_TRUE(n.has_value()) << n.error().message;
  ASSERT_EQ(n->other.size(), 2u);
  EXPECT_EQ(n->other[1].md_class, 0x0123);
  EXPECT_EQ(n->other[1].len, 0x83);
  auto again = encode_nsh(*n);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, b);
}

TEST(FtcWire, TruncatedNshIsRefused) {
  EXPECT_FALSE(decode_nsh(Bytes(kExample.begin(), kExample.begin() + 7)).has_value());
  EXPECT_FALSE(decode_nsh(Bytes(kExample.begin(), kExample.begin() + 40)).has_value())
      << "the length field says 80 bytes";
  Bytes short_field = kExample;
  short_field[1] = (short_field[1] & 0xc0) | 19;
  EXPECT_EQ(walk(short_field), AC_FTC_E_MD) << "the walk needs the length field to match";
  EXPECT_FALSE(decode_nsh(short_field).has_value()) << "76 bytes end inside the log TLV";
  // the inner packet may follow: the length field says where the NSH ends
  Bytes longer = kExample;
  longer.insert(longer.end(), 20, 0x45);
  EXPECT_TRUE(decode_nsh(longer).has_value());
}

}  // namespace
}  // namespace anychain::ftc
