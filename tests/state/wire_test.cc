// State replication messages: round trips of every type, the byte layout of docs/state.md 3.8
// checked field by field, forged, corrupted, truncated, malformed, replayed, misdirected and
// stale messages refused with the right counter, key rotation with two keys accepted.
#include <gtest/gtest.h>

#include <random>

#include "state/gate.h"
#include "state/wire.h"

namespace anychain::state {
namespace {

Schema schema() {
  auto s = Schema::make({
      {.id = 1, .kind = Kind::GCounter, .name = "pkts", .cells = 16},
      {.id = 2, .kind = Kind::PNCounter, .name = "bal", .cells = 64, .key_size = 8},
      {.id = 3, .kind = Kind::CountMin, .name = "cms", .cells = 4 * 64, .rows = 4},
      {.id = 4, .kind = Kind::CountingBloom, .name = "cbf", .cells = 256, .rows = 3},
      {.id = 5, .kind = Kind::AwSet, .name = "flagged", .cells = 64, .key_size = 16},
      {.id = 6, .kind = Kind::RegMap, .name = "nat", .cells = 64, .key_size = 13},
  });
  if (!s) throw std::runtime_error(s.error().str());
  return *s;
}

std::vector<uint8_t> secret(uint8_t fill) { return std::vector<uint8_t>(32, fill); }

std::shared_ptr<const Keyring> ring(std::vector<uint8_t> ids, uint8_t send) {
  std::vector<KeySpec> keys;
  for (uint8_t id : ids) keys.push_back({id, secret(id)});
  auto r = Keyring::make(keys, send);
  if (!r) throw std::runtime_error(r.error().str());
  return *r;
}

Message delta(const Schema& s) {
  Message m;
  m.h.type = MsgType::Delta;
  m.h.flags = kFlagDraining;
  m.h.service = 7;
  m.h.schema = s.digest();
  m.h.sender = {11, 0x1122334455667788ULL};
  m.h.receiver = 12;
  m.h.receiver_incarnation = 99;
  m.h.seq = 5;
  m.h.wall_us = 1'700'000'000'000'000ULL;
  m.h.tx_us = 123456;
  m.h.echo_us = 120000;
  m.h.echo_delay_us = 250;
  m.from = 40;
  m.to = 44;
  m.acks = {{{11, 0x1122334455667788ULL}, 44}, {{13, 3}, 17}};
  m.origins = {{11, 0x1122334455667788ULL}, {13, 3}};
  m.records.push_back({.object = 1, .origin = 0, .epoch = 0, .key = Key::index(3), .value = {.a = 1000}});
  uint64_t k8 = 0xdeadbeef;
  m.records.push_back({.object = 2, .origin = 1, .epoch = 0, .key = Key::bytes(&k8, 8), .value = {.a = 5, .b = 9}});
  m.records.push_back({.object = 3, .origin = kRetiredOrigin, .epoch = 2, .key = Key::index(200), .value = {.a = 77}});
  uint8_t e16[16] = {1, 2, 3};
  m.records.push_back({.object = 5, .origin = 1, .epoch = 0, .key = Key::bytes(e16, 16), .value = {.a = 4, .b = 2}});
  WireRecord reg{.object = 6, .origin = 0, .epoch = 0, .key = Key::bytes(e16, 13), .value = {}};
  reg.value.reg.seen = 555;
  reg.value.reg.writer = 11;
  reg.value.reg.data[0] = 0xc0;
  reg.value.reg.data[47] = 0x01;
  m.records.push_back(reg);
  return m;
}

uint64_t be(const Bytes& b, size_t off, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | b[off + i];
  return v;
}

// Re-sign a datagram edited by a test (so the edit reaches the parser).
void resign(Bytes& b, const Keyring& k) {
  std::array<uint8_t, kTagSize> t;
  ASSERT_TRUE(k.tag(b[2], ByteView(b).first(b.size() - kTagSize), t));
  std::copy(t.begin(), t.end(), b.end() - kTagSize);
}

// The encoded size is what base_size() and record_size() predict, and it decodes to m (signed
// with key 1).
void expect_round_trip(const Message& m, const Bytes& b, const Schema& s, const Keyring& k) {
  size_t sizes = 0;
  for (const auto& r : m.records) sizes += record_size(*s.find(r.object));
  EXPECT_EQ(b.size(), base_size(m) + sizes);
  auto d = decode(b, s, k);
  ASSERT_TRUE(d.has_value()) << to_string(d.error());
  Message want = m;
  want.h.key_id = 1;
  EXPECT_EQ(*d, want);
}

TEST(Wire, DeltaRoundTripAndByteLayout) {
  Schema s = schema();
  auto k = ring({1}, 1);
  Message m = delta(s);
  auto b = encode(m, s, *k);
  ASSERT_TRUE(b.has_value()) << b.error().str();
  // the layout, field by field
  EXPECT_EQ((*b)[0], 2) << "wire version";
  EXPECT_EQ((*b)[1], 1) << "type delta";
  EXPECT_EQ((*b)[2], 1) << "key id";
  EXPECT_EQ((*b)[3], kFlagDraining);
  EXPECT_EQ(be(*b, 4, 2), 7u);
  EXPECT_EQ(be(*b, 6, 2), b->size() - kHeaderSize - kTagSize);
  EXPECT_EQ(be(*b, 8, 4), s.digest());
  EXPECT_EQ(be(*b, 12, 4), 11u);
  EXPECT_EQ(be(*b, 16, 8), 0x1122334455667788ULL);
  EXPECT_EQ(be(*b, 24, 4), 12u);
  EXPECT_EQ(be(*b, 28, 4), 0u);
  EXPECT_EQ(be(*b, 32, 8), 99u);
  EXPECT_EQ(be(*b, 40, 8), 5u);
  EXPECT_EQ(be(*b, 48, 8), m.h.wall_us);
  EXPECT_EQ(be(*b, 56, 8), 123456u);
  EXPECT_EQ(be(*b, 64, 8), 120000u);
  EXPECT_EQ(be(*b, 72, 4), 250u);
  EXPECT_EQ(be(*b, 80, 8), 40u) << "from";
  EXPECT_EQ(be(*b, 88, 8), 44u) << "to";
  EXPECT_EQ(be(*b, 96, 2), 2u) << "acks";
  EXPECT_EQ(be(*b, 98, 2), 2u) << "origins";
  EXPECT_EQ(be(*b, 100, 2), 5u) << "records";
  EXPECT_EQ(be(*b, 102, 2), 0u) << "gone origins";
  size_t rec = 104 + 2 * kAckBytes + 2 * kOriginBytes;
  EXPECT_EQ(be(*b, 104, 4), 11u) << "first ack: instance";
  EXPECT_EQ(be(*b, 116, 8), 44u) << "first ack: version";
  EXPECT_EQ((*b)[rec], 1) << "record: object";
  EXPECT_EQ((*b)[rec + 1], 0) << "record: origin index";
  EXPECT_EQ((*b)[rec + 4], 4) << "record: key length";
  EXPECT_EQ((*b)[rec + 5], 8) << "record: value length";
  EXPECT_EQ(be(*b, rec + 6, 4), 3u) << "array index, big-endian";
  EXPECT_EQ(be(*b, rec + 10, 8), 1000u);
  expect_round_trip(m, *b, s, *k);
}

TEST(Wire, EveryTypeRoundTrips) {
  Schema s = schema();
  auto k = ring({3, 9}, 9);
  Message base = delta(s);
  std::vector<Message> msgs;
  Message snap = base;
  snap.h.type = MsgType::Snap;
  snap.snap_id = 77;
  snap.chunk = 3;
  snap.chunks = 10;
  snap.from = snap.to = 0;  // a snapshot has no range
  msgs.push_back(snap);
  Message req = base;
  req.h.type = MsgType::SnapReq;
  req.acks.clear();
  req.origins.clear();
  req.records.clear();
  req.snap_id = 77;
  req.first_missing = 4;
  req.bitmap = {0x81, 0x00, 0xff};
  req.from = req.to = 0;
  req.chunk = req.chunks = 0;
  msgs.push_back(req);
  Message leave = req;
  leave.h.type = MsgType::Leave;
  leave.snap_id = 0;
  leave.first_missing = 0;
  leave.bitmap.clear();
  leave.final_version = 1234;
  msgs.push_back(leave);
  Message lack = leave;
  lack.h.type = MsgType::LeaveAck;
  msgs.push_back(lack);
  Message empty = base;
  empty.records.clear();
  empty.from = empty.to = 44;
  msgs.push_back(empty);
  for (Message m : msgs) {
    auto b = encode(m, s, *k);
    ASSERT_TRUE(b.has_value()) << to_string(m.h.type) << ": " << b.error().str();
    size_t sizes = 0;
    for (const auto& r : m.records) sizes += record_size(*s.find(r.object));
    EXPECT_EQ(b->size(), base_size(m) + sizes) << to_string(m.h.type);
    auto d = decode(*b, s, *k);
    ASSERT_TRUE(d.has_value()) << to_string(m.h.type) << ": " << to_string(d.error());
    m.h.key_id = 9;
    EXPECT_EQ(*d, m) << to_string(m.h.type);
  }
}

// Version 2's gone section (docs/state.md 3.12): after the origins, 20 bytes per entry; version
// 1 (no gone section, the count word reserved) still decodes and encodes; any other version is
// refused as such before the tag is checked.
TEST(Wire, GoneSectionAndWireVersions) {
  Schema s = schema();
  auto k = ring({1}, 1);
  Message m = delta(s);
  m.gone = {{{14, 0x0102030405060708ULL}, 41}, {{15, 2}, kGoneFolded}};
  auto b = encode(m, s, *k);
  ASSERT_TRUE(b.has_value()) << b.error().str();
  EXPECT_EQ((*b)[0], 2);
  EXPECT_EQ(be(*b, 102, 2), 2u) << "gone count in the section header";
  size_t g = 104 + 2 * kAckBytes + 2 * kOriginBytes;
  EXPECT_EQ(be(*b, g, 4), 14u);
  EXPECT_EQ(be(*b, g + 4, 8), 0x0102030405060708ULL);
  EXPECT_EQ(be(*b, g + 12, 8), 41u) << "relay version";
  EXPECT_EQ(be(*b, g + 32, 8), kGoneFolded);
  EXPECT_EQ((*b)[g + 2 * kGoneBytes], 1) << "the records follow: first record's object";
  expect_round_trip(m, *b, s, *k);

  // an entry naming no instance is malformed
  Bytes zero = *b;
  for (size_t i = g; i < g + 4; ++i) zero[i] = 0;
  resign(zero, *k);
  ASSERT_FALSE(decode(zero, s, *k).has_value());
  EXPECT_EQ(decode(zero, s, *k).error(), Reject::Malformed);

  // version 1: no gone section; an older peer's message decodes and re-encodes byte for byte
  Message v1 = delta(s);
  v1.h.version = 1;
  auto b1 = encode(v1, s, *k);
  ASSERT_TRUE(b1.has_value()) << b1.error().str();
  EXPECT_EQ((*b1)[0], 1);
  auto d1 = decode(*b1, s, *k);
  ASSERT_TRUE(d1.has_value()) << to_string(d1.error());
  EXPECT_EQ(d1->h.version, 1);
  auto again = encode(*d1, s, *k);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *b1);
  v1.gone = m.gone;
  EXPECT_FALSE(encode(v1, s, *k).has_value()) << "version 1 cannot carry a gone section";
  // a version 1 message with the reserved word set is malformed, not a gone section
  Bytes r1 = *b1;
  r1[103] = 1;
  resign(r1, *k);
  ASSERT_FALSE(decode(r1, s, *k).has_value());
  EXPECT_EQ(decode(r1, s, *k).error(), Reject::Malformed);

  // versions this agent does not speak: refused as "version", whatever the rest says
  for (uint8_t v : {uint8_t{0}, uint8_t{3}, uint8_t{0xff}}) {
    Bytes o = *b;
    o[0] = v;
    resign(o, *k);
    auto r = decode(o, s, *k);
    ASSERT_FALSE(r.has_value()) << int{v};
    EXPECT_EQ(r.error(), Reject::Version) << int{v};
    EXPECT_FALSE(peek_destination(o).has_value()) << "the dispatcher refuses it too";
    Message bad = m;
    bad.h.version = v;
    EXPECT_FALSE(encode(bad, s, *k).has_value()) << int{v};
  }
  EXPECT_STREQ(to_string(Reject::Version), "version");
}

TEST(Wire, EncodeRefusesRecordsThatDoNotFitTheSchema) {
  Schema s = schema();
  auto k = ring({1}, 1);
  Message m = delta(s);
  m.records.push_back({.object = 42, .origin = 0, .epoch = 0, .key = Key::index(1), .value = {}});
  EXPECT_FALSE(encode(m, s, *k).has_value());
  m = delta(s);
  uint32_t k3 = 1;
  m.records.push_back({.object = 2, .origin = 0, .epoch = 0, .key = Key::bytes(&k3, 3), .value = {}});
  EXPECT_FALSE(encode(m, s, *k).has_value()) << "a 3-byte key for an 8-byte object";
}

TEST(Wire, EveryFlippedBitIsRefused) {
  Schema s = schema();
  auto k = ring({1}, 1);
  auto b = encode(delta(s), s, *k);
  ASSERT_TRUE(b.has_value());
  for (size_t i = 0; i < b->size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      Bytes c = *b;
      c[i] ^= static_cast<uint8_t>(1 << bit);
      auto d = decode(c, s, *k);
      ASSERT_FALSE(d.has_value()) << "byte " << i << " bit " << bit;
      Reject want = i == 0 ? Reject::Version : (i == 6 || i == 7) ? Reject::Truncated : i == 2 ? Reject::UnknownKey : Reject::BadTag;
      EXPECT_EQ(d.error(), want) << "byte " << i << " bit " << bit;
    }
}

TEST(Wire, EveryTruncationIsRefused) {
  Schema s = schema();
  auto k = ring({1}, 1);
  auto b = encode(delta(s), s, *k);
  ASSERT_TRUE(b.has_value());
  for (size_t n = 0; n < b->size(); ++n) {
    Bytes c(b->begin(), b->begin() + static_cast<long>(n));
    auto d = decode(c, s, *k);
    ASSERT_FALSE(d.has_value()) << n;
    EXPECT_EQ(d.error(), Reject::Truncated) << n;
    // even with a length field and a tag that agree, a cut body does not parse
    if (n >= kHeaderSize + kTagSize) {
      c[6] = static_cast<uint8_t>((n - kHeaderSize - kTagSize) >> 8);
      c[7] = static_cast<uint8_t>(n - kHeaderSize - kTagSize);
      resign(c, *k);
      auto e = decode(c, s, *k);
      EXPECT_FALSE(e.has_value()) << n;
      if (!e) {
        EXPECT_EQ(e.error(), Reject::Malformed) << n;
      }
    }
  }
}

// Authentic (correctly signed) messages whose structure is wrong.
TEST(Wire, MalformedButSignedIsRefused) {
  Schema s = schema();
  auto k = ring({1}, 1);
  Message good = delta(s);
  auto ok = encode(good, s, *k);
  ASSERT_TRUE(ok.has_value());
  size_t rec = 104 + 2 * kAckBytes + 2 * kOriginBytes;
  struct Edit {
    const char* what;
    std::function<void(Bytes&)> edit;
    Reject want;
  };
  std::vector<Edit> edits = {
      {"unknown type", [](Bytes& b) { b[1] = 9; }, Reject::Malformed},
      {"unknown flag", [](Bytes& b) { b[3] |= 0x80; }, Reject::Malformed},
      {"reserved word", [](Bytes& b) { b[31] = 1; }, Reject::Malformed},
      {"sender 0", [](Bytes& b) { std::fill(b.begin() + 12, b.begin() + 16, 0); }, Reject::Malformed},
      {"sequence 0", [](Bytes& b) { std::fill(b.begin() + 40, b.begin() + 48, 0); }, Reject::Malformed},
      {"schema", [](Bytes& b) { b[11] ^= 1; }, Reject::Schema},
      {"from > to", [](Bytes& b) { b[87] = 45; }, Reject::Malformed},
      {"ack count too large", [](Bytes& b) { b[96] = 0xff; }, Reject::Malformed},
      {"record count too large", [](Bytes& b) { b[101] = 6; }, Reject::Malformed},
      {"record count too small", [](Bytes& b) { b[101] = 4; }, Reject::Malformed},
      {"unknown object", [rec](Bytes& b) { b[rec] = 99; }, Reject::Malformed},
      {"origin index past the origins", [rec](Bytes& b) { b[rec + 1] = 2; }, Reject::Malformed},
      {"retired origin on a set", [rec, &s](Bytes& b) {
         size_t r = rec + record_size(*s.find(1)) + record_size(*s.find(2)) + record_size(*s.find(3));
         b[r + 1] = kRetiredOrigin;
       }, Reject::Malformed},
      {"key length", [rec](Bytes& b) { b[rec + 4] = 5; }, Reject::Malformed},
      {"value length", [rec](Bytes& b) { b[rec + 5] = 16; }, Reject::Malformed},
      {"array index past the cells", [rec](Bytes& b) { b[rec + 9] = 16; }, Reject::Malformed},
      {"ack for instance 0", [](Bytes& b) { std::fill(b.begin() + 104, b.begin() + 108, 0); }, Reject::Malformed},
  };
  for (auto& e : edits) {
    Bytes c = *ok;
    e.edit(c);
    resign(c, *k);
    auto d = decode(c, s, *k);
    ASSERT_FALSE(d.has_value()) << e.what;
    EXPECT_EQ(d.error(), e.want) << e.what << ": " << to_string(d.error());
  }
  // trailing bytes, declared in the length and signed
  Bytes c = *ok;
  c.insert(c.end() - kTagSize, 3, 0);
  size_t body = c.size() - kHeaderSize - kTagSize;
  c[6] = static_cast<uint8_t>(body >> 8);
  c[7] = static_cast<uint8_t>(body);
  resign(c, *k);
  auto d = decode(c, s, *k);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error(), Reject::Malformed) << "trailing bytes";
}

TEST(Wire, KeysAndRotation) {
  Schema s = schema();
  auto old_ring = ring({1}, 1);
  auto rollover = ring({1, 2}, 1);     // new key installed, old one still sent
  auto switched = ring({1, 2}, 2);     // new key sent, old one still accepted
  auto new_ring = ring({2}, 2);        // old key removed
  Message m = delta(s);
  auto under1 = encode(m, s, *old_ring);
  auto under2 = encode(m, s, *switched);
  ASSERT_TRUE(under1 && under2);
  EXPECT_TRUE(decode(*under1, s, *rollover).has_value());
  EXPECT_TRUE(decode(*under2, s, *rollover).has_value());
  EXPECT_TRUE(decode(*under1, s, *switched).has_value());
  EXPECT_EQ(decode(*under1, s, *new_ring).error(), Reject::UnknownKey);
  EXPECT_TRUE(decode(*under2, s, *new_ring).has_value());
  // same id, another secret: forged
  auto impostor = Keyring::make({{1, secret(0x77)}}, 1);
  ASSERT_TRUE(impostor.has_value());
  auto forged = encode(m, s, **impostor);
  ASSERT_TRUE(forged.has_value());
  EXPECT_EQ(decode(*forged, s, *old_ring).error(), Reject::BadTag);

  EXPECT_FALSE(Keyring::make({}, 1).has_value());
  EXPECT_FALSE(Keyring::make({{0, secret(1)}}, 0).has_value()) << "id 0";
  EXPECT_FALSE(Keyring::make({{1, std::vector<uint8_t>(31, 1)}}, 1).has_value()) << "short";
  EXPECT_FALSE(Keyring::make({{1, secret(1)}, {1, secret(2)}}, 1).has_value()) << "duplicate";
  EXPECT_FALSE(Keyring::make({{1, secret(1)}}, 2).has_value()) << "send key missing";
  EXPECT_FALSE(Keyring::make({{1, secret(1)}, {2, secret(1)}, {3, secret(1)}, {4, secret(1)}, {5, secret(1)}}, 1)
                   .has_value())
      << "five keys";
  auto hex = parse_hex_key("0x" + std::string(64, 'a'));
  ASSERT_TRUE(hex.has_value());
  EXPECT_EQ(hex->size(), 32u);
  EXPECT_EQ((*hex)[0], 0xaa);
  EXPECT_FALSE(parse_hex_key(std::string(62, 'a')).has_value());
  EXPECT_FALSE(parse_hex_key(std::string(63, 'a') + "g").has_value());
  EXPECT_FALSE(parse_hex_key(std::string(130, 'a')).has_value());
}

// ---- the gate --------------------------------------------------------------------------------

class GateTest : public ::testing::Test {
 protected:
  Schema s = schema();
  std::shared_ptr<const Keyring> k = ring({1}, 1);
  Gate gate{Identity{.service = 7, .id = 12, .incarnation = 99}};
  uint64_t now = 1'700'000'000'000'000ULL;

  Bytes make(uint64_t seq, uint64_t inc = 0x1122334455667788ULL, std::function<void(Message&)> edit = {}) {
    Message m = delta(s);
    m.h.seq = seq;
    m.h.sender.incarnation = inc;
    m.h.wall_us = now;
    if (edit) edit(m);
    auto b = encode(m, s, *k);
    if (!b) throw std::runtime_error(b.error().str());
    return *b;
  }
  Reject refused(const Bytes& b) {
    auto r = gate.admit(b, s, *k, now);
    EXPECT_FALSE(r.has_value());
    return r ? Reject::Count : r.error();
  }
  bool ok(const Bytes& b) { return gate.admit(b, s, *k, now).has_value(); }
};

TEST_F(GateTest, ReplaysAndOldSequenceNumbersAreRefusedAndCounted) {
  EXPECT_TRUE(ok(make(10)));
  EXPECT_EQ(refused(make(10)), Reject::Replay);
  EXPECT_TRUE(ok(make(8))) << "reordered inside the window";
  EXPECT_EQ(refused(make(8)), Reject::Replay);
  EXPECT_TRUE(ok(make(2000)));
  EXPECT_TRUE(ok(make(2000 - ReplayWindow::kSize + 1)));
  EXPECT_EQ(refused(make(2000 - ReplayWindow::kSize)), Reject::TooOld);
  EXPECT_EQ(refused(make(9)), Reject::TooOld);
  EXPECT_EQ(gate.rejected(Reject::Replay), 2u);
  EXPECT_EQ(gate.rejected(Reject::TooOld), 2u);
  EXPECT_EQ(gate.accepted(), 4u);
  EXPECT_EQ(gate.by_key().at(1), 4u);
}

TEST_F(GateTest, IncarnationsOfTheSender) {
  EXPECT_TRUE(ok(make(50, 5)));
  EXPECT_TRUE(ok(make(1, 6))) << "a restarted sender starts again from 1";
  EXPECT_EQ(refused(make(51, 5)), Reject::StaleIncarnation) << "its previous life is over";
  EXPECT_EQ(refused(make(1, 6)), Reject::Replay);
  EXPECT_TRUE(ok(make(2, 6)));
}

TEST_F(GateTest, MisdirectedStaleAndSkewedAreRefused) {
  EXPECT_EQ(refused(make(1, 1, [](Message& m) { m.h.service = 8; })), Reject::Service);
  EXPECT_EQ(refused(make(2, 1, [](Message& m) { m.h.receiver = 13; })), Reject::Receiver);
  EXPECT_EQ(refused(make(3, 1, [](Message& m) { m.h.receiver_incarnation = 98; })), Reject::ReceiverIncarnation);
  EXPECT_TRUE(ok(make(4, 1, [](Message& m) { m.h.receiver_incarnation = 0; }))) << "first contact";
  EXPECT_EQ(refused(make(5, 1, [this](Message& m) { m.h.wall_us = now - 61'000'000; })), Reject::Clock);
  EXPECT_EQ(refused(make(6, 1, [this](Message& m) { m.h.wall_us = now + 61'000'000; })), Reject::Clock);
  EXPECT_TRUE(ok(make(7, 1, [this](Message& m) { m.h.wall_us = now - 59'000'000; })));
  Schema other = *Schema::make({{.id = 1, .kind = Kind::GCounter, .name = "x", .cells = 8}});
  EXPECT_EQ(refused(make(8, 1, [&](Message& m) {
              m.h.schema = other.digest();
              m.records.clear();
            })),
            Reject::Schema);
  EXPECT_TRUE(ok(make(5, 1))) << "refused messages do not enter the window";
  auto forged = ring({1}, 1);
  Bytes b = make(9);
  b[50] ^= 1;
  EXPECT_EQ(refused(b), Reject::BadTag);
  EXPECT_EQ(gate.rejected_total(), 7u);
  auto dest = peek_destination(make(10));
  ASSERT_TRUE(dest.has_value());
  EXPECT_EQ(dest->service, 7);
  EXPECT_EQ(dest->receiver, 12u);
}

TEST_F(GateTest, RandomGarbageIsRefusedWithoutCrashing) {
  std::mt19937_64 rng(9);
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 300);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (b.size() > 8 && rng() % 2) {
      b[0] = 1;
      b[2] = 1;
      size_t body = b.size() >= kHeaderSize + kTagSize ? b.size() - kHeaderSize - kTagSize : 0;
      b[6] = static_cast<uint8_t>(body >> 8);
      b[7] = static_cast<uint8_t>(body);
    }
    EXPECT_FALSE(gate.admit(b, s, *k, now).has_value());
  }
  EXPECT_EQ(gate.accepted(), 0u);
  EXPECT_EQ(gate.rejected_total(), 20000u);
}

}  // namespace
}  // namespace anychain::state
