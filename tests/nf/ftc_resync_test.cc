// FTC re-requests of gaps (docs/ftc.md 4.3) between two in-process agents over the real FTC
// channel (TCP on loopback, HMAC sessions), on the real NF programs: monitor 7 (node A) heads a
// partition, replica 8 (node B, f = 1) applies its logs. The frame carrying log 2 is lost on
// purpose; the frame with log 3 is a gap at the replica. The replica's side asks as anychain-nf's
// hold queue does (first_gap, then a ResyncAsk datagram on the agent's unix socket); B's agent
// sends RESYNC_REQ to A, whose agent answers RESYNC from the monitor's head record (read under its
// lock); B installs it into the replica's record, and the held frame's gap is closed: re-run, it
// passes. Then the refusals: NONE for a partition the head does not have, a stale answer, an
// answer that matches no request.
#include <filesystem>

#include "daemon/ftc_recovery.h"
#include "daemon/ftc_resync.h"
#include "ftc_agents_fixture.h"
#include "nf/resync.h"

namespace anychain::test {
namespace {

using namespace nfbpf;
using namespace std::chrono_literals;
namespace chan = ftc::chan;

constexpr uint32_t kNodeA = 0x7f000001, kNodeB = 0x7f000002;

// The monitor's output as the replica receives it: SI decremented by the fast path
Bytes to_next_hop(const Bytes& out) {
  Bytes n = nsh_of(out);
  const size_t end = 14 + n.size();
  n[7] = 254;
  return to_nf(n, Bytes(out.begin() + end, out.end()));
}

daemon::FtcRecoveryService::Link link_of(ftc::Channel& c) {
  return {[&c](chan::Type t, ftc::Channel::Handler h) { c.on(t, std::move(h)); },
          [&c](uint32_t node, const chan::Body& m) { return c.send(node, m); }};
}

class FtcResyncNf : public NfBpf {};

TEST_F(FtcResyncNf, AHeldFrameIsReleasedByTheReRequestNotByExpiry) {
  const Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));
  Loaded mon = load_nf(monitor(7), "t-rsmon7");
  Loaded rep = load_replica(8, "t-rsrep8", {7});
  ASSERT_TRUE(mon.maps && rep.maps);

  // log 1 reaches the replica; the frame with log 2 is lost; log 3 is a gap: held (no hold
  // socket here: the program's redirect falls back to a drop, counted ftc_hold_unavailable)
  std::vector<Bytes> at_replica;
  for (int i = 0; i < 3; ++i) {
    Out o = run_prog(mon.nf->prog_fd(), to_nf(control_nsh(255), inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    at_replica.push_back(to_next_hop(o.frame));
  }
  ASSERT_EQ(run_prog(rep.nf->prog_fd(), at_replica[0]).verdict, XDP_TX);
  ASSERT_NE(run_prog(rep.nf->prog_fd(), at_replica[2]).verdict, XDP_TX) << "log 3 after log 1 is a gap";
  const Bytes& held = at_replica[2];
  const int rfd = rep.maps->fd("nf_replica");
  auto gap = nf::first_gap(rfd, 8, held);
  ASSERT_TRUE(gap.has_value());
  EXPECT_EQ(gap->key.id, 7u);
  EXPECT_EQ(gap->key.spi_si, kSpi << 8 | 255);
  EXPECT_EQ(gap->key.hash, kHash);
  EXPECT_EQ(gap->have, 1u);
  EXPECT_EQ(AC_FTC_MBOX_ID(gap->mbox), 7u);

  // node B's agent: the socket its NFs ask on, the service on its channel; node A's: the service
  // answering from the monitor's maps
  Agents ag(kNodeA, kNodeB);
  daemon::FtcResyncService at_a(link_of(*ag.a), [&] { return std::vector<daemon::LocalHolder>{{7, &*mon.maps}}; },
                                [](uint16_t) { return std::optional<uint32_t>{}; });
  daemon::FtcResyncService at_b(link_of(*ag.b), [&] { return std::vector<daemon::LocalHolder>{{8, &*rep.maps}}; },
                                [](uint16_t id) { return id == 7 ? std::optional<uint32_t>{kNodeA} : std::nullopt; });
  const auto dir = std::filesystem::temp_directory_path() / ("ac-resync-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto listener = nf::ResyncListener::open(nf::resync_socket_path(dir.string()));
  ASSERT_TRUE(listener.has_value()) << listener.error().str();
  auto deliver = [&] {
    (*listener)->receive([&](const nf::ResyncAsk& a) { (void)at_b.ask(a, std::chrono::steady_clock::now()); });
  };
  nf::ResyncAsker::Options ao;
  ao.path = nf::resync_socket_path(dir.string());
  nf::ResyncAsker asker(ao);
  const nf::ResyncAsk ask{8, kSpi, kHash, gap->mbox, gap->have};
  ASSERT_EQ(asker.ask(ask, std::chrono::steady_clock::now()), nf::ResyncAsker::Outcome::Asked) << asker.last_error();
  EXPECT_EQ(asker.ask(ask, std::chrono::steady_clock::now()), nf::ResyncAsker::Outcome::Waiting)
      << "the same record is not asked again within the retry interval";

  ASSERT_TRUE(ag.pump([&] { return at_b.stats().installed == 1; }, deliver)) << at_b.status().dump();
  EXPECT_EQ((*listener)->received, 1u);
  EXPECT_EQ(at_b.stats().requests_sent, 1u);
  EXPECT_EQ(at_a.stats().answered, 1u);
  EXPECT_EQ(at_b.pending(), 0u);

  // the record is the head's, at seq 3: the gap is closed and the held frame passes on its re-run
  auto rrec = rep.maps->replica_record(gap->key);
  ASSERT_TRUE(rrec.has_value() && rrec->has_value());
  EXPECT_EQ((*rrec)->seq, 3u);
  auto hrec = mon.maps->head_record(ac_st_pkey{kSpi << 8 | 255, kHash});
  ASSERT_TRUE(hrec.has_value() && hrec->has_value());
  EXPECT_EQ(daemon::record_from_nf(**rrec).kv, daemon::record_from_nf(**hrec).kv);
  EXPECT_EQ((*rrec)->held, 2) << "the replica's position kept (the head's record says 1)";
  EXPECT_FALSE(nf::first_gap(rfd, 8, held).has_value());
  EXPECT_EQ(run_prog(rep.nf->prog_fd(), held).verdict, XDP_TX);
  EXPECT_EQ(rep.maps->replica_record(gap->key)->value().seq, 3u) << "log 3 is SATISFIED, nothing moved";
  // the lost frame, arriving late, is a duplicate now
  EXPECT_EQ(run_prog(rep.nf->prog_fd(), at_replica[1]).verdict, XDP_TX);
  EXPECT_EQ(rep.maps->replica_record(gap->key)->value().seq, 3u);

  // a stale answer: asked again (as if the NF's check raced the install), the head has nothing
  // newer; the record stays
  ASSERT_TRUE(at_b.ask(nf::ResyncAsk{8, kSpi, kHash, gap->mbox, 3}, std::chrono::steady_clock::now()).has_value());
  ASSERT_TRUE(ag.pump([&] { return at_b.stats().stale == 1; })) << at_b.status().dump();
  EXPECT_EQ(at_b.stats().installed, 1u);

  // a partition the head does not have: NONE, nothing installed
  ASSERT_TRUE(at_b.ask(nf::ResyncAsk{8, kSpi, 0x99, gap->mbox, 0}, std::chrono::steady_clock::now()).has_value());
  ASSERT_TRUE(ag.pump([&] { return at_b.stats().none == 1; })) << at_b.status().dump();
  EXPECT_EQ(at_a.stats().answered_none, 1u);
  EXPECT_FALSE(rep.maps->replica_record(ac_st_rkey{7, kSpi << 8 | 255, 0x99})->has_value());

  // an answer nobody asked for (an unknown middlebox and partition): refused, counted
  ftc::Record forged;
  forged.seq = 50;
  forged.kv[{1, {1}}] = {2};
  ASSERT_TRUE(ag.a->send(kNodeB, chan::Resync{.req = 4242, .flow = {kSpi, 0x77}, .mbox = {99, 0, 255}, .record = forged})
                  .has_value());
  ASSERT_TRUE(ag.pump([&] { return at_b.stats().refused_unknown == 1; })) << at_b.status().dump();
  EXPECT_FALSE(rep.maps->replica_record(ac_st_rkey{99, kSpi << 8 | 255, 0x77})->has_value());

  // an ask by an instance that is not local to B, and for a middlebox whose node is unknown
  EXPECT_FALSE(at_b.ask(nf::ResyncAsk{5, kSpi, kHash, gap->mbox, 0}, std::chrono::steady_clock::now()).has_value());
  EXPECT_FALSE(at_b.ask(nf::ResyncAsk{8, kSpi, kHash, AC_FTC_MBOX(6, 0, 255), 0}, std::chrono::steady_clock::now())
                   .has_value());
  EXPECT_EQ(at_b.stats().asks_refused, 2u);
  listener->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace anychain::test
