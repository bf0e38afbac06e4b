// anychaind's standby watch (daemon/ftc_standby.h, docs/ftc.md 7.3) over plane computations of
// synthetic LSDBs, as seen from each router: exactly one of several standbys starts the
// replacement (the reachable one with the lowest router id), with incarnation + 1; it starts at
// once when the node is lost and after the grace when the instance is withdrawn by a live node;
// a node that comes back (its instance live again) starts nothing; a start is reported once.
#include "daemon/ftc_standby.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "plane/hold_down.h"
#include "plane_fixtures.h"

using namespace anychain;
using namespace anychain::daemon;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t kSvc = 0x0a640003;
using Clock = FtcStandbyWatch::Clock;

ospf::VnfInfo ftc(std::uint32_t id, std::uint32_t router, std::uint32_t inc, bool down = false) {
  return {kSvc, 32, id, 40, 150, 0xc0000200 + router,
          ospf::kVnfFlagNshAware | ospf::kVnfFlagFtc | (down ? ospf::kVnfFlagDown : 0u), inc};
}
ospf::VnfInfo standby(std::uint32_t id, std::uint32_t router) {
  return {kSvc, 32, id, 0, 0, 0xc0000200 + router, ospf::kVnfFlagStandby, 0};
}

// routers 1..4 in a full mesh minus `cut`; instance 3 on router 2 (incarnation 7), standbys for
// it on routers 4 and 3
test::LsdbBuilder net(const std::vector<std::uint32_t>& cut, bool a_down = false, bool a_live = true) {
  test::LsdbBuilder b;
  auto in = [&](std::uint32_t r) { return std::find(cut.begin(), cut.end(), r) == cut.end(); };
  for (std::uint32_t x = 1; x <= 4; ++x) {
    b.router(x);
    for (std::uint32_t y = x + 1; y <= 4; ++y)
      if (in(x) && in(y)) b.link(x, y, 10, 10);
  }
  if (a_live) b.vnf(2, ftc(3, 2, 7, a_down));
  b.vnf(4, standby(3, 4));
  b.vnf(3, standby(3, 3));
  return b;
}

LocalInstanceSpec sb() {
  LocalInstanceSpec s;
  s.name = "nat1-sb";
  s.id = 3;
  s.service_id = 3;
  s.ftc = true;
  return s;
}

// One router's agent: its own hold-down, plane and watch.
struct Node {
  std::uint32_t self;
  plane::VnfHoldDown hold{8s, 30s};
  FtcStandbyWatch watch{6s};
  std::vector<FtcStandbyWatch::Start> step(const test::LsdbBuilder& b, Clock::time_point now,
                                           std::vector<std::uint32_t> failed_endpoints = {}) {
    plane::PlaneConfig cfg;
    cfg.self_router = self;
    cfg.failed_endpoints = std::move(failed_endpoints);
    auto v = plane::compute_plane(b.build(), cfg, &hold, now);
    EXPECT_TRUE(v);
    return v ? watch.update(*v, self, {sb()}, now) : std::vector<FtcStandbyWatch::Start>{};
  }
};
}  // namespace

TEST(FtcStandby, NodeLostExactlyTheLowestReachableStandbyStarts) {
  Clock::time_point t{};
  Node r3{3}, r4{4};
  EXPECT_TRUE(r3.step(net({}), t).empty());
  EXPECT_TRUE(r4.step(net({}), t).empty());
  t += 1s;
  auto s3 = r3.step(net({2}), t);
  auto s4 = r4.step(net({2}), t);
  ASSERT_EQ(s3.size(), 1u) << "router 3 has the lowest id among the standbys";
  EXPECT_EQ(s3[0].id, 3u);
  EXPECT_EQ(s3[0].new_inc, 8u);
  EXPECT_EQ(s3[0].failed_router, 2u);
  EXPECT_EQ(s3[0].detected, t);
  EXPECT_TRUE(s4.empty()) << "router 4 waits";
  EXPECT_EQ(r4.watch.status(t)["standbys"][0]["acting_router"], "0.0.0.3");
  // reported once
  t += 1s;
  EXPECT_TRUE(r3.step(net({2}), t).empty());
  EXPECT_EQ(r3.watch.status(t)["started"], 1u);
}

TEST(FtcStandby, NextStandbyWhenTheLowestIsLostToo) {
  Clock::time_point t{};
  Node r4{4};
  r4.step(net({}), t);
  t += 1s;
  auto s = r4.step(net({2, 3}), t);
  ASSERT_EQ(s.size(), 1u) << "router 3 is unreachable: router 4's standby acts";
  EXPECT_EQ(s[0].new_inc, 8u);
  // the same when OSPF still reaches router 3 but the heartbeat detector failed it
  Node other{4};
  other.step(net({}), t);
  ASSERT_EQ(other.step(net({2}), t + 1s, {0xc0000203}).size(), 1u);
}

TEST(FtcStandby, HeartbeatDetectorStartsItWhileOspfStillReachesTheNode) {
  Clock::time_point t{};
  Node r3{3};
  r3.step(net({}), t);
  t += 300ms;
  auto s = r3.step(net({}), t, {0xc0000202});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].why, "its node is lost");
}

TEST(FtcStandby, WithdrawnByALiveNodeWaitsForItsRestartThere) {
  Clock::time_point t{};
  Node r3{3};
  r3.step(net({}), t);
  t += 1s;
  EXPECT_TRUE(r3.step(net({}, true), t).empty()) << "withdrawn (down LSA), node reachable: its own restart first";
  ASSERT_TRUE(r3.watch.next_due());
  EXPECT_EQ(*r3.watch.next_due(), t + 6s);
  t += 3s;
  EXPECT_TRUE(r3.step(net({}, true), t).empty());
  t += 3s;
  auto s = r3.step(net({}, true), t);
  ASSERT_EQ(s.size(), 1u) << "not back 6 s after: the standby acts";
  EXPECT_EQ(s[0].why, "withdrawn and not restarted");
  EXPECT_EQ(s[0].detected, t - 6s);
}

TEST(FtcStandby, FailedNodeComingBackStartsNothing) {
  Clock::time_point t{};
  Node r3{3};
  r3.step(net({}), t);
  t += 1s;
  EXPECT_TRUE(r3.step(net({}, true), t).empty());
  t += 2s;
  EXPECT_TRUE(r3.step(net({}), t).empty()) << "restarted in place, announced live again";
  t += 10s;
  EXPECT_TRUE(r3.step(net({}), t).empty());
  EXPECT_EQ(r3.watch.status(t)["standbys"][0]["state"], "standing by");
  EXPECT_FALSE(r3.watch.next_due());
  EXPECT_EQ(r3.watch.status(t)["started"], 0u);
}

// The next hops a standby's replacement writes (docs/ftc.md 7.5 step 3): chain 9 = fw (SI 255),
// mon (254), nat (253); the replacement is the monitor (head SI 254). Its head records came from
// the NAT's node: the flow's placement at SI 253 is the NAT instance on that node.
TEST(FtcStandby, ReplacementNextHopsFromTheHoldersOfItsHeadRecords) {
  AgentSpec spec;
  spec.services = {{"fw", 1, 0x0a640001, 32}, {"mon", 2, 0x0a640002, 32}, {"nat", 3, 0x0a640003, 32}};
  spec.paths = {{9, 255, 1, false}, {9, 254, 2, false}, {9, 253, 3, false}, {9, 252, 0, true}};
  plane::PlaneView v;
  auto cand = [](std::uint32_t svc, std::uint32_t id, std::uint32_t endpoint, bool recovering = false) {
    plane::Candidate c;
    c.info = {svc, 32, id, 10, 10, endpoint, ospf::kVnfFlagFtc, 0};
    c.recovering = recovering;
    return c;
  };
  v.services.push_back({{0x0a640003, 32}, {cand(0x0a640003, 31, 0xc0000204), cand(0x0a640003, 32, 0xc0000205),
                                           cand(0x0a640003, 33, 0xc0000206), cand(0x0a640003, 34, 0xc0000206),
                                           cand(0x0a640003, 35, 0xc0000207, true)}, {}});
  using HS = FtcRecoveryService::Result::HeadSource;
  std::vector<HS> heads{
      {9, 0x1111, 254, 0xc0000204},  // the NAT 31's node: placement at SI 253 -> 31
      {9, 0x2222, 254, 0xc0000205},  // -> 32
      {9, 0x3333, 254, 0xc0000206},  // two NATs on that node: left to WCMP
      {9, 0x4444, 254, 0xc0000207},  // its NAT is recovering itself: left to WCMP
      {9, 0x5555, 254, 0xc0000299},  // no NAT there (a holder farther along): left to WCMP
      {9, 0x6666, 253, 0xc0000204},  // a head at the chain's last hop: no next hop here
      {7, 0x7777, 254, 0xc0000204},  // an SPI this node has no path of
  };
  size_t skipped = 0;
  auto w = replacement_next_hops(heads, spec, v, &skipped);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], (AffinityWrite{9, 253, 0x1111, 31}));
  EXPECT_EQ(w[1], (AffinityWrite{9, 253, 0x2222, 32}));
  EXPECT_EQ(skipped, 5u);
}

// `instance add --standby-for` against the LSDB: an unknown instance, a non-FTC one, one of
// another service are refused with the entry's name; an FTC instance of the service, also a
// frozen one, is accepted.
TEST(FtcStandby, StandbyTargetCheckedAgainstTheLsdb) {
  plane::PlaneView v;
  auto cand = [](std::uint32_t svc, std::uint32_t id, std::uint32_t flags, bool recovering = false) {
    plane::Candidate c;
    c.router = 2;
    c.info = {svc, 32, id, 10, 10, 0xc0000202, flags, 0};
    c.recovering = recovering;
    return c;
  };
  v.services.push_back({{kSvc, 32}, {cand(kSvc, 3, ospf::kVnfFlagFtc), cand(kSvc, 4, 0), cand(kSvc, 5, ospf::kVnfFlagFtc, true)}, {}});
  v.services.push_back({{0x0a640009, 32}, {cand(0x0a640009, 6, ospf::kVnfFlagFtc)}, {}});
  EXPECT_TRUE(check_standby_target(v, "sb", 3, kSvc, 32));
  EXPECT_TRUE(check_standby_target(v, "sb", 5, kSvc, 32)) << "failed already (frozen): a standby is still welcome";
  auto unknown = check_standby_target(v, "sb", 77, kSvc, 32);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ENOENT);
  EXPECT_NE(unknown.error().str().find("instance 'sb': standby for unknown instance 77: no router announces it"),
            std::string::npos) << unknown.error().str();
  auto plain = check_standby_target(v, "sb", 4, kSvc, 32);
  ASSERT_FALSE(plain);
  EXPECT_NE(plain.error().str().find("instance 'sb': standby for instance 4, which is not an FTC instance"),
            std::string::npos) << plain.error().str();
  auto other = check_standby_target(v, "sb", 6, kSvc, 32);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().str().find("of another service"), std::string::npos) << other.error().str();
}

// The roles applied to each spec the agent runs (docs/ftc.md 7.3): an acting standby runs as its
// instance; an instance that stood down (its node came back after a standby took it over) is a
// standby, so its process stops and its node announces a standby LSA for it.
TEST(FtcStandby, RolesMoveEntriesBetweenInstancesAndStandbys) {
  AgentSpec s;
  LocalInstanceSpec fw;
  fw.name = "fw1";
  fw.id = 1;
  LocalInstanceSpec nat = sb();
  nat.name = "nat1";
  s.instances = {fw, nat};
  LocalInstanceSpec other = sb();
  other.name = "mon1-sb";
  other.id = 2;
  s.standbys = {other};
  auto names = [](const std::vector<LocalInstanceSpec>& l) {
    std::vector<std::string> n;
    for (const auto& x : l) n.push_back(x.name);
    return n;
  };
  auto t = s;
  apply_standby_roles(t, {}, {});
  EXPECT_EQ(names(t.instances), (std::vector<std::string>{"fw1", "nat1"}));
  // nat1's node came back after another router's standby took instance 3 over: it stands by
  apply_standby_roles(t, {}, {3});
  EXPECT_EQ(names(t.instances), (std::vector<std::string>{"fw1"}));
  EXPECT_EQ(names(t.standbys), (std::vector<std::string>{"mon1-sb", "nat1"}));
  // and if that replacement fails, this node's standby acts: instance 3 runs here again; the
  // standby for 2 acts too
  apply_standby_roles(t, {2, 3}, {});
  EXPECT_EQ(names(t.instances), (std::vector<std::string>{"fw1", "mon1-sb", "nat1"}));
  EXPECT_TRUE(t.standbys.empty());
  // applied to the config's spec again (a reload) with the same roles: the same result
  t = s;
  apply_standby_roles(t, {}, {3});
  apply_standby_roles(t, {}, {3});
  EXPECT_EQ(names(t.instances), (std::vector<std::string>{"fw1"}));
  EXPECT_EQ(names(t.standbys), (std::vector<std::string>{"mon1-sb", "nat1"}));
}

// The incarnation an FTC instance comes back with (docs/ftc.md 7.3): strictly newer than every one
// announced for its id, so that a node back after its standby acted (D restarted while E runs the
// instance as D's last + 1) never announces the replacement's own incarnation, which the lower
// router id would win.
TEST(FtcStandby, ComebackIncarnationIsNewerThanEveryAnnouncedOne) {
  EXPECT_EQ(comeback_incarnation(4, {}), 4) << "nothing announced: its own next";
  EXPECT_EQ(comeback_incarnation(4, {3}), 4) << "its own old LSA";
  EXPECT_EQ(comeback_incarnation(4, {3, 4}), 5) << "the replacement's incarnation is its last + 1 too";
  EXPECT_EQ(comeback_incarnation(4, {4, 9, 7}), 10);
  EXPECT_EQ(comeback_incarnation(1, {100}), 101) << "no control file (rebooted): above the LSDB's";
  EXPECT_EQ(comeback_incarnation(1, {200}), 1) << "serial: 1 is 57 after 200, newer already";
  EXPECT_EQ(comeback_incarnation(255, {255}), 0) << "serial: 0 follows 255";
  EXPECT_EQ(comeback_incarnation(2, {254, 255, 0}), 2) << "serial: 254..0 are older than 2";
  EXPECT_EQ(comeback_incarnation(0, {254, 255, 1}), 2);
}

namespace {

// The acting standbys a restarted agent starts with (docs/ftc.md 7.3): written atomically, read
// back; no file is none; a file that is not the agent's is refused with its path, never guessed.
TEST(FtcStandby, ActingStandbysOutliveTheAgentInTheirFile) {
  const std::string dir = ::testing::TempDir() + "ac-standby-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  const std::string path = standby_acting_path(dir);
  EXPECT_EQ(path, dir + "/ftc/standby-acting.json");
  auto none = read_standby_acting(path);
  ASSERT_TRUE(none.has_value()) << none.error().str();
  EXPECT_TRUE(none->empty()) << "no file: no standby acts";
  ASSERT_TRUE(write_standby_acting(path, {23, 7}).has_value()) << "the ftc directory is made";
  auto back = read_standby_acting(path);
  ASSERT_TRUE(back.has_value()) << back.error().str();
  EXPECT_EQ(*back, (std::set<uint32_t>{7, 23}));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  ASSERT_TRUE(write_standby_acting(path, {}).has_value());
  EXPECT_TRUE(read_standby_acting(path)->empty()) << "a stand-down empties it";
  for (const char* bad : {"not json", "[23]", "{\"acting\": 23}", "{\"acting\": [-1]}", "{\"acting\": [\"23\"]}",
                          "{\"acting\": [4294967296]}"}) {
    std::ofstream(path, std::ios::trunc) << bad;
    auto r = read_standby_acting(path);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().str().find(path), std::string::npos) << r.error().str();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
