// FTC recovery on the fast path's real maps (docs/ftc.md 7.2, 7.5): a frozen flow's placement
// re-pointed to the replacement's generation resumes there, even when WCMP's buckets now name
// another instance; placements written for the replacement's partitions; a withdrawal ends the
// freeze (the flows are placed again, counted by count_affinity before).
#include <bpf/libbpf.h>
#include <linux/if_ether.h>

#include "fastpath_cases.h"

namespace anychain::test {
namespace {

dp::Instance local_instance() {
  return dp::Instance{.id = kInstLocal, .local = true, .nsh_aware = true,
                      .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer,
                      .if_mac = kVnf0Host, .service_id = kSvcLocal};
}

struct Restore {
  ~Restore() {
    auto& d = FastPathEnv::dataplane();
    (void)d.set_instance(local_instance());
    (void)d.set_wcmp_table(kSvcLocal, table_of(kInstLocal));
    (void)d.del_instance(kInstLocalB);
    (void)d.flush_flows();
  }
};

TEST(FtcRecovery, RepointedPlacementResumesOnTheReplacement) {
  auto& d = FastPathEnv::dataplane();
  PinCpu pin;
  Restore restore;
  ASSERT_TRUE(d.flush_flows().has_value());
  const Mac other = {0x02, 0, 0, 0, 0xa0, 0x04};
  dp::Instance b{.id = kInstLocalB, .local = true, .nsh_aware = true,
                 .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = other, .if_mac = kVnf0Host,
                 .service_id = kSvcLocal};
  ASSERT_TRUE(d.set_instance(b).has_value());
  ScopedChain sc(rule_for(kV4, 100), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  const Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip());
  auto r0 = run_prog(prog(), "src0", in);
  ASSERT_EQ(r0.verdict, XDP_REDIRECT);
  ASSERT_EQ(dst_mac(r0), Bytes(kVnf0Peer.begin(), kVnf0Peer.end())) << "placed on the instance that fails";
  auto placed = d.count_affinity(kInstLocal);
  ASSERT_TRUE(placed.has_value()) << placed.error().str();
  EXPECT_EQ(*placed, 1u);
  EXPECT_FALSE(d.repoint_affinity(kInstLocal).has_value()) << "only a recovering instance is re-pointed";

  ASSERT_TRUE(d.set_instance_recovering(kInstLocal).has_value());
  // WCMP moved every bucket to B meanwhile: the frozen placement still wins
  ASSERT_TRUE(d.set_wcmp_table(kSvcLocal, table_of(kInstLocalB)).has_value());
  {
    Counters c;
    EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 1u);
  }
  auto moved = d.repoint_affinity(kInstLocal);
  ASSERT_TRUE(moved.has_value()) << moved.error().str();
  EXPECT_EQ(*moved, 1u);
  {
    // between the re-point and the replacement made live: still held back, never re-placed
    Counters c;
    EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_NEW), 0u);
  }
  auto gen = d.set_instance(local_instance());
  ASSERT_TRUE(gen.has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "src0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(dst_mac(r), Bytes(kVnf0Peer.begin(), kVnf0Peer.end())) << "resumed on the replacement, not B";
    EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_NEW), 0u);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 0u);
  }
  EXPECT_EQ(*d.count_affinity(kInstLocal), 1u);

  // the replacement's partitions written by its node: a new flow whose bucket names B
  Flow f2 = kV4;
  f2.l4.sport = 5151;
  ASSERT_TRUE(d.set_affinity(100, 255, f2.hash(), kInstLocal).has_value());
  auto r2 = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, f2.ip()));
  EXPECT_EQ(dst_mac(r2), Bytes(kVnf0Peer.begin(), kVnf0Peer.end())) << "the written placement, not WCMP's B";
  EXPECT_EQ(*d.count_affinity(kInstLocal), 2u);
  EXPECT_FALSE(d.set_affinity(0, 255, 1, kInstLocal).has_value()) << "SPI 0";
  EXPECT_FALSE(d.set_affinity(100, 255, 1, kInstNoNeigh + 100).has_value()) << "an instance that is not live";

  // no replacement in time: withdrawn, the freeze ends with it and the flows go to B
  ASSERT_TRUE(d.set_instance_recovering(kInstLocal).has_value());
  ASSERT_TRUE(d.del_instance(kInstLocal).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "src0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(dst_mac(r), Bytes(other.begin(), other.end()));
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 0u);
  }
}

}  // namespace
}  // namespace anychain::test
