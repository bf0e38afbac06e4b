// The agent's plane on real maps: VNF LSAs -> compute_plane (with the hold-down) -> PlaneSync ->
// ac_instances / WCMP table / ac_affinity of a private, pinned copy of the fast path's maps
// (nothing attached). A local instance written before it is announced (docs/agent.md "Local
// instances before their announcement"); FTC freezing (docs/ftc.md 7.2, 7.5).
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "anychain/maps.h"
#include "common/unique_fd.h"
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

// A local instance is written into ac_instances before its LSA leaves (a peer may send to it as
// soon as the LSA reaches it, while this router's own view does not list it yet): kept, without
// buckets, through plane runs that do not list it while it stays alive and configured; then the
// view's rules apply. Not done for FTC instances (their announcement has its own order).
TEST(PlaneSyncLocal, AnInstanceIsWrittenBeforeItsAnnouncementAndKeptUntilTheViewListsIt) {
  Maps m;
  AgentSpec spec;
  spec.services.push_back({"fw", kSvc, kAnycast, 32});
  const Mac vnf_mac{0x02, 0, 0, 0, 0, 7};
  auto local = [&](const char* name, uint32_t id, bool ftc) {
    LocalInstanceSpec i;
    i.name = name;
    i.id = id;
    i.service_id = kSvc;
    i.veth = "lo";
    i.mac = vnf_mac;
    i.capacity = 100;
    i.ftc = ftc;
    spec.instances.push_back(i);
  };
  local("fw7", 7, false);
  local("fw8", 8, false);
  local("mon9", 9, true);
  PlaneSync sync(*m.dp, spec);
  plane::PlaneConfig cfg;
  cfg.self_router = 1;
  std::set<uint32_t> alive = {7, 8, 9};
  auto is_alive = [&](uint32_t id) { return alive.contains(id); };
  auto apply = [&](bool seven_in_lsdb) {
    test::LsdbBuilder b;
    b.link(1, 2, 10, 10);
    if (seven_in_lsdb) b.vnf(1, ospf::VnfInfo{kAnycast, 32, 7, 40, 150, 1, ospf::kVnfFlagNshAware, 0});
    auto v = plane::compute_plane(b.build(), cfg, nullptr, {});
    EXPECT_TRUE(v.has_value());
    auto rep = sync.apply(*v, 1, is_alive);
    for (const auto& e : rep.errors) ADD_FAILURE() << e;
    return rep;
  };

  ASSERT_EQ(sync.program_local(7, is_alive).value(), true);
  const ac_instance early = m.instance(7);
  EXPECT_EQ(early.flags & (AC_INST_LIVE | AC_INST_LOCAL | AC_INST_NSH_AWARE),
            AC_INST_LIVE | AC_INST_LOCAL | AC_INST_NSH_AWARE);
  EXPECT_EQ(early.service_id, kSvc);
  EXPECT_EQ(early.ifindex, 1u) << "lo";
  EXPECT_EQ(Mac(std::to_array(early.mac)), vnf_mac);
  EXPECT_FALSE(m.dp->wcmp_table(kSvc).has_value()) << "no buckets of its own service here yet";
  EXPECT_EQ(sync.program_local(7, is_alive).value(), false) << "written once";
  EXPECT_EQ(sync.program_local(9, is_alive).value(), false) << "an FTC instance is not";
  EXPECT_FALSE(m.instance(9).flags & AC_INST_LIVE);

  // a plane run before its LSA is back: kept as it was
  auto rep = apply(false);
  EXPECT_EQ(rep.withdrawn, 0u);
  EXPECT_EQ(m.instance(7).flags & AC_INST_LIVE, AC_INST_LIVE);
  EXPECT_EQ(m.instance(7).generation, early.generation);
  // the view lists it: buckets, same generation (the flows placed on it meanwhile stay)
  apply(true);
  EXPECT_EQ(m.instance(7).generation, early.generation);
  EXPECT_GT(m.buckets_of(kSvc, 7), 0);
  // from then on the view rules: its LSA gone (no hold-down here), it is withdrawn
  rep = apply(false);
  EXPECT_EQ(rep.withdrawn, 1u);
  EXPECT_FALSE(m.instance(7).flags & AC_INST_LIVE);

  // written early and dead before its LSA came back: withdrawn at the next run
  ASSERT_EQ(sync.program_local(8, is_alive).value(), true);
  alive.erase(8);
  rep = apply(false);
  EXPECT_EQ(rep.withdrawn, 1u);
  EXPECT_FALSE(m.instance(8).flags & AC_INST_LIVE);
  EXPECT_EQ(sync.program_local(8, is_alive).value(), false) << "not while dead";
}

// A service's bucket table is written and read in one batch each, and a recomputation that leaves
// the weights as they are swaps nothing (docs/performance.md "Control plane": the agent rebuilt
// every table, 4093 syscalls each way, on every recomputation). The inner table's map id tells a
// swap.
TEST(WcmpTableSync, AnUnchangedTableIsNotSwappedAChangedOneIsExactly) {
  Maps m;
  auto inner_id = [&] {
    uint32_t id = 0;
    EXPECT_EQ(bpf_map_lookup_elem(m.dp->map_fd("ac_wcmp"), &kSvc, &id), 0);
    return id;
  };
  const std::vector<dp::WcmpMember> two{{1, 1.0}, {2, 1.0}};
  ASSERT_TRUE(m.dp->set_wcmp_weights(kSvc, two).has_value());
  const uint32_t first = inner_id();
  const auto t1 = m.dp->wcmp_table(kSvc).value();
  ASSERT_EQ(t1.size(), AC_WCMP_BUCKETS);
  EXPECT_EQ(std::count(t1.begin(), t1.end(), 1u) + std::count(t1.begin(), t1.end(), 2u), AC_WCMP_BUCKETS);
  EXPECT_EQ(m.dp->set_wcmp_weights(kSvc, two).value(), 0.0);
  EXPECT_EQ(inner_id(), first) << "the same weights: the table in force stays";
  EXPECT_EQ(m.dp->set_wcmp_table(kSvc, t1).value(), 0.0);
  EXPECT_EQ(inner_id(), first) << "the same buckets: the table in force stays";
  // another weight: a new table, only the buckets that must move moved
  const std::vector<dp::WcmpMember> three{{1, 1.0}, {2, 1.0}, {3, 1.0}};
  const double moved = m.dp->set_wcmp_weights(kSvc, three).value();
  EXPECT_GT(moved, 0.2);
  EXPECT_LT(moved, 0.5);
  EXPECT_NE(inner_id(), first);
  EXPECT_NEAR(m.buckets_of(kSvc, 3), AC_WCMP_BUCKETS / 3, 2);
  // every bucket written and read where it belongs
  std::vector<uint32_t> mine(AC_WCMP_BUCKETS);
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i) mine[i] = 1 + (i * 7919u) % 1000u;
  const auto before = m.dp->wcmp_table(kSvc).value();
  size_t differ = 0;
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i) differ += before[i] != mine[i];
  EXPECT_DOUBLE_EQ(m.dp->set_wcmp_table(kSvc, mine).value(), static_cast<double>(differ) / AC_WCMP_BUCKETS);
  EXPECT_EQ(m.dp->wcmp_table(kSvc).value(), mine);
  const uint32_t inner = inner_id();
  for (uint32_t i : {0u, 1u, 2046u, uint32_t{AC_WCMP_BUCKETS - 1}}) {
    UniqueFd fd(bpf_map_get_fd_by_id(inner));
    ASSERT_TRUE(fd);
    uint32_t v = 0;
    ASSERT_EQ(bpf_map_lookup_elem(fd.get(), &i, &v), 0);
    EXPECT_EQ(v, mine[i]) << "bucket " << i;
  }
}

}  // namespace
}  // namespace anychain::daemon
