// Standby selection for FTC instances (plane/standby.h, docs/ftc.md 7.3) from synthetic LSDBs:
// which instance failed, which of several standbys acts, the failure detector's verdicts as an
// input, and a failed node that comes back.
#include "plane/standby.h"

#include <gtest/gtest.h>

#include "plane/hold_down.h"
#include "plane_fixtures.h"

using namespace anychain;
using namespace anychain::plane;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t kSvc = 0x0a640001;

ospf::VnfInfo ftc(std::uint32_t id, std::uint32_t router, std::uint32_t inc) {
  return {kSvc, 32, id, 40, 150, 0xc0000200 + router, ospf::kVnfFlagNshAware | ospf::kVnfFlagFtc, inc};
}
ospf::VnfInfo standby(std::uint32_t id, std::uint32_t router) {
  return {kSvc, 32, id, 0, 0, 0xc0000200 + router, ospf::kVnfFlagStandby, 0};
}

// A ring of routers 1..5 around router 1 (each linked to 1): the instance 5 on router 2, standbys
// for it on 4, 3 and 5 (in that order in the LSDB), another FTC instance 8 on router 3.
test::LsdbBuilder net(const std::vector<std::uint32_t>& cut = {}, bool with_a = true) {
  test::LsdbBuilder b;
  b.router(1);
  for (std::uint32_t r = 2; r <= 5; ++r) {
    if (std::find(cut.begin(), cut.end(), r) != cut.end())
      b.router(r);
    else
      b.link(1, r, 10, 10);
  }
  if (with_a) b.vnf(2, ftc(5, 2, 3));
  b.vnf(3, ftc(8, 3, 0));
  b.vnf(4, standby(5, 4));
  b.vnf(3, standby(5, 3));
  b.vnf(5, standby(5, 5));
  return b;
}

struct Plane {
  VnfHoldDown hold{5s, 20s};
  VnfHoldDown::Clock::time_point t{};
  PlaneView at(const test::LsdbBuilder& b, std::vector<std::uint32_t> failed_endpoints = {}) {
    PlaneConfig cfg;
    cfg.self_router = 1;
    cfg.failed_endpoints = std::move(failed_endpoints);
    t += 1s;
    auto v = compute_plane(b.build(), cfg, &hold, t);
    EXPECT_TRUE(v) << (v ? "" : v.error().str());
    return v ? *v : PlaneView{};
  }
};
}  // namespace

TEST(Standby, FlagRoundTripsAndIsNeverACandidate) {
  auto enc = ospf::encode_vnf_payload(standby(5, 4));
  ASSERT_TRUE(enc);
  auto dec = ospf::parse_vnf_payload(*enc);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->standby());
  EXPECT_FALSE(dec->ftc());
  Plane r;
  auto v = r.at(net());
  ASSERT_EQ(v.services.size(), 1u);
  for (const auto& c : v.services[0].candidates) EXPECT_FALSE(c.info.standby()) << c.router;
  EXPECT_EQ(v.services[0].candidates.size(), 2u) << "instances 5 and 8; the three standby LSAs are not candidates";
  ASSERT_EQ(v.standbys.size(), 3u);
  EXPECT_EQ(v.standbys[0], (StandbyAd{3, 5, true}));
  EXPECT_TRUE(failed_ftc_instances(v).empty()) << "nothing failed";
  // a standby removed from its node's config is announced down until its LSA is deleted: gone
  auto b = net();
  auto gone = standby(5, 1);
  gone.flags |= ospf::kVnfFlagDown;
  b.vnf(1, gone);
  v = r.at(b);
  EXPECT_EQ(v.standbys.size(), 3u);
  EXPECT_EQ(v.services[0].candidates.size(), 2u);
}

TEST(Standby, NodeLostLowestReachableStandbyActs) {
  Plane r;
  r.at(net());
  auto v = r.at(net({2}));
  auto failed = failed_ftc_instances(v);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].id, 5u);
  EXPECT_EQ(failed[0].router, 2u);
  EXPECT_EQ(failed[0].last.incarnation, 3u) << "the replacement announces 4";
  EXPECT_TRUE(failed[0].node_lost);
  EXPECT_EQ(acting_standby(v, failed[0]), 3u) << "lowest router id among 3, 4, 5";
  // router 3 lost as well: its standby cannot act, the next lowest does (instance 8 is frozen too,
  // with no standby)
  v = r.at(net({2, 3}));
  failed = failed_ftc_instances(v);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(acting_standby(v, failed[0]), 4u);
  EXPECT_EQ(failed[1].id, 8u);
  EXPECT_FALSE(acting_standby(v, failed[1]).has_value());
  // every standby lost: nobody acts (the freeze expires as without standbys)
  v = r.at(net({2, 3, 4, 5}));
  EXPECT_FALSE(acting_standby(v, failed_ftc_instances(v)[0]).has_value());
}

TEST(Standby, HeartbeatDetectorVerdictFreezesAndSelects) {
  Plane r;
  r.at(net());
  // SPF still reaches router 2 (its adjacencies have not timed out), the channel's detector
  // declared its endpoint down
  auto v = r.at(net(), {0xc0000202});
  EXPECT_EQ(v.detected_down, std::vector<std::uint32_t>{2});
  EXPECT_FALSE(v.router_usable(2));
  EXPECT_TRUE(v.router_usable(3));
  auto failed = failed_ftc_instances(v);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_TRUE(failed[0].node_lost);
  EXPECT_EQ(acting_standby(v, failed[0]), 3u);
  // the detector says router 3 is down too: its standby is passed over
  v = r.at(net(), {0xc0000202, 0xc0000203});
  failed = failed_ftc_instances(v);
  ASSERT_FALSE(failed.empty());
  EXPECT_EQ(acting_standby(v, failed[0]), 4u);
  // the detector's verdict on this router's own endpoint is ignored
  Plane self;
  self.at(net());
  v = self.at(net(), {0xc0000201});
  EXPECT_TRUE(v.detected_down.empty());
}

TEST(Standby, FailedNodeComingBackEndsIt) {
  Plane r;
  r.at(net());
  ASSERT_EQ(failed_ftc_instances(r.at(net({2}))).size(), 1u);
  // router 2 back with the instance announced live (restarted in place): nothing failed
  auto v = r.at(net());
  EXPECT_TRUE(failed_ftc_instances(v).empty());
  EXPECT_EQ(r.hold.ftc_counts().recovered, 1u);
  // the detector's verdict withdrawn (the peer's heartbeats are heard again): the same
  r.at(net(), {0xc0000202});
  EXPECT_TRUE(failed_ftc_instances(r.at(net())).empty());
}

TEST(Standby, ReplacementLiveOnTheStandbyEndsTheFailure) {
  Plane r;
  r.at(net());
  r.at(net({2}));
  auto b = net({2});
  b.vnf(3, ftc(5, 3, 4));  // router 3's standby took over: the same LSID, now an instance of incarnation 4
  auto v = r.at(b);
  EXPECT_TRUE(failed_ftc_instances(v).empty());
}

TEST(Standby, StandbyOnTheFailedRouterItselfNeverActs) {
  Plane r;
  auto b = [](const std::vector<std::uint32_t>& cut) {
    test::LsdbBuilder x;
    for (std::uint32_t rt : {2u, 3u}) {
      if (std::find(cut.begin(), cut.end(), rt) != cut.end())
        x.router(rt);
      else
        x.link(1, rt, 10, 10);
    }
    x.vnf(3, ftc(5, 3, 0));
    x.vnf(2, standby(5, 2));
    return x;
  };
  r.at(b({}));
  // instance 5's own node 3 is flagged failed by the detector; the standby on router 2 acts
  auto v = r.at(b({}), {0xc0000203});
  auto f = failed_ftc_instances(v);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(acting_standby(v, f[0]), 2u);
  // a standby LSA left on the failed router for its own instance is never chosen
  f[0].router = 2;
  EXPECT_FALSE(acting_standby(v, f[0]).has_value());
}

// A node back after a standby took its instance over (docs/ftc.md 7.3): the standby keeps it, the
// node that comes back stands down (the flows' state is at the replacement's head only).
TEST(Standby, NodeBackAfterTheStandbyActedStandsDown) {
  Plane r;
  auto v = r.at(net());
  EXPECT_FALSE(superseded_by(v, 2, 5, 3).has_value()) << "alone live: standby LSAs are not live announcements";
  EXPECT_FALSE(superseded_by(v, 2, 5, std::nullopt).has_value()) << "starting, and nobody else runs it";
  r.at(net({2}));
  // router 3's standby took over as incarnation 4; router 2 is back, its instance not announced yet
  auto b = net({}, false);
  b.vnf(3, ftc(5, 3, 4));
  v = r.at(b);
  EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt), 3u) << "router 2 must not start or recover it";
  EXPECT_FALSE(superseded_by(v, 3, 5, 4).has_value()) << "the replacement keeps it";
  // router 2 still announces its old incarnation live (a partition that healed): the newer one wins
  b = net();
  b.vnf(3, ftc(5, 3, 4));
  v = r.at(b);
  EXPECT_EQ(superseded_by(v, 2, 5, 3), 3u);
  EXPECT_FALSE(superseded_by(v, 3, 5, 4).has_value());
  // a replacement that is itself frozen or unreachable is not live: it supersedes nothing
  v = r.at(b, {0xc0000203});
  EXPECT_FALSE(superseded_by(v, 2, 5, std::nullopt).has_value());
}

TEST(Standby, StandDownOrderIsSerialThenRouterId) {
  Plane r;
  auto with = [](std::uint32_t inc2, std::uint32_t inc3) {
    test::LsdbBuilder b;
    b.router(1);
    for (std::uint32_t rt : {2u, 3u}) b.link(1, rt, 10, 10);
    b.vnf(2, ftc(5, 2, inc2));
    b.vnf(3, ftc(5, 3, inc3));
    return b;
  };
  // 0 follows 255: router 3's incarnation 0 is the newer one
  auto v = r.at(with(255, 0));
  EXPECT_EQ(superseded_by(v, 2, 5, 255), 3u);
  EXPECT_FALSE(superseded_by(v, 3, 5, 0).has_value());
  // the same incarnation on two routers: the lower router id keeps it
  v = r.at(with(7, 7));
  EXPECT_FALSE(superseded_by(v, 2, 5, 7).has_value());
  EXPECT_EQ(superseded_by(v, 3, 5, 7), 2u);
}

// Two routers announce one instance id live (a node back after its standby acted, whose restarted
// ospfd re-floods its old live LSA; a partition that heals): the fast path has one entry per id,
// so every router must keep the same announcement as the candidate, by the stand-down order, or
// each sends the instance's packets to the other (the loop ftc_standby_lab found).
namespace {
// routers 1..4 in a line 1 - 2 - 3 - 4 and 2 - 4 (so that 2 and 4 are neighbours, as D and E)
test::LsdbBuilder line(std::vector<std::pair<std::uint32_t, ospf::VnfInfo>> vnfs) {
  test::LsdbBuilder b;
  b.link(1, 2, 10, 10);
  b.link(2, 3, 10, 10);
  b.link(3, 4, 10, 10);
  b.link(2, 4, 10, 10);
  for (auto& [r, v] : vnfs) b.vnf(r, v);
  return b;
}
PlaneView seen_from(std::uint32_t self, const test::LsdbBuilder& b, VnfHoldDown* hold = nullptr,
                    VnfHoldDown::Clock::time_point t = {}) {
  PlaneConfig cfg;
  cfg.self_router = self;
  auto v = compute_plane(b.build(), cfg, hold, t);
  EXPECT_TRUE(v) << (v ? "" : v.error().str());
  return v ? *v : PlaneView{};
}
std::vector<std::uint32_t> routers_of(const PlaneView& v, std::uint32_t id) {
  std::vector<std::uint32_t> out;
  for (const auto& s : v.services)
    for (const auto& c : s.candidates)
      if (c.info.instance_id == id) out.push_back(c.router);
  return out;
}
}  // namespace

TEST(Standby, TwoLiveAnnouncementsOfOneIdAreOneCandidateEverywhere) {
  // router 4 (the standby) runs instance 5 as incarnation 4; router 2 (back) re-floods its live
  // LSA of incarnation 3, and router 2 has the lower id: the newer incarnation is kept anyway
  auto b = line({{2, ftc(5, 2, 3)}, {4, ftc(5, 4, 4)}, {3, ftc(8, 3, 0)}});
  for (std::uint32_t self : {1u, 2u, 3u, 4u}) {
    auto v = seen_from(self, b);
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << "seen from router " << self;
    EXPECT_EQ(routers_of(v, 8), std::vector<std::uint32_t>{3}) << "other ids are untouched";
    ASSERT_EQ(v.superseded.size(), 1u) << self;
    EXPECT_EQ(v.superseded[0].router, 2u);
    EXPECT_EQ(v.superseded[0].by, 4u);
    EXPECT_EQ(v.superseded[0].info.incarnation, 3u);
    // the weights are those of one instance per id
    ASSERT_EQ(v.services.size(), 1u);
    EXPECT_EQ(v.services[0].candidates.size(), v.services[0].weights.size());
    // the router the plane keeps is the one the stand-down rule keeps running it
    EXPECT_EQ(superseded_by(v, 2, 5, 3), 4u) << self;
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt), 4u) << self;
    EXPECT_FALSE(superseded_by(v, 4, 5, 4).has_value()) << self;
  }
  // the same incarnation on both (a healed partition): the lower router id, on every router
  b = line({{4, ftc(5, 4, 9)}, {2, ftc(5, 2, 9)}});
  for (std::uint32_t self : {1u, 2u, 3u, 4u}) {
    auto v = seen_from(self, b);
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{2}) << self;
    EXPECT_EQ(superseded_by(v, 4, 5, 9), 2u) << self;
    EXPECT_FALSE(superseded_by(v, 2, 5, 9).has_value()) << self;
  }
  // serial arithmetic: 0 follows 255, whatever the order in the LSDB
  b = line({{4, ftc(5, 4, 0)}, {2, ftc(5, 2, 255)}});
  for (std::uint32_t self : {1u, 3u}) EXPECT_EQ(routers_of(seen_from(self, b), 5), std::vector<std::uint32_t>{4});
}

TEST(Standby, ClaimOrderIsFrozenLastThenSerialThenLiveThenRouterId) {
  Candidate live{.router = 7, .info = ftc(5, 7, 1)};
  Candidate held{.router = 2, .info = ftc(5, 2, 1), .held = true};
  Candidate frozen{.router = 1, .info = ftc(5, 1, 3), .recovering = true};
  EXPECT_TRUE(keeps_instance(live, held)) << "same incarnation: live before held, whatever the router ids";
  EXPECT_FALSE(keeps_instance(held, live));
  EXPECT_TRUE(keeps_instance(held, frozen)) << "a frozen one last, whatever its incarnation";
  EXPECT_TRUE(keeps_instance(live, frozen));
  EXPECT_FALSE(keeps_instance(frozen, live));
  held.info.incarnation = 2;
  EXPECT_TRUE(keeps_instance(held, live)) << "a newer held incarnation before an older live one";
  Candidate other{.router = 3, .info = ftc(5, 3, 1)};
  EXPECT_TRUE(keeps_instance(other, live)) << "then the lower router id";
  EXPECT_FALSE(keeps_instance(live, other));
  EXPECT_TRUE(claim_wins(1, 9, 0, 1)) << "newer incarnation first";
  EXPECT_TRUE(claim_wins(0, 9, 255, 1)) << "serial: 0 follows 255";
  EXPECT_TRUE(claim_wins(3, 1, 3, 2)) << "then the lower router id";
  EXPECT_FALSE(claim_wins(3, 2, 3, 2)) << "strict";
  EXPECT_FALSE(claim_wins(130, 1, 0, 2)) << "more than half the circle back is older";
}

// The node that came back stands down (its LSA of the instance becomes a standby LSA, so the old
// live one is held by every agent's hold-down), then its agent restarts (ospfd flushes the
// standby LSA) and its old live LSA is seen again: the replacement stays the candidate throughout.
TEST(Standby, FlapOfTheNodeThatStoodDownKeepsTheReplacement) {
  for (std::uint32_t self : {1u, 2u, 3u, 4u}) {
    VnfHoldDown hold{5s, 20s};
    VnfHoldDown::Clock::time_point t{};
    auto at = [&](const test::LsdbBuilder& b) { return seen_from(self, b, &hold, t += 1s); };
    at(line({{4, ftc(5, 4, 4)}}));
    auto v = at(line({{2, ftc(5, 2, 3)}, {4, ftc(5, 4, 4)}}));  // back: its old LSA re-flooded
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    v = at(line({{2, standby(5, 2)}, {4, ftc(5, 4, 4)}}));  // stood down
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    ASSERT_EQ(v.superseded.size(), 1u) << "its old announcement, held: " << self;
    EXPECT_TRUE(v.superseded[0].held);
    v = at(line({{4, ftc(5, 4, 4)}}));  // its agent restarts: the standby LSA flushed
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    v = at(line({{2, ftc(5, 2, 3)}, {4, ftc(5, 4, 4)}}));  // and an old live one seen again
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt), 4u) << self;
    // the replacement's agent restarts meanwhile (its LSA vanishes, held while its instance
    // runs on): the held newer incarnation is still kept over the stale live one
    v = at(line({{2, ftc(5, 2, 3)}}));
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    ASSERT_EQ(v.superseded.size(), 1u) << self;
    EXPECT_EQ(v.superseded[0].router, 2u);
    EXPECT_FALSE(v.superseded[0].held);
  }
}

// The double failure (docs/ftc.md 7.3): the replacement's agent restarts (its LSA vanishes, every
// hold-down keeps it held) while the node it replaced comes back. The node that comes back must
// still stand down: the held copy has the newer incarnation, and the instance (with its flows'
// state) runs on there; ignoring it, the stale node recovered and announced an incarnation equal
// to the replacement's and, live before held, took the traffic back.
TEST(Standby, AHeldReplacementWithANewerIncarnationSupersedes) {
  for (std::uint32_t self : {1u, 2u, 3u}) {
    VnfHoldDown hold{5s, 20s};
    VnfHoldDown::Clock::time_point t{};
    auto at = [&](const test::LsdbBuilder& b) { return seen_from(self, b, &hold, t += 1s); };
    at(line({{4, ftc(5, 4, 4)}}));
    auto v = at(line({}));  // router 4's agent restarts: its LSA of incarnation 4 is held
    ASSERT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    // router 2 (it ran incarnation 3) comes back: not live yet, it would restart as 4
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt, 4), 4u) << "held, the same incarnation as its restart: " << self;
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt, 3), 4u) << self;
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt, std::nullopt), 4u) << "it never ran it: " << self;
    EXPECT_FALSE(superseded_by(v, 2, 5, std::nullopt, 5).has_value()) << "its own is newer: " << self;
    // router 2 live: a held copy wins only with a newer incarnation (same: live before held)
    EXPECT_EQ(superseded_by(v, 2, 5, 3), 4u) << self;
    EXPECT_FALSE(superseded_by(v, 2, 5, 4).has_value()) << self;
    // and router 2's stale live LSA re-flooded meanwhile: the held newer one is still the winner
    v = at(line({{2, ftc(5, 2, 3)}}));
    EXPECT_EQ(routers_of(v, 5), std::vector<std::uint32_t>{4}) << self;
    EXPECT_EQ(superseded_by(v, 2, 5, std::nullopt, 4), 4u) << self;
  }
}
