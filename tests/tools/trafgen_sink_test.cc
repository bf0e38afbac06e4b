// Integration test (root): anychain-trafgen in namespace A sends UDP flows (IPv4 and IPv6) over
// a veth pair to anychain-sink in namespace B; every flow and packet must be accounted for.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/netns.h"
#include "common/proc.h"

namespace anychain::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class TrafgenSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    net_ = std::make_unique<VethPair>("gen", true);
    net_->ns_a.ip("addr add 10.77.0.1/24 dev " + net_->if_a);
    net_->ns_b.ip("addr add 10.77.0.2/24 dev " + net_->if_b);
    net_->ns_a.ip("addr add fd77::1/64 dev " + net_->if_a + " nodad");
    net_->ns_b.ip("addr add fd77::2/64 dev " + net_->if_b + " nodad");
    char tmpl[] = "/tmp/anychain-gen-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    net_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  json run_trafgen(const std::vector<std::string>& args, const std::string& name) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN, "--json", dir_ + "/" + name + ".json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc gen(a(), argv, stdout_to(dir_ + "/" + name + ".out"));
    EXPECT_EQ(gen.wait(20s), std::optional<int>(0)) << "trafgen stops by itself";
    json file = json::parse(read_file(dir_ + "/" + name + ".json"));
    // The summary on stdout and in the file agree.
    EXPECT_EQ(json::parse(read_file(dir_ + "/" + name + ".out"))["packets_sent"], file["packets_sent"]);
    return file;
  }
  const std::string& a() const { return net_->ns_a.name(); }
  const std::string& b() const { return net_->ns_b.name(); }

  std::unique_ptr<VethPair> net_;
  std::string dir_;
};

TEST_F(TrafgenSinkTest, EveryFlowAndPacketArrives) {
  const std::string sink_json = dir_ + "/sink.json";
  Proc sink(b(), {ANYCHAIN_SINK_BIN, "--port", "9000", "--json", sink_json, "--interval", "0.5"},
            stdout_to(dir_ + "/sink.out"));
  ASSERT_TRUE(wait_for_file(sink_json, 5s));

  // IPv4: 20 flows/s for 1 s, each 0.5 s at 40 pps -> 20 flows x 20 packets.
  json g4 = run_trafgen({"--dst", "10.77.0.2", "--dport", "9000", "--flows-per-sec", "20",
                         "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1",
                         "--payload-size", "100"},
                        "gen4");
  EXPECT_EQ(g4["flows_started"], 20u);
  EXPECT_EQ(g4["flows_completed"], 20u);
  EXPECT_EQ(g4["packets_per_flow"], 20u);
  EXPECT_EQ(g4["packets_sent"], 400u);
  EXPECT_EQ(g4["bytes_sent"], 400u * 100);
  EXPECT_EQ(g4["send_errors"], 0u);
  EXPECT_LT(g4["elapsed_s"].get<double>(), 1.0 + 0.5 + 0.5);

  // The periodic rewrite (every 0.5 s) already has them, without the per-flow list.
  std::this_thread::sleep_for(700ms);
  json mid = json::parse(read_file(sink_json));
  EXPECT_FALSE(mid["final"].get<bool>());
  EXPECT_FALSE(mid.contains("per_flow"));
  EXPECT_EQ(mid["packets"], 400u);
  EXPECT_EQ(mid["flows"], 20u);
  EXPECT_GE(mid["intervals"].size(), 2u);

  // IPv6: Poisson arrivals, capped at 12 flows, flow ids from 1001.
  json g6 = run_trafgen({"--dst", "fd77::2", "--dport", "9000", "--flows-per-sec", "30",
                         "--flow-duration", "0.3", "--flow-rate", "50", "--duration", "5",
                         "--arrivals", "poisson", "--seed", "3", "--max-flows", "12",
                         "--flow-id-base", "1001"},
                        "gen6");
  EXPECT_EQ(g6["flows_started"], 12u);
  EXPECT_EQ(g6["packets_per_flow"], 15u);
  EXPECT_EQ(g6["packets_sent"], 12u * 15);
  EXPECT_EQ(g6["send_errors"], 0u);

  std::this_thread::sleep_for(200ms);  // let the last packets land
  ASSERT_EQ(sink.stop(), 0);
  json s = json::parse(read_file(sink_json));
  EXPECT_TRUE(s["final"].get<bool>());
  const std::uint64_t total = g4["packets_sent"].get<std::uint64_t>() + g6["packets_sent"].get<std::uint64_t>();
  EXPECT_EQ(s["packets"], total);
  EXPECT_EQ(s["non_lab"], 0u);
  EXPECT_EQ(s["flows"], 32u);
  EXPECT_EQ(s["flows_switched"], 0u);

  std::set<std::uint64_t> ids;
  for (json f : s["per_flow"]) {
    const std::uint64_t id = f["flow_id"].get<std::uint64_t>();
    ids.insert(id);
    const std::uint64_t want = id >= 1001 ? 15 : 20;
    EXPECT_EQ(f["packets"], want) << "flow " << id;
    EXPECT_EQ(f["max_seq"], want - 1) << "flow " << id;
    EXPECT_EQ(f["reordered"], 0u);
    for (json slot : f["served_by"]) EXPECT_TRUE(slot.empty());
    // each flow is one socket: one source, the sender's address and an ephemeral port
    ASSERT_EQ(f["sources"].size(), 1u) << f.dump();
    const std::string src = f["sources"].begin().key();
    EXPECT_TRUE(src.starts_with(id >= 1001 ? "[fd77::1]:" : "10.77.0.1:")) << src;
    EXPECT_EQ(f["sources"].begin().value(), want) << src;
  }
  std::set<std::uint64_t> want_ids;
  for (std::uint64_t i = 1; i <= 20; ++i) want_ids.insert(i);
  for (std::uint64_t i = 1001; i <= 1012; ++i) want_ids.insert(i);
  EXPECT_EQ(ids, want_ids);

  // Nothing was served by a VNF on this path: every slot counts every packet as unserved.
  for (json slot : s["per_slot"]) {
    EXPECT_EQ(slot["unserved"], total);
    EXPECT_TRUE(slot["instances"].empty());
  }
  // The per-interval counts add up to the total, and the intervals tile the run.
  std::uint64_t sum = 0;
  double last_end = 0;
  for (json iv : s["intervals"]) {
    sum += iv["packets"].get<std::uint64_t>();
    EXPECT_NEAR(iv["t_start"].get<double>(), last_end, 1e-6);
    last_end = iv["t_end"].get<double>();
  }
  EXPECT_EQ(sum, total);
  EXPECT_GE(s["intervals"].size(), 3u);
  EXPECT_GT(s["latency_us"]["mean"].get<double>(), 0.0);
}

TEST_F(TrafgenSinkTest, SinkCountsServedByPerInstanceAndSlot) {
  // The sink is fed UDP datagrams whose served_by fields are already set, as VNFs on the path
  // would leave them: flow 5 is served by instance 11 at slot 0, then by 12; slot 2 by 7.
  const std::string sink_json = dir_ + "/sink.json";
  Proc sink(b(), {ANYCHAIN_SINK_BIN, "--port", "9001", "--json", sink_json, "--interval", "0.3"});
  ASSERT_TRUE(wait_for_file(sink_json, 5s));
  const std::string send_py =
      "import socket,struct,time\n"
      "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
      "for i in range(30):\n"
      "  inst = 11 if i < 20 else 12\n"
      "  s.sendto(struct.pack('!IIIQ4I',0x41434C42,5,i,0,inst,0,7,0),('10.77.0.2',9001))\n"
      "s.sendto(b'not lab',('10.77.0.2',9001))\n";
  std::ofstream(dir_ + "/send.py") << send_py;
  ASSERT_EQ(sh("ip netns exec " + a() + " python3 " + dir_ + "/send.py"), 0);
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(sink.stop(), 0);
  json s = json::parse(read_file(sink_json));
  EXPECT_EQ(s["packets"], 31u);
  EXPECT_EQ(s["non_lab"], 1u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"], 20u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["12"], 10u);
  EXPECT_EQ(s["per_slot"][0]["unserved"], 0u);
  EXPECT_EQ(s["per_slot"][2]["instances"]["7"], 30u);
  EXPECT_EQ(s["per_slot"][1]["unserved"], 30u);
  EXPECT_EQ(s["flows"], 1u);
  EXPECT_EQ(s["flows_switched"], 1u) << "flow 5 moved from instance 11 to 12";
  json f = s["per_flow"][0];
  ASSERT_EQ(f["served_by"][0].size(), 2u);
  EXPECT_EQ(f["served_by"][0][0], 11u);
  EXPECT_EQ(f["served_by"][0][1], 12u);
}

TEST_F(TrafgenSinkTest, FixedArrivalsStartExactlyRateTimesDuration) {
  // 3 flows/s for 1 s: flows at 0, 1/3 and 2/3 s, not a fourth from accumulated rounding.
  json g = run_trafgen({"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "3",
                        "--duration", "1", "--flow-duration", "0.1", "--flow-rate", "10"},
                       "gen3");
  EXPECT_EQ(g["flows_started"], 3u);
  EXPECT_EQ(g["packets_per_flow"], 1u);
  EXPECT_LT(g["elapsed_s"].get<double>(), 1.0);
}

TEST_F(TrafgenSinkTest, TrafgenRejectsBadArguments) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "0"},
           {"--dst", "not-an-ip", "--dport", "9", "--flows-per-sec", "1"},
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "1", "--payload-size", "8"},
           {"--dst", "10.77.0.2", "--dport", "9", "--flows-per-sec", "1", "--arrivals", "x"}}) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc c(a(), argv);
    EXPECT_EQ(c.wait(5s), std::optional<int>(2)) << args.back();
  }
}

}  // namespace
}  // namespace anychain::test
