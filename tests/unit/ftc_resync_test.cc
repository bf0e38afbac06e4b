// FTC re-requests (docs/ftc.md 4.3): the NF's ask on the agent's socket (its encoding, strict
// decoding, the asker's rate limits), the order a re-request installs by, and the agent's service
// on a fake channel: what it sends, what it refuses and counts (an ask by a foreign instance or for
// a middlebox of unknown node, an answer to no request, from the wrong node, for another
// partition, with a record the NF cannot hold), NONE, timeouts. The install into real maps is
// tests/nf/ftc_resync_test.cc (bpf).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon/ftc_resync.h"
#include "nf/resync.h"

namespace anychain::test {
namespace {

namespace chan = ftc::chan;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const nf::ResyncAsk kAsk{8, 42, 0x11223344, AC_FTC_MBOX(7, 1, 255), 5};

TEST(ResyncAsk, EncodesToItsFixedLayoutAndBack) {
  auto b = nf::encode_resync_ask(kAsk);
  const std::array<uint8_t, 24> want = {'A', 'C', 'R', 'S', 1, 0, 0, 8, 0, 0, 0, 42, 0x11, 0x22, 0x33, 0x44,
                                        0, 7, 1, 255, 0, 0, 0, 5};
  EXPECT_EQ(b, want);
  auto d = nf::decode_resync_ask(b);
  ASSERT_TRUE(d.has_value()) << d.error().str();
  EXPECT_EQ(*d, kAsk);
}

TEST(ResyncAsk, RefusesAnythingElse) {
  auto ok = nf::encode_resync_ask(kAsk);
  auto bad = [](std::array<uint8_t, 24> b, auto mutate) {
    mutate(b);
    return !nf::decode_resync_ask(b).has_value();
  };
  EXPECT_FALSE(nf::decode_resync_ask(std::span<const uint8_t>(ok.data(), 23)).has_value()) << "short";
  std::vector<uint8_t> longer(ok.begin(), ok.end());
  longer.push_back(0);
  EXPECT_FALSE(nf::decode_resync_ask(longer).has_value()) << "long";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[0] = 'X'; })) << "magic";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[4] = 2; })) << "version";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[5] = 1; })) << "reserved";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[6] = b[7] = 0; })) << "asker 0";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[6] = 0x40; })) << "asker over the instance ids";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[16] = b[17] = 0; })) << "middlebox 0";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[17] = 8; })) << "its own log";
  EXPECT_TRUE(bad(ok, [](auto& b) { b[8] = 1; })) << "SPI over 24 bits";
}

class ResyncSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ac-resync-unit-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    path_ = nf::resync_socket_path(dir_.string());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(ResyncSocket, AsksReachTheListenerRateLimitedPerRecordAndInAll) {
  nf::ResyncAsker::Options ao;
  ao.path = path_;
  ao.per_second = 10;  // burst: 8
  nf::ResyncAsker asker(ao);
  const auto t0 = Clock::now();
  EXPECT_EQ(asker.ask(kAsk, t0), nf::ResyncAsker::Outcome::Unsent) << "no agent yet";
  auto l = nf::ResyncListener::open(path_);
  ASSERT_TRUE(l.has_value()) << l.error().str();
  EXPECT_EQ(asker.ask(kAsk, t0 + 1ms), nf::ResyncAsker::Outcome::Waiting) << "asked 1 ms ago";
  EXPECT_EQ(asker.ask(kAsk, t0 + 11ms), nf::ResyncAsker::Outcome::Asked) << asker.last_error();
  for (uint32_t h = 1; h <= 6; ++h) {
    nf::ResyncAsk a = kAsk;
    a.hash = h;
    EXPECT_EQ(asker.ask(a, t0 + 11ms), nf::ResyncAsker::Outcome::Asked) << h;
  }
  nf::ResyncAsk a = kAsk;
  a.hash = 100;
  EXPECT_EQ(asker.ask(a, t0 + 11ms), nf::ResyncAsker::Outcome::Limited) << "8 in a burst at 10/s";
  EXPECT_EQ(asker.ask(a, t0 + 211ms), nf::ResyncAsker::Outcome::Asked) << "tokens again after 0.2 s";
  // a datagram that is not an ask: counted, not passed on
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path_.c_str());
  const char junk[] = "hello, agent";
  ASSERT_EQ(sendto(fd, junk, sizeof junk, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa), ssize_t{sizeof junk});
  close(fd);
  std::vector<nf::ResyncAsk> got;
  (*l)->receive([&](const nf::ResyncAsk& x) { got.push_back(x); });
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got[0], kAsk);
  EXPECT_EQ(got.back().hash, 100u);
  EXPECT_EQ((*l)->received, 9u);
  EXPECT_EQ((*l)->malformed, 1u);
  EXPECT_NE((*l)->last_error.find("13 bytes"), std::string::npos) << (*l)->last_error;
  // a second listener replaces a stale socket; a file that is not a socket is never removed
  l->reset();
  EXPECT_FALSE(std::filesystem::exists(path_)) << "removed at close";
  { std::ofstream(path_) << "x"; }
  EXPECT_FALSE(nf::ResyncListener::open(path_).has_value());
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST(ResyncNewer, NeverBackwards) {
  ac_st_rec a{}, b{};
  a.flags = b.flags = AC_ST_REC_VALID;
  a.seq = 5;
  b.seq = 4;
  EXPECT_TRUE(daemon::resync_newer(a, b));
  EXPECT_FALSE(daemon::resync_newer(b, a));
  EXPECT_FALSE(daemon::resync_newer(a, a)) << "the same sequence";
  a.seq = 1;
  b.seq = 0xfffffff0u;
  EXPECT_TRUE(daemon::resync_newer(a, b)) << "serial arithmetic across the wrap";
  a.seq = 1;
  a.inc = 2;
  b.seq = 9;
  b.inc = 1;
  EXPECT_TRUE(daemon::resync_newer(a, b)) << "a newer incarnation";
  EXPECT_FALSE(daemon::resync_newer(b, a)) << "an older incarnation, whatever its sequence";
  b.flags = 0;
  EXPECT_TRUE(daemon::resync_newer(b, b)) << "no record yet";
}

// The service on a fake channel: sends are recorded, handlers called by hand
struct Fake {
  std::array<ftc::Channel::Handler, chan::kTypeSlots> on{};
  std::vector<std::pair<uint32_t, chan::Body>> sent;
  bool fail_send = false;
  daemon::FtcRecoveryService::Link link() {
    return {[this](chan::Type t, ftc::Channel::Handler h) { on[static_cast<size_t>(t)] = std::move(h); },
            [this](uint32_t node, const chan::Body& m) -> Result<void> {
              if (fail_send) return fail("down", ENOTCONN);
              sent.emplace_back(node, m);
              return {};
            }};
  }
  void deliver(uint32_t node, const chan::Body& m) { on[static_cast<size_t>(chan::type_of(m))](node, m); }
};

constexpr uint32_t kHeadNode = 0x0a000007;

// A head's record of `keys` keys (g++ 12 warns falsely about the map's key compare when inlined)
[[gnu::noinline]] ftc::Record record(size_t keys) {
  ftc::Record rec;
  rec.seq = 9;
  rec.inc = 1;
  for (size_t k = 0; k < keys; ++k) rec.kv.emplace(std::make_pair(uint8_t{1}, ftc::Bytes(2, static_cast<uint8_t>(k + 1))), ftc::Bytes(1, 3));
  return rec;
}

struct Service {
  Fake ch;
  daemon::FtcResyncService s{ch.link(),
                             [] { return std::vector<daemon::LocalHolder>{{8, nullptr}}; },
                             [](uint16_t id) { return id == 7 ? std::optional<uint32_t>{kHeadNode} : std::nullopt; },
                             100ms};
};

TEST(FtcResyncService, AsksTheHeadsNodeOnceAndRefusesWhatItCannotAsk) {
  Service sv;
  const auto t0 = Clock::now();
  ASSERT_TRUE(sv.s.ask(kAsk, t0).has_value());
  ASSERT_EQ(sv.ch.sent.size(), 1u);
  EXPECT_EQ(sv.ch.sent[0].first, kHeadNode);
  const auto& req = std::get<chan::ResyncReq>(sv.ch.sent[0].second);
  EXPECT_EQ(req.flow, (ftc::Flow{42, 0x11223344}));
  EXPECT_EQ(req.mbox, (ftc::Mbox{7, 1, 255}));
  EXPECT_EQ(req.have, 5u);
  ASSERT_TRUE(sv.s.ask(kAsk, t0).has_value());
  EXPECT_EQ(sv.ch.sent.size(), 1u) << "outstanding: not sent again";
  EXPECT_EQ(sv.s.stats().asks_pending, 1u);
  nf::ResyncAsk foreign = kAsk;
  foreign.from = 9;
  EXPECT_FALSE(sv.s.ask(foreign, t0).has_value()) << "not an NF of this node";
  nf::ResyncAsk nowhere = kAsk;
  nowhere.mbox = AC_FTC_MBOX(6, 0, 254);
  EXPECT_FALSE(sv.s.ask(nowhere, t0).has_value()) << "the node of middlebox 6 is unknown";
  EXPECT_EQ(sv.s.stats().asks_refused, 2u);
  EXPECT_EQ(sv.s.stats().requests_sent, 1u);
  // the request times out; the record may be asked again
  sv.s.on_timer(t0 + 100ms);
  EXPECT_EQ(sv.s.stats().timeouts, 1u);
  EXPECT_EQ(sv.s.pending(), 0u);
  ASSERT_TRUE(sv.s.ask(kAsk, t0 + 100ms).has_value());
  EXPECT_EQ(sv.ch.sent.size(), 2u);
  sv.ch.fail_send = true;
  nf::ResyncAsk other = kAsk;
  other.hash = 1;
  EXPECT_FALSE(sv.s.ask(other, t0).has_value());
  EXPECT_EQ(sv.s.stats().send_failed, 1u);
  EXPECT_EQ(sv.s.pending(), 1u) << "a request not sent is not outstanding";
}

TEST(FtcResyncService, RefusesAnswersThatMatchNoRequestOrCannotBeHeld) {
  Service sv;
  ASSERT_TRUE(sv.s.ask(kAsk, Clock::now()).has_value());
  const uint32_t id = std::get<chan::ResyncReq>(sv.ch.sent.at(0).second).req;
  // an answer (request id, hash, head SI, keys in its record; 0 keys: NONE) from a node
  auto answer = [&](uint32_t node, uint32_t req, uint32_t hash, uint8_t si, size_t keys) {
    chan::Resync m{.req = req, .flow = {42, hash}, .mbox = {7, 1, si}, .record = std::nullopt};
    if (keys) m.record = record(keys);
    sv.ch.deliver(node, m);
  };
  answer(kHeadNode, id + 1, 0x11223344, 255, 1);
  EXPECT_EQ(sv.s.stats().refused_unknown, 1u) << "no such request";
  answer(kHeadNode + 1, id, 0x11223344, 255, 1);
  EXPECT_EQ(sv.s.stats().refused_mismatch, 1u) << "from another node than the one asked";
  answer(kHeadNode, id, 0x55, 255, 1);
  answer(kHeadNode, id, 0x11223344, 254, 1);
  EXPECT_EQ(sv.s.stats().refused_mismatch, 3u) << "another partition, another middlebox";
  EXPECT_EQ(sv.s.pending(), 1u) << "the right answer may still come";
  answer(kHeadNode, id, 0x11223344, 255, 5);
  EXPECT_EQ(sv.s.stats().refused_record, 1u) << "5 keys: the NF holds 4";
  EXPECT_EQ(sv.s.pending(), 0u);
  answer(kHeadNode, id, 0x11223344, 255, 1);
  EXPECT_EQ(sv.s.stats().refused_unknown, 2u) << "answered already";
  // NONE
  ASSERT_TRUE(sv.s.ask(kAsk, Clock::now()).has_value());
  answer(kHeadNode, std::get<chan::ResyncReq>(sv.ch.sent.back().second).req, 0x11223344, 255, 0);
  EXPECT_EQ(sv.s.stats().none, 1u);
  EXPECT_EQ(sv.s.stats().installed, 0u);
  EXPECT_EQ(sv.s.stats().answers, 7u);
}

TEST(FtcResyncService, AnswersNoneForAMiddleboxThatIsNotHere) {
  Service sv;
  sv.ch.deliver(0x0a000009, chan::ResyncReq{.req = 77, .flow = {42, 5}, .mbox = {3, 0, 255}, .have = 0});
  ASSERT_EQ(sv.ch.sent.size(), 1u);
  EXPECT_EQ(sv.ch.sent[0].first, 0x0a000009u);
  const auto& r = std::get<chan::Resync>(sv.ch.sent[0].second);
  EXPECT_EQ(r.req, 77u);
  EXPECT_EQ(r.flow, (ftc::Flow{42, 5}));
  EXPECT_FALSE(r.record.has_value());
  EXPECT_EQ(sv.s.stats().answered_none, 1u);
}

}  // namespace
}  // namespace anychain::test
