#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <deque>
#include <numeric>

#include "plane/service_plane.h"
#include "plane/vnf_cost.h"
#include "plane/wcmp_policy.h"
#include "plane_fixtures.h"

using namespace anychain;
using namespace anychain::plane;

namespace {
Candidate cand(std::uint32_t router, std::uint32_t vnf_cost, std::uint64_t net, std::uint32_t bottleneck,
               bool local = false) {
  Candidate c;
  c.router = router;
  c.info.instance_id = router;
  c.info.cost = vnf_cost;
  c.network_cost = net;
  c.path_cost = net + vnf_cost;
  c.link_bottleneck = bottleneck;
  c.local = local;
  return c;
}
}  // namespace

// ---- cost function ----------------------------------------------------------------------
TEST(VnfCost, RemainingCapacityNormalisedToRange) {
  CostParams p{CostMode::RemainingCapacity, 150.0, 150};
  EXPECT_EQ(vnf_cost(0, p), 150u);
  EXPECT_EQ(vnf_cost(100, p), 50u);
  EXPECT_EQ(vnf_cost(150, p), 0u);
  EXPECT_EQ(vnf_cost(400, p), 0u) << "overload clamps at 0";
  EXPECT_EQ(vnf_cost(-5, p), 150u) << "negative load clamps";
  CostParams q{CostMode::RemainingCapacity, 1000.0, 65535};
  EXPECT_EQ(vnf_cost(250, q), 49151u);  // 0.75 * 65535 = 49151.25
  EXPECT_EQ(vnf_cost(std::nan(""), q), 0u);
  EXPECT_EQ(vnf_cost(10, CostParams{CostMode::RemainingCapacity, 0.0, 100}), 0u);
}

TEST(VnfCost, LoadMode) {
  CostParams p{CostMode::Load, 200.0, 100};
  EXPECT_EQ(vnf_cost(0, p), 0u);
  EXPECT_EQ(vnf_cost(50, p), 25u);
  EXPECT_EQ(vnf_cost(500, p), 100u);
  EXPECT_EQ(vnf_cost(1, CostParams{CostMode::Load, 0.0, 100}), 100u);
}

TEST(VnfCost, Damping) {
  EXPECT_EQ(damp_cost(100, 103, 5), 100u);
  EXPECT_EQ(damp_cost(100, 97, 5), 100u);
  EXPECT_EQ(damp_cost(100, 105, 5), 105u);
  EXPECT_EQ(damp_cost(100, 90, 5), 90u);
  EXPECT_EQ(damp_cost(100, 101, 0), 101u);
}

// ---- policy -----------------------------------------------------------------------------
TEST(Wcmp, BottleneckResidualTakesMinOfVnfAndLinks) {
  std::vector<Candidate> c{cand(2, 50, 160, 160), cand(3, 70, 160, 160), cand(4, 110, 30, 30)};
  EXPECT_EQ(wcmp_weights(c, {}), (std::vector<std::uint32_t>{50, 70, 30}));
  WcmpConfig no_links;
  no_links.include_links = false;
  EXPECT_EQ(wcmp_weights(c, no_links), (std::vector<std::uint32_t>{50, 70, 110}));
  // A local instance has no link on its path.
  std::vector<Candidate> l{cand(1, 120, 0, 0xFFFFFFFF, true)};
  EXPECT_EQ(wcmp_weights(l, {}), (std::vector<std::uint32_t>{120}));
}

TEST(Wcmp, AllSaturatedFallsBackToEqualAndFloorApplies) {
  std::vector<Candidate> c{cand(2, 0, 10, 10), cand(3, 0, 10, 10)};
  EXPECT_EQ(wcmp_weights(c, {}), (std::vector<std::uint32_t>{1, 1}));
  std::vector<Candidate> d{cand(2, 0, 10, 10), cand(3, 40, 10, 10)};
  EXPECT_EQ(wcmp_weights(d, {}), (std::vector<std::uint32_t>{0, 10}));
  WcmpConfig floor;
  floor.floor = 3;
  EXPECT_EQ(wcmp_weights(d, floor), (std::vector<std::uint32_t>{3, 10}));
  EXPECT_TRUE(wcmp_weights({}, {}).empty());
}

TEST(Wcmp, InverseCostAndEcmpModes) {
  std::vector<Candidate> c{cand(2, 10, 10, 10), cand(3, 30, 10, 10), cand(4, 10, 10, 10)};
  WcmpConfig inv;
  inv.mode = WcmpMode::InverseCost;
  inv.inverse_scale = 1200;
  EXPECT_EQ(wcmp_weights(c, inv), (std::vector<std::uint32_t>{60, 30, 60}));
  WcmpConfig ecmp;
  ecmp.mode = WcmpMode::EqualCostMultipath;
  EXPECT_EQ(wcmp_weights(c, ecmp), (std::vector<std::uint32_t>{1, 0, 1}));
}

// ---- the paper's Sec. VI experiment -----------------------------------------------------
// A (1) is the ingress; links A-B = A-C = 160, A-D = 30; each instance can process 150
// units (its VNF cost at zero load: remaining capacity normalised to the link-cost range).
namespace {
constexpr std::uint32_t A = 1, B = 2, C = 3, D = 4;
constexpr double kCapacity = 150;
constexpr std::uint32_t kService = 0x0a640001;

ospf::Lsdb paper_lsdb(const std::vector<std::pair<std::uint32_t, double>>& loads, std::int32_t seq) {
  test::LsdbBuilder b;
  b.link(A, B, 160, 160);
  b.link(A, C, 160, 160);
  b.link(A, D, 30, 30);
  for (auto [router, load] : loads) {
    std::uint32_t cost = vnf_cost(load, CostParams{CostMode::RemainingCapacity, kCapacity, 150});
    b.vnf(router, ospf::VnfInfo{kService, 32, router, cost, 150, router, ospf::kVnfFlagNshAware});
  }
  return b.build(seq);
}

// Weights per router from the full pipeline (LSAs -> topology -> SPF -> policy).
std::map<std::uint32_t, std::uint32_t> plane_weights(const std::vector<std::pair<std::uint32_t, double>>& loads) {
  auto db = paper_lsdb(loads, 1);
  PlaneConfig cfg;
  cfg.self_router = A;
  auto v = compute_plane(db, cfg);
  std::map<std::uint32_t, std::uint32_t> w;
  if (!v || v->services.size() != 1) return w;
  for (std::size_t i = 0; i < v->services[0].candidates.size(); ++i)
    w[v->services[0].candidates[i].router] = v->services[0].weights[i];
  return w;
}

struct Flow {
  std::uint32_t router;
  int end_tick;
};

// Time-step simulation in ticks of 0.5 s: one flow (2 units, 50 s) arrives per tick, i.e.
// 2 flows/s and ~200 units offered in steady state. Loads are measured and re-announced every
// 2 s; a new flow is placed by smooth weighted round robin over the current WCMP weights.
// The instance on D starts at t = 150 s. Returns mean load shares over [50,150) and [200,300).
struct Shares {
  std::map<std::uint32_t, double> phase1, phase2;
};

Shares simulate() {
  constexpr int kTicksPerSec = 2, kFlowTicks = 50 * kTicksPerSec, kAnnounceTicks = 2 * kTicksPerSec;
  constexpr double kUnits = 2;
  std::deque<Flow> flows;
  std::map<std::uint32_t, std::uint32_t> weights;
  std::map<std::uint32_t, std::int64_t> swrr;  // smooth WRR state
  std::vector<std::uint32_t> routers{B, C};
  Shares out;
  std::map<std::uint32_t, double> sum1, sum2;
  double n1 = 0, n2 = 0;
  for (int tick = 0; tick < 300 * kTicksPerSec; ++tick) {
    if (tick == 150 * kTicksPerSec) {
      routers.push_back(D);
      swrr.clear();
    }
    while (!flows.empty() && flows.front().end_tick <= tick) flows.pop_front();
    std::map<std::uint32_t, double> load;
    for (auto r : routers) load[r] = 0;
    for (const auto& f : flows) load[f.router] += kUnits;
    if (tick % kAnnounceTicks == 0) {
      std::vector<std::pair<std::uint32_t, double>> l(load.begin(), load.end());
      weights = plane_weights(l);
    }
    // Place the arriving flow.
    std::int64_t total = 0;
    std::uint32_t pick = 0;
    std::int64_t best = INT64_MIN;
    for (auto r : routers) {
      swrr[r] += weights[r];
      total += weights[r];
      if (swrr[r] > best) best = swrr[r], pick = r;
    }
    swrr[pick] -= total;
    flows.push_back({pick, tick + kFlowTicks});
    load[pick] += kUnits;
    double all = 0;
    for (auto& [r, x] : load) all += x;
    double t = tick / double(kTicksPerSec);
    if (t >= 50 && t < 150) {
      for (auto& [r, x] : load) sum1[r] += x / all;
      ++n1;
    } else if (t >= 200 && t < 300) {
      for (auto& [r, x] : load) sum2[r] += x / all;
      ++n2;
    }
  }
  for (auto& [r, s] : sum1) out.phase1[r] = 100 * s / n1;
  for (auto& [r, s] : sum2) out.phase2[r] = 100 * s / n2;
  return out;
}
}  // namespace

TEST(PaperExperiment, PipelineWeightsAtStart) {
  auto w = plane_weights({{B, 0}, {C, 0}});
  EXPECT_EQ(w[B], 150u);
  EXPECT_EQ(w[C], 150u);
  auto w2 = plane_weights({{B, 100}, {C, 100}, {D, 0}});
  EXPECT_EQ(w2[B], 50u);
  EXPECT_EQ(w2[C], 50u);
  EXPECT_EQ(w2[D], 30u) << "D's path is bounded by the A-D link (30)";
}

// Fixed point of "traffic shares proportional to the policy's weights at the load those
// shares produce" (200 units offered), found by damped iteration in fixed point (1e-6 units).
TEST(PaperExperiment, FixedPointsAre50_50And40_40_20) {
  auto solve = [](std::vector<std::uint32_t> routers) {
    std::map<std::uint32_t, std::int64_t> share;  // in millionths
    for (auto r : routers) share[r] = 1'000'000 / static_cast<std::int64_t>(routers.size());
    for (int it = 0; it < 400; ++it) {
      std::vector<std::pair<std::uint32_t, double>> loads;
      for (auto r : routers) loads.push_back({r, 200.0 * static_cast<double>(share[r]) / 1e6});
      auto w = plane_weights(loads);
      std::int64_t total = 0;
      for (auto r : routers) total += w[r];
      for (auto r : routers) {
        std::int64_t target = total == 0 ? 0 : 1'000'000 * static_cast<std::int64_t>(w[r]) / total;
        share[r] += (target - share[r]) / 4;  // damping
      }
    }
    return share;
  };
  auto p1 = solve({B, C});
  EXPECT_NEAR(p1[B] / 1e4, 50, 1);
  EXPECT_NEAR(p1[C] / 1e4, 50, 1);
  auto p2 = solve({B, C, D});
  EXPECT_NEAR(p2[B] / 1e4, 40, 5);
  EXPECT_NEAR(p2[C] / 1e4, 40, 5);
  EXPECT_NEAR(p2[D] / 1e4, 20, 5);
}

TEST(PaperExperiment, TimeStepSimulationReproducesFigure5) {
  auto s = simulate();
  EXPECT_NEAR(s.phase1[B], 50, 5);
  EXPECT_NEAR(s.phase1[C], 50, 5);
  EXPECT_NEAR(s.phase2[B], 40, 5);
  EXPECT_NEAR(s.phase2[C], 40, 5);
  EXPECT_NEAR(s.phase2[D], 20, 5);
  std::cout << "phase 1: B " << s.phase1[B] << "% C " << s.phase1[C] << "%\n"
            << "phase 2: B " << s.phase2[B] << "% C " << s.phase2[C] << "% D " << s.phase2[D] << "%\n";
}

// The same simulation with the links left out of the weight (VNF residual only) does not
// give 40/40/20: D, with the most spare capacity, would take the largest share.
TEST(PaperExperiment, LinkTermIsWhatKeepsDAtTwentyPercent) {
  auto w = plane_weights({{B, 80}, {C, 80}, {D, 40}});
  EXPECT_EQ(w[D], 30u);
  ospf::Lsdb db = paper_lsdb({{B, 80}, {C, 80}, {D, 40}}, 1);
  PlaneConfig cfg;
  cfg.self_router = A;
  cfg.wcmp.include_links = false;
  auto v = compute_plane(db, cfg);
  ASSERT_TRUE(v);
  auto& svc = v->services.at(0);
  std::uint32_t wd = 0, wb = 0;
  for (std::size_t i = 0; i < svc.candidates.size(); ++i) {
    if (svc.candidates[i].router == D) wd = svc.weights[i];
    if (svc.candidates[i].router == B) wb = svc.weights[i];
  }
  EXPECT_GT(wd, wb);
}
