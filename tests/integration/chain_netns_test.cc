// Three NFV nodes in network namespaces joined by veths, anychain attached in native XDP mode on
// every node interface, a chain of two services: an NSH-aware VNF (anychain-vnf --mode nsh) on
// node B and an NSH-unaware VNF (anychain-vnf --mode plain) behind the SFC proxy on node C.
// UDP flows (IPv4 and IPv6) from a source namespace behind A reach the sink behind C; the NSH
// is captured at every hop: tcpdump on the wire between nodes (each inter-node link runs through
// a bridge in a "wire" namespace, a tap switch: XDP redirects bypass tcpdump on the nodes
// themselves), tcpdump at each VNF, and the sink records which instance served each packet at
// each chain position.
//
//   src --- A ==[wab]== B ==[wbc]== C --- sink
//                       |           |
//                     vnf1        vnf2
//                   (NSH-aware)  (plain, proxied)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "common/netns.h"
#include "common/proc.h"
#include "dataplane/dataplane.h"

namespace anychain::test {
namespace {

namespace dp = anychain::dataplane;
using json = nlohmann::json;

const std::string kWork = "/tmp/anychain-chain-test-" + std::to_string(getpid());

// The test's namespaces (act-<pid>-chain-<node>), by node name.
std::map<std::string, Netns> nets;
const std::string& ns(const std::string& n) { return nets.at(n).name(); }
void in(const std::string& n, const std::string& cmd) { nets.at(n).exec(cmd); }

dp::Mac mac_of(const std::string& node, const std::string& ifname) { return if_mac(ns(node), ifname); }

in_addr ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a;
}

template <class R>
void ok(const R& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().str());
}

constexpr uint32_t kSpi = 10;
constexpr uint32_t kFw = 1, kIds = 2;          // services
constexpr uint32_t kFwInst = 11, kIdsInst = 22;  // instances: fw on B (NSH-aware), ids on C (proxied)

class ChainNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (auto e = enter_sandbox(); !e.empty()) throw std::runtime_error(e);
    std::filesystem::create_directories(kWork);
    for (auto n : {"src", "A", "B", "C", "sink", "vnf1", "vnf2", "wab", "wbc"})
      nets.emplace(n, Netns(std::string("chain-") + n));
    auto link = [](const std::string& a, const std::string& an, const std::string& b, const std::string& bn) {
      veth({ns(a), an}, {ns(b), bn});
    };
    link("src", "src-a", "A", "a-src");
    link("A", "a-b", "wab", "w-a");
    link("wab", "w-b", "B", "b-a");
    link("B", "b-c", "wbc", "w-b");
    link("wbc", "w-c", "C", "c-b");
    for (auto [w, x, y] : {std::tuple{"wab", "w-a", "w-b"}, {"wbc", "w-b", "w-c"}}) {
      in(w, "ip link add br0 type bridge");
      in(w, std::string("ip link set ") + x + " master br0");
      in(w, std::string("ip link set ") + y + " master br0");
      in(w, "ip link set br0 up");
    }
    link("C", "c-sink", "sink", "sink-c");
    link("B", "b-vnf", "vnf1", "vnf1");
    link("C", "c-vnf", "vnf2", "vnf2");
    for (auto n : {"A", "B", "C"})
      in(n, "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 "
            "net.ipv4.conf.all.accept_local=1");
    in("src", "ip addr add 172.16.1.2/24 dev src-a");
    in("src", "ip -6 addr add 2001:db8:1::2/64 dev src-a nodad");
    in("src", "ip route add default via 172.16.1.1");
    in("src", "ip -6 route add default via 2001:db8:1::1");
    in("A", "ip addr add 172.16.1.1/24 dev a-src");
    in("A", "ip -6 addr add 2001:db8:1::1/64 dev a-src nodad");
    in("A", "ip addr add 10.255.0.1/32 dev lo");
    in("A", "ip addr add 10.1.0.1/30 dev a-b");
    in("A", "ip route add 10.255.0.2/32 via 10.1.0.2");
    in("A", "ip route add 10.255.0.3/32 via 10.1.0.2");
    in("B", "ip addr add 10.255.0.2/32 dev lo");
    in("B", "ip addr add 10.1.0.2/30 dev b-a");
    in("B", "ip addr add 10.1.0.5/30 dev b-c");
    in("B", "ip route add 10.255.0.1/32 via 10.1.0.1");
    in("B", "ip route add 10.255.0.3/32 via 10.1.0.6");
    in("C", "ip addr add 10.255.0.3/32 dev lo");
    in("C", "ip addr add 10.1.0.6/30 dev c-b");
    in("C", "ip route add 10.255.0.1/32 via 10.1.0.5");
    in("C", "ip route add 10.255.0.2/32 via 10.1.0.5");
    in("C", "ip route add 172.16.1.0/24 via 10.1.0.5");
    in("C", "ip addr add 172.16.2.1/24 dev c-sink");
    in("C", "ip -6 addr add 2001:db8:2::1/64 dev c-sink nodad");
    in("sink", "ip addr add 172.16.2.2/24 dev sink-c");
    in("sink", "ip -6 addr add 2001:db8:2::2/64 dev sink-c nodad");
    in("sink", "ip route add default via 172.16.2.1");
    in("sink", "ip -6 route add default via 2001:db8:2::1");
    // XDP_REDIRECT into a veth needs NAPI on its far end: an XDP program there, or GRO on
    // (kernel >= 5.13), which is what we use
    for (auto [n, i] : {std::pair{"vnf1", "vnf1"}, {"vnf2", "vnf2"}, {"sink", "sink-c"}, {"wab", "w-a"},
                        {"wab", "w-b"}, {"wbc", "w-b"}, {"wbc", "w-c"}})
      in(n, std::string("ethtool -K ") + i + " gro on");

    program("A", "10.255.0.1", {"a-src", "a-b"});
    program("B", "10.255.0.2", {"b-a", "b-c", "b-vnf"});
    program("C", "10.255.0.3", {"c-b", "c-vnf", "c-sink"});
  }

  static void program(const std::string& node, const char* endpoint, const std::vector<std::string>& ifs) {
    InNetns g(ns(node));
    dp::Options o;
    o.pin_root = "/sys/fs/bpf/" + node + "/anychain";
    auto d = dp::Dataplane::open(o);
    ok(d, "open dataplane on " + node);
    dp::Config cfg;
    cfg.local_endpoint = ip4(endpoint);
    ok(d->set_config(cfg), "config");
    dp::Instance fw{.id = kFwInst, .local = node == "B", .nsh_aware = true};
    dp::Instance ids{.id = kIdsInst, .local = node == "C", .nsh_aware = false};
    if (node == "B") {
      fw.ifindex = if_nametoindex("b-vnf");
      fw.mac = mac_of("vnf1", "vnf1");
      fw.if_mac = mac_of("B", "b-vnf");
      ok(d->set_interface(fw.ifindex, AC_IF_VNF, kFwInst, fw.if_mac), "iface b-vnf");
    } else {
      fw.endpoint = ip4("10.255.0.2");
    }
    if (node == "C") {
      ids.ifindex = if_nametoindex("c-vnf");
      ids.mac = mac_of("vnf2", "vnf2");
      ids.if_mac = mac_of("C", "c-vnf");
      ok(d->set_interface(ids.ifindex, AC_IF_VNF, kIdsInst, ids.if_mac), "iface c-vnf");
    } else {
      ids.endpoint = ip4("10.255.0.3");
    }
    ok(d->set_instance(fw), "instance fw");
    ok(d->set_instance(ids), "instance ids");
    ok(d->set_wcmp_table(kFw, std::vector<uint32_t>(AC_WCMP_BUCKETS, kFwInst)), "table fw");
    ok(d->set_wcmp_table(kIds, std::vector<uint32_t>(AC_WCMP_BUCKETS, kIdsInst)), "table ids");
    ok(d->set_path(kSpi, 255, kFw, false), "path 255");
    ok(d->set_path(kSpi, 254, kIds, false), "path 254");
    ok(d->set_path(kSpi, 253, 0, true), "path 253");
    if (node == "A") {
      std::vector<dp::PolicyRule> rules(2);
      rules[0].dst = *dp::parse_prefix("172.16.2.0/24");
      rules[0].proto = IPPROTO_UDP;
      rules[0].spi = kSpi;
      rules[1].dst = *dp::parse_prefix("2001:db8:2::/64");
      rules[1].src = *dp::parse_prefix("any6");
      rules[1].proto = IPPROTO_UDP;
      rules[1].spi = kSpi;
      ok(d->set_policies(rules), "policies");
      ok(d->set_interface(if_nametoindex("a-src"), AC_IF_CLASSIFY, 0, mac_of("A", "a-src")), "iface a-src");
    }
    for (const auto& i : ifs) {
      auto a = d->attach(i, dp::XdpMode::Native);
      ok(a, "attach " + i + " on " + node);
      if (a->mode != dp::XdpMode::Native) throw std::runtime_error(i + " not in native mode");
    }
    nodes_[node] = std::make_unique<dp::Dataplane>(std::move(*d));
  }

  static void TearDownTestSuite() {
    for (auto& [node, d] : nodes_) {
      InNetns g(ns(node));
      for (const auto& i : {"a-src", "a-b", "b-a", "b-c", "b-vnf", "c-b", "c-vnf", "c-sink"})
        if (if_nametoindex(i)) (void)dp::Dataplane::detach(i);
    }
    nodes_.clear();
    nets.clear();
    if (!getenv("ANYCHAIN_KEEP")) std::filesystem::remove_all(kWork);
  }

  static uint64_t counter(const std::string& node, uint32_t reason) {
    auto s = nodes_.at(node)->stats();
    return s ? (*s)[reason].packets : 0;
  }

  static inline std::map<std::string, std::unique_ptr<dp::Dataplane>> nodes_;
};

// tshark fields of every packet in a capture, one line per packet
std::vector<std::string> decode(const std::string& pcap, const std::string& fields) {
  std::string out = sh_out("tshark -r " + pcap + " -T fields -E separator=, -E occurrence=f " + fields +
                           " 2>/dev/null");
  std::vector<std::string> lines;
  size_t s = 0, e;
  while ((e = out.find('\n', s)) != std::string::npos) {
    lines.push_back(out.substr(s, e - s));
    s = e + 1;
  }
  return lines;
}

void run_flows(const std::string& dst, const std::string& tag, int flows, int per_flow, json& sink_out,
               json& vnf1_stats, json& vnf2_stats, std::map<std::string, std::vector<std::string>>& caps) {
  const std::string w = kWork + "/" + tag;
  std::filesystem::create_directories(w);
  Proc sink(ns("sink"), {ANYCHAIN_SINK, "--port", "9000", "--json", w + "/sink.json"}, w + "/sink.log");
  Proc vnf1(ns("vnf1"), {ANYCHAIN_VNF, "--iface", "vnf1", "--mode", "nsh", "--instance-id", std::to_string(kFwInst),
                         "--slot", "0", "--stats-json", w + "/vnf1.json", "--stats-interval", "1"},
            w + "/vnf1.log");
  Proc vnf2(ns("vnf2"), {ANYCHAIN_VNF, "--iface", "vnf2", "--mode", "plain", "--instance-id",
                         std::to_string(kIdsInst), "--slot", "1", "--stats-json", w + "/vnf2.json",
                         "--stats-interval", "1"},
            w + "/vnf2.log");
  Proc dumpB(ns("wab"), {"tcpdump", "-i", "br0", "-U", "-w", w + "/a-b.pcap", "udp", "port", "4790"}, w + "/dumpB.log");
  Proc dumpC(ns("wbc"), {"tcpdump", "-i", "br0", "-U", "-w", w + "/b-c.pcap", "udp", "port", "4790"}, w + "/dumpC.log");
  Proc tcpV1(ns("vnf1"), {"tcpdump", "-i", "vnf1", "-U", "-w", w + "/vnf1.pcap", "ether", "proto", "0x894f"},
             w + "/tcpV1.log");
  Proc tcpV2(ns("vnf2"), {"tcpdump", "-i", "vnf2", "-U", "-w", w + "/vnf2.pcap", "udp", "port", "9000"},
             w + "/tcpV2.log");
  // start traffic only once every VNF has written its first stats (its socket is bound) and every
  // capture says it is listening: a fixed sleep is not enough on a loaded machine
  auto ready = [&] {
    for (const char* f : {"/vnf1.json", "/vnf2.json", "/sink.json"})
      if (!std::filesystem::exists(w + f)) return false;
    for (const char* f : {"/dumpB.log", "/dumpC.log", "/tcpV1.log", "/tcpV2.log"})
      if (read_file(w + f).find("listening on") == std::string::npos) return false;
    return true;
  };
  for (int i = 0; i < 200 && !ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(ready()) << "VNFs or captures did not start within 10 s";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Proc gen(ns("src"), {ANYCHAIN_TRAFGEN, "--dst", dst, "--dport", "9000", "--flows-per-sec", "20", "--flow-duration",
                       "0.5", "--flow-rate", std::to_string(per_flow * 2), "--duration",
                       std::to_string(flows / 20.0), "--max-flows", std::to_string(flows), "--json",
                       w + "/gen.json"},
           w + "/gen.log");
  ASSERT_EQ(gen.wait(std::chrono::seconds(30)), 0) << read_file(w + "/gen.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  for (Proc* p : {&dumpB, &dumpC, &tcpV1, &tcpV2, &vnf1, &vnf2, &sink}) p->stop();
  sink_out = json::parse(read_file(w + "/sink.json"));
  vnf1_stats = json::parse(read_file(w + "/vnf1.json"));
  vnf2_stats = json::parse(read_file(w + "/vnf2.json"));
  json g = json::parse(read_file(w + "/gen.json"));
  EXPECT_EQ(g["packets_sent"].get<uint64_t>(), static_cast<uint64_t>(flows * per_flow)) << g.dump();
  caps["B"] = decode(w + "/a-b.pcap", "-e ip.src -e ip.dst -e udp.dstport -e vxlan.next_proto -e nsh.spi -e nsh.si");
  caps["C"] = decode(w + "/b-c.pcap", "-e ip.src -e ip.dst -e udp.dstport -e vxlan.next_proto -e nsh.spi -e nsh.si");
  caps["vnf1"] = decode(w + "/vnf1.pcap", "-e eth.type -e nsh.spi -e nsh.si -e nsh.mdtype");
  caps["vnf2"] = decode(w + "/vnf2.pcap", "-e eth.type -e nsh.spi -e udp.dstport");
}

void check_chain(const std::string& dst, const std::string& tag, const std::string& inner_src,
                 std::map<std::string, std::unique_ptr<dp::Dataplane>>& nodes) {
  (void)nodes;
  constexpr int kFlows = 10, kPerFlow = 20;
  json sink, v1, v2;
  std::map<std::string, std::vector<std::string>> caps;
  run_flows(dst, tag, kFlows, kPerFlow, sink, v1, v2, caps);
  const uint64_t total = kFlows * kPerFlow;
  // every packet reached the sink, served by the NSH-aware VNF at slot 0 and the proxied at slot 1
  EXPECT_EQ(sink["packets"].get<uint64_t>(), total) << sink.dump();
  EXPECT_EQ(sink["per_slot"][0]["instances"][std::to_string(kFwInst)].get<uint64_t>(), total);
  EXPECT_EQ(sink["per_slot"][1]["instances"][std::to_string(kIdsInst)].get<uint64_t>(), total);
  EXPECT_EQ(sink["flows"].get<uint64_t>(), static_cast<uint64_t>(kFlows));
  EXPECT_EQ(sink["flows_switched"].get<uint64_t>(), 0u);
  EXPECT_EQ(v1["served"].get<uint64_t>(), total);
  EXPECT_EQ(v2["served"].get<uint64_t>(), total);
  // what crossed each hop
  ASSERT_FALSE(caps["B"].empty()) << "nothing captured on the wire A-B";
  ASSERT_FALSE(caps["C"].empty()) << "nothing captured on the wire B-C";
  size_t b_gpe = 0, c_gpe = 0;
  for (const auto& l : caps["B"]) b_gpe += l == "10.255.0.1,10.255.0.2,4790,4,10,255";
  for (const auto& l : caps["C"]) c_gpe += l == "10.255.0.2,10.255.0.3,4790,4,10,254";
  EXPECT_EQ(b_gpe, total) << "A->B: VXLAN-GPE with NSH SPI 10 SI 255; first: " << caps["B"][0];
  EXPECT_EQ(c_gpe, total) << "B->C: VXLAN-GPE with NSH SPI 10 SI 254; first: " << caps["C"][0];
  size_t v1_nsh = 0, v2_bare = 0;
  for (const auto& l : caps["vnf1"]) v1_nsh += l == "0x894f,10,255,1";
  for (const auto& l : caps["vnf2"]) v2_bare += l.rfind(inner_src == "v6" ? "0x86dd,," : "0x0800,,", 0) == 0;
  // each VNF capture holds the frames in and the frames sent back
  EXPECT_EQ(v1_nsh, total) << "NSH-aware VNF gets NSH over Ethernet with SI 255";
  EXPECT_EQ(v2_bare, 2 * total) << "the proxied VNF gets bare IP (in and back)";
}

TEST_F(ChainNetns, Ipv4FlowsCrossTheChainWithTheRightNshAtEachHop) {
  check_chain("172.16.2.2", "v4", "v4", nodes_);
  EXPECT_GT(counter("A", AC_NOTE_CLASSIFIED), 0u);
  EXPECT_GT(counter("B", AC_NOTE_GPE_DECAP), 0u);
  EXPECT_GT(counter("B", AC_FWD_LOCAL_NSH), 0u);
  EXPECT_GT(counter("C", AC_FWD_LOCAL_PROXY), 0u);
  EXPECT_GT(counter("C", AC_NOTE_PROXY_RETURN), 0u);
  for (auto n : {"A", "B", "C"})
    for (uint32_t r = AC_STAT_DROP_BASE; r < AC_DROP_END; ++r)
      EXPECT_EQ(counter(n, r), 0u) << n << " " << dp::reason_name(r);
}

TEST_F(ChainNetns, Ipv6FlowsCrossTheChainWithTheRightNshAtEachHop) {
  check_chain("2001:db8:2::2", "v6", "v6", nodes_);
}

}  // namespace
}  // namespace anychain::test
