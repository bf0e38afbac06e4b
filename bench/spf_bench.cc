// Control-plane benchmark: SPF + WCMP on a synthetic LSDB (docs/performance.md).
//   spf_bench [routers=1000] [instances=10000] [services=100] [rounds=20]
// Prints per-stage timings (median and max over rounds) and the process's peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "plane/service_plane.h"
#include "plane_fixtures.h"

using namespace anychain;
using Clock = std::chrono::steady_clock;

namespace {
double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stat {
  std::vector<double> v;
  double median() {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  double max() { return *std::max_element(v.begin(), v.end()); }
};
}  // namespace

int main(int argc, char** argv) {
  const int routers = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int instances = argc > 2 ? std::atoi(argv[2]) : 10000;
  const int services = argc > 3 ? std::atoi(argv[3]) : 100;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 20;
  if (routers < 2 || instances < 0 || services < 1 || rounds < 1) {
    std::fprintf(stderr, "usage: spf_bench [routers] [instances] [services] [rounds]\n");
    return 2;
  }
  std::mt19937 rng(42);
  auto rid = [](int i) { return static_cast<std::uint32_t>(0x0A000000 + i); };
  test::LsdbBuilder b;
  // Connected: a ring, plus random chords (average degree ~5), plus LANs of 4 routers.
  for (int i = 0; i < routers; ++i) {
    auto c = static_cast<std::uint16_t>(1 + rng() % 100);
    b.link(rid(i), rid((i + 1) % routers), c, c);
  }
  for (int k = 0; k < routers * 3 / 2; ++k) {
    int a = static_cast<int>(rng() % routers), c = static_cast<int>(rng() % routers);
    if (a == c) continue;
    b.link(rid(a), rid(c), static_cast<std::uint16_t>(1 + rng() % 100), static_cast<std::uint16_t>(1 + rng() % 100));
  }
  for (int k = 0; k < routers / 20; ++k) {
    std::vector<std::uint32_t> members;
    std::vector<std::uint16_t> costs;
    for (int j = 0; j < 4; ++j) {
      members.push_back(rid(static_cast<int>(rng() % routers)));
      costs.push_back(static_cast<std::uint16_t>(1 + rng() % 50));
    }
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    costs.resize(members.size());
    b.lan(0xAC000000u + static_cast<std::uint32_t>(k) * 16, members, costs);
  }
  for (int i = 0; i < instances; ++i) {
    ospf::VnfInfo v;
    v.service_addr = 0x64000000u + static_cast<std::uint32_t>(i % services);
    v.service_len = 32;
    v.instance_id = static_cast<std::uint32_t>(i + 1);
    v.cost = 1 + rng() % 150;
    v.capacity = 150;
    v.nsh_endpoint = rid(static_cast<int>(rng() % routers));
    b.vnf(v.nsh_endpoint, v);
  }
  auto t0 = Clock::now();
  ospf::Lsdb db = b.build();
  auto t_lsdb = Clock::now() - t0;

  plane::PlaneConfig cfg;
  cfg.self_router = rid(0);
  Stat topo_ms, spf_ms, wcmp_ms, total_ms;
  std::size_t nservices = 0, ncand = 0;
  for (int r = 0; r < rounds; ++r) {
    auto a = Clock::now();
    auto topo = plane::build_topology(db, 0, ospf::kDefaultVnfOpaqueType);
    auto bt = Clock::now();
    auto s = plane::spf(topo, cfg.self_router);
    auto c = Clock::now();
    if (!s) {
      std::fprintf(stderr, "spf: %s\n", s.error().str().c_str());
      return 1;
    }
    auto routes = plane::service_routes(topo, *s, cfg.wcmp);
    auto d = Clock::now();
    topo_ms.v.push_back(ms(bt - a));
    spf_ms.v.push_back(ms(c - bt));
    wcmp_ms.v.push_back(ms(d - c));
    total_ms.v.push_back(ms(d - a));
    nservices = routes.size();
    ncand = 0;
    for (const auto& x : routes) ncand += x.candidates.size();
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("LSDB: %zu LSAs (%d routers, %d instances, %d services), built in %.1f ms\n", db.size(), routers,
              instances, services, ms(t_lsdb));
  std::printf("services %zu, candidates %zu, rounds %d\n", nservices, ncand, rounds);
  std::printf("topology build   median %7.2f ms  max %7.2f ms\n", topo_ms.median(), topo_ms.max());
  std::printf("SPF (Dijkstra)   median %7.2f ms  max %7.2f ms\n", spf_ms.median(), spf_ms.max());
  std::printf("candidates+WCMP  median %7.2f ms  max %7.2f ms\n", wcmp_ms.median(), wcmp_ms.max());
  std::printf("total            median %7.2f ms  max %7.2f ms\n", total_ms.median(), total_ms.max());
  std::printf("peak RSS %.1f MB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  return 0;
}
