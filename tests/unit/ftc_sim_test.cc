// The deterministic chain simulation (agent/ftc/sim.h): f = 1..4, several instances per service
// placed per flow, a firewall that filters, a NAT-like mapping and per-packet counters, over a
// network that reorders, loses and duplicates, with failures recovered by instance-id takeover.
// Every run checks the thesis's invariants (sim.h); each scenario runs several seeds.
#include <gtest/gtest.h>

#include "ftc/sim.h"

namespace anychain::ftc::sim {
namespace {

constexpr int kSeeds = 4;

// firewall -> monitor -> NAT -> monitor -> replica hop (longer for f = 4: f + 1 hops at least)
Config chain(int f, uint64_t seed) {
  Config c;
  c.seed = seed;
  c.f = f;
  c.services = {{Kind::Firewall, 2, 0.05}, {Kind::Counter, 3}, {Kind::Mapping, 2}, {Kind::Counter, 2}, {Kind::Replica, 2}};
  if (static_cast<int>(c.services.size()) < f + 1) c.services.resize(f + 1, Service{Kind::Replica, 2});
  return c;
}

void expect_ok(const Report& r, const std::string& what) {
  EXPECT_TRUE(r.ok()) << what << ": " << r.summary();
  EXPECT_GT(r.released, 0u) << what;
  EXPECT_GE(r.checks, r.released) << what << ": the release invariant was checked";
}

class FtcSim : public ::testing::TestWithParam<int> {};

TEST_P(FtcSim, CleanNetworkNeedsNoHold) {
  int f = GetParam();
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    auto r = run(chain(f, seed));
    expect_ok(r, "seed " + std::to_string(seed));
    EXPECT_EQ(r.holds, 0u);
    EXPECT_EQ(r.sent, r.released + r.filtered) << "nothing lost on a clean network";
    if (f > 1) {
      EXPECT_GT(r.propagating, 0u) << "the last packets wait for propagating packets";
    }
  }
}

TEST_P(FtcSim, ReorderingHoldsAndReRequests) {
  int f = GetParam();
  uint64_t resyncs = 0, holds = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Config c = chain(f, seed);
    c.jitter_ns = 30000;
    auto r = run(c);
    expect_ok(r, "seed " + std::to_string(seed));
    EXPECT_EQ(r.sent, r.released + r.filtered);
    holds += r.holds;
    resyncs += r.resyncs;
  }
  EXPECT_GT(holds, 0u) << "reordering made gaps";
  EXPECT_GT(resyncs, 0u) << "some gaps outlived the reorder wait";
}

TEST_P(FtcSim, LossAndDuplication) {
  int f = GetParam();
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Config c = chain(f, seed);
    c.jitter_ns = 20000;
    c.loss = 0.02;
    c.dup = 0.02;
    auto r = run(c);
    expect_ok(r, "seed " + std::to_string(seed));
    EXPECT_GT(r.lost, 0u);
    EXPECT_GT(r.duplicates, 0u);
  }
}

// Up to f failures: a monitor instance, then (f >= 2) a NAT instance, then (f >= 3) a firewall
// and (f >= 4) the other monitor service, each one instance of several behind WCMP.
TEST_P(FtcSim, FailuresAreRecoveredWithoutLostUpdates) {
  int f = GetParam();
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Config c = chain(f, seed);
    c.jitter_ns = 10000;
    c.loss = 0.005;
    std::vector<Failure> all = {{1'500'000, 1, 0}, {2'500'000, 2, 1}, {3'500'000, 0, 0}, {4'500'000, 3, 1}};
    c.failures.assign(all.begin(), all.begin() + f);
    auto r = run(c);
    expect_ok(r, "seed " + std::to_string(seed));
    EXPECT_EQ(r.recoveries, static_cast<uint64_t>(f));
    EXPECT_GT(r.transfers, 0u) << "state came back from the replicas";
  }
}

// f instances fail at the same moment: still within what FTC tolerates.
TEST_P(FtcSim, SimultaneousFailures) {
  int f = GetParam();
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Config c = chain(f, seed);
    for (int i = 0; i < f; ++i) c.failures.push_back({2'000'000, i + 1 < static_cast<int>(c.services.size()) ? i + 1 : 0, 0});
    auto r = run(c);
    expect_ok(r, "seed " + std::to_string(seed));
  }
}

INSTANTIATE_TEST_SUITE_P(F, FtcSim, ::testing::Values(1, 2, 3, 4), [](const auto& i) { return "f" + std::to_string(i.param); });

// A monitor whose log is over the share at f = 4: every log travels as a stub, its writes in a
// propagating packet sent ahead.
TEST(FtcSimStubs, LogsOverTheShareTravelAsStubs) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Config c = chain(4, seed);
    c.services[1].value_bytes = 29;
    c.jitter_ns = 10000;
    auto r = run(c);
    expect_ok(r, "seed " + std::to_string(seed));
    EXPECT_GT(r.stubs, 0u);
  }
}

// An idle chain: few packets, far apart; their release waits for propagating packets.
TEST(FtcSimIdle, PropagatingPacketsReleaseTheLastPackets) {
  Config c = chain(2, 7);
  c.packets = 10;
  c.gap_ns = 5'000'000;
  auto r = run(c);
  expect_ok(r, "idle");
  EXPECT_EQ(r.released + r.filtered, 10u);
  EXPECT_GT(r.propagating, 0u);
}

// The checks can fail: a buffer that ignores commits releases packets before their updates are
// held f + 1 times, and the simulation says so.
TEST(FtcSimControl, ReleasingEarlyIsCaught) {
  Config c = chain(2, 1);
  c.release_early = true;
  auto r = run(c);
  EXPECT_FALSE(r.ok());
  ASSERT_FALSE(r.violations.empty());
  EXPECT_NE(r.violations[0].find("held"), std::string::npos) << r.violations[0];
}

// The same configuration gives the same run.
TEST(FtcSimControl, Deterministic) {
  Config c = chain(3, 11);
  c.jitter_ns = 20000;
  c.loss = 0.01;
  c.failures = {{2'000'000, 1, 1}};
  EXPECT_EQ(run(c).summary(), run(c).summary());
}

}  // namespace
}  // namespace anychain::ftc::sim
