// anychaind's pure parts: the recomputation throttle, the VNF monitor (load -> cost ->
// announcements, damping, CPU load, liveness) and config -> AgentSpec (paths, policy rules,
// fast path config, WCMP).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "config/config.h"
#include "daemon/from_config.h"
#include "daemon/liveness.h"
#include "daemon/monitor.h"
#include "daemon/throttle.h"
#include "nf/params.h"

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

// A run booked for a timer (a hold-down expiring in 8 s) must not hold back a change that comes
// now: the liveness lab's ingress kept a dead instance for seconds after its down LSA arrived, and
// the standby lab's replacement waited 28.5 s for the end of the FTC freeze to be recomputed.
TEST(Throttle, AChangeIsNotDelayedByARunBookedForLater) {
  Throttle t(50ms, 200ms);
  auto t0 = Clock::now();
  t.kick(t0 + 8000ms);  // the timer's run
  EXPECT_EQ(*t.due(), t0 + 8050ms);
  t.kick(t0 + 100ms);  // an LSA changed
  EXPECT_EQ(*t.due(), t0 + 150ms);
  EXPECT_TRUE(t.take(t0 + 150ms));
  t.kick(t0 + 8000ms);  // booked again after the run
  t.kick(t0 + 200ms);   // a change within the hold: not before last run + hold
  EXPECT_EQ(*t.due(), t0 + 350ms);
  t.kick(t0 + 300ms);  // a later change coalesces into the earlier run
  EXPECT_EQ(*t.due(), t0 + 350ms);
}

// A completed FTC recovery makes its instance live at once (Agent::ftc_recovered): its run ignores
// delay and hold, for that run only. With kick() the recovered instance waited for spf_delay plus
// what remained of spf_hold since the death's recomputation (127 ms of rerouting, docs/performance.md).
TEST(Throttle, KickNowRunsAtOnceForThatEventOnly) {
  Throttle t(50ms, 200ms);
  auto t0 = Clock::now();
  t.kick(t0);
  EXPECT_TRUE(t.take(t0 + 50ms));  // the death's recomputation
  t.kick(t0 + 60ms);               // churn within the hold: held to t0 + 250 ms
  EXPECT_EQ(*t.due(), t0 + 250ms);
  t.kick_now(t0 + 70ms);  // the recovery completed
  EXPECT_EQ(*t.due(), t0 + 70ms);
  EXPECT_TRUE(t.take(t0 + 70ms)) << "neither delay nor hold";
  EXPECT_FALSE(t.due().has_value()) << "the churn before it is coalesced into that run";
  t.kick(t0 + 80ms);  // later changes: the hold counts from the kick_now run
  EXPECT_EQ(*t.due(), t0 + 270ms);
  t.kick_now(t0 + 300ms);  // a run already due earlier stays due then
  EXPECT_EQ(*t.due(), t0 + 270ms);
  Throttle idle(50ms, 200ms);
  idle.kick_now(t0);
  EXPECT_TRUE(idle.take(t0));
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

// monitor_interval_s 1, announce_interval_s 2: load every second (status), the cost from the
// load over the 2 s since the previous announcement, announced only at announce ticks.
TEST(VnfMonitor, LoadEveryMonitorTickCostsOnlyAtAnnounceTicks) {
  AgentSpec s = one_instance(150);
  s.timers.cost_damping = 0.02;
  VnfMonitor m(s);
  auto t0 = Clock::now();
  ASSERT_EQ(m.tick({{7, 0}}, t0, true).size(), 1u) << "first announcement at once";
  EXPECT_TRUE(m.tick({{7, 60}}, t0 + 1s, false).empty()) << "a monitor tick announces nothing";
  EXPECT_DOUBLE_EQ(m.loads().at(7).pps, 60.0) << "but measures the load of its period";
  EXPECT_EQ(m.loads().at(7).announced, 150u);
  auto a = m.tick({{7, 200}}, t0 + 2s, true);
  EXPECT_DOUBLE_EQ(m.loads().at(7).pps, 140.0) << "load over the last second";
  EXPECT_DOUBLE_EQ(m.loads().at(7).load, 100.0) << "cost from the 2 s since the last announcement";
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 50u);
  // back from dead between announce ticks: announced at the next monitor tick, full capacity
  EXPECT_TRUE(m.set_alive(7, false));
  EXPECT_TRUE(m.tick({{7, 200}}, t0 + 3s, false).empty());
  EXPECT_TRUE(m.set_alive(7, true));
  a = m.tick({{7, 200}}, t0 + 3500ms, false);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cost, 150u);
  EXPECT_EQ(a[0].flags & ospf::kVnfFlagDown, 0u);
  auto d = m.down_info(7);
  EXPECT_TRUE(d.down());
  EXPECT_EQ(d.cost, 0u);
  EXPECT_EQ(d.instance_id, 7u);
}

TEST(StallDetector, DeliveredAndUnansweredForTheWindow) {
  StallDetector d(2s, 10);
  auto t0 = Clock::now();
  EXPECT_FALSE(d.observe(0, 0, t0));
  EXPECT_FALSE(d.observe(100, 100, t0 + 1s)) << "answering";
  EXPECT_TRUE(d.answering());
  EXPECT_FALSE(d.observe(200, 100, t0 + 2s)) << "silent since t0 + 1 s: 1 s only";
  EXPECT_FALSE(d.answering());
  EXPECT_EQ(d.unanswered(), 100u);
  EXPECT_TRUE(d.observe(300, 100, t0 + 3s)) << "2 s without an answer to 200 packets";
  EXPECT_FALSE(d.observe(310, 101, t0 + 4s)) << "one answer starts over";
  EXPECT_EQ(d.unanswered(), 0u);
}

TEST(StallDetector, FewPacketsOrNoTrafficIsNoEvidence) {
  StallDetector d(2s, 10);
  auto t0 = Clock::now();
  d.observe(0, 0, t0);
  EXPECT_FALSE(d.observe(0, 0, t0 + 10s)) << "nothing delivered";
  EXPECT_FALSE(d.observe(5, 0, t0 + 11s));
  EXPECT_FALSE(d.observe(9, 0, t0 + 20s)) << "9 packets in 10 s: under the minimum";
  EXPECT_TRUE(d.observe(10, 0, t0 + 21s));
  StallDetector off(0s, 10);
  off.observe(0, 0, t0);
  off.observe(1000, 0, t0 + 1s);
  EXPECT_FALSE(off.observe(2000, 0, t0 + 10s)) << "window 0: the dataplane is not a source";
}

TEST(StallDetector, ACounterResetIsNotAStall) {
  StallDetector d(1s, 10);
  auto t0 = Clock::now();
  d.observe(1000, 500, t0);
  EXPECT_FALSE(d.observe(20, 500, t0 + 1s)) << "delivered went back: a reset, counted from there";
  EXPECT_EQ(d.unanswered(), 0u);
  EXPECT_TRUE(d.observe(40, 500, t0 + 2s)) << "20 packets unanswered for the 1 s since the reset";
}

LivenessProbe probe(uint64_t delivered, uint64_t answered, long pid = 0) {
  LivenessProbe p;
  p.delivered = delivered;
  p.answered = answered;
  p.pid = pid;
  if (pid) p.process = true;
  return p;
}

TEST(InstanceLiveness, DeadFromTheDataplaneThenRetriedWithBackoff) {
  InstanceLiveness l(2s);
  auto t0 = Clock::now();
  EXPECT_FALSE(l.update(probe(0, 0), t0));
  EXPECT_FALSE(l.update(probe(100, 100), t0 + 1s));
  EXPECT_FALSE(l.update(probe(200, 100), t0 + 2s));  // killed: nothing back
  EXPECT_TRUE(l.update(probe(300, 100), t0 + 3s));
  EXPECT_FALSE(l.alive());
  EXPECT_NE(l.reason().find("answered none of 200 packets for 2.0 s"), std::string::npos) << l.reason();
  ASSERT_TRUE(l.retry_at());
  EXPECT_EQ(*l.retry_at(), t0 + 3s + InstanceLiveness::kRetryFirst);
  EXPECT_FALSE(l.update(probe(300, 100), t0 + 7s)) << "no traffic while withdrawn";
  EXPECT_TRUE(l.update(probe(300, 100), t0 + 8s)) << "tried again after 5 s";
  EXPECT_TRUE(l.alive());
  // still dead: found again one window later, and tried again after twice as long
  EXPECT_FALSE(l.update(probe(300, 100), t0 + 9s));
  EXPECT_FALSE(l.update(probe(350, 100), t0 + 10s));
  EXPECT_TRUE(l.update(probe(400, 100), t0 + 11s));
  EXPECT_EQ(*l.retry_at(), t0 + 11s + 2 * InstanceLiveness::kRetryFirst);
  // backoff capped
  auto t = t0 + 11s;
  for (int k = 0; k < 10; ++k) {
    t = *l.retry_at();
    ASSERT_TRUE(l.update(probe(400, 100), t));
    l.update(probe(400, 100), t + 1s);
    l.update(probe(500, 100), t + 2s);
    ASSERT_TRUE(l.update(probe(600, 100), t + 3s));
  }
  EXPECT_EQ(*l.retry_at() - (t + 3s), InstanceLiveness::kRetryMax);
}

TEST(InstanceLiveness, BackAtOnceWhenTheVnfSpeaksOrANewProcessRuns) {
  auto t0 = Clock::now();
  auto kill = [&](InstanceLiveness& l, long pid) {
    l.update(probe(0, 0, pid), t0);
    l.update(probe(100, 100, pid), t0 + 1s);
    l.update(probe(200, 100, pid), t0 + 2s);
    return l.update(probe(300, 100, pid), t0 + 3s);
  };
  InstanceLiveness a(2s);
  ASSERT_TRUE(kill(a, 0));
  EXPECT_TRUE(a.update(probe(300, 101), t0 + 4s)) << "chain traffic back from the VNF";
  EXPECT_TRUE(a.alive());
  EXPECT_FALSE(a.retry_at());
  InstanceLiveness b(2s);
  ASSERT_TRUE(kill(b, 42)) << "a hung process (its pid runs) is dead all the same";
  EXPECT_FALSE(b.update(probe(300, 100, 42), t0 + 4s));
  EXPECT_TRUE(b.update(probe(300, 100, 43), t0 + 4500ms)) << "a new process in the pid file";
}

// The dataplane's signal is the chain traffic the fast path got back from the instance
// (ac_inst_returned): what else its veth carries (ARP, ND from the dead VNF's side) is not in it,
// so an instance whose program is dead stays dead until its retry. An unreadable counter, or one
// that went back (the maps were made again), is no answer either.
TEST(InstanceLiveness, OnlyReturnedChainTrafficBringsItBack) {
  auto t0 = Clock::now();
  InstanceLiveness l(2s);
  l.update(probe(0, 0), t0);
  l.update(probe(100, 100), t0 + 1s);
  l.update(probe(200, 100), t0 + 2s);
  ASSERT_TRUE(l.update(probe(300, 100), t0 + 3s));
  LivenessProbe unreadable = probe(300, 0);
  unreadable.answered.reset();
  EXPECT_FALSE(l.update(unreadable, t0 + 3500ms)) << "no counter: no answer";
  EXPECT_FALSE(l.update(probe(300, 40), t0 + 4s)) << "a counter that went back is no answer";
  EXPECT_FALSE(l.update(probe(300, 100), t0 + 5s)) << "the veth's other frames do not reach the counter";
  EXPECT_FALSE(l.alive());
  EXPECT_TRUE(l.update(probe(300, 101), t0 + 6s)) << "a held packet returned late: answering, back at once";
  EXPECT_TRUE(l.alive());
  // without a counter the dataplane says nothing either way: never dead for it
  InstanceLiveness m(2s);
  LivenessProbe none = probe(0, 0);
  none.answered.reset();
  for (int k = 0; k < 5; ++k) {
    none.delivered = 100u * k;
    EXPECT_FALSE(m.update(none, t0 + k * 1s));
  }
  EXPECT_TRUE(m.alive());
}

namespace {
ospf::VnfInfo vnf_lsa(uint32_t flags) {
  ospf::VnfInfo v;
  v.instance_id = 7;
  v.flags = flags;
  return v;
}
}  // namespace

// Down before up: an up waits until the down handed to ospfd is in the LSDB, newer than the copy
// there when it was handed over and flagged down.
TEST(DownFirst, AnUpWaitsForItsDownInTheLsdb) {
  const ospf::VnfInfo kUp = vnf_lsa(0), kDown = vnf_lsa(ospf::kVnfFlagDown);
  auto t0 = Clock::now();
  DownFirst g;
  EXPECT_FALSE(g.holds(7, t0)) << "no down handed over: nothing to wait for";
  g.down_sent(7, 10, t0);  // the LSDB holds the up, seq 10; ospfd holds the down (MinLSInterval)
  EXPECT_TRUE(g.holds(7, t0 + 1s));
  g.lsdb_has(7, 10, kUp);
  EXPECT_TRUE(g.holds(7, t0 + 2s)) << "the old up is still what the LSDB has";
  g.lsdb_has(7, 9, kDown);
  EXPECT_TRUE(g.holds(7, t0 + 2s)) << "an older down is not this one";
  g.lsdb_has(7, std::nullopt, kUp);
  EXPECT_TRUE(g.holds(7, t0 + 2s));
  g.lsdb_has(7, 11, kDown);
  EXPECT_FALSE(g.holds(7, t0 + 5s)) << "ospfd originated the down: the up may go";
  EXPECT_FALSE(g.waiting(7));
  // a stale down already in the LSDB when another down is handed over
  g.down_sent(8, 20, t0);
  g.lsdb_has(8, 20, kDown);
  EXPECT_TRUE(g.holds(8, t0 + 1s)) << "the LSDB's down is the previous one";
  g.lsdb_has(8, 21, kDown);
  EXPECT_FALSE(g.holds(8, t0 + 1s));
  // never announced before: the first copy flagged down
  g.down_sent(9, std::nullopt, t0);
  EXPECT_TRUE(g.holds(9, t0));
  g.lsdb_has(9, std::numeric_limits<int32_t>::min() + 1, kDown);
  EXPECT_FALSE(g.holds(9, t0));
  // sequence numbers are signed: -5 is older than 3
  g.down_sent(10, 3, t0);
  g.lsdb_has(10, -5, kDown);
  EXPECT_TRUE(g.holds(10, t0));
  // bounded: a down ospfd never originates does not hold the up for ever
  g.down_sent(11, 1, t0);
  EXPECT_TRUE(g.holds(11, t0 + DownFirst::kMaxWait - 1ms));
  EXPECT_FALSE(g.timed_out(11, t0 + DownFirst::kMaxWait - 1ms));
  EXPECT_FALSE(g.holds(11, t0 + DownFirst::kMaxWait));
  EXPECT_TRUE(g.timed_out(11, t0 + DownFirst::kMaxWait));
  g.clear();
  EXPECT_FALSE(g.holds(10, t0)) << "ospfd lost: it flushed every LSA of ours, nothing to flood first";
}

// A node that stands down for an FTC instance (docs/ftc.md 7.3) replaces the down it handed
// ospfd with a standby LSA: that is not live either, so an up waiting for the down (the node's
// standby acting later) goes once the standby LSA is in the LSDB instead of waiting for the cap.
TEST(DownFirst, AStandbyLsaAfterTheDownReleasesTheUp) {
  auto t0 = Clock::now();
  DownFirst g;
  g.down_sent(23, 40, t0);
  g.lsdb_has(23, 41, vnf_lsa(ospf::kVnfFlagFtc));
  EXPECT_TRUE(g.holds(23, t0 + 1s)) << "a newer live copy is not the down";
  g.lsdb_has(23, 42, vnf_lsa(ospf::kVnfFlagStandby));
  EXPECT_FALSE(g.holds(23, t0 + 1s)) << "the standby LSA replaced the down: nothing is left to flood first";
  EXPECT_FALSE(g.waiting(23));
}

TEST(InstanceLiveness, HardSourcesWinAndSayWhy) {
  auto t0 = Clock::now();
  InstanceLiveness l(2s);
  LivenessProbe p = probe(0, 0, 42);
  EXPECT_FALSE(l.update(p, t0));
  p.process = false;
  EXPECT_TRUE(l.update(p, t0 + 100ms));
  EXPECT_EQ(l.reason(), "its process (pid 42, from pid_file) is gone");
  EXPECT_FALSE(l.retry_at()) << "no retry: the pid file says when it is back";
  p.process = true;
  p.pid = 43;
  EXPECT_TRUE(l.update(p, t0 + 200ms));
  p.link_problem = "veth v is down";
  EXPECT_TRUE(l.update(p, t0 + 300ms));
  EXPECT_EQ(l.reason(), "veth v is down");
  p.link_problem.clear();
  p.cgroup = false;
  EXPECT_FALSE(l.update(p, t0 + 400ms)) << "still dead";
  EXPECT_EQ(l.reason(), "its cgroup holds no process");
  p.cgroup = true;
  EXPECT_TRUE(l.update(p, t0 + 500ms));
  EXPECT_TRUE(l.alive());
}

TEST(VnfMonitor, CgroupPopulatedAndPidFile) {
  auto dir = std::filesystem::temp_directory_path() / ("anychain-cgp-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(cgroup_populated(dir.string()).has_value()) << "unreadable: no information";
  std::ofstream(dir / "cgroup.events") << "populated 1\nfrozen 0\n";
  EXPECT_EQ(cgroup_populated(dir.string()), std::optional(true));
  std::ofstream(dir / "cgroup.events") << "populated 0\nfrozen 0\n";
  EXPECT_EQ(cgroup_populated(dir.string()), std::optional(false));
  EXPECT_FALSE(cgroup_populated("").has_value());
  std::ofstream(dir / "pid") << "1234\n";
  EXPECT_EQ(read_pid_file((dir / "pid").string()), 1234);
  EXPECT_EQ(read_pid_file((dir / "none").string()), 0);
  std::filesystem::remove_all(dir);
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
  EXPECT_EQ(s->timers.vnf_stall, 2s) << "default";
  // the backoff rule: a third of the hold-down, at least the first backoff step
  EXPECT_EQ(s->ospf.backoff_max, 200ms);
  EXPECT_TRUE(s->ospfd_pid_file.empty());
}

TEST(FromConfig, ReconnectBackoffFollowsTheHoldDownAndOspfdPidFile) {
  auto c = config::parse("node: {nsh_endpoint: 10.255.0.1}\n"
                         "ospf: {pid_file: /run/frr/ospfd.pid}\n"
                         "timers: {monitor_interval_s: 1, vnf_stall_s: 3}\n");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->hold_down, 8000ms);
  EXPECT_EQ(s->ospf.backoff_max, 2666ms) << "default hold 8 s: retry at least every 2.7 s";
  EXPECT_EQ(s->ospfd_pid_file, "/run/frr/ospfd.pid");
  EXPECT_EQ(s->timers.vnf_stall, 3s);
  c->wcmp.hold_down_ms = 60000;
  EXPECT_EQ(spec_from_config(*c)->ospf.backoff_max, 8000ms) << "capped at 8 s";
  auto bad = config::parse("node: {nsh_endpoint: 10.255.0.1}\nospf: {pid_file: ospfd.pid}\n");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error()[0].message.find("must be an absolute path"), std::string::npos);
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

// The state: section onto the agent: keys from hex, AF_XDP interfaces defaulting to the fast
// path's, microseconds, and the port the fast path redirects (docs/state.md).
TEST(FromConfig, StateSectionToTheReplicationSpec) {
  const std::string k1(64, 'a'), k2 = std::string(62, '0') + "ff";
  auto c = config::parse("node: {nsh_endpoint: 10.255.0.1}\n"
                         "interfaces: [{name: eth0}, {name: eth1}]\n"
                         "state:\n  port: 5001\n  keys: [{id: 3, key: " + k1 + "}, {id: 9, key: " + k2 + "}]\n"
                         "  send_key: 9\n  max_skew_s: 0\n  scan_interval_ms: 2\n  keepalive_ms: 50\n"
                         "  peer_window_kb: 64\n");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  ASSERT_TRUE(s->state.has_value());
  EXPECT_EQ(s->state->port, 5001);
  EXPECT_EQ(s->fastpath.state_port, 5001) << "the fast path redirects the replication port";
  EXPECT_EQ(s->state->interfaces, (std::vector<std::string>{"eth0", "eth1"})) << "default: the fast path's";
  ASSERT_EQ(s->state->keys.size(), 2u);
  EXPECT_EQ(s->state->keys[0].id, 3);
  EXPECT_EQ(s->state->keys[0].secret, std::vector<uint8_t>(32, 0xaa));
  EXPECT_EQ(s->state->keys[1].secret.back(), 0xff);
  EXPECT_EQ(s->state->send_key, 9);
  EXPECT_EQ(s->state->max_skew_us, 0u);
  EXPECT_EQ(s->state->scan_interval_us, 2000u);
  EXPECT_EQ(s->state->keepalive_us, 50'000u);
  EXPECT_EQ(s->state->window_bytes, 64u * 1024);

  auto none = config::parse("node: {nsh_endpoint: 10.255.0.1}\n");
  ASSERT_TRUE(none.has_value());
  auto n = spec_from_config(*none);
  ASSERT_TRUE(n.has_value());
  EXPECT_FALSE(n->state.has_value());
  EXPECT_EQ(n->fastpath.state_port, 0) << "no state: section, no redirect";
}

// A joining instance (its shared state not in yet) is not announced; once joined, at once.
TEST(VnfMonitor, JoiningInstanceIsAnnouncedOnlyOnceJoined) {
  AgentSpec s = one_instance(100);
  VnfMonitor m(s);
  auto t0 = Clock::now();
  EXPECT_TRUE(m.set_joining(7, true));
  EXPECT_FALSE(m.set_joining(7, true)) << "no change";
  EXPECT_TRUE(m.tick({{7, 0}}, t0).empty());
  EXPECT_TRUE(m.tick({{7, 0}}, t0 + 2s).empty());
  EXPECT_TRUE(m.set_joining(7, false));
  EXPECT_EQ(m.tick({{7, 0}}, t0 + 3s, false).size(), 1u) << "announced at the first tick after, not the next announce";
}

}  // namespace
}  // namespace anychain::daemon

namespace anychain::daemon {
namespace {

// An FTC chain (docs/ftc.md, docs/config.md "ftc"): its policies carry f (MD2 forced) into the
// classifier, and the node gets an egress buffer sized by the largest of the chains' values.
TEST(FromConfig, FtcChainsGiveFtcPoliciesAndTheBuffer) {
  const std::string yaml =
      "node: {nsh_endpoint: 10.0.0.1}\n"
      "ftc: {buffer: {frames: 2048, per_partition: 64}, hold_timeout_ms: 300}\n"
      "services:\n"
      "  - {name: fw, id: 1, anycast: 10.100.0.1}\n"
      "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"
      "  - {name: nat, id: 3, anycast: 10.100.0.3}\n"
      "chains:\n"
      "  - {name: a, spi: 10, services: [fw, mon, nat], ftc: {f: 2, buffer: {frames: 4096}}}\n"
      "  - {name: b, spi: 11, services: [mon, nat], ftc: true}\n"
      "  - {name: c, spi: 12, services: [nat]}\n"
      "policies:\n"
      "  - {name: pa, chain: a, dst: 10.2.0.0/16, md_type: 2}\n"
      "  - {name: pb, chain: b, dst: 10.3.0.0/16, md_type: 2}\n"
      "  - {name: pc, chain: c, dst: 10.4.0.0/16}\n";
  auto c = config::parse(yaml, "t.yaml");
  ASSERT_TRUE(c.has_value());
  auto rules = to_policy_rules(*c);
  ASSERT_TRUE(rules.has_value()) << rules.error().str();
  EXPECT_EQ((*rules)[0].ftc_f, 2);
  EXPECT_EQ((*rules)[1].ftc_f, 1);
  EXPECT_EQ((*rules)[2].ftc_f, 0);
  auto p = dataplane::encode_policy((*rules)[0]);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->flags & (AC_POL_FTC | AC_POL_MD2), AC_POL_FTC | AC_POL_MD2);
  EXPECT_EQ(p->ftc_f, 2);
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  ASSERT_TRUE(s->ftc_buffer.has_value());
  EXPECT_EQ(s->ftc_buffer->packets, 4096u);
  EXPECT_EQ(s->ftc_buffer->per_flow, 64u);
  EXPECT_EQ(s->ftc_buffer->max_hold_ns, 300'000'000u);
  c->chains[0].ftc.reset();
  c->chains[1].ftc.reset();
  EXPECT_FALSE(spec_from_config(*c)->ftc_buffer.has_value()) << "no FTC chain, no buffer";
  auto bad = (*rules)[0];
  bad.ftc_f = 5;
  EXPECT_FALSE(dataplane::encode_policy(bad).has_value());
}

}  // namespace
}  // namespace anychain::daemon

namespace anychain::daemon {
namespace {

// An instance of a service on an FTC chain is announced with the FTC flag and its incarnation
// (docs/vnf-lsa.md); a new incarnation is announced at the next tick, encodable as an LSA.
TEST(VnfMonitor, FtcInstanceAnnouncesFlagAndIncarnation) {
  AgentSpec s = one_instance(100);
  s.instances[0].ftc = true;
  VnfMonitor m(s);
  auto t0 = Clock::now();
  auto a = m.tick({{7, 0}}, t0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0].ftc());
  EXPECT_EQ(a[0].incarnation, 0u);
  EXPECT_TRUE(m.tick({{7, 0}}, t0 + 1s, false).empty());
  EXPECT_TRUE(m.set_incarnation(7, 4));
  EXPECT_FALSE(m.set_incarnation(7, 4)) << "no change";
  EXPECT_FALSE(m.set_incarnation(99, 1)) << "not an instance of this node";
  a = m.tick({{7, 0}}, t0 + 2s, false);
  ASSERT_EQ(a.size(), 1u) << "a new incarnation is announced at once";
  EXPECT_EQ(a[0].incarnation, 4u);
  auto lsa = ospf::build_vnf_lsa(a[0], 200);
  ASSERT_TRUE(lsa.has_value()) << lsa.error().str();
  auto back = ospf::parse_vnf_payload(ospf::ByteView(*lsa).subspan(ospf::kLsaHeaderSize));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->incarnation, 4u);
  EXPECT_TRUE(back->ftc());
  EXPECT_TRUE(m.down_info(7).ftc()) << "the down LSA keeps the FTC flag: peers freeze, not drop";
  s.instances[0].ftc = false;
  VnfMonitor plain(s);
  auto p = plain.tick({{7, 0}}, t0);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_FALSE(p[0].ftc());
}

TEST(FromConfig, FtcHopsAndRecoveryHold) {
  const std::string yaml =
      "node: {nsh_endpoint: 10.0.0.1}\n"
      "ftc: {recovery_hold_ms: 1500}\n"
      "services:\n"
      "  - {name: fw, id: 1, anycast: 10.100.0.1}\n"
      "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"
      "  - {name: web, id: 3, anycast: 10.100.0.3}\n"
      "chains:\n"
      "  - {name: a, spi: 10, services: [fw, mon], ftc: {f: 1}}\n"
      "  - {name: c, spi: 12, services: [web]}\n"
      "policies:\n"
      "  - {name: pa, chain: a, dst: 10.2.0.0/16, md_type: 2}\n"
      "instances:\n"
      "  - {name: m1, id: 5, service: mon, veth: vm1, capacity: 100}\n"
      "  - {name: w1, id: 6, service: web, veth: vw1, capacity: 100}\n";
  auto c = config::parse(yaml, "t.yaml");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  ASSERT_EQ(s->ftc_chains.size(), 1u);
  EXPECT_EQ(s->ftc_chains[0].spi, 10u);
  EXPECT_EQ(s->ftc_chains[0].services, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(s->instances[0].ftc);
  EXPECT_FALSE(s->instances[1].ftc);
  EXPECT_EQ(s->ftc_recovery_hold, std::chrono::milliseconds(1500));
  auto bad = config::parse("node: {nsh_endpoint: 10.0.0.1}\nftc: {recovery_hold_ms: 5}\n", "t.yaml");
  EXPECT_FALSE(bad.has_value()) << "recovery_hold_ms under 100 ms refused";
}

// the value after flag k in an anychain-nf command line ("" when absent)
std::string arg_value(const std::vector<std::string>& a, const std::string& k) {
  auto it = std::find(a.begin(), a.end(), k);
  return it == a.end() || it + 1 == a.end() ? std::string() : *(it + 1);
}

// ftc: replica_records and reorder_wait_us reach every built-in NF's anychain-nf command line
TEST(FromConfig, NfReplicaRecordsAndReorderWait) {
  auto yaml = [](const std::string& ftc) {
    return "node: {nsh_endpoint: 10.0.0.1}\n" + ftc +
           "services:\n"
           "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"
           "instances:\n"
           "  - {name: m1, id: 5, service: mon, veth: vm1, capacity: 100, nf: monitor}\n";
  };
  auto args_of = [&](const std::string& ftc) {
    auto c = config::parse(yaml(ftc), "t.yaml");
    EXPECT_TRUE(c.has_value());
    auto s = spec_from_config(*c);
    EXPECT_TRUE(s.has_value()) << s.error().str();
    EXPECT_TRUE(s->instances.at(0).nf.has_value());
    return nf::to_args(s->instances.at(0).nf->params);
  };
  auto value = arg_value;
  auto dflt = args_of("");
  // the node's default is anychain-nf's own: room for a head store's partitions times the largest f
  EXPECT_EQ(value(dflt, "--replica-records"), std::to_string(nf::kReplicaRecordsDefault));
  EXPECT_EQ(nf::kReplicaRecordsDefault, 4u * nf::kHeadFlowsDefault);
  EXPECT_EQ(value(dflt, "--reorder-wait-us"), "1000");
  auto set = args_of("ftc: {replica_records: 32768, reorder_wait_us: 300}\n");
  EXPECT_EQ(value(set, "--replica-records"), "32768");
  EXPECT_EQ(value(set, "--reorder-wait-us"), "300");
}

// an instance's own ftc: {replica_records, reorder_wait_us} goes to its anychain-nf; its other
// key and the other instances keep the node's values
TEST(FromConfig, NfReplicaRecordsAndReorderWaitPerInstance) {
  const std::string yaml =
      "node: {nsh_endpoint: 10.0.0.1}\n"
      "ftc: {replica_records: 32768, reorder_wait_us: 300}\n"
      "services:\n"
      "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"
      "  - {name: rep, id: 3, anycast: 10.100.0.3}\n"
      "chains:\n"
      "  - {name: a, spi: 10, services: [mon, rep], ftc: true}\n"
      "instances:\n"
      "  - {name: m1, id: 5, service: mon, veth: vm1, capacity: 100, nf: monitor, ftc: {replica_records: 100000}}\n"
      "  - {name: r1, id: 6, service: rep, veth: vr1, capacity: 100, nf: replica, ftc: {reorder_wait_us: 20}}\n"
      "  - {name: m2, id: 7, service: mon, veth: vm2, capacity: 100, nf: monitor}\n";
  auto c = config::parse(yaml, "t.yaml");
  ASSERT_TRUE(c.has_value());
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  auto value = [&](size_t i, const std::string& k) { return arg_value(nf::to_args(s->instances.at(i).nf->params), k); };
  EXPECT_EQ(value(0, "--replica-records"), "100000");
  EXPECT_EQ(value(0, "--reorder-wait-us"), "300");
  EXPECT_EQ(value(1, "--replica-records"), "32768");
  EXPECT_EQ(value(1, "--reorder-wait-us"), "20");
  EXPECT_EQ(value(2, "--replica-records"), "32768");
  EXPECT_EQ(value(2, "--reorder-wait-us"), "300");
}

}  // namespace
}  // namespace anychain::daemon

#include "daemon/ftc_peers.h"
#include "anychain/ftc.h"
#include "nf/kind.h"

namespace anychain::daemon {
namespace {

// A local FTC instance run as a built-in NF
LocalInstanceSpec ftc_nf(const std::string& name, uint32_t id, uint32_t svc, nf::Kind kind, uint32_t idle = 0) {
  LocalInstanceSpec l;
  l.name = name;
  l.id = id;
  l.service_id = svc;
  l.veth = "v" + name;
  l.ftc = true;
  nf::InstanceSpec n;
  n.name = name;
  n.params.kind = kind;
  n.params.idle_timeout_s = idle;
  l.nf = n;
  return l;
}

// Chain fw -> mon -> nat, f = 1 (a ring: nat's successor is fw), and chain mon -> nat, f = 1;
// this node runs mon 5 and nat 9 as built-in NFs; the plane knows fw 3 and 4, mon 5 and 6 (6
// recovering, incarnation 2), nat 9. fw 3 and 4 run on node A, mon 6 on C, 5 and 9 here (B).
TEST(FtcControls, PeersSuccessorsAndIncarnationsFromThePlane) {
  constexpr uint32_t kNodeA = 0x0a0a0001, kNodeB = 0x0a0a0002, kNodeC = 0x0a0a0003;
  AgentSpec s;
  s.services = {{"fw", 1, 0x0a640001, 32}, {"mon", 2, 0x0a640002, 32}, {"nat", 3, 0x0a640003, 32}};
  s.instances = {ftc_nf("mon5", 5, 2, nf::Kind::Monitor, 60), ftc_nf("nat9", 9, 3, nf::Kind::Nat, 300)};
  s.ftc_chains = {{.spi = 10, .f = 1, .services = {1, 2, 3}}, {.spi = 11, .f = 1, .services = {2, 3}}};
  plane::PlaneView v;
  auto route = [](uint32_t addr, std::vector<std::pair<uint32_t, uint32_t>> ids) {
    plane::ServiceRoute r;
    r.key = {addr, 32};
    for (auto [id, inc] : ids) {
      plane::Candidate c;
      c.info.instance_id = id;
      c.info.incarnation = inc;
      c.info.flags = ospf::kVnfFlagFtc;
      c.recovering = id == 6;
      c.info.nsh_endpoint = id <= 4 ? kNodeA : id == 6 ? kNodeC : kNodeB;  // B is this node (5, 9)
      r.candidates.push_back(c);
      r.weights.push_back(1);
    }
    return r;
  };
  v.services = {route(0x0a640001, {{3, 0}, {4, 1}}), route(0x0a640002, {{5, 0}, {6, 2}}), route(0x0a640003, {{9, 0}})};
  auto c = compute_ftc_controls(s, v, {{5, 7}});
  EXPECT_TRUE(c.problems.empty());
  ASSERT_EQ(c.by_name.size(), 2u);
  const auto& mon = c.by_name.at("mon5");
  EXPECT_EQ(mon.f, 1);
  EXPECT_EQ(mon.incarnation, 7);
  // chain 10: after mon comes nat (9), before it fw (3, 4); chain 11: nat after and before (ring of 2)
  EXPECT_EQ(mon.successors, (std::vector<uint16_t>{9}));
  std::vector<uint16_t> ids;
  for (const auto& p : mon.peers) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<uint16_t>{3, 4, 9}));
  EXPECT_EQ(mon.peers[1].incarnation, 1);
  EXPECT_EQ(mon.peers[2].idle_timeout_s, 300u) << "a local peer's idle timeout is its NF's";
  EXPECT_EQ(mon.peers[0].idle_timeout_s, nf::kFtcDefaultPeerIdle);
  const auto& nat = c.by_name.at("nat9");
  EXPECT_EQ(nat.incarnation, 0);
  // chain 10: the tail's successor wraps to fw; chain 11: mon; predecessors mon (both chains)
  EXPECT_EQ(nat.successors, (std::vector<uint16_t>{3, 4, 5, 6}));
  ids.clear();
  for (const auto& p : nat.peers) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<uint16_t>{3, 4, 5, 6}));
  EXPECT_EQ(nat.peers[3].incarnation, 2) << "a recovering peer keeps its id and incarnation";
  EXPECT_TRUE(nf::ftc_control_from_json(nf::to_json(nat)).has_value()) << "what the NF accepts";

  // recovery: ask the nodes of the peers (this one too); replicate the f hops before each hop
  ASSERT_EQ(c.recovery.size(), 2u);
  EXPECT_EQ(c.recovery.at(5).holders, (std::set<uint32_t>{kNodeA, kNodeB}));
  EXPECT_EQ(c.recovery.at(5).geo.replicated_sis,
            (std::map<uint32_t, std::vector<uint8_t>>{{10, {255}}, {11, {254}}}))
      << "chain 10: fw (SI 255) before mon; chain 11: nat (SI 254) before mon on the ring";
  EXPECT_EQ(c.recovery.at(9).holders, (std::set<uint32_t>{kNodeA, kNodeB, kNodeC}));
  EXPECT_EQ(c.recovery.at(9).geo.replicated_sis, (std::map<uint32_t, std::vector<uint8_t>>{{10, {254}}, {11, {255}}}));

  // a service with no instance yet, and an id that does not fit nf_peers
  v.services[0].candidates.clear();
  v.services[0].candidates.push_back({});
  v.services[0].candidates[0].info.instance_id = 70000;
  auto d = compute_ftc_controls(s, v, {});
  EXPECT_EQ(d.by_name.at("mon5").successors, (std::vector<uint16_t>{9}));
  ASSERT_FALSE(d.problems.empty());
  EXPECT_NE(d.problems[0].find("70000"), std::string::npos) << d.problems[0];

  // a peer that announces no endpoint cannot be asked: reported, left out of the holders
  v.services[2].candidates[0].info.nsh_endpoint = 0;
  auto e = compute_ftc_controls(s, v, {});
  EXPECT_EQ(e.recovery.at(5).holders, (std::set<uint32_t>{}));
  EXPECT_TRUE(std::any_of(e.problems.begin(), e.problems.end(),
                          [](const std::string& p) { return p.find("peer instance 9 announces no NSH endpoint") != std::string::npos; }));
}

// A holder out of the plane for a moment stays asked (ftc_peers.h FtcHolderMemory): chain fw ->
// nat, f = 1; this node (B) runs nat 9, fw 3 runs on A. fw 3 withdrawn (its service has no
// instance): its node A is still a holder of nat 9's records while A's router is reached and for
// `keep`; not once A is unreachable, nor after `keep`.
TEST(FtcHolderMemory, AHolderWithdrawnAMomentIsStillAskedWhileItsNodeIsReached) {
  constexpr uint32_t kNodeA = 0x0a0a0001, kNodeB = 0x0a0a0002, kRouterA = 0x0aff0001, kRouterB = 0x0aff0002;
  AgentSpec s;
  s.services = {{"fw", 1, 0x0a640001, 32}, {"nat", 3, 0x0a640003, 32}};
  s.instances = {ftc_nf("nat9", 9, 3, nf::Kind::Nat, 300)};
  s.ftc_chains = {{.spi = 10, .f = 1, .services = {1, 3}}};
  plane::PlaneView v;
  auto cand = [](uint32_t id, uint32_t node, uint32_t router) {
    plane::Candidate c;
    c.info.instance_id = id;
    c.info.flags = ospf::kVnfFlagFtc;
    c.info.nsh_endpoint = node;
    c.router = router;
    return c;
  };
  plane::ServiceRoute fw, nat;
  fw.key = {0x0a640001, 32};
  fw.candidates = {cand(3, kNodeA, kRouterA)};
  fw.weights = {1};
  nat.key = {0x0a640003, 32};
  nat.candidates = {cand(9, kNodeB, kRouterB)};
  nat.weights = {1};
  v.services = {fw, nat};
  v.router_dist = {{kRouterA, 10}, {kRouterB, 0}};
  FtcHolderMemory mem;
  const auto t0 = FtcHolderMemory::Clock::time_point{} + std::chrono::hours(1);
  const std::chrono::seconds keep(330);
  auto c = compute_ftc_controls(s, v, {});
  mem.apply(c.recovery, v, t0, keep);
  EXPECT_EQ(c.recovery.at(9).holders, (std::set<uint32_t>{kNodeA}));
  // fw 3 withdrawn: the plane alone names no holder
  v.services[0].candidates.clear();
  v.services[0].weights.clear();
  c = compute_ftc_controls(s, v, {});
  EXPECT_TRUE(c.recovery.at(9).holders.empty());
  mem.apply(c.recovery, v, t0 + std::chrono::seconds(30), keep);
  EXPECT_EQ(c.recovery.at(9).holders, (std::set<uint32_t>{kNodeA})) << "A still holds nat 9's replicas";
  EXPECT_EQ(c.recovery.at(9).holder_router.at(kNodeA), kRouterA);
  // A unreachable: not asked (a dead node would only delay the recovery by the holders' timeout)
  v.router_dist = {{kRouterA, plane::kUnreachable}, {kRouterB, 0}};
  c = compute_ftc_controls(s, v, {});
  mem.apply(c.recovery, v, t0 + std::chrono::seconds(60), keep);
  EXPECT_TRUE(c.recovery.at(9).holders.empty());
  // reached again, but longer ago than `keep` it was last a holder: forgotten
  v.router_dist = {{kRouterA, 10}, {kRouterB, 0}};
  c = compute_ftc_controls(s, v, {});
  mem.apply(c.recovery, v, t0 + keep + std::chrono::seconds(1), keep);
  EXPECT_TRUE(c.recovery.at(9).holders.empty());
}

// The channel's peers come from the LSDB only: chain fw -> mon -> nat -> rep with f = 1; this
// node (B) runs mon 5 and stands by for instance 30 (web, on F). The nodes within one hop of mon
// (fw on A, nat on C and D) and F are peers; rep (E, two hops away either way), an instance of
// a service on no chain (G) and this node are not. A nat that moves to another node moves the peer.
TEST(FtcChannelPeers, NodesWithinFHopsAndStandbyTargetsFromTheLsdb) {
  constexpr uint32_t kA = 0x0a0a0001, kB = 0x0a0a0002, kC = 0x0a0a0003, kD = 0x0a0a0004, kE = 0x0a0a0005,
                     kF = 0x0a0a0006, kG = 0x0a0a0007, kH = 0x0a0a0008;
  AgentSpec s;
  s.services = {{"fw", 1, 0x0a640001, 32}, {"mon", 2, 0x0a640002, 32}, {"nat", 3, 0x0a640003, 32},
                {"rep", 4, 0x0a640004, 32}, {"web", 5, 0x0a640005, 32}, {"other", 6, 0x0a640006, 32}};
  LocalInstanceSpec mon;
  mon.name = "mon5";
  mon.id = 5;
  mon.service_id = 2;
  mon.veth = "vmon5";
  mon.ftc = true;
  nf::InstanceSpec n;
  n.name = "mon5";
  n.params.idle_timeout_s = 60;
  mon.nf = n;
  s.instances = {mon};
  LocalInstanceSpec sb;
  sb.name = "web30";
  sb.id = 30;
  sb.service_id = 5;
  s.standbys = {sb};
  s.ftc_chains = {{.spi = 10, .f = 1, .services = {1, 2, 3, 4}}};
  auto route = [](uint32_t addr, std::vector<std::pair<uint32_t, uint32_t>> at) {
    plane::ServiceRoute r;
    r.key = {addr, 32};
    for (auto [id, node] : at) {
      plane::Candidate c;
      c.info.instance_id = id;
      c.info.flags = ospf::kVnfFlagFtc;
      c.info.nsh_endpoint = node;
      c.local = node == kB;
      r.candidates.push_back(c);
      r.weights.push_back(1);
    }
    return r;
  };
  plane::PlaneView v;
  v.services = {route(0x0a640001, {{3, kA}}), route(0x0a640002, {{5, kB}, {6, kB}}),
                route(0x0a640003, {{9, kC}, {10, kD}}), route(0x0a640004, {{12, kE}}), route(0x0a640005, {{30, kF}}),
                route(0x0a640006, {{40, kG}})};
  auto c = compute_ftc_controls(s, v, {});
  EXPECT_EQ(ftc_channel_peers(s, v, c.recovery, kB), (std::vector<uint32_t>{kA, kC, kD, kF}));
  // nat 9 now announced by H: the peer follows the LSDB
  v.services[2].candidates[0].info.nsh_endpoint = kH;
  c = compute_ftc_controls(s, v, {});
  EXPECT_EQ(ftc_channel_peers(s, v, c.recovery, kB), (std::vector<uint32_t>{kA, kD, kF, kH}));
  // f = 2 reaches rep (E) as well; without FTC instances or standbys, no peers
  s.ftc_chains[0].f = 2;
  c = compute_ftc_controls(s, v, {});
  EXPECT_EQ(ftc_channel_peers(s, v, c.recovery, kB), (std::vector<uint32_t>{kA, kD, kE, kF, kH}));
  s.instances.clear();
  s.standbys.clear();
  c = compute_ftc_controls(s, v, {});
  EXPECT_TRUE(ftc_channel_peers(s, v, c.recovery, kB).empty());
}

// The share check (docs/ftc.md 2.6): the monitor's largest log (its IPv6 flow: 4 + 12 + 4 + 16
// + 16 = 52 bytes) is over the 44-byte share of f = 4, the NAT's (4 + 12 + 4 + 13 + 8, padded:
// 44) fits it exactly; with f = 3 (64 bytes) both fit. The largest f of an instance's chains
// counts; a standby is checked as the instance it would run; other kinds write no per-flow state.
TEST(FtcShareWarnings, AnNfWhoseLogsAreOverTheShareOfItsLargestFIsNamed) {
  EXPECT_EQ(nf::ftc_log_tlv_max(nf::Kind::Monitor), 52u);
  EXPECT_EQ(nf::ftc_log_tlv_max(nf::Kind::Nat), 44u);
  EXPECT_EQ(nf::ftc_log_tlv_max(nf::Kind::Firewall), 0u);
  EXPECT_EQ(ac_ftc_share(4), 44u);
  EXPECT_EQ(ac_ftc_share(3), 64u);
  AgentSpec s;
  s.instances = {ftc_nf("mon1", 1, 2, nf::Kind::Monitor), ftc_nf("nat1", 2, 3, nf::Kind::Nat),
                 ftc_nf("fw1", 3, 1, nf::Kind::Firewall)};
  s.ftc_chains = {{.spi = 10, .f = 3, .services = {1, 2, 3, 4}}};
  EXPECT_TRUE(ftc_share_warnings(s).empty());
  s.ftc_chains.push_back({.spi = 11, .f = 4, .services = {2, 3, 4, 5, 6}});
  auto w = ftc_share_warnings(s);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("instance 'mon1' (monitor): its logs take up to 52 bytes, over the 44-byte share that f = 4 "
                      "(chain SPI 11)"),
            std::string::npos)
      << w[0];
  EXPECT_NE(w[0].find("16-byte stub"), std::string::npos) << w[0];
  s.standbys = {ftc_nf("mon9", 9, 2, nf::Kind::Monitor)};
  EXPECT_EQ(ftc_share_warnings(s).size(), 2u);
  s.ftc_chains.pop_back();
  EXPECT_TRUE(ftc_share_warnings(s).empty()) << "f = 3 again";
}

}  // namespace
}  // namespace anychain::daemon
