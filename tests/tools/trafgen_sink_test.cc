// Integration test (root): anychain-trafgen in namespace A sends UDP flows (IPv4 and IPv6) over
// a veth pair to anychain-sink in namespace B; every flow and packet must be accounted for.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "json_reader.h"
#include "netns.h"

namespace anychain::testing {
namespace {

using namespace std::chrono_literals;

class TrafgenSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    net_ = std::make_unique<VethPair>("t", true);
    must("ip -n " + net_->ns_a + " addr add 10.77.0.1/24 dev " + net_->if_a);
    must("ip -n " + net_->ns_b + " addr add 10.77.0.2/24 dev " + net_->if_b);
    must("ip -n " + net_->ns_a + " addr add fd77::1/64 dev " + net_->if_a + " nodad");
    must("ip -n " + net_->ns_b + " addr add fd77::2/64 dev " + net_->if_b + " nodad");
    char tmpl[] = "/tmp/anychain-gen-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    net_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  Json run_trafgen(const std::vector<std::string>& args, const std::string& name) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN, "--json", dir_ + "/" + name + ".json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Child gen(net_->ns_a, argv, dir_ + "/" + name + ".out");
    EXPECT_EQ(gen.wait_exit(20s), std::optional<int>(0)) << "trafgen stops by itself";
    const Json file = parse_json(slurp(dir_ + "/" + name + ".json"));
    // The summary on stdout and in the file agree.
    EXPECT_EQ(parse_json(slurp(dir_ + "/" + name + ".out"))["packets_sent"].u(),
              file["packets_sent"].u());
    return file;
  }

  std::unique_ptr<VethPair> net_;
  std::string dir_;
};

TEST_F(TrafgenSinkTest, EveryFlowAndPacketArrives) {
  const std::string sink_json = dir_ + "/sink.json";
  Child sink(net_->ns_b, {ANYCHAIN_SINK_BIN, "--port", "9000", "--json", sink_json,
                          "--interval", "0.5"},
             dir_ + "/sink.out");
  ASSERT_TRUE(wait_for_file(sink_json, 5s));

  // IPv4: 20 flows/s for 1 s, each 0.5 s at 40 pps -> 20 flows x 20 packets.
  const Json g4 = run_trafgen({"--dst", "10.77.0.2", "--dport", "9000", "--flows-per-sec", "20",
                               "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1",
                               "--payload-size", "100"},
                              "gen4");
  EXPECT_EQ(g4["flows_started"].u(), 20u);
  EXPECT_EQ(g4["flows_completed"].u(), 20u);
  EXPECT_EQ(g4["packets_per_flow"].u(), 20u);
  EXPECT_EQ(g4["packets_sent"].u(), 400u);
  EXPECT_EQ(g4["bytes_sent"].u(), 400u * 100);
  EXPECT_EQ(g4["send_errors"].u(), 0u);
  EXPECT_LT(g4["elapsed_s"].n(), 1.0 + 0.5 + 0.5);

  // The periodic rewrite (every 0.5 s) already has them, without the per-flow list.
  std::this_thread::sleep_for(700ms);
  const Json mid = parse_json(slurp(sink_json));
  EXPECT_FALSE(mid["final"].b);
  EXPECT_FALSE(mid.has("per_flow"));
  EXPECT_EQ(mid["packets"].u(), 400u);
  EXPECT_EQ(mid["flows"].u(), 20u);
  EXPECT_GE(mid["intervals"].arr.size(), 2u);

  // IPv6: Poisson arrivals, capped at 12 flows, flow ids from 1001.
  const Json g6 = run_trafgen({"--dst", "fd77::2", "--dport", "9000", "--flows-per-sec", "30",
                               "--flow-duration", "0.3", "--flow-rate", "50", "--duration", "5",
                               "--arrivals", "poisson", "--seed", "3", "--max-flows", "12",
                               "--flow-id-base", "1001"},
                              "gen6");
  EXPECT_EQ(g6["flows_started"].u(), 12u);
  EXPECT_EQ(g6["packets_per_flow"].u(), 15u);
  EXPECT_EQ(g6["packets_sent"].u(), 12u * 15);
  EXPECT_EQ(g6["send_errors"].u(), 0u);

  std::this_thread::sleep_for(200ms);  // let the last packets land
  ASSERT_EQ(sink.terminate(), std::optional<int>(0));
  const Json s = parse_json(slurp(sink_json));
  EXPECT_TRUE(s["final"].b);
  const std::uint64_t total = g4["packets_sent"].u() + g6["packets_sent"].u();
  EXPECT_EQ(s["packets"].u(), total);
  EXPECT_EQ(s["non_lab"].u(), 0u);
  EXPECT_EQ(s["flows"].u(), 32u);
  EXPECT_EQ(s["flows_switched"].u(), 0u);

  std::set<std::uint64_t> ids;
  for (const Json& f : s["per_flow"].arr) {
    const std::uint64_t id = f["flow_id"].u();
    ids.insert(id);
    const std::uint64_t want = id >= 1001 ? 15 : 20;
    EXPECT_EQ(f["packets"].u(), want) << "flow " << id;
    EXPECT_EQ(f["max_seq"].u(), want - 1) << "flow " << id;
    EXPECT_EQ(f["reordered"].u(), 0u);
    for (const Json& slot : f["served_by"].arr) EXPECT_TRUE(slot.arr.empty());
  }
  std::set<std::uint64_t> want_ids;
  for (std::uint64_t i = 1; i <= 20; ++i) want_ids.insert(i);
  for (std::uint64_t i = 1001; i <= 1012; ++i) want_ids.insert(i);
  EXPECT_EQ(ids, want_ids);

  // Nothing was served by a VNF on this path: every slot counts every packet as unserved.
  for (const Json& slot : s["per_slot"].arr) {
    EXPECT_EQ(slot["unserved"].u(), total);
    EXPECT_TRUE(slot["instances"].obj.empty());
  }
  // The per-interval counts add up to the total, and the intervals tile the run.
  std::uint64_t sum = 0;
  double last_end = 0;
  for (const Json& iv : s["intervals"].arr) {
    sum += iv["packets"].u();
    EXPECT_NEAR(iv["t_start"].n(), last_end, 1e-6);
    last_end = iv["t_end"].n();
  }
  EXPECT_EQ(sum, total);
  EXPECT_GE(s["intervals"].arr.size(), 3u);
  EXPECT_GT(s["latency_us"]["mean"].n(), 0.0);
}

TEST_F(TrafgenSinkTest, SinkCountsServedByPerInstanceAndSlot) {
  // The sink is fed UDP datagrams whose served_by fields are already set, as VNFs on the path
  // would leave them: flow 5 is served by instance 11 at slot 0, then by 12; slot 2 by 7.
  const std::string sink_json = dir_ + "/sink.json";
  Child sink(net_->ns_b, {ANYCHAIN_SINK_BIN, "--port", "9001", "--json", sink_json, "--interval",
                          "0.3"});
  ASSERT_TRUE(wait_for_file(sink_json, 5s));
  const std::string send_py =
      "import socket,struct,time\n"
      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
      "for i in range(30):\n"
      "  inst = 11 if i < 20 else 12\n"
      "  s.sendto(struct.pack('!IIIQ4I',0x41434C42,5,i,0,inst,0,7,0),('10.77.0.2',9001))\n"
      "s.sendto(b'not lab',('10.77.0.2',9001))\n";
  std::ofstream(dir_ + "/send.py") << send_py;
  ASSERT_EQ(sh("ip netns exec " + net_->ns_a + " python3 " + dir_ + "/send.py"), 0);
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(sink.terminate(), std::optional<int>(0));
  const Json s = parse_json(slurp(sink_json));
  EXPECT_EQ(s["packets"].u(), 31u);
  EXPECT_EQ(s["non_lab"].u(), 1u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"].u(), 20u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["12"].u(), 10u);
  EXPECT_EQ(s["per_slot"][0]["unserved"].u(), 0u);
  EXPECT_EQ(s["per_slot"][2]["instances"]["7"].u(), 30u);
  EXPECT_EQ(s["per_slot"][1]["unserved"].u(), 30u);
  EXPECT_EQ(s["flows"].u(), 1u);
  EXPECT_EQ(s["flows_switched"].u(), 1u) << "flow 5 moved from instance 11 to 12";
  const Json& f = s["per_flow"][0];
  ASSERT_EQ(f["served_by"][0].arr.size(), 2u);
  EXPECT_EQ(f["served_by"][0][0].u(), 11u);
  EXPECT_EQ(f["served_by"][0][1].u(), 12u);
}

TEST_F(TrafgenSinkTest, FixedArrivalsStartExactlyRateTimesDuration) {
  // 3 flows/s for 1 s: flows at 0, 1/3 and 2/3 s, not a fourth from accumulated rounding.
  const Json g = run_trafgen({"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "3",
                              "--duration", "1", "--flow-duration", "0.1", "--flow-rate", "10"},
                             "gen3");
  EXPECT_EQ(g["flows_started"].u(), 3u);
  EXPECT_EQ(g["packets_per_flow"].u(), 1u);
  EXPECT_LT(g["elapsed_s"].n(), 1.0);
}

TEST_F(TrafgenSinkTest, TrafgenRejectsBadArguments) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "0"},
           {"--dst", "not-an-ip", "--dport", "9", "--flows-per-sec", "1"},
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "1", "--payload-size", "8"},
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "1", "--arrivals", "x"}}) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Child c(net_->ns_a, argv);
    EXPECT_EQ(c.wait_exit(5s), std::optional<int>(2)) << args.back();
  }
}

}  // namespace
}  // namespace anychain::testing
