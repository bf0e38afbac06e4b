#include "plane/hold_down.h"

#include <gtest/gtest.h>

#include "plane/service_plane.h"
#include "plane_fixtures.h"

using namespace anychain;
using namespace anychain::plane;
using namespace std::chrono_literals;

namespace {
Instance inst(std::uint32_t router, std::uint32_t id, std::uint32_t cost = 10) {
  return Instance{router, ospf::VnfInfo{0x0a640001, 32, id, cost, 150, router, 0}, false};
}
}  // namespace

TEST(HoldDown, WithdrawnInstanceIsHeldThenExpires) {
  VnfHoldDown h(3s);
  VnfHoldDown::Clock::time_point t0{};
  auto out = h.apply({inst(2, 1), inst(3, 1)}, t0);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_FALSE(h.next_expiry());
  out = h.apply({inst(2, 1)}, t0 + 1s);  // router 3's LSA flushed
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].held);
  EXPECT_EQ(out[1].router, 3u);
  EXPECT_EQ(h.next_expiry(), t0 + 4s);
  out = h.apply({inst(2, 1)}, t0 + 3900ms);
  EXPECT_EQ(out.size(), 2u) << "still within the hold";
  out = h.apply({inst(2, 1)}, t0 + 4s);
  EXPECT_EQ(out.size(), 1u) << "expired";
  EXPECT_EQ(h.held(), 0u);
  out = h.apply({inst(2, 1)}, t0 + 10s);
  EXPECT_EQ(out.size(), 1u) << "an expired instance does not come back";
}

TEST(HoldDown, ReannouncementReplacesHeldCopy) {
  VnfHoldDown h(3s);
  VnfHoldDown::Clock::time_point t0{};
  h.apply({inst(3, 1, 10)}, t0);
  auto out = h.apply({}, t0 + 1s);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].held);
  out = h.apply({inst(3, 1, 77)}, t0 + 2s);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].held);
  EXPECT_EQ(out[0].info.cost, 77u);
  EXPECT_EQ(h.held(), 0u);
}

TEST(HoldDown, ThroughComputePlaneAndUnreachableRouterIsDropped) {
  test::LsdbBuilder with;
  with.link(1, 2, 10, 10);
  with.vnf(2, {0x0a640001, 32, 5, 40, 150, 2, 0});
  test::LsdbBuilder without;
  without.link(1, 2, 10, 10);
  test::LsdbBuilder cut;  // router 2 unreachable now
  cut.router(1);
  cut.router(2);
  PlaneConfig cfg;
  cfg.self_router = 1;
  VnfHoldDown h(5s);
  VnfHoldDown::Clock::time_point t0{};
  auto a = compute_plane(with.build(), cfg, &h, t0);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->services.size(), 1u);
  auto b = compute_plane(without.build(), cfg, &h, t0 + 1s);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->services.size(), 1u);
  EXPECT_TRUE(b->services[0].candidates[0].held);
  EXPECT_EQ(b->services[0].candidates[0].path_cost, 50u);
  auto c = compute_plane(cut.build(), cfg, &h, t0 + 2s);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->services.empty());
  EXPECT_EQ(c->unreachable_instances, 1u);
}

// An instance whose own node flags it down (its VNF died) is dropped at once, not held; when
// its LSA is deleted afterwards nothing is held either. One that merely vanishes is still held.
TEST(HoldDown, InstanceFlaggedDownByItsNodeIsDroppedAtOnceAndNeverHeld) {
  VnfHoldDown h(3s);
  VnfHoldDown::Clock::time_point t0{};
  auto down = [](Instance i) {
    i.info.flags |= ospf::kVnfFlagDown;
    i.info.cost = 0;
    return i;
  };
  auto out = h.apply({inst(2, 1), inst(3, 2)}, t0);
  ASSERT_EQ(out.size(), 2u);
  out = h.apply({down(inst(2, 1)), inst(3, 2)}, t0 + 1s);
  ASSERT_EQ(out.size(), 1u) << "the down instance is no candidate";
  EXPECT_EQ(out[0].info.instance_id, 2u);
  EXPECT_EQ(h.held(), 0u);
  out = h.apply({inst(3, 2)}, t0 + 2s);  // its LSA deleted after the notice
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(h.held(), 0u) << "a withdrawn instance is not held when its LSA goes";
  out = h.apply({}, t0 + 3s);            // router 3's LSA vanishes without notice
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].held);
  out = h.apply({down(inst(3, 2))}, t0 + 4s);  // then its node says it is down: the hold ends
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(h.held(), 0u);
  out = h.apply({inst(3, 2)}, t0 + 5s);  // and back up
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].held);
}

TEST(HoldDown, ComputePlaneLeavesDownInstancesOutWithOrWithoutAHold) {
  test::LsdbBuilder lsdb;
  lsdb.link(1, 2, 10, 10);
  lsdb.vnf(2, {0x0a640001, 32, 5, 40, 150, 2, ospf::kVnfFlagNshAware});
  lsdb.vnf(2, {0x0a640001, 32, 6, 0, 150, 2, ospf::kVnfFlagNshAware | ospf::kVnfFlagDown});
  PlaneConfig cfg;
  cfg.self_router = 1;
  VnfHoldDown h(5s);
  for (VnfHoldDown* hold : {static_cast<VnfHoldDown*>(nullptr), &h}) {
    auto v = compute_plane(lsdb.build(), cfg, hold, VnfHoldDown::Clock::time_point{});
    ASSERT_TRUE(v);
    ASSERT_EQ(v->services.size(), 1u);
    ASSERT_EQ(v->services[0].candidates.size(), 1u);
    EXPECT_EQ(v->services[0].candidates[0].info.instance_id, 5u);
    EXPECT_EQ(v->down_instances, 1u);
  }
}

// FTC (docs/ftc.md 7.2): a live FTC instance flagged down by its node is frozen (recovering) for
// the recovery hold, its last live announcement kept; a live announcement (the replacement, a new
// incarnation) ends the freeze; without one it expires and is reported abandoned.
namespace {
Instance ftc_inst(std::uint32_t router, std::uint32_t id, std::uint32_t inc = 0, std::uint32_t cost = 10) {
  Instance i = inst(router, id, cost);
  i.info.flags |= ospf::kVnfFlagFtc;
  i.info.incarnation = inc;
  return i;
}
Instance down(Instance i) {
  i.info.flags |= ospf::kVnfFlagDown;
  i.info.cost = 0;
  return i;
}
}  // namespace

TEST(HoldDown, FtcInstanceDownIsFrozenThenReplaced) {
  VnfHoldDown h(3s, 10s);
  VnfHoldDown::Clock::time_point t0{};
  h.apply({ftc_inst(2, 1, 0, 40), inst(3, 2)}, t0);
  auto out = h.apply({down(ftc_inst(2, 1)), inst(3, 2)}, t0 + 1s);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].recovering);
  EXPECT_FALSE(out[1].held);
  EXPECT_EQ(out[1].info.cost, 40u) << "the last live announcement is kept";
  EXPECT_FALSE(out[1].info.down());
  EXPECT_EQ(h.recovering(), 1u);
  EXPECT_EQ(h.next_expiry(), t0 + 11s);
  out = h.apply({inst(3, 2)}, t0 + 2s);  // the down LSA deleted: still frozen
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].recovering);
  EXPECT_EQ(h.held(), 0u);
  out = h.apply({ftc_inst(2, 1, 1, 50), inst(3, 2)}, t0 + 3s);  // the replacement, incarnation 1
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[0].recovering);
  EXPECT_EQ(out[0].info.incarnation, 1u);
  EXPECT_EQ(h.recovering(), 0u);
  EXPECT_EQ(h.ftc_counts().frozen, 1u);
  EXPECT_EQ(h.ftc_counts().recovered, 1u);
  EXPECT_TRUE(h.take_abandoned().empty());
}

TEST(HoldDown, FtcFreezeExpiresAbandoned) {
  VnfHoldDown h(3s, 10s);
  VnfHoldDown::Clock::time_point t0{};
  h.apply({ftc_inst(2, 7)}, t0);
  auto out = h.apply({down(ftc_inst(2, 7))}, t0 + 1s);
  ASSERT_EQ(out.size(), 1u);
  out = h.apply({down(ftc_inst(2, 7))}, t0 + 10900ms);
  ASSERT_EQ(out.size(), 1u) << "within the recovery hold";
  out = h.apply({down(ftc_inst(2, 7))}, t0 + 11s);
  EXPECT_TRUE(out.empty()) << "expired: withdrawn as any instance";
  EXPECT_EQ(h.ftc_counts().abandoned, 1u);
  EXPECT_EQ(h.take_abandoned(), std::vector<std::uint32_t>{7});
  EXPECT_TRUE(h.take_abandoned().empty());
  out = h.apply({down(ftc_inst(2, 7))}, t0 + 12s);
  EXPECT_TRUE(out.empty()) << "not frozen again by the same down LSA";
  EXPECT_FALSE(h.next_expiry());
}

TEST(HoldDown, NonFtcAndNeverLiveFtcAreNotFrozen) {
  VnfHoldDown h(3s, 10s);
  VnfHoldDown::Clock::time_point t0{};
  h.apply({inst(2, 1)}, t0);
  auto out = h.apply({down(inst(2, 1)), down(ftc_inst(3, 9))}, t0 + 1s);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(h.recovering(), 0u);
}

// The node of an FTC instance dies: its LSA stays (nobody flushes it) but its router is
// unreachable. Through compute_plane the instance stays a candidate, recovering, weight 0, while
// a plain instance of the same router is dropped.
TEST(HoldDown, FtcInstanceOfUnreachableRouterIsFrozenThroughComputePlane) {
  ospf::VnfInfo f{0x0a640001, 32, 5, 40, 150, 2, ospf::kVnfFlagNshAware | ospf::kVnfFlagFtc, 3};
  ospf::VnfInfo plain{0x0a640002, 32, 6, 40, 150, 2, ospf::kVnfFlagNshAware};
  ospf::VnfInfo other{0x0a640001, 32, 8, 40, 150, 3, ospf::kVnfFlagNshAware | ospf::kVnfFlagFtc, 0};
  test::LsdbBuilder up;
  up.link(1, 2, 10, 10);
  up.link(1, 3, 10, 10);
  up.vnf(2, f);
  up.vnf(2, plain);
  up.vnf(3, other);
  test::LsdbBuilder cut;  // router 2 gone from router 1's links
  cut.router(2);
  cut.link(1, 3, 10, 10);
  cut.vnf(2, f);
  cut.vnf(2, plain);
  cut.vnf(3, other);
  PlaneConfig cfg;
  cfg.self_router = 1;
  VnfHoldDown h(5s, 20s);
  VnfHoldDown::Clock::time_point t0{};
  auto a = compute_plane(up.build(), cfg, &h, t0);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->services.size(), 2u);
  auto b = compute_plane(cut.build(), cfg, &h, t0 + 1s);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->services.size(), 1u) << "the plain instance's service has no candidate left";
  const auto& r = b->services[0];
  ASSERT_EQ(r.candidates.size(), 2u);
  EXPECT_EQ(r.candidates[0].info.instance_id, 8u);
  EXPECT_FALSE(r.candidates[0].recovering);
  EXPECT_GT(r.weights[0], 0u);
  EXPECT_EQ(r.candidates[1].info.instance_id, 5u);
  EXPECT_TRUE(r.candidates[1].recovering);
  EXPECT_EQ(r.candidates[1].info.incarnation, 3u);
  EXPECT_EQ(r.weights[1], 0u);
  EXPECT_EQ(b->unreachable_instances, 1u);
  auto c = compute_plane(cut.build(), cfg, &h, t0 + 21s);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->services.size(), 1u);
  EXPECT_EQ(c->services[0].candidates.size(), 1u) << "abandoned after the recovery hold";
  EXPECT_EQ(h.ftc_counts().abandoned, 1u);
}

// A standby on another router takes the instance over (docs/ftc.md 7.3): the freeze of the
// failed router's copy ends when the same instance id is announced live anywhere.
TEST(HoldDown, FtcReplacementOnAnotherRouterEndsTheFreeze) {
  VnfHoldDown h(3s, 10s);
  VnfHoldDown::Clock::time_point t0{};
  h.apply({ftc_inst(2, 5)}, t0);
  auto out = h.apply({down(ftc_inst(2, 5))}, t0 + 1s);
  ASSERT_EQ(out.size(), 1u);
  out = h.apply({down(ftc_inst(2, 5)), ftc_inst(4, 5, 1)}, t0 + 2s);
  ASSERT_EQ(out.size(), 1u) << "one copy of instance 5: the replacement";
  EXPECT_EQ(out[0].router, 4u);
  EXPECT_FALSE(out[0].recovering);
  EXPECT_EQ(h.ftc_counts().recovered, 1u);
}
