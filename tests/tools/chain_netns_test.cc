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
#include <thread>

#include "json_reader.h"
#include "netns.h"

namespace anychain::testing {
namespace {

using namespace std::chrono_literals;

class ChainLab {
 public:
  ChainLab() {
    const std::string id = std::to_string(::getpid() % 100000);
    for (const char* role : {"gen", "rtr", "vn1", "vn2", "snk"}) {
      ns_.push_back(std::string("acc-") + role + "-" + id);
    }
    for (const auto& ns : ns_) {
      sh("ip netns del " + ns + " 2>/dev/null");
      must("ip netns add " + ns);
      must("ip -n " + ns + " link set lo up");
    }
    // Links: gen-rtr (1), rtr-vnf1 (2), rtr-vnf2 (3), rtr-snk (4).
    link(gen(), "g" + id, "10.90.1.1", "fd90:1::1", "r1" + id, "10.90.1.2", "fd90:1::2");
    link(vnf1(), "v1" + id, "10.90.2.2", "fd90:2::2", "r2" + id, "10.90.2.1", "fd90:2::1");
    link(vnf2(), "v2" + id, "10.90.3.2", "fd90:3::2", "r3" + id, "10.90.3.1", "fd90:3::1");
    link(snk(), "s" + id, "10.90.4.2", "fd90:4::2", "r4" + id, "10.90.4.1", "fd90:4::1");
    vnf1_if = "v1" + id;
    vnf2_if = "v2" + id;
    must("ip -n " + gen() + " route add default via 10.90.1.2");
    must("ip -n " + gen() + " -6 route add default via fd90:1::2");
    must("ip -n " + snk() + " route add default via 10.90.4.1");
    must("ip -n " + snk() + " -6 route add default via fd90:4::1");
    const std::string r = "ip netns exec " + rtr() + " sysctl -qw ";
    must(r + "net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
             "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
             "net.ipv4.conf.all.send_redirects=0");
    for (const char* fam : {"-4", "-6"}) {
      const bool v4 = fam[1] == '4';
      const std::string dst = v4 ? "10.90.4.0/24" : "fd90:4::/64";
      must("ip -n " + rtr() + " " + fam + " rule add iif r1" + id + " lookup 101");
      must("ip -n " + rtr() + " " + fam + " rule add iif r2" + id + " lookup 102");
      must("ip -n " + rtr() + " " + fam + " route add " + dst + " via " +
           (v4 ? "10.90.2.2" : "fd90:2::2") + " table 101");
      must("ip -n " + rtr() + " " + fam + " route add " + dst + " via " +
           (v4 ? "10.90.3.2" : "fd90:3::2") + " table 102");
    }
  }
  ~ChainLab() {
    for (const auto& ns : ns_) sh("ip netns del " + ns + " 2>/dev/null");
  }
  ChainLab(const ChainLab&) = delete;
  ChainLab& operator=(const ChainLab&) = delete;

  const std::string& gen() const { return ns_[0]; }
  const std::string& rtr() const { return ns_[1]; }
  const std::string& vnf1() const { return ns_[2]; }
  const std::string& vnf2() const { return ns_[3]; }
  const std::string& snk() const { return ns_[4]; }
  std::string vnf1_if, vnf2_if;

 private:
  // Veth between namespace `ns` (interface a) and the router (interface b), both addressed.
  void link(const std::string& ns, const std::string& a, const std::string& a4,
            const std::string& a6, const std::string& b, const std::string& b4,
            const std::string& b6) {
    must("ip link add " + a + " netns " + ns + " type veth peer name " + b + " netns " + rtr());
    must("ip -n " + ns + " addr add " + a4 + "/24 dev " + a);
    must("ip -n " + ns + " addr add " + a6 + "/64 dev " + a + " nodad");
    must("ip -n " + rtr() + " addr add " + b4 + "/24 dev " + b);
    must("ip -n " + rtr() + " addr add " + b6 + "/64 dev " + b + " nodad");
    must("ip -n " + ns + " link set " + a + " up");
    must("ip -n " + rtr() + " link set " + b + " up");
  }
  std::vector<std::string> ns_;
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
    vnf1_ = std::make_unique<Child>(lab_->vnf1(), a1);
    vnf2_ = std::make_unique<Child>(
        lab_->vnf2(), std::vector<std::string>{ANYCHAIN_VNF_BIN, "--iface", lab_->vnf2_if,
                                               "--mode", "plain", "--instance-id", "22", "--slot",
                                               "1", "--stats-json", dir_ + "/vnf2.json"});
    sink_ = std::make_unique<Child>(
        lab_->snk(), std::vector<std::string>{ANYCHAIN_SINK_BIN, "--port", "9000", "--json",
                                              dir_ + "/sink.json", "--interval", "0.5"});
    ASSERT_TRUE(wait_for_file(dir_ + "/vnf1.json", 5s));
    ASSERT_TRUE(wait_for_file(dir_ + "/vnf2.json", 5s));
    ASSERT_TRUE(wait_for_file(dir_ + "/sink.json", 5s));
  }
  Json trafgen(const std::vector<std::string>& args, const std::string& name) {
    std::vector<std::string> argv{ANYCHAIN_TRAFGEN_BIN, "--json", dir_ + "/" + name + ".json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Child g(lab_->gen(), argv);
    EXPECT_EQ(g.wait_exit(20s), std::optional<int>(0));
    return parse_json(slurp(dir_ + "/" + name + ".json"));
  }
  // Stops everything; returns {vnf1, vnf2, sink} final JSON.
  std::array<Json, 3> stop() {
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(vnf1_->terminate(), std::optional<int>(0));
    EXPECT_EQ(vnf2_->terminate(), std::optional<int>(0));
    EXPECT_EQ(sink_->terminate(), std::optional<int>(0));
    return {parse_json(slurp(dir_ + "/vnf1.json")), parse_json(slurp(dir_ + "/vnf2.json")),
            parse_json(slurp(dir_ + "/sink.json"))};
  }

  std::unique_ptr<ChainLab> lab_;
  std::unique_ptr<Child> vnf1_, vnf2_, sink_;
  std::string dir_;
};

TEST_F(ChainTest, EveryPacketIsServedByBothVnfsInOrder) {
  start({});
  const Json g4 = trafgen({"--dst", "10.90.4.2", "--dport", "9000", "--flows-per-sec", "10",
                           "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1"},
                          "gen4");
  const Json g6 = trafgen({"--dst", "fd90:4::2", "--dport", "9000", "--flows-per-sec", "10",
                           "--flow-duration", "0.5", "--flow-rate", "40", "--duration", "1",
                           "--flow-id-base", "1001"},
                          "gen6");
  const std::uint64_t sent = g4["packets_sent"].u() + g6["packets_sent"].u();
  EXPECT_EQ(sent, 400u);
  auto [v1, v2, s] = stop();
  EXPECT_EQ(s["packets"].u(), sent) << "no loss through the chain";
  EXPECT_EQ(s["flows"].u(), 20u);
  EXPECT_EQ(s["flows_switched"].u(), 0u);
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"].u(), sent);
  EXPECT_EQ(s["per_slot"][1]["instances"]["22"].u(), sent);
  EXPECT_EQ(s["per_slot"][0]["unserved"].u(), 0u);
  EXPECT_EQ(s["per_slot"][2]["unserved"].u(), sent);
  EXPECT_EQ(v1["served"].u(), sent);
  EXPECT_EQ(v2["served"].u(), sent);
  EXPECT_EQ(v1["dropped_malformed"].u(), 0u);
  EXPECT_EQ(v2["dropped_capacity"].u(), 0u);
}

TEST_F(ChainTest, OverloadedVnfDropsWhatExceedsItsCapacity) {
  // vnf1 can serve 100 packets/s; 300 packets/s are offered for 1 s.
  start({"--capacity", "100", "--burst", "10"});
  const Json g = trafgen({"--dst", "10.90.4.2", "--dport", "9000", "--flows-per-sec", "10",
                          "--flow-duration", "1", "--flow-rate", "30", "--duration", "1"},
                         "gen");
  EXPECT_EQ(g["packets_sent"].u(), 300u);
  const double secs = g["elapsed_s"].n();
  auto [v1, v2, s] = stop();
  const std::uint64_t got = s["packets"].u();
  EXPECT_EQ(got, v1["tx"].u()) << "what vnf1 passes reaches the sink";
  EXPECT_EQ(v1["tx"].u() + v1["dropped_capacity"].u(), 300u);
  EXPECT_LE(static_cast<double>(got), 10 + 100 * secs + 1);
  EXPECT_GE(static_cast<double>(got), 0.6 * (10 + 100 * (secs - 1.0 / 30)));
  EXPECT_EQ(s["per_slot"][0]["instances"]["11"].u(), got);
  EXPECT_EQ(s["per_slot"][1]["instances"]["22"].u(), got);
}

}  // namespace
}  // namespace anychain::testing
