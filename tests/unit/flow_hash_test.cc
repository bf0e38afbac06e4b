// The flow hash (include/anychain/flow_hash.h) spreads the flows the WCMP tables and the flow
// cache see: uniform over the buckets for the tuples real traffic has (sequential ports, sequential
// addresses), every input bit affecting every output bit, symmetric when asked, seeds independent.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "anychain/flow_hash.h"
#include "anychain/maps.h"

namespace {

ac_tuple v4(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto = 6) {
  ac_tuple t{};
  t.family = 4;
  t.src[0] = htonl(src);
  t.dst[0] = htonl(dst);
  t.sport = htons(sport);
  t.dport = htons(dport);
  t.proto = proto;
  return t;
}

const ac_tuple* ptr(const ac_tuple& t) { return &t; }

ac_tuple v6(uint32_t host, uint16_t sport) {
  ac_tuple t{};
  t.family = 6;
  t.src[0] = htonl(0x20010db8);
  t.src[3] = htonl(host);
  t.dst[0] = htonl(0x20010db8);
  t.dst[1] = htonl(0x99);
  t.dst[3] = htonl(1);
  t.sport = htons(sport);
  t.dport = htons(443);
  t.proto = 6;
  return t;
}

// Pearson's chi-square over the WCMP table's buckets; with k - 1 degrees of freedom its mean is
// k - 1 and its standard deviation sqrt(2 (k - 1)). Six standard deviations: a uniform hash fails
// with probability ~1e-9, a hash that leaves structure (e.g. XOR of the fields) fails by far.
void expect_uniform(const std::vector<uint32_t>& hashes, const char* what) {
  const uint32_t k = AC_WCMP_BUCKETS;
  std::vector<double> n(k, 0);
  for (uint32_t h : hashes) n[h % k] += 1;
  const double e = static_cast<double>(hashes.size()) / k;
  double chi2 = 0;
  for (double c : n) chi2 += (c - e) * (c - e) / e;
  const double dof = k - 1;
  EXPECT_LT(chi2, dof + 6 * std::sqrt(2 * dof)) << what;
  EXPECT_GT(chi2, dof - 6 * std::sqrt(2 * dof)) << what << " (too regular to be a hash)";
}

TEST(FlowHash, SequentialPortsFillTheWcmpBucketsUniformly) {
  std::vector<uint32_t> h;
  for (uint32_t p = 0; p < 200000; ++p)
    h.push_back(ac_flow_hash(ptr(v4(0xc0a8010a, 0xcb00710a, static_cast<uint16_t>(1024 + p % 60000),
                                    static_cast<uint16_t>(80 + p / 60000))), 0, AC_HASH_SEED));
  expect_uniform(h, "IPv4, sequential source ports");
}

TEST(FlowHash, SequentialAddressesFillTheWcmpBucketsUniformly) {
  std::vector<uint32_t> h4, h6;
  for (uint32_t i = 0; i < 200000; ++i) {
    h4.push_back(ac_flow_hash(ptr(v4(0x0a000000 + i, 0xcb00710a, 40000, 443)), 0, AC_HASH_SEED));
    h6.push_back(ac_flow_hash(ptr(v6(i, 40000)), 0, AC_HASH_SEED));
  }
  expect_uniform(h4, "IPv4, sequential source addresses");
  expect_uniform(h6, "IPv6, sequential source addresses");
}

// Strict avalanche: flipping any one input bit flips each output bit about half of the time.
TEST(FlowHash, EveryInputBitFlipsEveryOutputBitHalfTheTime) {
  std::mt19937 rng(7);
  const int samples = 4000;
  // the IPv4 fields: src 32, dst 32, sport 16, dport 16, proto 8 bits
  const int in_bits = 104;
  std::vector<std::vector<int>> flips(in_bits, std::vector<int>(32, 0));
  for (int s = 0; s < samples; ++s) {
    ac_tuple t = v4(rng(), rng(), static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()),
                    static_cast<uint8_t>(rng()));
    const uint32_t base = ac_flow_hash(&t, 0, AC_HASH_SEED);
    for (int b = 0; b < in_bits; ++b) {
      ac_tuple u = t;
      if (b < 32) u.src[0] ^= htonl(1u << b);
      else if (b < 64) u.dst[0] ^= htonl(1u << (b - 32));
      else if (b < 80) u.sport ^= htons(static_cast<uint16_t>(1u << (b - 64)));
      else if (b < 96) u.dport ^= htons(static_cast<uint16_t>(1u << (b - 80)));
      else u.proto ^= static_cast<uint8_t>(1u << (b - 96));
      const uint32_t d = base ^ ac_flow_hash(&u, 0, AC_HASH_SEED);
      for (int o = 0; o < 32; ++o) flips[b][o] += (d >> o) & 1;
    }
  }
  for (int b = 0; b < in_bits; ++b)
    for (int o = 0; o < 32; ++o) {
      const double p = static_cast<double>(flips[b][o]) / samples;  // sd about 0.008
      EXPECT_NEAR(p, 0.5, 0.06) << "input bit " << b << " -> output bit " << o;
    }
}

TEST(FlowHash, SymmetricGivesBothDirectionsOneValueAndSeedsAreIndependent) {
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < 1000; ++i) {
    ac_tuple fwd = v4(0x0a000001 + i, 0xcb00710a, static_cast<uint16_t>(30000 + i), 443);
    ac_tuple rev = v4(0xcb00710a, 0x0a000001 + i, 443, static_cast<uint16_t>(30000 + i));
    EXPECT_EQ(ac_flow_hash(&fwd, 1, AC_HASH_SEED), ac_flow_hash(&rev, 1, AC_HASH_SEED));
    seen.insert(ac_flow_hash(&fwd, 0, AC_HASH_SEED) ^ ac_flow_hash(&rev, 0, AC_HASH_SEED));
    EXPECT_NE(ac_flow_hash(&fwd, 0, AC_HASH_SEED), ac_flow_hash(&fwd, 0, AC_PROXY_HASH_SEED));
    ac_tuple f6 = v6(i, static_cast<uint16_t>(30000 + i)), r6 = f6;
    std::swap(r6.src, r6.dst);
    std::swap(r6.sport, r6.dport);
    EXPECT_EQ(ac_flow_hash(&f6, 1, AC_HASH_SEED), ac_flow_hash(&r6, 1, AC_HASH_SEED));
  }
  EXPECT_GT(seen.size(), 990u) << "without symmetric, the two directions hash independently";
}

}  // namespace
