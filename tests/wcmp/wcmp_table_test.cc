#include "dataplane/wcmp_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

namespace anychain::dataplane {
namespace {

constexpr std::uint32_t kM = kWcmpDefaultBuckets;

std::vector<WcmpMember> equal_members(std::uint32_t n, std::uint32_t first_id = 1) {
  std::vector<WcmpMember> v;
  for (std::uint32_t i = 0; i < n; ++i) v.push_back({first_id + i, 1.0});
  return v;
}

std::map<std::uint32_t, std::uint32_t> counts(const std::vector<std::uint32_t>& t) {
  std::map<std::uint32_t, std::uint32_t> c;
  for (auto id : t) ++c[id];
  return c;
}

std::vector<std::uint32_t> build(const std::vector<WcmpMember>& m, std::uint32_t size = kM) {
  auto t = build_wcmp_table(m, size);
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return t ? *t : std::vector<std::uint32_t>{};
}

double moved(const std::vector<std::uint32_t>& a, const std::vector<std::uint32_t>& b) {
  auto f = moved_fraction(a, b);
  EXPECT_TRUE(f.has_value());
  return f.value_or(1.0);
}

double tv(const std::vector<WcmpMember>& a, const std::vector<WcmpMember>& b) {
  auto d = weight_tv_distance(a, b);
  EXPECT_TRUE(d.has_value());
  return d.value_or(0.0);
}

// Checks that every bucket is filled and each member's share is within `tol` (absolute share)
// and within one bucket of its exact apportionment.
void expect_weights_honoured(const std::vector<WcmpMember>& m, std::uint32_t size,
                             double tol = 0.01) {
  const auto t = build(m, size);
  ASSERT_EQ(t.size(), size);
  double total = 0;
  for (const auto& x : m) total += x.weight;
  auto c = counts(t);
  EXPECT_EQ(c.count(0), 0u) << "no bucket may stay empty";
  for (const auto& x : m) {
    const double exact = size * x.weight / total;
    const double got = c.count(x.instance_id) ? c[x.instance_id] : 0;
    EXPECT_LT(std::fabs(got - exact), 1.0) << "instance " << x.instance_id;
    EXPECT_LE(std::fabs(got / size - x.weight / total), tol) << "instance " << x.instance_id;
    if (x.weight == 0) {
      EXPECT_EQ(got, 0) << "zero weight instance " << x.instance_id;
    }
  }
}

TEST(WcmpQuota, LargestRemainderSumsToTableSize) {
  const std::vector<WcmpMember> m{{7, 1}, {3, 1}, {5, 1}};
  auto q = wcmp_quotas(m, 13);
  ASSERT_TRUE(q.has_value());
  // 13/3 = 4.33 each: one extra bucket, remainder tie goes to the lowest id (3).
  EXPECT_EQ(*q, (std::vector<std::uint32_t>{4, 5, 4}));
  auto q2 = wcmp_quotas(std::vector<WcmpMember>{{1, 2}, {2, 1}, {3, 0}}, 7);
  ASSERT_TRUE(q2.has_value());
  // 14/3 = 4.67, 7/3 = 2.33 -> 5, 2, 0
  EXPECT_EQ(*q2, (std::vector<std::uint32_t>{5, 2, 0}));
}

TEST(WcmpTable, WeightsHonoured) {
  expect_weights_honoured({{1, 1}, {2, 1}}, kM);
  expect_weights_honoured({{1, 2}, {2, 1}, {3, 1}}, kM);
  expect_weights_honoured({{10, 41}, {20, 41}, {30, 18}}, kM);
  expect_weights_honoured({{1, 1}, {2, 0}, {3, 3}}, kM);
  expect_weights_honoured({{1, 0.001}, {2, 1000}}, kM, 0.001);
  expect_weights_honoured({{1, 4294967295.0}, {2, 1}}, kM);
  std::mt19937 rng(12345);
  std::vector<WcmpMember> hundred;
  for (std::uint32_t i = 1; i <= 100; ++i) hundred.push_back({i * 37, double(rng() % 100 + 1)});
  expect_weights_honoured(hundred, kM);
  expect_weights_honoured(hundred, 65537, 0.001);
}

TEST(WcmpTable, SmallPrimeTables) {
  expect_weights_honoured({{1, 1}}, 2, 0.0);
  expect_weights_honoured({{1, 1}, {2, 1}, {3, 1}}, 13, 0.1);
  // More instances than buckets: the largest remainders win, every bucket still filled.
  auto t = build(equal_members(20), 7);
  EXPECT_EQ(counts(t).size(), 7u);
  EXPECT_EQ(counts(t).count(0), 0u);
}

TEST(WcmpTable, Deterministic) {
  std::vector<WcmpMember> m{{5, 3}, {9, 2}, {1, 7}, {12, 1}};
  const auto a = build(m);
  const auto b = build(m);
  EXPECT_EQ(a, b);
  std::ranges::reverse(m);
  EXPECT_EQ(build(m), a) << "member order must not matter";
  std::ranges::rotate(m, m.begin() + 1);
  EXPECT_EQ(build(m), a);
}

TEST(WcmpTable, GoldenSmallTable) {
  // Pins the hash functions and fill order: a change here changes every node's tables, which
  // must then be rolled out to all nodes at once.
  const auto t = build({{1, 1}, {2, 1}, {3, 2}}, 13);
  const std::vector<std::uint32_t> golden = {3, 2, 1, 2, 3, 3, 1, 1, 3, 3, 3, 3, 2};
  EXPECT_EQ(t, golden);
}

TEST(WcmpTable, SpreadsInstancesOverTheTable) {
  // Buckets of one instance are not one contiguous run (the walks are pseudo-random).
  const auto t = build(equal_members(4));
  std::size_t runs = 0;
  for (std::size_t i = 1; i < t.size(); ++i) runs += t[i] != t[i - 1];
  EXPECT_GT(runs, t.size() / 2);
}

TEST(WcmpDisruption, RemovingOneOfNEqualInstances) {
  // Maglev's excess over 1/N grows slowly with N (measured worst case over every removed
  // instance: 0.4 % at N=3, 1.4 % at N=10, 1.7 % at N=16, 2.1 % at N=32, 3.3 % at N=100).
  for (std::uint32_t n : {2u, 3u, 5u, 8u, 10u, 16u, 32u, 100u}) {
    const double slack = n <= 16 ? 0.02 : 0.04;
    const auto before = equal_members(n);
    const auto old_t = build(before);
    for (std::uint32_t gone = 0; gone < n; gone += std::max(1u, n / 8)) {
      auto after = before;
      after.erase(after.begin() + gone);
      const double f = moved(old_t, build(after));
      EXPECT_GE(f, 1.0 / n - 1.0 / kM) << "n=" << n << " removed #" << gone;
      EXPECT_LE(f, 1.0 / n + slack) << "n=" << n << " removed #" << gone;
    }
  }
}

TEST(WcmpDisruption, AddingOneInstance) {
  for (std::uint32_t n : {1u, 2u, 4u, 9u, 20u}) {
    const auto before = equal_members(n);
    auto after = before;
    after.push_back({1000, 1.0});
    const double f = moved(build(before), build(after));
    EXPECT_LE(f, 1.0 / (n + 1) + 0.02) << "n=" << n;
  }
}

TEST(WcmpDisruption, PaperFiftyFiftyToFortyFortyTwenty) {
  const std::vector<WcmpMember> before{{1, 50}, {2, 50}};
  const std::vector<WcmpMember> after{{1, 40}, {2, 40}, {3, 20}};
  EXPECT_NEAR(tv(before, after), 0.20, 1e-9);
  const double f = moved(build(before), build(after));
  EXPECT_GE(f, 0.20 - 1.0 / kM);
  EXPECT_LE(f, 0.25);
}

TEST(WcmpDisruption, WeightChangesStayNearTheLowerBound) {
  // Random weight perturbations: moved fraction vs total variation distance.
  std::mt19937 rng(7);
  double worst_excess = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const std::uint32_t n = 2 + rng() % 10;
    std::vector<WcmpMember> a, b;
    for (std::uint32_t i = 1; i <= n; ++i) {
      const double w = 10 + rng() % 90;
      a.push_back({i, w});
      b.push_back({i, std::max(0.0, w + double(int(rng() % 21) - 10))});
    }
    const double lb = tv(a, b);
    const double f = moved(build(a), build(b));
    EXPECT_GE(f, lb - double(n) / kM) << "cannot beat the lower bound";
    worst_excess = std::max(worst_excess, f - lb);
    // Small weight changes must not reshuffle the table.
    EXPECT_LE(f, 3 * lb + 0.02) << "trial " << trial << " lb=" << lb;
  }
  RecordProperty("worst_excess_over_tv", std::to_string(worst_excess));
}

TEST(WcmpRebalance, ReachesTheLowerBound) {
  const std::vector<WcmpMember> before{{1, 50}, {2, 50}};
  const std::vector<WcmpMember> after{{1, 40}, {2, 40}, {3, 20}};
  const auto old_t = build(before);
  auto r = rebalance_wcmp_table(old_t, after);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const double f = moved(old_t, *r);
  EXPECT_NEAR(f, 0.20, 3.0 / kM);
  // Quotas are exact after a rebalance too.
  auto q = wcmp_quotas(after, kM);
  ASSERT_TRUE(q.has_value());
  auto c = counts(*r);
  EXPECT_EQ(c[1], (*q)[0]);
  EXPECT_EQ(c[2], (*q)[1]);
  EXPECT_EQ(c[3], (*q)[2]);
  EXPECT_EQ(c.count(0), 0u);
}

TEST(WcmpRebalance, MovesExactlyTheExcessBuckets) {
  // Property: a rebalance moves exactly the buckets held above the new quotas (all buckets of
  // removed instances included), and lands on the new quotas exactly.
  std::mt19937 rng(99);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<WcmpMember> a, b;
    const std::uint32_t n = 1 + rng() % 12;
    for (std::uint32_t i = 1; i <= n; ++i) {
      a.push_back({i, double(rng() % 50)});
      if (rng() % 4 != 0) b.push_back({i, double(rng() % 50)});
    }
    b.push_back({100 + static_cast<std::uint32_t>(trial), 1 + double(rng() % 50)});
    a.push_back({500, 1});  // keeps `a` valid even if every random weight was 0
    const auto old_t = build(a);
    auto r = rebalance_wcmp_table(old_t, b);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    auto q = wcmp_quotas(b, kM);
    ASSERT_TRUE(q.has_value());
    auto before = counts(old_t);
    auto after = counts(*r);
    std::map<std::uint32_t, std::uint32_t> quota;
    for (std::size_t i = 0; i < b.size(); ++i) quota[b[i].instance_id] = (*q)[i];
    std::uint64_t excess = 0;
    for (const auto& [id, c] : before) {
      const std::uint32_t keep = quota.count(id) ? quota[id] : 0;
      excess += c > keep ? c - keep : 0;
    }
    std::uint64_t moved_buckets = 0;
    for (std::size_t i = 0; i < old_t.size(); ++i) moved_buckets += old_t[i] != (*r)[i];
    EXPECT_EQ(moved_buckets, excess) << "trial " << trial;
    for (const auto& [id, want] : quota) {
      EXPECT_EQ(after.count(id) ? after[id] : 0, want) << "trial " << trial << " id " << id;
    }
    EXPECT_EQ(after.count(0), 0u);
  }
}

TEST(WcmpRebalance, RemovedInstanceOnlyItsBucketsMove) {
  const auto before = equal_members(5);
  const auto old_t = build(before);
  auto after = before;
  after.erase(after.begin() + 2);  // id 3
  auto r = rebalance_wcmp_table(old_t, after);
  ASSERT_TRUE(r.has_value());
  for (std::size_t b = 0; b < old_t.size(); ++b) {
    if (old_t[b] != 3) {
      EXPECT_EQ((*r)[b], old_t[b]) << "bucket " << b;
    }
    EXPECT_NE((*r)[b], 3u);
  }
}

TEST(WcmpRebalance, FromEmptyOrForeignTable) {
  // An all-zero table (nothing installed yet) rebalances into a full table.
  std::vector<std::uint32_t> empty(kM, 0);
  auto r = rebalance_wcmp_table(empty, equal_members(3));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(counts(*r).count(0), 0u);
  EXPECT_EQ(counts(*r).size(), 3u);
  auto bad = rebalance_wcmp_table(std::vector<std::uint32_t>(4000, 1), equal_members(3));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, WcmpErrc::kBadTableSize);
}

TEST(WcmpErrors, EmptyAndZeroWeights) {
  auto e = build_wcmp_table(std::vector<WcmpMember>{});
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, WcmpErrc::kEmpty);
  EXPECT_NE(e.error().message.find("no instances"), std::string::npos);

  auto z = build_wcmp_table(std::vector<WcmpMember>{{1, 0}, {2, 0}});
  ASSERT_FALSE(z.has_value());
  EXPECT_EQ(z.error().code, WcmpErrc::kAllZeroWeight);
  EXPECT_NE(z.error().message.find("weight 0"), std::string::npos);
}

TEST(WcmpErrors, BadMembersAndSizes) {
  auto id0 = build_wcmp_table(std::vector<WcmpMember>{{0, 1}});
  ASSERT_FALSE(id0.has_value());
  EXPECT_EQ(id0.error().code, WcmpErrc::kBadInstanceId);

  auto dup = build_wcmp_table(std::vector<WcmpMember>{{4, 1}, {4, 2}});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, WcmpErrc::kDuplicateInstance);
  EXPECT_NE(dup.error().message.find("4"), std::string::npos);

  for (double w : {-1.0, std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity()}) {
    auto bw = build_wcmp_table(std::vector<WcmpMember>{{1, 1}, {2, w}});
    ASSERT_FALSE(bw.has_value());
    EXPECT_EQ(bw.error().code, WcmpErrc::kBadWeight);
  }
  for (std::uint32_t size : {0u, 1u, 4u, 4095u, 65536u}) {
    auto bs = build_wcmp_table(equal_members(2), size);
    ASSERT_FALSE(bs.has_value()) << size;
    EXPECT_EQ(bs.error().code, WcmpErrc::kBadTableSize);
  }
  auto mf = moved_fraction(std::vector<std::uint32_t>(3, 1), std::vector<std::uint32_t>(5, 1));
  ASSERT_FALSE(mf.has_value());
  EXPECT_EQ(mf.error().code, WcmpErrc::kTableSizeMismatch);
}

TEST(WcmpHelpers, IsPrimeAndMovedFraction) {
  EXPECT_TRUE(is_prime(2));
  EXPECT_TRUE(is_prime(4093));
  EXPECT_TRUE(is_prime(65537));
  EXPECT_FALSE(is_prime(1));
  EXPECT_FALSE(is_prime(4095));
  EXPECT_FALSE(is_prime(65535));
  const std::vector<std::uint32_t> a{1, 1, 2, 2}, b{1, 2, 2, 3};
  EXPECT_DOUBLE_EQ(moved(a, b), 0.5);
  EXPECT_DOUBLE_EQ(moved(a, a), 0.0);
  const auto c = bucket_counts(std::vector<std::uint32_t>{3, 0, 1, 3});
  EXPECT_EQ(c, (std::vector<std::pair<std::uint32_t, std::uint32_t>>{{1, 1}, {3, 2}}));
}

}  // namespace
}  // namespace anychain::dataplane
