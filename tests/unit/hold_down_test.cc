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
