// anychaind's pure parts: the recomputation throttle, the VNF monitor (load -> cost ->
// announcements, damping, CPU load, liveness) and config -> AgentSpec (paths, policy rules,
// fast path config, WCMP).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "daemon/from_config.h"
#include "daemon/monitor.h"
#include "daemon/throttle.h"

namespace anychain::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Throttle, FirstRunAfterDelayThenAtLeastHoldApartAndCoalesced) {
  Throttle t(50ms, 200ms);
  auto t0 = Clock::now();
  EXPECT_FALSE(t.take(t0));
  t.kick(t0);
  EXPECT_FALSE(t.take(t0 + 49ms));
  EXPECT_TRUE(t.take(t0 + 50ms));
  EXPECT_FALSE(t.take(t0 + 60ms)) << "one run per kick";
  t.kick(t0 + 60ms);             // change right after a run: hold applies
  t.kick(t0 + 70ms);             // coalesced
  EXPECT_EQ(*t.due(), t0 + 250ms);
  EXPECT_FALSE(t.take(t0 + 249ms));
  EXPECT_TRUE(t.take(t0 + 250ms));
  EXPECT_FALSE(t.due().has_value());
  t.kick(t0 + 1000ms);           // long after: delay only
  EXPECT_EQ(*t.due(), t0 + 1050ms);
}

AgentSpec one_instance(uint32_t capacity, std::string cgroup = "") {
  AgentSpec s;
  inet_pton(AF_INET, "10.255.0.2", &s.nsh_endpoint);
  s.services.push_back({"fw", 1, 0x0a640001, 32});
  s.instances.push_back({.name = "fw-a", .id = 7, .service_id = 1, .veth = "vfw", .mac = {}, .capacity = capacity,
                         .nsh_aware = true, .pid_file = "", .cgroup = cgroup, .nf = std::nullopt});
  s.timers.cost_damping = 0.05;
  return s;
}

TEST(VnfMonitor, AnnouncesCapacityFirstThenRemainingCapacityWithDamping) {
  AgentSpec s = one_instance(150);
  VnfMonitor m(s);
  auto t0 = Clock::now();
  auto a = m.tick({{7, 0}}, t0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 150u);
  EXPECT_EQ(a[0].instance_id, 7u);
  EXPECT_EQ(a[0].service_addr, 0x0a640001u);
  EXPECT_EQ(a[0].nsh_endpoint, 0x0aff0002u);
  EXPECT_TRUE(a[0].nsh_aware());
  // 200 packets in 2 s = 100 pps -> remaining 50
  a = m.tick({{7, 200}}, t0 + 2s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 50u);
  // 104 pps -> 46: a change of 4 < 5 % of 150 (7.5): not re-announced
  a = m.tick({{7, 408}}, t0 + 4s);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(m.loads().at(7).fresh_cost, 46u);
  EXPECT_EQ(m.loads().at(7).announced, 50u);
  // 140 pps -> 10: announced
  a = m.tick({{7, 688}}, t0 + 6s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 10u);
  // overload clamps at 0
  a = m.tick({{7, 1088}}, t0 + 8s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 0u);
}

TEST(VnfMonitor, DeadInstanceIsNotAnnouncedAndIsAnnouncedAgainWhenBack) {
  AgentSpec s = one_instance(100);
  VnfMonitor m(s);
  auto t0 = Clock::now();
  EXPECT_EQ(m.tick({{7, 0}}, t0).size(), 1u);
  EXPECT_TRUE(m.set_alive(7, false));
  EXPECT_FALSE(m.set_alive(7, false)) << "no change";
  EXPECT_FALSE(m.alive(7));
  EXPECT_TRUE(m.tick({{7, 0}}, t0 + 2s).empty());
  EXPECT_TRUE(m.set_alive(7, true));
  EXPECT_EQ(m.tick({{7, 0}}, t0 + 4s).size(), 1u) << "announced again at once";
}

TEST(VnfMonitor, CgroupCpuCountsAsLoad) {
  auto dir = std::filesystem::temp_directory_path() / ("anychain-cg-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto write_usage = [&](uint64_t usec) {
    std::ofstream(dir / "cpu.stat") << "usage_usec " << usec << "\nuser_usec 1\nsystem_usec 1\n";
  };
  write_usage(1'000'000);
  AgentSpec s = one_instance(200, dir.string());
  VnfMonitor m(s);
  auto t0 = Clock::now();
  m.tick({{7, 0}}, t0);
  write_usage(2'500'000);  // 1.5 s of CPU in 2 s: 75 % busy, with almost no packets
  auto a = m.tick({{7, 20}}, t0 + 2s);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NEAR(m.loads().at(7).cpu, 0.75, 1e-9);
  EXPECT_EQ(a[0].cost, 50u) << "load = max(10 pps, 0.75 x 200)";
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(cpu_seconds(dir.string(), "").has_value());
  EXPECT_FALSE(cpu_seconds("", "").has_value());
}

TEST(VnfMonitor, ProcessCpuFromItsPidFile) {
  auto pf = std::filesystem::temp_directory_path() / ("anychain-pid-" + std::to_string(getpid()));
  std::ofstream(pf) << getpid() << "\n";
  auto c = cpu_seconds("", pf.string());
  ASSERT_TRUE(c.has_value());
  EXPECT_GE(*c, 0.0);
  EXPECT_TRUE(process_alive(pf.string()));
  std::ofstream(pf) << "999999999\n";
  EXPECT_FALSE(process_alive(pf.string()));
  std::filesystem::remove(pf);
  EXPECT_FALSE(process_alive(pf.string()));
  EXPECT_TRUE(process_alive("")) << "no pid file: nothing to watch";
}

TEST(FromConfig, MapsTheConfigAndRefusesWhatItCannotUse) {
  auto c = config::parse(
      "node: {nsh_endpoint: 10.255.0.1}\n"
      "ospf: {area: 0.0.0.1, local_port: 5000}\n"
      "timers: {spf_delay_ms: 10, spf_hold_ms: 100, announce_interval_s: 3}\n"
      "wcmp: {policy: ecmp, params: {hold_down_ms: 500, floor: 2}}\n"
      "services: [{name: fw, id: 4, anycast: 10.100.0.1/32}, {name: ids, id: 5, anycast: 10.100.0.2/32}]\n"
      "chains: [{name: web, spi: 10, services: [fw, ids]}]\n"
      "policies: [{name: p, chain: web, dst: 10.0.2.0/24}]\n"
      "instances: [{name: a, id: 9, service: ids, veth: v0, capacity: 150, nsh_aware: false}]\n");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  EXPECT_EQ(ntohl(s->nsh_endpoint.s_addr), 0x0aff0001u);
  EXPECT_EQ(s->ospf.area, 1u);
  EXPECT_EQ(s->ospf.local_port, 5000);
  EXPECT_EQ(s->wcmp.mode, plane::WcmpMode::EqualCostMultipath);
  EXPECT_EQ(s->wcmp.floor, 2u);
  EXPECT_TRUE(s->wcmp.include_links) << "unset: the plane's default";
  EXPECT_EQ(s->wcmp.inverse_scale, plane::WcmpConfig{}.inverse_scale);
  EXPECT_EQ(s->cost_range, 0u);
  EXPECT_EQ(s->hold_down, 500ms);
  EXPECT_EQ(s->timers.spf_delay, 10ms);
  EXPECT_EQ(s->timers.announce_interval, 3000ms);
  ASSERT_EQ(s->services.size(), 2u);
  EXPECT_EQ(s->services[1].anycast_addr, 0x0a640002u);
  ASSERT_EQ(s->instances.size(), 1u);
  EXPECT_EQ(s->instances[0].service_id, 5u);
  EXPECT_FALSE(s->instances[0].nsh_aware);
  ASSERT_EQ(s->paths.size(), 3u);  // SI 255 fw, 254 ids, 253 end
  EXPECT_EQ(s->paths[0].service_id, 4u);
  EXPECT_EQ(s->paths[1].service_id, 5u);
  EXPECT_TRUE(s->paths[2].last_hop);
  EXPECT_EQ(s->policies.size(), 1u);

}

// The WCMP policy and its parameters were checked when the config was parsed; the mapping
// only fills in the plane's defaults for what the file leaves out.
TEST(FromConfig, WcmpPolicyAndParams) {
  auto c = config::parse(
      "node: {nsh_endpoint: 10.255.0.1}\n"
      "wcmp: {policy: inverse-cost, params: {include_links: false, floor: 3, inverse_scale: 1000, cost_range: 160, "
      "hold_down_ms: 0}}\n");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  EXPECT_EQ(s->wcmp.mode, plane::WcmpMode::InverseCost);
  EXPECT_FALSE(s->wcmp.include_links);
  EXPECT_EQ(s->wcmp.floor, 3u);
  EXPECT_EQ(s->wcmp.inverse_scale, 1000u);
  EXPECT_EQ(s->cost_range, 160u);
  EXPECT_EQ(s->hold_down, 0ms);

  for (auto [policy, mode] : {std::pair{config::WcmpPolicy::Bottleneck, plane::WcmpMode::BottleneckResidual},
                              std::pair{config::WcmpPolicy::InverseCost, plane::WcmpMode::InverseCost},
                              std::pair{config::WcmpPolicy::Ecmp, plane::WcmpMode::EqualCostMultipath}})
    EXPECT_EQ(to_wcmp_config(config::Wcmp{.policy = policy}).mode, mode) << config::to_string(policy);
  auto d = to_wcmp_config(config::Wcmp{});
  EXPECT_EQ(d.mode, plane::WcmpMode::BottleneckResidual);
  EXPECT_EQ(d.include_links, plane::WcmpConfig{}.include_links);
  EXPECT_EQ(d.floor, plane::WcmpConfig{}.floor);
}

TEST(FromConfig, ChainPaths) {
  auto c = config::load_file(ANYCHAIN_EXAMPLE_CONFIG);
  ASSERT_TRUE(c.has_value());
  auto p = chain_paths(*c);
  ASSERT_TRUE(p.has_value());
  std::vector<dataplane::PathEntry> want = {
      {10, 255, 1, false}, {10, 254, 2, false}, {10, 253, 0, true},
      {20, 255, 1, false}, {20, 254, 3, false}, {20, 253, 0, true},
  };
  EXPECT_EQ(*p, want);

  c->chains[0].services.push_back("nope");
  auto bad = chain_paths(*c);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("unknown service 'nope'"), std::string::npos);
}

TEST(FromConfig, PolicyRulesAndFastPathConfig) {
  auto c = config::load_file(ANYCHAIN_EXAMPLE_CONFIG);
  ASSERT_TRUE(c.has_value());
  auto rules = to_policy_rules(*c);
  ASSERT_TRUE(rules.has_value()) << rules.error().str();
  ASSERT_EQ(rules->size(), 3u);
  const auto& r0 = (*rules)[0];
  EXPECT_EQ(r0.spi, 10u);
  EXPECT_EQ(r0.proto, 6);
  EXPECT_EQ(r0.dport_lo, 80);
  EXPECT_EQ(r0.dport_hi, 80);
  EXPECT_EQ(r0.sport_lo, 0);
  EXPECT_EQ(r0.sport_hi, 65535);
  EXPECT_TRUE(r0.symmetric);
  EXPECT_FALSE(r0.md2);
  EXPECT_EQ(r0.dst.len, 24);
  in_addr want{};
  inet_pton(AF_INET, "10.0.2.0", &want);
  EXPECT_EQ(std::memcmp(&r0.dst.addr, &want, 4), 0);
  EXPECT_EQ(r0.src.len, 0);
  const auto& r1 = (*rules)[1];
  EXPECT_EQ(r1.spi, 20u);
  EXPECT_TRUE(r1.md2);
  EXPECT_FALSE(r1.symmetric);  // node default
  EXPECT_EQ(r1.dport_lo, 1024);
  const auto& r2 = (*rules)[2];
  EXPECT_EQ(r2.src.family, AF_INET6);
  EXPECT_EQ(r2.src.len, 48);
  EXPECT_TRUE(dataplane::encode_policy(r2).has_value());

  c->node.symmetric_hash = true;  // the default applies where a policy has no flag
  rules = to_policy_rules(*c);
  ASSERT_TRUE(rules.has_value());
  EXPECT_TRUE((*rules)[1].symmetric);

  auto d = to_dataplane_config(*c);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->flow_timeout_ns, 60'000'000'000ULL);
  EXPECT_EQ(d->default_ttl, 63);
  EXPECT_TRUE(d->symmetric_hash);
  EXPECT_FALSE(d->oam_forward) << "node.oam: drop (the default)";
  c->node.oam_forward = true;
  d = to_dataplane_config(*c);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->oam_forward);
  c->node.slow_path = false;
  c->node.inner_mtu = 9000;
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->slow_path);
  EXPECT_EQ(s->inner_mtu, 9000);
  EXPECT_TRUE(s->fastpath.oam_forward);
}

// anychaind --check-config: the parser's diagnostics (WCMP values included, at their line),
// then the daemon's own start-up mapping; exit 1 on any error.
TEST(CheckConfig, TheDaemonBinaryReportsWhatItWouldRefuse) {
  auto path = std::filesystem::temp_directory_path() / ("anychain-check-" + std::to_string(getpid()) + ".yaml");
  auto check = [&](const std::string& yaml, std::string& out) {
    std::ofstream(path) << yaml;
    std::string cmd = std::string(ANYCHAIN_DAEMON_BIN) + " --check-config " + path.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    out.clear();
    char buf[512];
    for (size_t n; p && (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  std::string out;
  EXPECT_EQ(check("node: {nsh_endpoint: 10.255.0.1}\n"
                  "wcmp:\n"
                  "  policy: ecmp\n"
                  "  params: {floor: lots, hold_down_ms: 10}\n",
                  out),
            1);
  EXPECT_EQ(out, path.string() + ":4:19: error: wcmp.params: 'floor' must be an integer, got 'lots'\n");
  EXPECT_EQ(check("node: {nsh_endpoint: 10.255.0.1}\nwcmp: {policy: ecmp, params: {floor: 2}}\n", out), 0);
  EXPECT_EQ(out, path.string() + ": ok\n");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace anychain::daemon
