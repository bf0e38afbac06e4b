// The FTC channel (docs/ftc.md 4.4): every message type through the codec and back; frames
// refused for each reason (truncated, unknown type, oversize, forged tag, replayed, reordered,
// from another connection, reflected, before HELLO); two channels over loopback TCP: HELLO,
// messages both ways, heartbeats, the detector, reconnection, and a forged frame closing the
// connection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include "ftc/channel.h"

namespace anychain::ftc {
namespace {

using namespace std::chrono_literals;
using chan::Body;
using chan::Reject;
using chan::Session;
using chan::Type;

std::shared_ptr<const state::Keyring> ring(uint8_t id = 1, uint8_t fill = 0x42) {
  auto k = state::Keyring::make({{id, std::vector<uint8_t>(32, fill)}}, id);
  EXPECT_TRUE(k) << k.error().str();
  return *k;
}

chan::Nonce nonce(uint8_t v) {
  chan::Nonce n{};
  n.fill(v);
  n[0] = 0xa5;
  return n;
}

Record record(uint32_t seq) {
  Record r;
  r.seq = seq;
  r.inc = 2;
  r.held = 1;
  r.kv[{1, Bytes(13, 7)}] = Bytes(16, 9);
  r.kv[{2, Bytes{1, 2, 3, 4}}] = Bytes{};
  return r;
}

Log log_of(uint16_t id, uint32_t seq) {
  Log l;
  l.flags = AC_FTC_LOG_WRAPPED;
  l.mbox = {id, 1, 254};
  l.seq = seq;
  l.writes.push_back({1, false, Bytes{1, 2, 3}, Bytes{4, 5}});
  return l;
}

std::vector<Body> every_message() {
  std::vector<Body> v;
  v.push_back(chan::Hello{nonce(3), 100});
  v.push_back(chan::Heartbeat{123456789});
  v.push_back(chan::ResyncReq{7, {42, 0x11223344}, {9, 1, 254}, 17});
  v.push_back(chan::Resync{7, {42, 0x11223344}, {9, 1, 254}, record(20)});
  v.push_back(chan::Resync{8, {42, 5}, {9, 1, 254}, std::nullopt});
  Feedback fb;
  fb.flow = {42, 0x11223344};
  fb.ingress = 0x0a000001;
  fb.f = 2;
  fb.logs = {log_of(7, 5), log_of(9, 3)};
  fb.logs[1].count = 0;
  fb.logs[1].writes.clear();
  v.push_back(fb);
  chan::Released rel;
  rel.flow = {42, 99};
  rel.cv[{7, 255}] = {1, 5};
  rel.cv[{9, 254}] = {0, 77};
  v.push_back(rel);
  chan::RecoverReq rr;
  rr.req = 3;
  rr.instance = 9;
  rr.new_inc = 2;
  rr.round = 2;
  rr.mboxes = {{7, 255}, {8, 253}};
  rr.flows = {{42, 1}, {42, 2}, {43, 3}};
  v.push_back(rr);
  chan::Recover rc;
  rc.req = 3;
  rc.batch = 1;
  rc.records.push_back({{9, 254, {42, 1}}, chan::Role::Head, record(3)});
  rc.records.push_back({{7, 255, {42, 2}}, chan::Role::Replica, record(4)});
  v.push_back(rc);
  v.push_back(chan::RecoverDone{3, 2, 2, chan::RecoverStatus::Conflict});
  return v;
}

TEST(FtcChannelCodec, EveryTypeRoundTrips) {
  std::set<Type> seen;
  for (const auto& m : every_message()) {
    seen.insert(chan::type_of(m));
    auto b = chan::encode_body(m);
    ASSERT_TRUE(b) << chan::to_string(chan::type_of(m)) << ": " << b.error().str();
    auto d = chan::decode_body(chan::type_of(m), *b);
    ASSERT_TRUE(d) << chan::to_string(chan::type_of(m)) << ": " << chan::to_string(d.error());
    EXPECT_EQ(*d, m) << chan::to_string(chan::type_of(m));
    // one encoding per message
    auto again = chan::encode_body(*d);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *b);
  }
  EXPECT_EQ(seen.size(), 9u);
}

TEST(FtcChannelCodec, ExactBytesOfResyncReq) {
  auto b = chan::encode_body(chan::ResyncReq{7, {42, 0x11223344}, {9, 1, 254}, 17});
  ASSERT_TRUE(b);
  const std::vector<uint8_t> want = {0, 0, 0, 7, 0, 0, 0, 42, 0x11, 0x22, 0x33, 0x44, 0, 9, 1, 254, 0, 0, 0, 17};
  EXPECT_EQ(*b, want);
}

TEST(FtcChannelCodec, EveryTruncationAndExtensionRefused) {
  for (const auto& m : every_message()) {
    auto b = *chan::encode_body(m);
    for (size_t n = 0; n < b.size(); ++n) {
      auto d = chan::decode_body(chan::type_of(m), std::span(b.data(), n));
      EXPECT_FALSE(d) << chan::to_string(chan::type_of(m)) << " cut to " << n;
    }
    b.push_back(0);
    EXPECT_FALSE(chan::decode_body(chan::type_of(m), b)) << chan::to_string(chan::type_of(m)) << " with a trailing byte";
  }
}

TEST(FtcChannelCodec, BadBodiesRefused) {
  EXPECT_EQ(chan::decode_body(static_cast<Type>(0), {}).error(), Reject::UnknownType);
  EXPECT_EQ(chan::decode_body(static_cast<Type>(10), {}).error(), Reject::UnknownType);
  std::vector<uint8_t> big(chan::kMaxBody + 1);
  EXPECT_EQ(chan::decode_body(Type::Recover, big).error(), Reject::Oversize);
  // a record with 5 keys; a key of 17 bytes; a value of 33 bytes
  Record r = record(1);
  for (uint8_t i = 3; i < 6; ++i) r.kv[{i, Bytes{i}}] = {};
  EXPECT_FALSE(chan::encode_body(chan::Resync{1, {1, 1}, {1, 0, 255}, r}));
  auto good = *chan::encode_body(chan::Resync{1, {1, 1}, {1, 0, 255}, record(1)});
  auto bad = good;
  bad[20 + 6] = 5;  // nslots
  EXPECT_EQ(chan::decode_body(Type::Resync, bad).error(), Reject::Malformed);
  bad = good;
  bad[20 + 8 + 1] = 17;  // klen of the first slot
  EXPECT_EQ(chan::decode_body(Type::Resync, bad).error(), Reject::Malformed);
  bad = good;
  bad[17] = 1;  // reserved
  EXPECT_EQ(chan::decode_body(Type::Resync, bad).error(), Reject::Malformed);
  bad = good;
  bad[16] = 2;  // found is 0 or 1
  EXPECT_EQ(chan::decode_body(Type::Resync, bad).error(), Reject::Malformed);
  // a feedback log that breaks the piggyback log's rules (held 0)
  Feedback fb;
  fb.flow = {1, 1};
  fb.ingress = 1;
  fb.logs = {log_of(7, 5)};
  auto fbb = *chan::encode_body(fb);
  fbb[16 + 1 + 1] = 0;  // the log's held byte
  EXPECT_EQ(chan::decode_body(Type::Feedback, fbb).error(), Reject::Malformed);
  fb.f = 5;
  EXPECT_FALSE(chan::encode_body(fb));
  // RELEASED with two entries for one middlebox (not canonical)
  std::vector<uint8_t> rel = {0, 0, 0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 7, 0, 255, 0, 0, 0, 1, 0, 7, 1, 255, 0, 0, 0, 2};
  EXPECT_EQ(chan::decode_body(Type::Released, rel).error(), Reject::Malformed);
  // RECOVER_REQ whose counts disagree with its length, or round 3
  chan::RecoverReq rr{1, 9, 1, 1, {{7, 255}}, {{1, 2}}};
  auto rrb = *chan::encode_body(rr);
  rrb[15] = 2;  // nflows
  EXPECT_EQ(chan::decode_body(Type::RecoverReq, rrb).error(), Reject::Malformed);
  rr.round = 3;
  EXPECT_FALSE(chan::encode_body(rr));
  // a RECOVER batch over 64 KB is refused when encoded
  chan::Recover big_batch;
  for (uint32_t i = 0; i < 2000; ++i) big_batch.records.push_back({{1, 255, {1, i}}, chan::Role::Head, record(i)});
  EXPECT_FALSE(chan::encode_body(big_batch));
}

// Two sessions wired back to back (a = node 1 opening, b = node 2 accepting).
struct Pair {
  Session a{ring(), 1, 2, nonce(1)};
  Session b{ring(), 2, 0, nonce(2)};
  std::vector<uint8_t> to_a, to_b;
  void handshake() {
    to_b = *a.hello(100);
    to_a = *b.hello(100);
    auto m = b.next(to_b);
    ASSERT_TRUE(m && *m);
    EXPECT_EQ(chan::type_of(**m), Type::Hello);
    m = a.next(to_a);
    ASSERT_TRUE(m && *m);
    ASSERT_TRUE(a.established() && b.established());
    EXPECT_EQ(b.peer(), 1u);
  }
};

TEST(FtcChannelSession, MessagesBothWaysInOrder) {
  Pair p;
  p.handshake();
  for (const auto& m : every_message()) {
    if (chan::type_of(m) == Type::Hello) continue;
    auto f = p.a.seal(m);
    ASSERT_TRUE(f);
    p.to_b.insert(p.to_b.end(), f->begin(), f->end());
  }
  // byte by byte: incomplete frames wait
  std::vector<uint8_t> stream = std::move(p.to_b), buf;
  std::vector<Body> got;
  for (uint8_t byte : stream) {
    buf.push_back(byte);
    auto m = p.b.next(buf);
    ASSERT_TRUE(m) << chan::to_string(m.error());
    if (*m) got.push_back(**m);
  }
  EXPECT_TRUE(buf.empty());
  ASSERT_EQ(got.size(), every_message().size() - 1);
  EXPECT_EQ(got.front(), every_message()[1]);
  auto back = p.b.seal(chan::Heartbeat{5});
  ASSERT_TRUE(back);
  auto m = p.a.next(*back);
  ASSERT_TRUE(m && *m);
  EXPECT_EQ(std::get<chan::Heartbeat>(**m).tx_us, 5u);
}

TEST(FtcChannelSession, ForgedTagRefused) {
  Pair p;
  p.handshake();
  auto f = *p.a.seal(chan::Heartbeat{1});
  for (size_t at : {size_t{4}, size_t{12}, size_t{24}, f.size() - 1}) {
    Pair q;
    q.handshake();
    auto g = *q.a.seal(chan::Heartbeat{1});
    g[at] ^= 0x01;
    auto m = q.b.next(g);
    ASSERT_FALSE(m) << "flipped byte " << at;
    EXPECT_EQ(m.error(), Reject::BadTag) << "flipped byte " << at;
  }
  // the right structure under another key
  Session a{ring(1, 0x43), 1, 2, nonce(1)}, b{ring(), 2, 0, nonce(2)};
  auto h = *a.hello(100);
  EXPECT_EQ(b.next(h).error(), Reject::BadTag);
  // a key id the receiver does not have
  Session c{ring(7), 1, 2, nonce(1)};
  auto h7 = *c.hello(100);
  Session d{ring(), 2, 0, nonce(2)};
  EXPECT_EQ(d.next(h7).error(), Reject::UnknownKey);
}

TEST(FtcChannelSession, ReplayAndReorderRefused) {
  Pair p;
  p.handshake();
  auto f1 = *p.a.seal(chan::Heartbeat{1});
  auto copy1 = f1;
  ASSERT_TRUE(p.b.next(f1));
  auto replay = p.b.next(copy1);
  ASSERT_FALSE(replay);
  EXPECT_EQ(replay.error(), Reject::Sequence);
  Pair q;
  q.handshake();
  (void)q.a.seal(chan::Heartbeat{1});  // lost
  auto g2 = *q.a.seal(chan::Heartbeat{2});
  auto skipped = q.b.next(g2);  // g1 never arrived
  ASSERT_FALSE(skipped);
  EXPECT_EQ(skipped.error(), Reject::Sequence);
}

TEST(FtcChannelSession, FrameOfAnotherConnectionRefused) {
  Pair p;
  p.handshake();
  auto f = *p.a.seal(chan::Heartbeat{1});
  // the same nodes, new nonces: the frame's tag covers the old ones
  Pair q;
  q.a = Session{ring(), 1, 2, nonce(5)};
  q.b = Session{ring(), 2, 0, nonce(6)};
  q.handshake();
  auto m = q.b.next(f);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error(), Reject::BadTag);
}

TEST(FtcChannelSession, ProtocolViolationsRefused) {
  {  // a message before HELLO
    Pair p;
    p.handshake();
    auto f = *p.a.seal(chan::Heartbeat{1});
    Session fresh{ring(), 2, 0, nonce(2)};
    EXPECT_EQ(fresh.next(f).error(), Reject::Protocol);
  }
  {  // a second HELLO
    Session a{ring(), 1, 2, nonce(1)}, a2{ring(), 1, 2, nonce(9)}, b{ring(), 2, 0, nonce(2)};
    auto h = *a.hello(100), h2 = *a2.hello(100);
    ASSERT_TRUE(b.next(h));
    EXPECT_EQ(b.next(h2).error(), Reject::Protocol);
  }
  {  // our own HELLO reflected, and a HELLO for another node
    Session b{ring(), 2, 0, nonce(2)};
    auto h = *b.hello(100);
    EXPECT_EQ(b.next(h).error(), Reject::Protocol);
    Session a{ring(), 1, 3, nonce(1)}, c{ring(), 2, 0, nonce(2)};
    auto h3 = *a.hello(100);
    EXPECT_EQ(c.next(h3).error(), Reject::Protocol);
  }
  {  // the expected peer is another node
    Session a{ring(), 4, 2, nonce(1)}, b{ring(), 2, 1, nonce(2)};
    auto h = *a.hello(100);
    EXPECT_EQ(b.next(h).error(), Reject::Protocol);
  }
  {  // HELLO is never sealed after the handshake; nothing is sealed before it
    Pair p;
    EXPECT_FALSE(p.a.seal(chan::Heartbeat{1}));
    p.handshake();
    EXPECT_FALSE(p.a.seal(chan::Hello{}));
  }
}

TEST(FtcChannelSession, VersionAndOversizeRefusedFromTheHeader) {
  Pair p;
  p.handshake();
  auto f = *p.a.seal(chan::Heartbeat{1});
  auto v = f;
  v[0] = 2;
  EXPECT_EQ(p.b.next(v).error(), Reject::Version);
  // a body length over the limit is refused before the body is waited for
  std::vector<uint8_t> o(f.begin(), f.begin() + chan::kHeaderSize);
  o[20] = 0x7f;
  Pair q;
  q.handshake();
  EXPECT_EQ(q.b.next(o).error(), Reject::Oversize);
}

TEST(FtcChannelSession, KeyRotation) {
  auto both = *state::Keyring::make({{1, std::vector<uint8_t>(32, 0x42)}, {2, std::vector<uint8_t>(32, 0x44)}}, 2);
  auto old_only = ring(1);
  Session a{both, 1, 2, nonce(1)}, b{old_only, 2, 0, nonce(2)};
  auto h = *a.hello(100);
  EXPECT_EQ(b.next(h).error(), Reject::UnknownKey);  // b does not have key 2 yet
  Session a2{old_only, 1, 2, nonce(1)}, b2{both, 2, 0, nonce(2)};
  auto h2 = *a2.hello(100);
  ASSERT_TRUE(b2.next(h2));
  EXPECT_EQ(b2.last_key_id(), 1);
  auto h3 = *b2.hello(100);
  EXPECT_EQ(a2.next(h3).error(), Reject::UnknownKey);
  // a2 rotates: it now accepts key 2 (its HELLO went out under key 1 and is still valid)
  a2.set_keys(both);
  auto ok = a2.next(h3);
  ASSERT_TRUE(ok && *ok);
  EXPECT_EQ(a2.last_key_id(), 2);
}

// Two channels on loopback addresses 127.0.0.1 and 127.0.0.2, ephemeral ports.
struct Net {
  static constexpr uint32_t kA = 0x7f000001, kB = 0x7f000002;
  std::map<uint32_t, uint16_t> ports;
  std::unique_ptr<Channel> a, b;
  std::vector<std::pair<uint32_t, bool>> a_events, b_events;

  std::unique_ptr<Channel> make(uint32_t self, std::chrono::milliseconds interval = 20ms) {
    ChannelOptions o;
    o.self = self;
    o.port = 0;
    o.interval = interval;
    o.misses = 3;
    o.reconnect_min = 10ms;
    o.reconnect_max = 40ms;
    o.port_of = [this](uint32_t n) { return ports.at(n); };
    auto c = Channel::open(o, ring());
    EXPECT_TRUE(c) << c.error().str();
    ports[self] = (*c)->local_port();
    return std::move(*c);
  }
  Net() {
    a = make(kA);
    b = make(kB);
    a->on_peer = [this](uint32_t n, bool up) { a_events.emplace_back(n, up); };
    b->on_peer = [this](uint32_t n, bool up) { b_events.emplace_back(n, up); };
  }
  // poll both until pred or the deadline
  template <class P>
  bool run(P pred, std::chrono::milliseconds limit = 3000ms, bool tick_b = true) {
    auto end = Channel::Clock::now() + limit;
    while (Channel::Clock::now() < end) {
      if (pred()) return true;
      step(tick_b);
    }
    return pred();
  }
  void step(bool tick_b = true) {
    std::vector<pollfd> fds;
    std::vector<Channel*> owner;
    for (Channel* c : {a.get(), b.get()}) {
      if (!c || (c == b.get() && !tick_b)) continue;
      for (auto p : c->poll_fds()) {
        fds.push_back(p);
        owner.push_back(c);
      }
    }
    poll(fds.data(), fds.size(), 5);
    for (size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents) owner[i]->on_event(fds[i].fd, fds[i].revents);
    a->on_timer();
    if (b && tick_b) b->on_timer();
  }
};

TEST(FtcChannelTcp, MessagesBothWaysHandlersAndStatus) {
  Net n;
  std::vector<Body> at_b;
  std::vector<std::pair<uint32_t, Body>> at_a;
  for (auto t : {Type::ResyncReq, Type::Feedback, Type::Released, Type::RecoverReq, Type::Recover, Type::RecoverDone,
                 Type::Resync})
    n.b->on(t, [&](uint32_t from, const Body& m) {
      EXPECT_EQ(from, Net::kA);
      at_b.push_back(m);
    });
  n.a->on(Type::Resync, [&](uint32_t from, const Body& m) { at_a.emplace_back(from, m); });
  // queued before any connection exists: sent once it is made
  auto msgs = every_message();
  for (size_t i = 2; i < msgs.size(); ++i) ASSERT_TRUE(n.a->send(Net::kB, msgs[i]));
  ASSERT_TRUE(n.run([&] { return at_b.size() == msgs.size() - 2; }));
  for (size_t i = 2; i < msgs.size(); ++i) EXPECT_EQ(at_b[i - 2], msgs[i]);
  ASSERT_TRUE(n.b->send(Net::kA, msgs[3]));
  ASSERT_TRUE(n.run([&] { return at_a.size() == 1; }));
  EXPECT_EQ(at_a[0].first, Net::kB);
  EXPECT_EQ(at_a[0].second, msgs[3]);
  EXPECT_TRUE(n.a->connected(Net::kB));
  EXPECT_TRUE(n.b->connected(Net::kA));
  ASSERT_EQ(n.a_events.size(), 1u);
  EXPECT_EQ(n.a_events[0], (std::pair<uint32_t, bool>{Net::kB, true}));
  // heartbeats keep an idle connection up past the detector's limit
  auto hb = n.b->stats().received[static_cast<size_t>(Type::Heartbeat)];
  n.run([] { return false; }, 200ms);
  EXPECT_GT(n.b->stats().received[static_cast<size_t>(Type::Heartbeat)], hb + 3);
  EXPECT_TRUE(n.a->connected(Net::kB));
  EXPECT_EQ(n.a->stats().detector_down, 0u);
  EXPECT_EQ(n.a->stats().rejected_total() + n.b->stats().rejected_total(), 0u);
  auto ps = n.a->peers();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_TRUE(ps[0].up);
  EXPECT_EQ(ps[0].connections, 1u);
  EXPECT_GE(ps[0].sent, msgs.size() - 2);
}

TEST(FtcChannelTcp, SimultaneousConnectsEndWithOneConnection) {
  Net n;
  int got_a = 0, got_b = 0;
  n.a->on(Type::ResyncReq, [&](uint32_t, const Body&) { ++got_a; });
  n.b->on(Type::ResyncReq, [&](uint32_t, const Body&) { ++got_b; });
  n.a->set_peers({Net::kB});
  n.b->set_peers({Net::kA});
  ASSERT_TRUE(n.run([&] { return n.a->connected(Net::kB) && n.b->connected(Net::kA); }));
  n.run([] { return false; }, 100ms);
  EXPECT_EQ(n.a->peers()[0].connections, 1u);
  EXPECT_EQ(n.b->peers()[0].connections, 1u);
  ASSERT_TRUE(n.a->send(Net::kB, chan::ResyncReq{}));
  ASSERT_TRUE(n.b->send(Net::kA, chan::ResyncReq{}));
  ASSERT_TRUE(n.run([&] { return got_a == 1 && got_b == 1; }));
}

TEST(FtcChannelTcp, DetectorAndReconnect) {
  Net n;
  n.a->set_peers({Net::kB});
  ASSERT_TRUE(n.run([&] { return n.a->connected(Net::kB); }));
  // b stops answering (its process hangs): a declares it down after misses x interval
  auto t0 = Channel::Clock::now();
  ASSERT_TRUE(n.run([&] { return !n.a->connected(Net::kB); }, 2000ms, false));
  auto took = Channel::Clock::now() - t0;
  EXPECT_GE(took, 40ms);  // 3 x 20 ms, from the last frame heard
  EXPECT_EQ(n.a->stats().detector_down, 1u);
  ASSERT_GE(n.a_events.size(), 2u);
  EXPECT_EQ(n.a_events.back(), (std::pair<uint32_t, bool>{Net::kB, false}));
  // b resumes: a reconnects to its wanted peer
  ASSERT_TRUE(n.run([&] { return n.a->connected(Net::kB); }));
  EXPECT_EQ(n.a_events.back(), (std::pair<uint32_t, bool>{Net::kB, true}));
  // b restarts (a new process on the same port): a reconnects again, and messages flow
  uint16_t port = n.ports[Net::kB];
  n.b.reset();
  ASSERT_TRUE(n.run([&] { return !n.a->connected(Net::kB); }, 2000ms, false));
  ChannelOptions o;
  o.self = Net::kB;
  o.port = port;
  o.interval = 20ms;
  auto b = Channel::open(o, ring());
  ASSERT_TRUE(b) << b.error().str();
  n.b = std::move(*b);
  int got = 0;
  n.b->on(Type::Heartbeat, [&](uint32_t, const Body&) { ++got; });
  ASSERT_TRUE(n.run([&] { return got > 0; }));
}

TEST(FtcChannelTcp, ForgedFrameClosesTheConnection) {
  Net n;
  n.a->set_peers({Net::kB});
  ASSERT_TRUE(n.run([&] { return n.b->connected(Net::kA); }));
  // an attacker connects to b and sends a HELLO signed with another key
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(n.ports[Net::kB]);
  sa.sin_addr.s_addr = htonl(Net::kB);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  Session evil{ring(1, 0x66), Net::kA, Net::kB, nonce(9)};
  auto h = *evil.hello(20);
  ASSERT_EQ(::send(fd, h.data(), h.size(), 0), static_cast<ssize_t>(h.size()));
  ASSERT_TRUE(n.run([&] { return n.b->stats().rejected[static_cast<size_t>(Reject::BadTag)] == 1; }));
  // b closed that connection: the attacker reads b's HELLO, then end of stream
  std::vector<uint8_t> buf(4096);
  ssize_t total = 0, r;
  while ((r = recv(fd, buf.data(), buf.size(), 0)) > 0) total += r;
  EXPECT_EQ(r, 0);
  EXPECT_GT(total, 0);
  ::close(fd);
  // the real peer's connection is untouched
  EXPECT_TRUE(n.b->connected(Net::kA));
  // half a frame then EOF: counted as truncated
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::send(fd, h.data(), 10, 0), 10);
  ::close(fd);
  ASSERT_TRUE(n.run([&] { return n.b->stats().rejected[static_cast<size_t>(Reject::Truncated)] == 1; }));
}

TEST(FtcChannelTcp, RefusesBadOptions) {
  ChannelOptions o;
  o.port = 0;
  EXPECT_FALSE(Channel::open(o, ring()));  // no self
  o.self = Net::kA;
  EXPECT_FALSE(Channel::open(o, nullptr));
  o.misses = 0;
  EXPECT_FALSE(Channel::open(o, ring()));
}

}  // namespace
}  // namespace anychain::ftc
