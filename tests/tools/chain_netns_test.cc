// Integration test (root): a two-VNF chain built from plain kernel routing, no fast path.
//
//   gen --- rtr --- snk          rtr forwards by incoming interface (policy routing):
//            | \                   from gen  -> towards vnf1
//          vnf1 vnf2               from vnf1 -> towards vnf2
//                                  from vnf2 -> main table -> snk
//
// Each anychain-vnf (plain mode) sends every packet back out its interface with MACs swapped,
// so the router sees it again from that VNF. Real kernel-generated UDP (IPv4 and IPv6, with the
// partial checksums of local sockets) from anychain-trafgen crosses both VNFs and anychain-sink
// must see served_by[0] = vnf1's id and served_by[1] = vnf2's id on every packet.
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/netns.h"
#include "common/proc.h"

namespace anychain::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class ChainLab {
 public:
  ChainLab() {
    // Links: gen-rtr (1), rtr-vnf1 (2), rtr-vnf2 (3), rtr-snk (4).
    link(gen_, "gen", "10.90.1.1", "fd90:1::1", "r1", "10.90.1.2", "fd90:1::2");
    link(vnf1_, vnf1_if, "10.90.2.2", "fd90:2::2", "r2", "10.90.2.1", "fd90:2::1");
    link(vnf2_, vnf2_if, "10.90.3.2", "fd90:3::2", "r3", "10.90.3.1", "fd90:3::1");
    link(snk_, "snk", "10.90.4.2", "fd90:4::2", "r4", "10.90.4.1", "fd90:4::1");
    gen_.ip("route add default via 10.90.1.2");
    gen_.ip("-6 route add default via fd90:1::2");
    snk_.ip("route add default via 10.90.4.1");
    snk_.ip("-6 route add default via fd90:4::1");
    rtr_.exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
              "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
              "net.ipv4.conf.all.send_redirects=0");
    for (const char* fam : {"-4", "-6"}) {
      const bool v4 = fam[1] == '4';
      const std::string dst = v4 ? "10.90.4.0/24" : "fd90:4::/64";
      rtr_.ip(std::string(fam) + " rule add iif r1 lookup 101");
      rtr_.ip(std::string(fam) + " rule add iif r2 lookup 102");
      rtr_.ip(std::string(fam) + " route add " + dst + " via " + (v4 ? "10.90.2.2" : "fd90:2::2") + " table 101");
      rtr_.ip(std::string(fam) + " route add " + dst + " via " + (v4 ? "10.90.3.2" : "fd90:3::2") + " table 102");
    }
  }

  const std::string& gen() const { return gen_.name(); }
  const std::string& vnf1() const { return vnf1_.name(); }
  const std::string& vnf2() const { return vnf2_.name(); }
  const std::string& snk() const { return snk_.name(); }
  const std::string vnf1_if = "vnf1", vnf2_if = "vnf2";

 private:
  // Veth between namespace `ns` (interface a) and the router (interface b), both addressed.
  void link(const Netns& ns, const std::string& a, const std::string& a4, const std::string& a6,
            const std::string& b, const std::string& b4, const std::string& b6) {
    veth({ns.name(), a}, {rtr_.name(), b});
    ns.ip("addr add " + a4 + "/24 dev " + a);
    ns.ip("addr add " + a6 + "/64 dev " + a + " nodad");
    rtr_.ip("addr add " + b4 + "/24 dev " + b);
    rtr_.ip("addr add " + b6 + "/64 dev " + b + " nodad");
  }
  Netns gen_{"chain-gen"}, rtr_{"chain-rtr"}, vnf1_{"chain-vnf1"}, vnf2_{"chain-vnf2"}, snk_{"chain-snk"};
};

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, AF_PACKET)";
    lab_ = std::make_unique<ChainLab>();
    char tmpl[] = "/tmp/anychain-chain-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    vnf1_.reset();
    vnf2_.reset();
    sink_.reset();
    lab_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void start(const std::vector<std::string>& vnf1_extra) {
    std::vector<std::string> a1{ANYCHAIN_VNF_BIN, "--iface", lab_->vnf1_if, "--mode", "plain",
                                "--instance-id", "11", "--slot", "0", "--stats-json",
                                dir_ + "/vnf1.json"};
    a1.insert(a1.end(), vnf1_extra.begin(), vnf1_extra.end());
    vnf1_ = std::make_unique<Proc>(lab_->vnf1(), a1);
    vnf2_ = std::make_unique<Proc>(
        lab_->vnf2(), std::vector<std::string>{ANYCHAIN_VNF_BIN, "--iface", lab_->vnf2_if,
                                               "--mode", "plain", "--instance-id", "22", "--slot",
                                               "1", "--stats-json", dir_ + "/vnf2.json"});
    sink_ = std::make_unique<Proc>(
        lab_->snk(), std::vector<std::string>{ANYCHAIN_SINK_BIN, "--port", "9000", "--json",
                                              dir_ + "/sink.json", "--interval", "0.5"});
    ASSERT_TRUE(wait_for_file(dir_ + "/vnf1.json", 5s));
    ASSERT_TRUE(wait_for_file(dir_ + "/vnf2.json", 5s));
    ASSERT_TRUE(wait_for_file(dir_ + "/sink.json", 5s));
  }
  json trafgen(const std::vector<std::string>& args, const std::string& name) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN, "--json", dir_ + "/" + name + ".json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc g(lab_->gen(), argv);
    EXPECT_EQ(g.wait(20s), std::optional<int>(0));
    return json::parse(read_file(dir_ + "/" + name + ".json"));
  }
  // Stops everything; returns {vnf1, vnf2, sink} final JSON.
  std::array<json, 3> stop() {
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(vnf1_->stop(), 0);
    EXPECT_EQ(vnf2_->stop(), 0);
    EXPECT_EQ(sink_->stop(), 0);
    return {json::parse(read_file(dir_ + "/vnf1.json")), json::parse(read_file(dir_ + "/vnf2.json")),
            json::parse(read_file(dir_ + "/sink.json"))};
  }

  std::unique_ptr<ChainLab> lab_;
  std::unique_ptr<Proc> vnf1_, vnf2_, sink_;
  std::string dir_;
};

TEST_F(ChainTest, EveryPacketIsServedByBothVnfsInOrder) {
  start({});
  json g4 = trafgen({"--dst", "10.90.4.2", "--dport", "9000", "--flows-per-sec", "10",
                     "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1"},
                    "gen4");
  json g6 = trafgen({"--dst", "fd90:4::2", "--dport", "9000", "--flows-per-sec", "10",
                     "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1",
                     "--flow-id-base", "1001"},
                    "gen6");
  const std::uint64_t sent = g4["packets_sent"].get<std::uint64_t>() + g6["packets_sent"].get<std::uint64_t>();
  EXPECT_EQ(sent, 400u);
  auto [v1, v2, s] = stop();
  EXPECT_EQ(s["packets"], sent) << "no loss through the chain";
  EXPECT_EQ(s["flows"], 20u);
  EXPECT_EQ(s["flows_switched"], 0u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"], sent);
  EXPECT_EQ(s["per_slot"][1]["instances"]["22"], sent);
  EXPECT_EQ(s["per_slot"][0]["unserved"], 0u);
  EXPECT_EQ(s["per_slot"][2]["unserved"], sent);
  EXPECT_EQ(v1["served"], sent);
  EXPECT_EQ(v2["served"], sent);
  EXPECT_EQ(v1["dropped_malformed"], 0u);
  EXPECT_EQ(v2["dropped_capacity"], 0u);
}

TEST_F(ChainTest, OverloadedVnfDropsWhatExceedsItsCapacity) {
  // vnf1 can serve 100 packets/s; 300 packets/s are offered for 1 s.
  start({"--capacity", "100", "--burst", "10"});
  json g = trafgen({"--dst", "10.90.4.2", "--dport", "9000", "--flows-per-sec", "10",
                    "--flow-duration", "1", "--flow-rate", "30", "--duration", "1"},
                   "gen");
  EXPECT_EQ(g["packets_sent"], 300u);
  const double secs = g["elapsed_s"].get<double>();
  auto [v1, v2, s] = stop();
  const std::uint64_t got = s["packets"].get<std::uint64_t>();
  EXPECT_EQ(got, v1["tx"].get<std::uint64_t>()) << "what vnf1 passes reaches the sink";
  EXPECT_EQ(v1["tx"].get<std::uint64_t>() + v1["dropped_capacity"].get<std::uint64_t>(), 300u);
  EXPECT_LE(static_cast<double>(got), 10 + 100 * secs + 1);
  EXPECT_GE(static_cast<double>(got), 0.6 * (10 + 100 * (secs - 1.0 / 30)));
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"], got);
  EXPECT_EQ(s["per_slot"][1]["instances"]["22"], got);
}

}  // namespace
}  // namespace anychain::test
