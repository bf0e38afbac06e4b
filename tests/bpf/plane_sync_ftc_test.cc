// FTC freezing through the agent's plane on real maps (docs/ftc.md 7.2, 7.5): VNF LSAs ->
// compute_plane with the hold-down -> PlaneSync -> ac_instances / WCMP table / ac_affinity of a
// private, pinned copy of the fast path's maps (nothing attached).
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <chrono>

#include "anychain/maps.h"
#include "daemon/plane_sync.h"
#include "dataplane/dataplane.h"
#include "plane/service_plane.h"
#include "unit/plane_fixtures.h"

namespace anychain::daemon {
namespace {

using namespace std::chrono_literals;
namespace dp = anychain::dataplane;

constexpr uint32_t kSvc = 9;
constexpr uint32_t kAnycast = 0x0a640009;  // 10.100.0.9/32

ospf::VnfInfo ftc_vnf(uint32_t id, uint32_t router, uint32_t inc, bool down = false) {
  ospf::VnfInfo v{kAnycast, 32, id, down ? 0u : 40u, 150, router,
                  ospf::kVnfFlagNshAware | ospf::kVnfFlagFtc | (down ? ospf::kVnfFlagDown : 0u), inc};
  return v;
}

struct Maps {
  Maps() {
    pin_root = "/sys/fs/bpf/anychain-test-fr-plane-" + std::to_string(getpid());
    auto d = dp::Dataplane::open({.pin_root = pin_root});
    if (!d) throw std::runtime_error("open the fast path's maps: " + d.error().str());
    dp = std::make_unique<dp::Dataplane>(std::move(*d));
  }
  ~Maps() {
    dp.reset();
    (void)dp::Dataplane::unpin_all(pin_root);
  }
  ac_instance instance(uint32_t id) const {
    ac_instance v{};
    EXPECT_EQ(bpf_map_lookup_elem(dp->map_fd("ac_instances"), &id, &v), 0);
    return v;
  }
  long buckets_of(uint32_t svc, uint32_t id) const {
    auto t = dp->wcmp_table(svc);
    EXPECT_TRUE(t.has_value());
    return t ? std::count(t->begin(), t->end(), id) : 0;
  }
  uint64_t placement(uint32_t spi, uint8_t si, uint32_t hash) const {
    ac_affinity_key k{htonl(AC_SPI_SI(spi, si)), hash};
    ac_affinity a{};
    if (bpf_map_lookup_elem(dp->map_fd("ac_affinity"), &k, &a) != 0) return 0;
    return a.pick;
  }
  std::string pin_root;
  std::unique_ptr<dp::Dataplane> dp;
};

TEST(PlaneSyncFtc, FreezeKeepsBucketsRepointsOnReplacementAndAbandonsAfterTheHold) {
  Maps m;
  AgentSpec spec;
  spec.services.push_back({"mon", kSvc, kAnycast, 32});
  PlaneSync sync(*m.dp, spec);
  std::vector<uint32_t> resumed;
  sync.on_resumed = [&](uint32_t id) { resumed.push_back(id); };
  plane::PlaneConfig cfg;
  cfg.self_router = 1;
  plane::VnfHoldDown hold(5s, 20s);
  plane::VnfHoldDown::Clock::time_point t0{};
  auto lsdb = [](std::optional<ospf::VnfInfo> five) {
    test::LsdbBuilder b;
    b.link(1, 2, 10, 10);
    b.link(1, 3, 10, 10);
    if (five) b.vnf(five->nsh_endpoint, *five);
    b.vnf(3, ftc_vnf(6, 3, 0));
    return b.build();
  };
  auto apply = [&](const ospf::Lsdb& db, plane::VnfHoldDown::Clock::time_point t) {
    auto v = plane::compute_plane(db, cfg, &hold, t);
    EXPECT_TRUE(v.has_value());
    auto rep = sync.apply(*v, 1);
    for (const auto& e : rep.errors) ADD_FAILURE() << e;
    return rep;
  };

  apply(lsdb(ftc_vnf(5, 2, 0)), t0);
  const ac_instance live = m.instance(5);
  ASSERT_TRUE(live.flags & AC_INST_LIVE);
  auto table = m.dp->wcmp_table(kSvc);
  ASSERT_TRUE(table.has_value());
  ASSERT_NE(std::count(table->begin(), table->end(), 5u), 0);
  ASSERT_TRUE(m.dp->set_affinity(100, 255, 0xabc, 5).has_value());  // a flow placed on 5
  ASSERT_TRUE(m.dp->set_affinity(100, 255, 0xdef, 6).has_value());  // and one on 6
  const uint64_t on6 = m.placement(100, 255, 0xdef);

  // 5's process died: its node flags it down; every agent freezes it
  auto rep = apply(lsdb(ftc_vnf(5, 2, 0, true)), t0 + 1s);
  EXPECT_EQ(rep.recovering, 1u);
  ac_instance frozen = m.instance(5);
  EXPECT_EQ(frozen.flags & (AC_INST_LIVE | AC_INST_RECOVERING), AC_INST_RECOVERING);
  EXPECT_EQ(frozen.generation, live.generation) << "generation kept: the placements still name it";
  EXPECT_EQ(m.dp->wcmp_table(kSvc).value(), *table) << "its buckets kept";
  EXPECT_EQ(sync.ftc_stats().frozen, 1u);
  // the down LSA goes: still frozen, 5 keeps its buckets
  apply(lsdb(std::nullopt), t0 + 2s);
  EXPECT_EQ(m.instance(5).flags & AC_INST_RECOVERING, AC_INST_RECOVERING);
  EXPECT_EQ(sync.ftc_stats().frozen, 1u) << "frozen once";
  EXPECT_EQ(m.buckets_of(kSvc, 5), std::count(table->begin(), table->end(), 5u));

  // the replacement: same id, incarnation 1, on router 3 now (another endpoint)
  apply(lsdb(ftc_vnf(5, 3, 1)), t0 + 3s);
  ac_instance back = m.instance(5);
  EXPECT_EQ(back.flags & (AC_INST_LIVE | AC_INST_RECOVERING), AC_INST_LIVE);
  EXPECT_EQ(back.generation, live.generation + 1);
  EXPECT_EQ(back.endpoint, htonl(3u));
  EXPECT_EQ(m.placement(100, 255, 0xabc), AC_AFFINITY(5, live.generation + 1)) << "re-pointed to the replacement";
  EXPECT_EQ(m.placement(100, 255, 0xdef), on6) << "other instances' flows untouched";
  EXPECT_EQ(sync.ftc_stats().placements_repointed, 1u);
  EXPECT_EQ(sync.ftc_stats().resumed, 1u);
  EXPECT_EQ(resumed, std::vector<uint32_t>{5});

  // fails again, and no replacement within the 20 s hold: withdrawn, its flow counted abandoned
  apply(lsdb(ftc_vnf(5, 3, 1, true)), t0 + 4s);
  EXPECT_EQ(m.instance(5).flags & AC_INST_RECOVERING, AC_INST_RECOVERING);
  apply(lsdb(ftc_vnf(5, 3, 1, true)), t0 + 25s);
  ac_instance gone = m.instance(5);
  EXPECT_EQ(gone.flags & (AC_INST_LIVE | AC_INST_RECOVERING), 0);
  EXPECT_EQ(sync.ftc_stats().abandoned, 1u);
  EXPECT_EQ(sync.ftc_stats().partitions_abandoned, 1u);
  EXPECT_EQ(m.buckets_of(kSvc, 5), 0);
}

}  // namespace
}  // namespace anychain::daemon
