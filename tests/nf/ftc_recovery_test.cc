// FTC recovery between two in-process agents over the real FTC channel (TCP on loopback, HMAC
// sessions), on the real NF programs (docs/ftc.md 7.3-7.5): monitor 7 heads a partition, replica
// 8 (the next hop, f = 1) holds its log; 7 dies; its replacement (same id, incarnation 1, fresh
// maps) asks the holder's agent (RECOVER_REQ), which fences its record of 7 and answers
// (RECOVER, RECOVER_DONE) from the maps under their locks; the plan puts the record into the
// replacement, whose next packet of the partition continues the sequence and the count.
#include <bpf/libbpf.h>

#include "daemon/ftc_recovery.h"
#include "daemon/ftc_recovery_service.h"
#include "ftc_agents_fixture.h"
#include "nf/loader.h"

namespace anychain::test {
namespace {

using namespace nfbpf;
using namespace std::chrono_literals;
namespace chan = ftc::chan;

constexpr uint32_t kHolderNode = 0x7f000001, kReplNode = 0x7f000002;


class FtcRecoveryNf : public NfBpf {};

// One agent's side of a channel that carries a message only when the test hands it over.
struct FakeLink {
  std::array<ftc::Channel::Handler, chan::kTypeSlots> on{};
  std::vector<std::pair<uint32_t, chan::Body>> out;
  daemon::FtcRecoveryService::Link link() {
    return {[this](chan::Type t, ftc::Channel::Handler h) { on[static_cast<size_t>(t)] = std::move(h); },
            [this](uint32_t node, const chan::Body& m) -> Result<void> {
              out.emplace_back(node, m);
              return {};
            }};
  }
  void deliver(uint32_t from, const chan::Body& m) { on[static_cast<size_t>(chan::type_of(m))](from, m); }
  // everything this side sent, handed to `to` as coming from `self`
  void flush_to(FakeLink& to, uint32_t self) {
    auto msgs = std::exchange(out, {});
    for (const auto& [node, m] : msgs) to.deliver(self, m);
  }
};

// `packets` packets of one flow through head `mon`, each packet's log applied (and stripped:
// held 2 = f + 1) by the replica `rep`, with the fast path's SI decrement between the hops.
void through_head_and_replica(const Loaded& mon, const Loaded& rep, const Bytes& inner, int packets) {
  for (int i = 0; i < packets; ++i) {
    Out o = run_prog(mon.nf->prog_fd(), to_nf(control_nsh(255), inner));
    ASSERT_EQ(o.verdict, XDP_TX);
    Bytes n = nsh_of(o.frame);
    n[7] = 254;
    ASSERT_EQ(run_prog(rep.nf->prog_fd(), to_nf(n, Bytes(o.frame.begin() + 14 + n.size(), o.frame.end()))).verdict,
              XDP_TX);
  }
}

// Monitor 7 counted `packets` packets whose logs replica 8 holds, then died; its replacement (same
// id, fresh maps) is loaded. Names end in `tag`.
struct DeadHead {
  Loaded rep, repl;
};
DeadHead dead_head_with_replica(const std::string& tag, int packets) {
  DeadHead d;
  Loaded mon = load_nf(monitor(7), "t-mon7" + tag);
  d.rep = load_replica(8, "t-rep8" + tag, {7});
  EXPECT_TRUE(mon.maps && d.rep.maps);
  if (!mon.maps || !d.rep.maps) return d;
  through_head_and_replica(mon, d.rep, ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72)), packets);
  mon = Loaded{};
  d.repl = load_nf(monitor(7), "t-mon7" + tag + "b");
  EXPECT_TRUE(d.repl.maps);
  return d;
}

TEST_F(FtcRecoveryNf, ReplacementGetsTheHeadRecordFromItsSuccessorOverTheChannel) {
  const Bytes inner = ipv4("10.1.0.1", "10.2.0.2", udp(40000, 9000, 72));
  Loaded mon = load_nf(monitor(7), "t-mon7");
  Loaded rep = load_replica(8, "t-rep8", {7});
  ASSERT_TRUE(mon.maps && rep.maps);

  // five packets: the monitor's log of each applied (and stripped: held 2 = f + 1) by the replica
  through_head_and_replica(mon, rep, inner, 5);
  if (HasFatalFailure()) return;
  auto heads = mon.maps->head_records();
  ASSERT_TRUE(heads.has_value());
  ASSERT_EQ(heads->size(), 1u);
  const ftc::Record at_head = daemon::record_from_nf(heads->at(0).second);
  ASSERT_EQ(at_head.seq, 5u);
  auto reps = rep.maps->replica_records();
  ASSERT_TRUE(reps.has_value());
  ASSERT_EQ(reps->size(), 1u);
  EXPECT_EQ(reps->at(0).second.seq, 5u);
  EXPECT_EQ(daemon::record_from_nf(reps->at(0).second).kv, at_head.kv) << "the replica holds the head's state";

  // 7 dies (its process and maps are gone); its replacement: same id, fresh maps
  const auto detected = std::chrono::steady_clock::now();
  mon = Loaded{};
  Loaded repl = load_nf(monitor(7), "t-mon7b");
  ASSERT_TRUE(repl.maps);
  ASSERT_TRUE(repl.maps->head_records()->empty());

  // two agents over the FTC channel
  Agents ag(kHolderNode, kReplNode);
  auto& holder = ag.a;
  auto& agent = ag.b;
  ag.ports[0x7f000003] = 9;  // a node whose agent is down: nothing listens there
  // the holder's agent answers from its local NF (replica 8); the replacement's agent recovers
  daemon::FtcRecoveryService at_holder(*holder, [&] { return std::vector<daemon::LocalHolder>{{8, &*rep.maps}}; });
  daemon::FtcRecoveryService at_repl(*agent, [] { return std::vector<daemon::LocalHolder>{}; }, 500ms);
  std::optional<daemon::FtcRecoveryService::Result> done;
  at_repl.on_recovered = [&](const daemon::FtcRecoveryService::Result& r) { done = r; };
  // holders: the replica's node and a node that never answers (its agent is down)
  ASSERT_TRUE(at_repl.begin(7, 1, ftc::Geometry{}, {kHolderNode, 0x7f000003}, &*repl.maps, false, detected).has_value());
  EXPECT_FALSE(at_repl.begin(7, 1, ftc::Geometry{}, {kHolderNode}, &*repl.maps, false, detected).has_value())
      << "one recovery per instance at a time";
  ag.pump([&] { return done.has_value(); }, [&] { at_repl.on_timer(std::chrono::steady_clock::now()); });
  ASSERT_TRUE(done.has_value()) << "the recovery did not end";
  EXPECT_FALSE(done->conflict);
  EXPECT_EQ(done->heads, 1u);
  EXPECT_EQ(done->holders_gone, 1u) << "the silent node was given up after the timeout";
  for (const auto& e : done->errors) ADD_FAILURE() << e;
  EXPECT_EQ(at_holder.stats().records_fenced, 1u);
  EXPECT_EQ(at_holder.stats().requests_answered, 1u) << "round 2 not needed: the monitor replicates nothing here";
  EXPECT_EQ(at_repl.stats().records_installed, 1u);
  EXPECT_EQ(rep.maps->replica_records()->at(0).second.inc, 1) << "the holder's record fenced with incarnation 1";
  nf::FtcControl ctl;
  ctl.incarnation = 1;
  ctl.peers = {{.id = 8, .incarnation = 0, .idle_timeout_s = 60}};
  ASSERT_TRUE(repl.nf->apply_control(ctl).has_value());
  EXPECT_EQ(at_repl.last().at(7).live_at, 0) << "not live before rerouted()";
  const double wall_before = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  at_repl.rerouted(7, std::chrono::steady_clock::now());
  const double wall_after = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto& res = at_repl.last().at(7);
  // the moments on the wall clock: the death as noticed, then live (an observer outside the agent
  // compares its own timestamps with these; ftc_nat_recovery_lab does)
  EXPECT_GE(res.live_at, wall_before - 0.001);
  EXPECT_LE(res.live_at, wall_after + 0.001);
  EXPECT_GT(res.detected_at, 0);
  EXPECT_LT(res.detected_at, res.live_at);
  EXPECT_NEAR(res.live_at - res.detected_at,
              (res.times.detection_ms + res.times.transfer_ms + res.times.rerouting_ms) / 1000, 0.05);
  const auto& t = res.times;
  EXPECT_GT(t.detection_ms, 0);
  EXPECT_GT(t.transfer_ms, 0);
  EXPECT_GE(t.rerouting_ms, 0);
  EXPECT_LT(t.rerouting_ms, 1000);

  // the replacement's next packet of the partition: seq 6 under incarnation 1, 6 packets counted
  Out o = run_prog(repl.nf->prog_fd(), to_nf(control_nsh(255), inner));
  ASSERT_EQ(o.verdict, XDP_TX);
  auto d = ftc::decode_nsh(nsh_of(o.frame));
  ASSERT_TRUE(d.has_value()) << d.error().message;
  ASSERT_EQ(d->logs.size(), 1u);
  EXPECT_EQ(d->logs[0].seq, 6u);
  EXPECT_EQ(d->logs[0].mbox.inc, 1);
  auto after = repl.maps->head_records();
  ASSERT_TRUE(after.has_value());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->at(0).second.seq, 6u);
  // the replica applies the new incarnation's log in order
  Bytes n = nsh_of(o.frame);
  n[7] = 254;
  Out r = run_prog(rep.nf->prog_fd(), to_nf(n, Bytes(o.frame.begin() + 14 + n.size(), o.frame.end())));
  EXPECT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(rep.maps->replica_records()->at(0).second.seq, 6u);
}

// Two agents on fake links that carry each message only when the test hands it over: the
// replacement's request to the holder is lost with a connection that went down; when the
// connection is back the replacement asks again (a new request id), a late answer to the lost
// request is ignored, and the recovery completes from the answer to the new one, before the
// timeout and without giving the holder up.
TEST_F(FtcRecoveryNf, AHolderWhoseConnectionCameBackIsAskedAgain) {
  auto [rep, repl] = dead_head_with_replica("r", 3);
  if (HasFailure()) return;

  FakeLink hs, rs;
  daemon::FtcRecoveryService at_holder(hs.link(), [&] { return std::vector<daemon::LocalHolder>{{8, &*rep.maps}}; });
  daemon::FtcRecoveryService at_repl(rs.link(), [] { return std::vector<daemon::LocalHolder>{}; }, 10s);
  std::optional<daemon::FtcRecoveryService::Result> done;
  at_repl.on_recovered = [&](const daemon::FtcRecoveryService::Result& r) { done = r; };
  ASSERT_TRUE(at_repl.begin(7, 1, ftc::Geometry{}, {kHolderNode}, &*repl.maps, false, std::chrono::steady_clock::now())
                  .has_value());
  ASSERT_EQ(rs.out.size(), 1u);
  const auto lost = rs.out[0];  // never handed over: lost with the connection
  rs.out.clear();
  at_repl.on_peer_up(kHolderNode);
  EXPECT_TRUE(rs.out.empty()) << "a connection that did not go down during the request: not asked again";
  at_repl.on_peer_down(kHolderNode);
  at_repl.on_timer(std::chrono::steady_clock::now());
  EXPECT_FALSE(done.has_value()) << "a holder whose connection went down is still waited for";
  at_repl.on_peer_up(kHolderNode);
  ASSERT_EQ(rs.out.size(), 1u) << "asked again when its connection is back";
  EXPECT_EQ(rs.out[0].first, kHolderNode);
  const auto& again = std::get<chan::RecoverReq>(rs.out[0].second);
  const auto& first = std::get<chan::RecoverReq>(lost.second);
  EXPECT_NE(again.req, first.req);
  EXPECT_EQ(again.round, first.round);
  EXPECT_EQ(again.instance, 7);
  EXPECT_EQ(again.new_inc, 1);
  EXPECT_EQ(at_repl.stats().requests_repeated, 1u);

  // the lost request turns up late after all: its answer is ignored
  hs.deliver(kReplNode, lost.second);
  ASSERT_FALSE(hs.out.empty());
  for (const auto& [to, m] : hs.out) {
    EXPECT_EQ(to, kReplNode);
    rs.deliver(kHolderNode, m);
  }
  hs.out.clear();
  EXPECT_FALSE(done.has_value()) << "the answer to the voided request ended the recovery";
  // the answer to the new request ends it
  hs.deliver(kReplNode, rs.out[0].second);
  for (const auto& [to, m] : hs.out) rs.deliver(kHolderNode, m);
  ASSERT_TRUE(done.has_value());
  EXPECT_FALSE(done->conflict);
  EXPECT_EQ(done->heads, 1u);
  EXPECT_EQ(done->holders_gone, 0u);
  for (const auto& e : done->errors) ADD_FAILURE() << e;
  EXPECT_EQ(at_holder.stats().requests_answered, 2u);
  auto heads = repl.maps->head_records();
  ASSERT_TRUE(heads.has_value());
  ASSERT_EQ(heads->size(), 1u);
  EXPECT_EQ(heads->at(0).second.seq, 3u);
}

// A holder node running a store whose maps cannot be opened answers Failed, naming it, with the
// records of its other stores; the replacement installs those and reports the holder's failure
// in its result's errors (before, the store was skipped and the answer was an Ok without its
// records: "nothing held"). A store that is not running (no maps, no error) holds nothing and
// is not a failure.
TEST_F(FtcRecoveryNf, AHolderThatCannotReadOneOfItsStoresAnswersFailed) {
  auto [rep, repl] = dead_head_with_replica("f", 1);
  if (HasFailure()) return;

  const auto req = chan::RecoverReq{.req = 5, .instance = 7, .new_inc = 1, .round = 1, .mboxes = {}, .flows = {}};
  auto ok = daemon::answer_recover_req({{8, &*rep.maps}, {10, nullptr, ""}}, req);
  EXPECT_EQ(ok.done.status, chan::RecoverStatus::Ok) << "a store not running holds nothing: not a failure";
  auto a = daemon::answer_recover_req({{8, &*rep.maps}, {9, nullptr, "t-fw9.json: No such file or directory"}}, req);
  EXPECT_EQ(a.done.status, chan::RecoverStatus::Failed);
  EXPECT_EQ(a.done.records, 1u) << "the readable store's records still come";
  ASSERT_EQ(a.errors.size(), 1u);
  EXPECT_NE(a.errors[0].find("instance 9"), std::string::npos) << a.errors[0];
  EXPECT_NE(a.errors[0].find("t-fw9.json"), std::string::npos) << a.errors[0];

  FakeLink hs, rs;
  daemon::FtcRecoveryService at_holder(hs.link(), [&] {
    return std::vector<daemon::LocalHolder>{{8, &*rep.maps}, {9, nullptr, "t-fw9.json: No such file or directory"}};
  });
  daemon::FtcRecoveryService at_repl(rs.link(), [] { return std::vector<daemon::LocalHolder>{}; }, 10s);
  std::optional<daemon::FtcRecoveryService::Result> done;
  at_repl.on_recovered = [&](const daemon::FtcRecoveryService::Result& r) { done = r; };
  ASSERT_TRUE(at_repl.begin(7, 1, ftc::Geometry{}, {kHolderNode}, &*repl.maps, false, std::chrono::steady_clock::now())
                  .has_value());
  rs.flush_to(hs, kReplNode);
  hs.flush_to(rs, kHolderNode);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->heads, 1u);
  EXPECT_EQ(at_holder.stats().answer_errors, 1u);
  ASSERT_EQ(done->errors.size(), 1u);
  EXPECT_NE(done->errors[0].find("holder 0x7f000001"), std::string::npos) << done->errors[0];
}

// A holder already fenced by a newer replacement answers Conflict, and the plan says so.
TEST_F(FtcRecoveryNf, HolderFencedByANewerIncarnationAnswersConflict) {
  Loaded rep = load_replica(8, "t-rep8c", {});
  ASSERT_TRUE(rep.maps);
  ftc::Record rec;
  rec.seq = 3;
  rec.inc = 5;
  rec.held = 2;
  rec.kv[{1, {1, 2, 3}}] = {9};
  auto nrec = daemon::record_to_nf(rec);
  ASSERT_TRUE(nrec.has_value());
  ASSERT_TRUE(rep.maps->install_replica(ac_st_rkey{7, daemon::spi_si_of(kSpi, 255), kHash}, *nrec).has_value());
  chan::RecoverReq req{.req = 1, .instance = 7, .new_inc = 2, .round = 1, .mboxes = {}, .flows = {}};
  auto a = daemon::answer_recover_req({{8, &*rep.maps}}, req);
  EXPECT_EQ(a.done.status, chan::RecoverStatus::Conflict);
  EXPECT_EQ(a.fenced, 0u);
  EXPECT_EQ(rep.maps->replica_records()->at(0).second.inc, 5) << "never fenced backwards";
  ASSERT_EQ(a.batches.size(), 1u);
  EXPECT_EQ(a.batches[0].records.at(0).rec, rec);
  // and a record the NF cannot hold is refused by the converter
  for (int i = 0; i < 5; ++i) rec.kv[{1, {static_cast<uint8_t>(10 + i)}}] = {1};
  EXPECT_FALSE(daemon::record_to_nf(rec).has_value());
}

}  // namespace
}  // namespace anychain::test

namespace anychain::test {
namespace {

// The NAT's replacement: its mapping recovered from the holder's replica record is installed,
// then its derived state rebuilt: the reply is translated back (nf_nat_rev) and a new flow does
// not get the recovered flow's port (the bitmap). Without the rebuild the reply is dropped.
TEST_F(FtcRecoveryNf, NatReplacementRebuildsPortsAndReplyEntries) {
  Loaded nat0 = load_nf(nat(), "t-nat9");
  ASSERT_TRUE(nat0.maps);
  Out o = run_prog(nat0.nf->prog_fd(), to_nf(md2(0x7777), ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000))));
  ASSERT_EQ(o.verdict, XDP_TX);
  auto heads = nat0.maps->head_records();
  ASSERT_TRUE(heads.has_value());
  ASSERT_EQ(heads->size(), 1u);
  const auto [pkey, prec] = heads->at(0);
  nat0 = Loaded{};

  Loaded nat1 = load_nf(nat(), "t-nat9b");
  ASSERT_TRUE(nat1.maps);
  const Bytes reply = ipv4("198.51.100.7", "192.0.2.10", udp(9000, 20032));
  EXPECT_EQ(run_prog(nat1.nf->prog_fd(), to_nf(md1(0x9999), reply)).verdict, XDP_DROP) << "no reply entry yet";
  ftc::RecoveryPlan plan;
  plan.failed = 9;
  plan.new_inc = 1;
  plan.transfers.push_back({ftc::RecordKey{9, static_cast<uint8_t>(pkey.spi_si & 0xff), {pkey.spi_si >> 8, pkey.hash}},
                            1, true, daemon::record_from_nf(prec)});
  daemon::RecoverySession s(9, 1, {}, {}, 1, std::chrono::steady_clock::now(), std::chrono::steady_clock::now());
  auto inst = s.install(*nat1.maps, plan, std::chrono::steady_clock::now());
  ASSERT_EQ(inst.heads, 1u);
  auto n = daemon::rebuild_nat_derived(*nat1.maps);
  ASSERT_TRUE(n.has_value()) << n.error().str();
  EXPECT_EQ(*n, 1u);
  o = run_prog(nat1.nf->prog_fd(), to_nf(md1(0x9999), reply));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md1(0x9999), ipv4("198.51.100.7", "10.1.0.1", udp(9000, 40000)))));
  o = run_prog(nat1.nf->prog_fd(), to_nf(md2(0x5555), ipv4("10.1.0.2", "198.51.100.7", udp(40000, 9000))));
  ASSERT_EQ(o.verdict, XDP_TX);
  EXPECT_EQ(hex(o.frame), hex(from_nf(md2(0x5555), ipv4("192.0.2.10", "198.51.100.7", udp(20033, 9000)))))
      << "the recovered flow's port 20032 stays taken";
  // the recovered flow itself keeps its port
  o = run_prog(nat1.nf->prog_fd(), to_nf(md2(0x7777), ipv4("10.1.0.1", "198.51.100.7", udp(40000, 9000))));
  EXPECT_EQ(hex(o.frame), hex(from_nf(md2(0x7777), ipv4("192.0.2.10", "198.51.100.7", udp(20032, 9000)))));
  Loaded mon = load_nf(monitor(7), "t-mon7n");
  ASSERT_TRUE(mon.maps);
  EXPECT_FALSE(daemon::rebuild_nat_derived(*mon.maps).has_value()) << "not a NAT";
}

}  // namespace
}  // namespace anychain::test

namespace anychain::test {
namespace {

// The replacement's two rounds (docs/ftc.md 7.4) without maps: round 2 asks every holder for the
// flows X headed (from round 1's head records) at the SIs X replicated; a holder that goes down
// is not waited for; the plan takes the highest sequence of the head record.
TEST(FtcRecoverySession, RoundTwoAsksForTheHeadedFlowsAtTheReplicatedSis) {
  const auto t0 = std::chrono::steady_clock::now();
  ftc::Geometry geo;
  geo.replicated_sis[42] = {254};
  daemon::RecoverySession s(7, 3, geo, {1, 2, 3}, 10, t0 - 5ms, t0);
  auto r1 = s.start(t0);
  ASSERT_EQ(r1.size(), 3u);
  for (const auto& [node, r] : r1) {
    EXPECT_EQ(r.round, 1);
    EXPECT_EQ(r.instance, 7);
    EXPECT_EQ(r.new_inc, 3);
  }
  ftc::Record a;
  a.seq = 9;
  a.held = 2;
  ftc::Record b = a;
  b.seq = 8;
  const ftc::RecordKey k{7, 255, {42, 0xabc}};
  EXPECT_TRUE(s.on_recover(1, chan::Recover{.req = r1[0].second.req, .batch = 0,
                                            .records = {{k, chan::Role::Replica, a}}}).empty());
  EXPECT_TRUE(s.on_recover(3, chan::Recover{.req = r1[0].second.req, .batch = 0, .records = {{k, chan::Role::Replica, b}}})
                  .empty())
      << "an answer to another node's request is ignored";
  EXPECT_TRUE(s.on_done(1, chan::RecoverDone{.req = r1[0].second.req, .batches = 1, .records = 1}).empty());
  EXPECT_TRUE(s.forget(3).empty());
  auto r2 = s.on_done(2, chan::RecoverDone{.req = r1[1].second.req, .batches = 0, .records = 0});
  ASSERT_EQ(r2.size(), 3u) << "round 2 to every holder";
  EXPECT_EQ(s.round(), 2);
  EXPECT_EQ(r2[0].second.round, 2);
  EXPECT_EQ(r2[0].second.flows, (std::vector<ftc::Flow>{{42, 0xabc}}));
  EXPECT_EQ(r2[0].second.mboxes, (std::vector<std::pair<uint16_t, uint8_t>>{{0, 254}}));
  for (const auto& [node, r] : r2) s.on_done(node, chan::RecoverDone{.req = r.req, .batches = 0, .records = 0});
  EXPECT_TRUE(s.complete());
  auto plan = s.plan();
  ASSERT_EQ(plan.transfers.size(), 1u);
  EXPECT_EQ(plan.transfers[0].rec.seq, 9u);
  EXPECT_EQ(s.records_received(), 1u);
  EXPECT_GE(s.times().detection_ms, 5.0);
}


// A holder asked again (its connection came back, docs/ftc.md 7.4): the round's request under a
// new id; what it sent for the old request is dropped, later answers to it ignored; a holder that
// is not pending is not asked again.
TEST(FtcRecoverySession, AHolderAskedAgainCountsOnlyItsAnswerToTheNewRequest) {
  const auto t0 = std::chrono::steady_clock::now();
  ftc::Geometry geo;
  geo.replicated_sis[42] = {254};
  daemon::RecoverySession s(7, 3, geo, {1, 2}, 10, t0, t0);
  auto r1 = s.start(t0);
  ASSERT_EQ(r1.size(), 2u);
  ftc::Record a;
  a.seq = 9;
  a.held = 2;
  const ftc::RecordKey k{7, 255, {42, 0xabc}}, k2{7, 255, {42, 0xdef}};
  s.on_recover(1, chan::Recover{.req = r1[0].second.req, .batch = 0, .records = {{k, chan::Role::Replica, a}}});
  EXPECT_EQ(s.records_received(), 1u);
  auto again = s.reask(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].first, 1u);
  EXPECT_NE(again[0].second.req, r1[0].second.req);
  EXPECT_EQ(again[0].second.round, 1);
  EXPECT_EQ(s.records_received(), 0u) << "the part answer to the void request is dropped";
  EXPECT_TRUE(s.on_done(1, chan::RecoverDone{.req = r1[0].second.req, .batches = 1, .records = 1}).empty());
  EXPECT_TRUE(s.pending().contains(1)) << "a done for the void request does not count";
  s.on_recover(1, chan::Recover{.req = again[0].second.req, .batch = 0,
                                .records = {{k, chan::Role::Replica, a}, {k2, chan::Role::Replica, a}}});
  s.on_done(1, chan::RecoverDone{.req = again[0].second.req, .batches = 1, .records = 2});
  EXPECT_FALSE(s.pending().contains(1));
  EXPECT_TRUE(s.reask(1).empty()) << "not pending: not asked again";
  auto r2 = s.on_done(2, chan::RecoverDone{.req = r1[1].second.req, .batches = 0, .records = 0});
  ASSERT_EQ(r2.size(), 2u);
  // round 2: asked again with round 2's request, round 1's answer kept
  auto again2 = s.reask(2);
  ASSERT_EQ(again2.size(), 1u);
  EXPECT_EQ(again2[0].second.round, 2);
  EXPECT_EQ(again2[0].second.flows, r2[0].second.flows);
  EXPECT_EQ(again2[0].second.mboxes, r2[0].second.mboxes);
  EXPECT_EQ(s.records_received(), 2u) << "the holder's round-1 answer stays";
  s.on_done(1, chan::RecoverDone{.req = r2[0].second.req, .batches = 0, .records = 0});
  EXPECT_FALSE(s.complete());
  s.on_done(2, chan::RecoverDone{.req = again2[0].second.req, .batches = 0, .records = 0});
  EXPECT_TRUE(s.complete());
  EXPECT_EQ(s.plan().transfers.size(), 2u);
}

}  // namespace
}  // namespace anychain::test
