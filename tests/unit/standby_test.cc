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
