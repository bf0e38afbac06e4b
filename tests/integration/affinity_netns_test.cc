// One flow's packets from both CPUs, with a weight change in between, through a real node: the
// fast path in native XDP mode on veths (XDP runs on the CPU of the process that sends into the
// veth), two NSH-aware VNFs (anychain-vnf) behind it, real UDP sockets, anychain-sink counting
// which instance served each packet of each flow.
//
//   src --- R --- sink          chain SPI 10: SI 255 = service 1 (instances 31 on vnfa, 32 on vnfb)
//          / \                                SI 254 = end of the chain (routed to the sink)
//       vnfa  vnfb
//
// Every flow's first packet is sent from CPU 0 while the WCMP table puts every bucket on 31;
// then the table moves every bucket to 32 and the flow's later packets are sent alternately
// from CPU 1 and CPU 0. With one placement per flow shared by the CPUs (ac_affinity), every
// packet of those flows is served by 31, and flows started after the change by 32; before it,
// CPU 1's flow cache made its own pick (32) and the flows were split (issue 12, defect 1).
// Checked: with ac_place() reduced to its WCMP pick (no shared placement, as before ac_affinity)
// this test fails with flows_switched 40 of 40 and every old flow served 31,32,31,32,...
#include <arpa/inet.h>
#include <endian.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "anychain/lab_payload.h"
#include "common/cpu.h"
#include "common/netns.h"
#include "common/proc.h"
#include "dataplane/dataplane.h"

namespace anychain::test {
namespace {

namespace dp = anychain::dataplane;
using json = nlohmann::json;

const std::string kWork = "/tmp/anychain-affinity-test-" + std::to_string(getpid());
constexpr uint32_t kSpi = 10, kSvc = 1, kA = 31, kB = 32;
constexpr int kOldFlows = 40, kLaterPackets = 20, kNewFlows = 20, kNewPackets = 6;

std::map<std::string, Netns> nets;
const std::string& ns(const std::string& n) { return nets.at(n).name(); }
void in(const std::string& n, const std::string& cmd) { nets.at(n).exec(cmd); }

dp::Mac mac_of(const std::string& node, const std::string& ifname) { return if_mac(ns(node), ifname); }

std::string mac_str(const dp::Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

template <class R>
void ok(const R& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().str());
}

// One UDP flow from the source namespace (its own source port), lab payload with flow id and seq.
class Flow {
 public:
  explicit Flow(uint32_t id) : id_(id) {
    InNetns g(ns("src"));
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(9000);
    inet_pton(AF_INET, "172.16.2.2", &dst.sin_addr);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0)
      throw std::runtime_error("flow socket");
  }
  ~Flow() { close(fd_); }
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;
  void send_on(int cpu) {
    OnCpu on(cpu);
    ac_lab_payload p{};
    p.magic = htonl(AC_LAB_MAGIC);
    p.flow_id = htonl(id_);
    p.seq = htonl(seq_++);
    p.send_ts_ns = htobe64(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count()));
    char buf[64] = {};
    std::memcpy(buf, &p, sizeof p);
    if (send(fd_, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) throw std::runtime_error("send");
  }

 private:
  uint32_t id_;
  uint32_t seq_ = 0;
  int fd_ = -1;
};

class FlowAffinityNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs";
    if (auto e = enter_sandbox(); !e.empty()) throw std::runtime_error(e);
    std::filesystem::create_directories(kWork);
    for (auto n : {"src", "R", "sink", "vnfa", "vnfb"}) nets.emplace(n, Netns(std::string("aff-") + n));
    for (auto n : {"src", "R", "sink", "vnfa", "vnfb"}) nets.at(n).disable_ipv6();
    veth({ns("src"), "src-r"}, {ns("R"), "r-src"});
    veth({ns("R"), "r-sink"}, {ns("sink"), "sink-r"});
    veth({ns("R"), "r-vnfa"}, {ns("vnfa"), "vnfa"});
    veth({ns("R"), "r-vnfb"}, {ns("vnfb"), "vnfb"});
    in("R", "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0");
    in("R", "ip addr add 10.255.0.1/32 dev lo");
    in("R", "ip addr add 172.16.1.1/24 dev r-src");
    in("R", "ip addr add 172.16.2.1/24 dev r-sink");
    in("src", "ip addr add 172.16.1.2/24 dev src-r");
    in("src", "ip route add default via 172.16.1.1");
    in("src", "ethtool -K src-r tx off");  // complete checksums across the XDP redirect
    in("sink", "ip addr add 172.16.2.2/24 dev sink-r");
    in("sink", "ip route add default via 172.16.2.1");
    in("src", "ip neigh add 172.16.1.1 lladdr " + mac_str(mac_of("R", "r-src")) + " dev src-r");
    in("R", "ip neigh add 172.16.2.2 lladdr " + mac_str(mac_of("sink", "sink-r")) + " dev r-sink");
    // XDP_REDIRECT into a veth needs NAPI on its far end: GRO on
    for (auto [n, i] : {std::pair{"vnfa", "vnfa"}, {"vnfb", "vnfb"}, {"sink", "sink-r"}})
      in(n, std::string("ethtool -K ") + i + " gro on");

    InNetns g(ns("R"));
    dp::Options o;
    o.pin_root = "/sys/fs/bpf/affinity/anychain";
    auto d = dp::Dataplane::open(o);
    ok(d, "open dataplane");
    dp::Config cfg;
    inet_pton(AF_INET, "10.255.0.1", &cfg.local_endpoint);
    ok(d->set_config(cfg), "config");
    for (auto [id, node, ifname] : {std::tuple{kA, "vnfa", "r-vnfa"}, {kB, "vnfb", "r-vnfb"}}) {
      dp::Instance in{.id = id, .local = true, .nsh_aware = true, .ifindex = if_nametoindex(ifname),
                      .mac = mac_of(node, node), .if_mac = mac_of("R", ifname), .service_id = kSvc};
      ok(d->set_interface(in.ifindex, AC_IF_VNF, id, in.if_mac), std::string("iface ") + ifname);
      ok(d->set_instance(in), "instance");
    }
    ok(d->set_wcmp_table(kSvc, std::vector<uint32_t>(AC_WCMP_BUCKETS, kA)), "table A");
    ok(d->set_path(kSpi, 255, kSvc, false), "path 255");
    ok(d->set_path(kSpi, 254, 0, true), "path 254");
    std::vector<dp::PolicyRule> rules(1);
    rules[0].dst = *dp::parse_prefix("172.16.2.0/24");
    rules[0].proto = IPPROTO_UDP;
    rules[0].spi = kSpi;
    ok(d->set_policies(rules), "policies");
    ok(d->set_interface(if_nametoindex("r-src"), AC_IF_CLASSIFY, 0, mac_of("R", "r-src")), "iface r-src");
    for (const char* i : {"r-src", "r-sink", "r-vnfa", "r-vnfb"}) {
      auto a = d->attach(i, dp::XdpMode::Native);
      ok(a, std::string("attach ") + i);
      if (a->mode != dp::XdpMode::Native) throw std::runtime_error(std::string(i) + " not in native mode");
    }
    node_ = std::make_unique<dp::Dataplane>(std::move(*d));
  }

  static void TearDownTestSuite() {
    if (node_) {
      InNetns g(ns("R"));
      for (const char* i : {"r-src", "r-sink", "r-vnfa", "r-vnfb"}) (void)dp::Dataplane::detach(i);
    }
    node_.reset();
    nets.clear();
    if (!getenv("ANYCHAIN_KEEP")) std::filesystem::remove_all(kWork);
  }

  static uint64_t note(uint32_t reason) {
    auto s = node_->stats();
    return s ? (*s)[reason].packets : 0;
  }

  static inline std::unique_ptr<dp::Dataplane> node_;
};

TEST_F(FlowAffinityNetns, AWeightChangeBetweenPacketsFromTwoCpusKeepsEveryFlowOnItsInstance) {
  Proc sink(ns("sink"), {ANYCHAIN_SINK, "--port", "9000", "--json", kWork + "/sink.json"}, kWork + "/sink.log");
  Proc va(ns("vnfa"), {ANYCHAIN_VNF, "--iface", "vnfa", "--mode", "nsh", "--instance-id", std::to_string(kA),
                       "--stats-json", kWork + "/vnfa.json"},
          kWork + "/vnfa.log");
  Proc vb(ns("vnfb"), {ANYCHAIN_VNF, "--iface", "vnfb", "--mode", "nsh", "--instance-id", std::to_string(kB),
                       "--stats-json", kWork + "/vnfb.json"},
          kWork + "/vnfb.log");
  for (const char* f : {"/sink.json", "/vnfa.json", "/vnfb.json"})
    ASSERT_TRUE(wait_for_file(kWork + f, std::chrono::seconds(10))) << f;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  const uint64_t hits0 = note(AC_NOTE_AFFINITY_HIT);
  std::vector<std::unique_ptr<Flow>> old_flows, new_flows;
  for (int f = 0; f < kOldFlows; ++f) old_flows.push_back(std::make_unique<Flow>(1 + f));
  for (auto& f : old_flows) f->send_on(0);  // first packets: placed on CPU 0, every bucket on A
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ok(node_->set_wcmp_table(kSvc, std::vector<uint32_t>(AC_WCMP_BUCKETS, kB)), "table B");  // the weight change
  for (int k = 0; k < kLaterPackets; ++k)
    for (auto& f : old_flows) f->send_on(k % 2 == 0 ? 1 : 0);  // CPU 1 first: its cache has never seen them
  for (int f = 0; f < kNewFlows; ++f) new_flows.push_back(std::make_unique<Flow>(1000 + f));
  for (int k = 0; k < kNewPackets; ++k)
    for (auto& f : new_flows) f->send_on(k % 2 == 0 ? 1 : 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  // what the sink saw first (the end-to-end truth), then how the fast path holds the flows
  va.stop();
  vb.stop();
  sink.stop();
  json s = json::parse(read_file(kWork + "/sink.json"));
  const uint64_t sent = kOldFlows * (1 + kLaterPackets) + kNewFlows * kNewPackets;
  EXPECT_EQ(s["packets"].get<uint64_t>(), sent) << s.dump();
  EXPECT_EQ(s["flows_switched"].get<uint64_t>(), 0u) << "no flow served by two instances";
  ASSERT_TRUE(s.contains("per_flow"));
  for (const auto& f : s["per_flow"]) {
    uint32_t id = f["flow_id"].get<uint32_t>();
    bool old = id < 1000;
    EXPECT_EQ(f["sequence"][0], json::array({old ? kA : kB})) << "flow " << id;
    EXPECT_EQ(f["packets"].get<uint64_t>(), static_cast<uint64_t>(old ? 1 + kLaterPackets : kNewPackets))
        << "flow " << id;
  }
  EXPECT_EQ(s["per_slot"][0]["instances"][std::to_string(kA)].get<uint64_t>(),
            static_cast<uint64_t>(kOldFlows * (1 + kLaterPackets)));
  EXPECT_EQ(s["per_slot"][0]["instances"][std::to_string(kB)].get<uint64_t>(),
            static_cast<uint64_t>(kNewFlows * kNewPackets));

  // the fast path: both CPUs hold each old flow, agree with its placement, none split
  auto flows = node_->flows();
  ASSERT_TRUE(flows.has_value()) << flows.error().str();
  size_t both_cpus = 0, split = 0;
  for (const auto& e : *flows) {
    if (e.spi != kSpi || e.si != 255) continue;
    both_cpus += e.cpus == 2;
    split += e.split;
    ASSERT_TRUE(e.placement.has_value());
    for (const auto& c : e.per_cpu) EXPECT_EQ(c.instance_id, e.placement->instance_id) << "cpu " << c.cpu;
  }
  EXPECT_EQ(both_cpus, static_cast<size_t>(kOldFlows + kNewFlows)) << "every flow ran on both CPUs";
  EXPECT_EQ(split, 0u);
  EXPECT_GE(note(AC_NOTE_AFFINITY_HIT) - hits0, static_cast<uint64_t>(kOldFlows + kNewFlows))
      << "the second CPU's first packet of each flow took the shared placement";
}

}  // namespace
}  // namespace anychain::test
