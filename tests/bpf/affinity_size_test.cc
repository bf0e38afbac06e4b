// ac_affinity is sized by placements (issue 15): one placement per flow AND chain position
// (SPI, SI), on its own option (Options::affinity_entries), not like one CPU's flow cache. On
// real maps, a private pinned copy of the fast path's (nothing attached).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "anychain/maps.h"
#include "dataplane/dataplane.h"
#include "dataplane/pinned.h"

namespace anychain::dataplane {
namespace {

constexpr uint32_t kInst = 5, kSvc = 3;

struct Maps {
  explicit Maps(Options o) {
    pin_root = o.pin_root = "/sys/fs/bpf/anychain-test-affinity-" + std::to_string(getpid());
    auto d = Dataplane::open(o);
    if (!d) throw std::runtime_error("open the fast path's maps: " + d.error().str());
    dp = std::make_unique<Dataplane>(std::move(*d));
  }
  ~Maps() {
    dp.reset();
    (void)Dataplane::unpin_all(pin_root);
  }
  uint32_t max_entries(const char* name) const {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    EXPECT_EQ(bpf_obj_get_info_by_fd(dp->map_fd(name), &info, &len), 0);
    return info.max_entries;
  }
  std::string pin_root;
  std::unique_ptr<Dataplane> dp;
};

TEST(AffinitySize, DefaultHoldsMorePlacementsThanOneCpusFlowCache) {
  Maps m(Options{});
  EXPECT_EQ(m.max_entries("ac_affinity"), uint32_t{AC_AFFINITY_DEFAULT});
  EXPECT_GE(uint32_t{AC_AFFINITY_DEFAULT}, 10000u * 11u);  // 10,000 flows through a chain of 10 (and the last hop)
  EXPECT_GT(uint32_t{AC_AFFINITY_DEFAULT}, uint32_t{AC_FLOW_CACHE_DEFAULT});
}

TEST(AffinitySize, OwnOptionIndependentOfTheFlowCacheAndSeenByPinnedMaps) {
  Maps m(Options{.flow_cache_entries = 4096, .affinity_entries = 50000});
  EXPECT_EQ(m.max_entries("ac_affinity"), 50000u);
  auto p = PinnedMaps::open(m.pin_root);  // what `anychain attach` sizes a program instance by
  ASSERT_TRUE(p.has_value()) << p.error().str();
  EXPECT_EQ(p->affinity_entries(), 50000u);
  EXPECT_EQ(p->flow_cache_entries(), 4096u);
}

TEST(AffinitySize, TooSmallIsRefusedAndLeavesNothing) {
  const std::string root = "/sys/fs/bpf/anychain-test-affinity-small-" + std::to_string(getpid());
  auto d = Dataplane::open({.pin_root = root, .affinity_entries = AC_AFFINITY_MIN - 1});
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().str().find("ac_affinity"), std::string::npos) << d.error().str();
  EXPECT_FALSE(std::filesystem::exists(root)) << "a refused size made its pin directory";
  std::filesystem::remove_all(root);
}

// The case of the issue: 10,000 flows through a chain of 10 services place 10,000 x 11 flows at
// (SPI, SI) positions (every service and the last hop). With ac_affinity sized like the default
// flow cache (65,536) the LRU evicted live placements; at the default now every one stays.
TEST(AffinitySize, TenThousandFlowsThroughTenServicesKeepEveryPlacement) {
  Maps m(Options{});
  Instance inst{.id = kInst, .local = false, .service_id = kSvc};
  inet_pton(AF_INET, "192.0.2.9", &inst.endpoint);
  ASSERT_TRUE(m.dp->set_instance(inst).has_value());
  constexpr uint32_t kFlows = 10000, kPositions = 11, kSpi = 77;
  for (uint32_t si = 255; si > 255 - kPositions; --si)
    for (uint32_t f = 0; f < kFlows; ++f) {
      auto r = m.dp->set_affinity(kSpi, static_cast<uint8_t>(si), 0x9e3779b9u * (f + 1), kInst);
      ASSERT_TRUE(r.has_value()) << r.error().str();
    }
  auto n = m.dp->count_affinity(kInst);
  ASSERT_TRUE(n.has_value()) << n.error().str();
  EXPECT_EQ(*n, size_t{kFlows} * kPositions);
}

}  // namespace
}  // namespace anychain::dataplane
