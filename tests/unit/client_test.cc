// API client against a scripted fake ospfd on loopback (the real one: tests/integration).
#include "ospf/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

using namespace anychain::ospf;
using namespace std::chrono_literals;

namespace {

std::uint16_t test_port(int k) { return static_cast<std::uint16_t>(20000 + (::getpid() % 2000) * 10 + k * 2); }

Bytes router_lsa(std::uint32_t rid, std::int32_t seq) {
  LsaHeader h;
  h.id = h.adv_router = rid;
  h.seq = seq;
  return *build_router_lsa(h, RouterLsa{0, {{rid, 0xffffffff, LinkType::Stub, 0, {}}}});
}

// A fake ospfd API server: accepts one client at a time, connects back to its port + 1,
// answers requests. Runs on its own thread.
class FakeOspfd {
 public:
  struct Options {
    bool reply_to_delete = true;
    bool stale_reply_first = false;
    bool ready_on_register = true;  // false: READY_NOTIFY only after the first SYNC_LSDB
    std::vector<Bytes> lsdb;  // dumped on SYNC_LSDB
  };
  FakeOspfd(std::uint16_t port, Options o) : port_(port), opt_(std::move(o)) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port_);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::listen(lfd_, 4) == 0;
    thread_ = std::thread([this] { run(); });
  }
  ~FakeOspfd() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (lfd_ >= 0) ::close(lfd_), lfd_ = -1;
  }
  // Closes the current client's channels (like ospfd dying), keeps listening.
  void drop_client() { drop_ = true; }
  // Flushes the LSA originated last (like a restarted ospfd flushing its predecessor's copy):
  // a DELETE notification for it, as ospfd sends for its own LSAs (is_self).
  void flush_last() { flush_ = true; }
  bool ok() const { return ok_; }
  std::vector<api::Message> received() {
    std::lock_guard g(mu_);
    return received_;
  }
  int connections() const { return connections_; }

 private:
  void send(int fd, const api::Message& m) {
    auto b = api::encode(m);
    if (b) (void)::send(fd, b->data(), b->size(), MSG_NOSIGNAL);
  }
  void run() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int sfd = ::accept(lfd_, reinterpret_cast<sockaddr*>(&peer), &len);
      if (sfd < 0) continue;
      // Connect back to the client's port + 1 (fails unless it listens already).
      int afd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      peer.sin_port = htons(static_cast<std::uint16_t>(ntohs(peer.sin_port) + 1));
      if (::connect(afd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
        ::close(afd);
        ::close(sfd);
        continue;
      }
      ++connections_;
      serve(sfd, afd);
      ::close(afd);
      ::close(sfd);
    }
  }
  void serve(int sfd, int afd) {
    api::StreamDecoder dec;
    std::uint8_t buf[4096];
    while (!stop_ && !drop_) {
      if (flush_.exchange(false) && !last_lsa_.empty()) {
        Bytes lsa = last_lsa_;
        lsa[0] = 0x0e;  // age 3600 (MaxAge)
        lsa[1] = 0x10;
        send(afd, {0, api::LsaDeleteNotify{{0, 0, true, lsa}}});
      }
      pollfd p{sfd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::recv(sfd, buf, sizeof buf, 0);
      if (n <= 0) return;
      dec.feed(ByteView(buf, static_cast<std::size_t>(n)));
      for (;;) {
        auto m = dec.next();
        if (!m || !*m) break;
        const api::Message& req = **m;
        {
          std::lock_guard g(mu_);
          received_.push_back(req);
        }
        if (opt_.stale_reply_first) send(sfd, {req.seq + 1000, api::Reply{-9}});
        if (std::holds_alternative<api::RegisterOpaqueType>(req.body)) {
          send(sfd, {req.seq, api::Reply{0}});
          if (opt_.ready_on_register) send(afd, {0, api::ReadyNotify{10, 200, 0}});
        } else if (std::holds_alternative<api::SyncLsdb>(req.body)) {
          for (const auto& l : opt_.lsdb) send(afd, {req.seq, api::LsaUpdateNotify{{0, 0, false, l}}});
          send(sfd, {req.seq, api::Reply{0}});
          if (!opt_.ready_on_register) {
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
            send(afd, {0, api::ReadyNotify{10, 200, 0}});
          }
        } else if (const auto* o = std::get_if<api::OriginateRequest>(&req.body)) {
          send(sfd, {req.seq, api::Reply{0}});
          Bytes lsa = o->lsa;
          lsa[11] = 9;  // adv router 0.0.0.9
          lsa[15] = static_cast<std::uint8_t>(++seq_);
          // like ospfd 8.4: an update of an LSA is notified as DELETE(old), then UPDATE(new)
          if (!last_lsa_.empty() && std::equal(lsa.begin() + 4, lsa.begin() + 12, last_lsa_.begin() + 4))
            send(afd, {0, api::LsaDeleteNotify{{0, o->area, true, last_lsa_}}});
          last_lsa_ = lsa;
          send(afd, {0, api::LsaUpdateNotify{{0, o->area, true, lsa}}});
        } else if (std::holds_alternative<api::DeleteRequest>(req.body)) {
          if (opt_.reply_to_delete) send(sfd, {req.seq, api::Reply{0}});
        } else {
          send(sfd, {req.seq, api::Reply{0}});
        }
      }
    }
    drop_ = false;
  }

  std::uint16_t port_;
  Options opt_;
  int lfd_ = -1;
  bool ok_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false}, drop_{false}, flush_{false};
  Bytes last_lsa_;
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<api::Message> received_;
  int seq_ = 0;
};

ClientConfig config(int k) {
  ClientConfig c;
  c.server_port = test_port(k);
  c.local_port = static_cast<std::uint16_t>(test_port(k) + 100);
  c.request_timeout = 300ms;
  c.backoff_initial = 50ms;
  c.backoff_max = 200ms;
  return c;
}

template <class P>
bool pump(Client& c, P pred, std::chrono::milliseconds limit = 3s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred() && std::chrono::steady_clock::now() < end) c.poll_once(20ms);
  return pred();
}

const VnfInfo kVnf{0x0a640001, 32, 7, 40, 150, 0x01010101, kVnfFlagNshAware};

}  // namespace

TEST(Client, ConnectRegistersSyncsAndOriginatesOnReady) {
  FakeOspfd::Options opt;
  opt.lsdb = {router_lsa(0x01010101, 5), router_lsa(0x02020202, 3)};
  FakeOspfd srv(test_port(0), opt);
  ASSERT_TRUE(srv.ok());
  Client c(config(0));
  int changes = 0;
  c.on_lsdb_changed = [&](const Lsdb&) { ++changes; };
  ASSERT_TRUE(c.announce(kVnf));
  auto r = c.connect();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(c.ready());
  ASSERT_TRUE(pump(c, [&] { return c.lsdb().size() == 3; }));
  EXPECT_GE(changes, 1);
  auto got = srv.received();
  ASSERT_GE(got.size(), 4u);
  EXPECT_EQ(got[0].body, api::Body(api::RegisterOpaqueType{10, 200}));
  auto mask = static_cast<std::uint16_t>(api::typemask_bit(1) | api::typemask_bit(2) | api::typemask_bit(10));
  EXPECT_EQ(got[1].body, api::Body(api::RegisterEvent{{mask, api::Origin::Any, {}}}));
  EXPECT_EQ(got[2].body, api::Body(api::SyncLsdb{{mask, api::Origin::Any, {}}}));
  const auto* o = std::get_if<api::OriginateRequest>(&got[3].body);
  ASSERT_NE(o, nullptr);
  auto h = parse_lsa_header(o->lsa);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->id, opaque_lsid(200, 7));
  EXPECT_EQ(*parse_vnf_payload(ByteView(o->lsa).subspan(20)), kVnf);
  // Sequence numbers increase from 1.
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, i + 1);
  // Update and withdraw.
  VnfInfo v2 = kVnf;
  v2.cost = 99;
  ASSERT_TRUE(c.announce(v2));
  auto w = c.withdraw(7);
  ASSERT_TRUE(w) << w.error().str();
  EXPECT_FALSE(c.withdraw(7)) << "not announced any more";
  got = srv.received();
  const auto* d = std::get_if<api::DeleteRequest>(&got.back().body);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(*d, (api::DeleteRequest{0, 10, 200, 0, 7}));
  EXPECT_EQ(c.stats().originations, 2u);
}

TEST(Client, StaleRepliesAreIgnoredBySeq) {
  FakeOspfd::Options o;
  o.stale_reply_first = true;
  FakeOspfd srv(test_port(1), o);
  Client c(config(1));
  auto r = c.connect();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_GE(c.stats().stale_replies, 3u);
}

TEST(Client, RequestTimesOutAndReconnects) {
  FakeOspfd::Options o;
  o.reply_to_delete = false;
  FakeOspfd srv(test_port(2), o);
  Client c(config(2));
  ASSERT_TRUE(c.announce(kVnf));
  ASSERT_TRUE(c.connect());
  auto t0 = std::chrono::steady_clock::now();
  auto w = c.withdraw(7);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_FALSE(c.connected());
  ASSERT_TRUE(c.next_timer().has_value()) << "reconnect scheduled";
  EXPECT_TRUE(pump(c, [&] { return c.ready(); }));
  EXPECT_EQ(srv.connections(), 2);
}

TEST(Client, ReconnectsWithBackoffAndReoriginatesEverything) {
  auto srv = std::make_unique<FakeOspfd>(test_port(3), FakeOspfd::Options{});
  Client c(config(3));
  VnfInfo a = kVnf, b = kVnf;
  b.instance_id = 8;
  ASSERT_TRUE(c.announce(a));
  ASSERT_TRUE(c.announce(b));
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(pump(c, [&] { return c.stats().originations == 2; }));
  // ospfd dies: nothing listens for a while, so reconnects fail and back off.
  srv.reset();
  ASSERT_TRUE(pump(c, [&] { return !c.connected(); }));
  ASSERT_TRUE(pump(c, [&] { return c.stats().connect_failures >= 2; }));
  srv = std::make_unique<FakeOspfd>(test_port(3), FakeOspfd::Options{});
  ASSERT_TRUE(pump(c, [&] { return c.ready() && c.stats().originations == 4; }, 5s));
  auto got = srv->received();
  int originates = 0;
  for (const auto& m : got) originates += std::holds_alternative<api::OriginateRequest>(m.body);
  EXPECT_EQ(originates, 2) << "every local LSA re-originated after the reconnect";
  EXPECT_EQ(c.stats().connects, 2u);
}

TEST(Client, ServerDropDetectedOnAsyncChannel) {
  FakeOspfd srv(test_port(4), FakeOspfd::Options{});
  Client c(config(4));
  ASSERT_TRUE(c.connect());
  bool down = false;
  c.on_connection = [&](bool up) { down = down || !up; };
  srv.drop_client();
  EXPECT_TRUE(pump(c, [&] { return down; }));
  EXPECT_TRUE(pump(c, [&] { return c.ready(); })) << "reconnected to the same server";
}

TEST(Client, ConnectFailsCleanlyWithoutServer) {
  Client c(config(5));
  auto r = c.connect();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ECONNREFUSED);
  EXPECT_TRUE(c.next_timer().has_value());
  EXPECT_FALSE(c.announce(VnfInfo{0, 40, 1, 1, 1, 1, 0})) << "prefix length 40 refused";
}

TEST(Client, LateReadyNotifyOriginatesWhenItArrives) {
  FakeOspfd::Options o;
  o.ready_on_register = false;
  FakeOspfd srv(test_port(6), o);
  ClientConfig cfg = config(6);
  cfg.ready_timeout = 100ms;
  Client c(cfg);
  ASSERT_TRUE(c.announce(kVnf));
  auto r = c.connect();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(c.connected());
  EXPECT_FALSE(c.ready());
  EXPECT_EQ(c.stats().originations, 0u);
  EXPECT_TRUE(pump(c, [&] { return c.ready() && c.stats().originations == 1; }));
}

TEST(Client, RejectsAsyncPortEqualToServerPort) {
  ClientConfig cfg = config(7);
  cfg.local_port = static_cast<std::uint16_t>(cfg.server_port - 1);
  Client c(cfg);
  auto r = c.connect();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);
}

TEST(Client, ResyncAfterReconnectSweepsWhatTheNewDumpDidNotConfirm) {
  FakeOspfd::Options first;
  first.lsdb = {router_lsa(0x01010101, 5), router_lsa(0x02020202, 3)};
  auto srv = std::make_unique<FakeOspfd>(test_port(8), first);
  ClientConfig cfg = config(8);
  cfg.resync_grace = 200ms;
  Client c(cfg);
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(pump(c, [&] { return c.lsdb().size() == 2; }));
  srv.reset();  // ospfd goes away; the mirror is kept meanwhile
  ASSERT_TRUE(pump(c, [&] { return !c.connected(); }));
  EXPECT_EQ(c.lsdb().size(), 2u);
  FakeOspfd::Options second;
  second.lsdb = {router_lsa(0x01010101, 6)};  // 2.2.2.2's LSA is gone
  srv = std::make_unique<FakeOspfd>(test_port(8), second);
  ASSERT_TRUE(pump(c, [&] { return c.ready(); }));
  EXPECT_TRUE(pump(c, [&] { return c.lsdb().size() == 1; }, 2s));
  const auto* e = c.lsdb().find({0, 1, 0x01010101, 0x01010101});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->hdr.seq, 6);
}

// A restarted ospfd that receives its predecessor's copy of our LSA from a neighbour before we
// re-originated flushes it from the whole area. The client originates it again at once.
TEST(Client, OurLsaFlushedUnderUsIsOriginatedAgain) {
  FakeOspfd srv(test_port(9), FakeOspfd::Options{});
  Client c(config(9));
  ASSERT_TRUE(c.announce(kVnf));
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(pump(c, [&] { return c.stats().originations == 1 && c.lsdb().size() == 1; }));
  // an update shows as DELETE(old) then UPDATE(new): that is no flush
  VnfInfo v2 = kVnf;
  v2.cost = 12;
  ASSERT_TRUE(c.announce(v2));
  for (int i = 0; i < 20; ++i) c.poll_once(20ms);
  EXPECT_EQ(c.stats().originations, 2u);
  EXPECT_EQ(c.stats().reoriginations, 0u);
  srv.flush_last();
  ASSERT_TRUE(pump(c, [&] { return c.stats().originations == 3; }));
  EXPECT_EQ(c.stats().reoriginations, 1u);
  EXPECT_TRUE(pump(c, [&] { return c.lsdb().size() == 1; })) << "back in the LSDB";
  for (int i = 0; i < 20; ++i) c.poll_once(20ms);
  EXPECT_EQ(c.stats().reoriginations, 1u) << "once";
  // a withdrawn instance is not brought back
  ASSERT_TRUE(c.withdraw(7));
  srv.flush_last();
  for (int i = 0; i < 20; ++i) c.poll_once(20ms);
  EXPECT_EQ(c.stats().originations, 3u);
}

// ospfd's pid file was written: the next timer fires at once, with the backoff started over.
TEST(Client, ReconnectSoonSkipsTheBackoff) {
  ClientConfig cfg = config(10);
  cfg.backoff_initial = 1000ms;
  cfg.backoff_max = 8000ms;
  Client c(cfg);
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.connect());  // backoff now 4 s
  auto t = c.next_timer();
  ASSERT_TRUE(t);
  EXPECT_GT(*t - std::chrono::steady_clock::now(), 1500ms);
  FakeOspfd srv(test_port(10), FakeOspfd::Options{});
  c.reconnect_soon();
  ASSERT_TRUE(c.next_timer());
  EXPECT_LE(*c.next_timer(), std::chrono::steady_clock::now());
  EXPECT_TRUE(pump(c, [&] { return c.ready(); }, 1000ms));
}
