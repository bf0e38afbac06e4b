// anychain-nf as a process and the supervisor that anychaind runs it with (docs/nf.md,
// "Lifecycle"): a namespace and veth per instance, the NF answering real frames on its veth,
// its state read by the published ids, SIGKILL and a deleted namespace seen at once and undone
// by the restart policy (back empty, a new incarnation), `restart: never`, a clean SIGTERM exit,
// removal, and anychain-nf's own exit codes. Root; runs in a private network and mount namespace
// (the namespaces it names are act-<pid>-...: a killed run's leftovers are reaped by the next).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/netns.h"
#include "common/packet.h"
#include "common/proc.h"
#include "nf/crdt.h"
#include "nf/maps.h"
#include "nf/netns.h"
#include "nf/published.h"
#include "nf/state.h"
#include "nf/supervisor.h"

namespace anychain::test {
namespace {

namespace nf = anychain::nf;
using namespace std::chrono_literals;
using json = nlohmann::json;

class NfProcess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    sandbox_ = enter_sandbox();
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, BPF)";
    ASSERT_EQ(sandbox_, "");
    run_dir_ = std::filesystem::temp_directory_path() / ("anychain-nf-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(run_dir_);
  }
  void TearDown() override {
    sup_.reset();
    for (const auto& n : made_) (void)nf::delete_netns(n);
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);
  }

  std::string prefix() const { return netns_name("nf-"); }  // act-<pid>-nf-

  void supervise(std::chrono::milliseconds backoff = 100ms) {
    nf::SupervisorOptions o;
    o.program = ANYCHAIN_NF_BIN;
    o.run_dir = run_dir_;
    o.netns_prefix = prefix();
    o.backoff_min = backoff;
    auto s = nf::Supervisor::create(o);
    ASSERT_TRUE(s.has_value()) << s.error().str();
    sup_ = std::move(*s);
    sup_->on_change = [this](const std::string& n, bool up) { events_.push_back(n + (up ? " up" : " down")); };
    sup_->on_veth = [](const std::string&, const std::string& veth) {
      // anychaind attaches its fast path to the host side; an XDP program there is what lets
      // the frames the NF sends back with XDP_TX arrive (GRO alone does not, on this kernel)
      must("ip -force link set dev " + veth + " xdpdrv obj " ANYCHAIN_XDP_PASS " sec xdp");
    };
  }
  // The daemon's loop in small: poll the supervisor until pred() holds (false after timeout)
  bool drive(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      auto now = std::chrono::steady_clock::now();
      if (now >= end) return false;
      auto fds = sup_->fds();
      int ms = 50;
      if (auto t = sup_->next_timer())
        ms = std::clamp<int>(static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(*t - now).count()), 0, 50);
      if (poll(fds.data(), fds.size(), ms) > 0)
        for (const auto& p : fds)
          if (p.revents) sup_->on_event(p.fd, p.revents);
      sup_->on_timer(std::chrono::steady_clock::now());
    }
    return true;
  }
  nf::InstanceSpec monitor(const std::string& name, uint32_t id, nf::Restart r = nf::Restart::Always) {
    nf::InstanceSpec s;
    s.name = name;
    s.veth = "nf" + name;
    s.params.kind = nf::Kind::Monitor;
    s.params.instance_id = id;
    s.params.idle_timeout_s = 60;
    s.restart = r;
    made_.push_back(prefix() + name);
    return s;
  }
  json state(const std::string& name) {
    auto m = nf::InstanceMaps::open(run_dir_, name);
    EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().str());
    if (!m) return {};
    auto s = nf::decode_state(*m);
    EXPECT_TRUE(s.has_value());
    return s ? *s : json();
  }
  // One NSH frame into the host side of the instance's veth; what comes back on it.
  std::optional<Bytes> ping(const std::string& veth, uint32_t id, uint16_t sport) {
    int ifindex = static_cast<int>(if_nametoindex(veth.c_str()));
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(AC_ETH_P_NSH));
    if (fd < 0 || !ifindex) return std::nullopt;
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(AC_ETH_P_NSH);
    sll.sll_ifindex = ifindex;
    bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll);
    Mac host = mac(sh_out("cat /sys/class/net/" + veth + "/address").substr(0, 17));
    Mac nfmac = nf::nf_mac(id);
    Nsh n;
    n.spi = 7;
    n.ctx[0] = 0xabcd;
    Bytes f = eth(nfmac, host, AC_ETH_P_NSH, {nsh(n), ipv4("10.1.0.1", "10.2.0.2", L4{IPPROTO_UDP, sport, 9000, Bytes(32, 1)})});
    send(fd, f.data(), f.size(), 0);
    std::optional<Bytes> got;
    auto end = std::chrono::steady_clock::now() + 2s;
    while (!got && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      Bytes b(2048);
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (r > 0 && from.sll_pkttype != PACKET_OUTGOING) {
        b.resize(static_cast<size_t>(r));
        got = b;
      }
    }
    close(fd);
    return got;
  }
  uint64_t incarnation(const std::string& name) {
    auto p = nf::read_published(sup_->published_file(name));
    return p ? p->incarnation : 0;
  }

  static inline std::string sandbox_;
  std::filesystem::path run_dir_;
  std::unique_ptr<nf::Supervisor> sup_;
  std::vector<std::string> events_;
  std::vector<std::string> made_;
};

TEST_F(NfProcess, AnInstanceRunsInItsNamespaceAndAnswersOnItsVeth) {
  supervise();
  sup_->configure({monitor("m1", 5)});
  ASSERT_TRUE(drive([&] { return sup_->alive("m1"); })) << sup_->status().dump();
  EXPECT_EQ(events_, std::vector<std::string>{"m1 up"});
  EXPECT_TRUE(nf::netns_exists(prefix() + "m1"));
  auto pub = nf::read_published(sup_->published_file("m1"));
  ASSERT_TRUE(pub.has_value());
  EXPECT_EQ(pub->pid, *sup_->pid_of("m1"));
  EXPECT_EQ(pub->iface, "eth0");
  EXPECT_GT(pub->link_id, 0u);
  // the NF answers: SI - 1, MACs swapped
  auto back = ping("nfm1", 5, 40000);
  ASSERT_TRUE(back.has_value()) << "no answer from the NF";
  const Mac host = mac(sh_out("cat /sys/class/net/nfm1/address").substr(0, 17)), nfmac = nf::nf_mac(5);
  EXPECT_EQ(Bytes(back->begin(), back->begin() + 6), Bytes(host.begin(), host.end()));
  EXPECT_EQ(Bytes(back->begin() + 6, back->begin() + 12), Bytes(nfmac.begin(), nfmac.end()));
  EXPECT_EQ((*back)[14 + 7], 254);
  json s = state("m1");
  EXPECT_EQ(s["monitor"]["total"]["packets"], 1u);
  EXPECT_EQ(s["monitor"]["flows"][0]["sport"], 40000);
  // the NF side: eth0 in the namespace, with the instance's MAC
  EXPECT_NE(sh_out("ip -n " + prefix() + "m1 link show eth0").find(mac_str(nf::nf_mac(5))), std::string::npos);
  // the host end carries NSH only: no IPv6 (its neighbour discovery would reach the NF as bad NSH)
  EXPECT_EQ(sh_out("cat /proc/sys/net/ipv6/conf/nfm1/disable_ipv6"), "1\n");
}

TEST_F(NfProcess, SigkillIsSeenAtOnceAndRestartBringsItBackEmpty) {
  supervise();
  sup_->configure({monitor("m2", 6)});
  ASSERT_TRUE(drive([&] { return sup_->alive("m2"); }));
  ASSERT_TRUE(ping("nfm2", 6, 1).has_value());
  ASSERT_EQ(state("m2")["monitor"]["total"]["packets"], 1u);
  const int pid = *sup_->pid_of("m2");
  const uint64_t inc = incarnation("m2");
  const uint32_t prog = nf::read_published(sup_->published_file("m2"))->prog_id;
  events_.clear();
  kill(pid, SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(drive([&] { return !events_.empty(); }, 2s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms) << "the death is seen through the pidfd, not a poll";
  EXPECT_EQ(events_.front(), "m2 down");
  EXPECT_LT(bpf_prog_get_fd_by_id(prog), 0) << "the program went with the process";
  ASSERT_TRUE(drive([&] { return sup_->alive("m2"); }));
  EXPECT_NE(*sup_->pid_of("m2"), pid);
  EXPECT_GT(incarnation("m2"), inc);
  json s = state("m2");
  EXPECT_EQ(s["monitor"]["total"]["packets"], 0u) << "the state died with the process";
  EXPECT_TRUE(s["monitor"]["flows"].empty());
  EXPECT_TRUE(ping("nfm2", 6, 2).has_value());
  EXPECT_EQ(sup_->status()[0]["deaths"], 1u);
}

TEST_F(NfProcess, ADeletedNamespaceKillsTheInstanceAndANewOneComes) {
  supervise();
  sup_->configure({monitor("m3", 7)});
  ASSERT_TRUE(drive([&] { return sup_->alive("m3"); }));
  const unsigned veth = if_nametoindex("nfm3");
  const int pid = *sup_->pid_of("m3");
  events_.clear();
  ASSERT_TRUE(nf::delete_netns(prefix() + "m3").has_value());
  ASSERT_TRUE(drive([&] { return !events_.empty(); }, 2s));
  EXPECT_EQ(events_.front(), "m3 down");
  ASSERT_TRUE(drive([&] { return sup_->alive("m3"); })) << sup_->status().dump();
  EXPECT_NE(*sup_->pid_of("m3"), pid);
  EXPECT_TRUE(nf::netns_exists(prefix() + "m3")) << "a new namespace";
  EXPECT_NE(if_nametoindex("nfm3"), veth) << "and a new veth (the old one went with the old namespace)";
  EXPECT_TRUE(ping("nfm3", 7, 3).has_value()) << "the new veth answers";
}

TEST_F(NfProcess, RestartNeverLeavesItDeadAndOthersUntouched) {
  supervise();
  sup_->configure({monitor("m4", 8, nf::Restart::Never), monitor("m5", 9)});
  ASSERT_TRUE(drive([&] { return sup_->alive("m4") && sup_->alive("m5"); }));
  const int other = *sup_->pid_of("m5");
  ASSERT_TRUE(ping("nfm5", 9, 4).has_value());
  events_.clear();
  kill(*sup_->pid_of("m4"), SIGKILL);
  ASSERT_TRUE(drive([&] { return !events_.empty(); }, 2s));
  EXPECT_FALSE(drive([&] { return sup_->alive("m4"); }, 1500ms)) << "restart: never";
  EXPECT_EQ(events_, std::vector<std::string>{"m4 down"});
  EXPECT_EQ(*sup_->pid_of("m5"), other);
  EXPECT_EQ(state("m5")["monitor"]["total"]["packets"], 1u) << "the other instance kept its state";
  json st = sup_->status();
  EXPECT_EQ(st[0]["state"], "stopped");
  EXPECT_NE(st[0]["last_exit"].get<std::string>().find("signal 9"), std::string::npos);
  // removal: process stopped, veth and namespace gone, file gone
  sup_->configure({monitor("m5", 9)});
  EXPECT_FALSE(nf::netns_exists(prefix() + "m4"));
  EXPECT_EQ(if_nametoindex("nfm4"), 0u);
  sup_->configure({});
  EXPECT_FALSE(nf::netns_exists(prefix() + "m5"));
  EXPECT_FALSE(std::filesystem::exists(sup_->published_file("m5")));
  EXPECT_FALSE(std::filesystem::exists(std::string("/proc/") + std::to_string(other)));
}

// A host interface of the veth's name that is not the instance's is never taken over
TEST_F(NfProcess, AForeignInterfaceOfTheVethNameIsRefused) {
  supervise(50ms);
  must("ip link add nfm6 type veth peer name nfm6p");  // a veth, but not the instance's
  sup_->configure({monitor("m6", 10)});
  EXPECT_FALSE(drive([&] { return sup_->alive("m6"); }, 1s));
  EXPECT_NE(sup_->status()[0].value("last_error", "").find("is not the veth"), std::string::npos)
      << sup_->status().dump();
  must("ip link del nfm6");
  EXPECT_TRUE(drive([&] { return sup_->alive("m6"); })) << "retried with backoff";
}

// anychain-nf by hand: a clean SIGTERM removes its file; SIGKILL leaves it, but the ids are gone
TEST_F(NfProcess, AnychainNfExitsCleanlyOnSigtermAndLeavesNothingUsableOnSigkill) {
  const std::string ns = prefix() + "h1";
  made_.push_back(ns);
  ASSERT_TRUE(nf::create_netns(ns).has_value());
  ASSERT_TRUE(nf::ensure_veth({"nfh1", ns, "eth0", nf::nf_mac(11), 1752}).has_value());
  const std::string file = nf::published_path(run_dir_, "h1");
  auto start = [&] {
    return Proc(ns, {ANYCHAIN_NF_BIN, "--name", "h1", "--kind", "firewall", "--instance-id", "11", "--run-dir",
                     run_dir_.string(), "--rule", "drop proto udp dport 53"});
  };
  {
    Proc p = start();
    ASSERT_TRUE(wait_for_file(file, 10s));
    EXPECT_EQ(p.stop(), 0) << "SIGTERM: a clean exit";
    EXPECT_FALSE(std::filesystem::exists(file));
    EXPECT_EQ(sh_out("ip -n " + ns + " -d link show eth0").find("prog/xdp"), std::string::npos) << "detached";
  }
  Proc p = start();
  ASSERT_TRUE(wait_for_file(file, 10s));
  auto pub = nf::read_published(file);
  ASSERT_TRUE(pub.has_value());
  kill(p.pid(), SIGKILL);
  p.wait(5s);
  EXPECT_TRUE(std::filesystem::exists(file));
  auto m = nf::InstanceMaps::open(*pub);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, ENOENT) << m.error().str();
}

// anychain-nf --kind ids by hand: what it publishes for the agent (docs/state.md 5, item 2) names
// the merge program and every map of its shared state by ids the kernel resolves (bpftool), and
// the agent's store opens them and sees what the packet path counts on the real veth.
TEST_F(NfProcess, AnIdsInstancePublishesItsSharedStateForTheAgent) {
  const std::string ns = prefix() + "i1";
  made_.push_back(ns);
  ASSERT_TRUE(nf::create_netns(ns).has_value());
  ASSERT_TRUE(nf::ensure_veth({"nfi1", ns, "eth0", nf::nf_mac(12), 1752}).has_value());
  must("ip -force link set dev nfi1 xdpdrv obj " ANYCHAIN_XDP_PASS " sec xdp");
  const std::string file = nf::published_path(run_dir_, "i1");
  Proc p(ns, {ANYCHAIN_NF_BIN, "--name", "i1", "--kind", "ids", "--instance-id", "12", "--run-dir", run_dir_.string(),
              "--ids-threshold", "3", "--ids-filter", "2x1024", "--ids-sketch", "2x256", "--window", "30"});
  ASSERT_TRUE(wait_for_file(file, 10s));
  std::ifstream f(file);
  json j = json::parse(f);
  EXPECT_EQ(j["kind"], "ids");
  EXPECT_EQ(j["pid"], p.pid());
  EXPECT_GT(j["incarnation"].get<uint64_t>(), 1'600'000'000'000'000'000ULL);
  const json& c = j["crdt"];
  ASSERT_TRUE(c.is_object()) << j.dump();
  EXPECT_EQ(c["window_s"], 30u);
  auto bpftool = [](const std::string& what, uint64_t id) {
    return json::parse(sh_out(fmt::format("bpftool -j {} show id {}", what, id)), nullptr, false);
  };
  EXPECT_EQ(bpftool("prog", c["merge_prog_id"])["name"], "nf_ids_merge");
  EXPECT_EQ(bpftool("prog", j["prog_id"])["name"], "nf_ids");
  for (auto [key, name] : {std::pair{"ctl_map_id", "ac_crdt_ctl"}, std::pair{"changes_map_id", "ac_crdt_changes"},
                           std::pair{"stats_map_id", "ac_crdt_stats"}, std::pair{"win_map_id", "ac_crdt_win"}})
    EXPECT_EQ(bpftool("map", c[key])["name"], name) << key;
  ASSERT_EQ(c["objects"].size(), 5u);
  for (const json& o : c["objects"]) {
    json m = bpftool("map", o["map_id"]);
    EXPECT_EQ(m["name"], o["map"]);
    EXPECT_EQ(m["max_entries"], o["cells"]) << o.dump();
  }
  EXPECT_EQ(c["objects"][0]["cells"], 1024u);
  EXPECT_EQ(c["objects"][2]["cells"], 512u) << "2 rows x 256";
  // the agent's view: the store over the instance's maps; a scan, then a frame on the veth
  auto pub = nf::read_published(file);
  ASSERT_TRUE(pub.has_value());
  auto store = nf::open_crdt_store(*pub);
  ASSERT_TRUE(store.has_value()) << store.error().str();
  ASSERT_TRUE(store->store->changes([](uint8_t, const state::Key&) {}).has_value());
  ASSERT_TRUE(ping("nfi1", 12, 4000).has_value()) << "the frame came back";
  size_t changed = 0;
  ASSERT_TRUE(store->store->changes([&](uint8_t, const state::Key&) { ++changed; }).has_value());
  EXPECT_GE(changed, 2u) << "the new pair's filter and sketch cells";
  EXPECT_LE(changed, 4u);
  json st = state("i1");
  EXPECT_EQ(st["counters"]["ids_new_pair"], 1u);
  EXPECT_EQ(st["ids"]["pairs"]["merged"], 1u);
  EXPECT_GT(st["crdt"]["counters"]["logged"].get<uint64_t>(), 0u);
  store->store.reset();
  store->fds.clear();  // our fds would keep the maps alive
  EXPECT_EQ(p.stop(), 0);
  EXPECT_FALSE(nf::open_crdt_store(*pub).has_value()) << "gone with the process";
}

TEST_F(NfProcess, AnychainNfRefusesBadUsage) {
  auto rc = [&](std::vector<std::string> args) {
    args.insert(args.begin(), ANYCHAIN_NF_BIN);
    Proc p("", args);
    return p.wait(10s).value_or(-1);
  };
  EXPECT_EQ(rc({"--name", "x", "--kind", "router", "--instance-id", "1"}), 2);
  EXPECT_EQ(rc({"--name", "x", "--kind", "nat", "--instance-id", "1"}), 2) << "no address";
  EXPECT_EQ(rc({"--name", "x", "--kind", "ratelimit", "--instance-id", "1"}), 2) << "no limit";
  EXPECT_EQ(rc({"--name", "x", "--kind", "ids", "--instance-id", "1", "--ids-action", "block"}), 2);
  EXPECT_EQ(rc({"--name", "x", "--kind", "ids", "--instance-id", "1", "--ids-filter", "3x1000"}), 2) << "not a power of two";
  EXPECT_EQ(rc({"--name", "x", "--kind", "ids", "--instance-id", "1", "--window", "0"}), 2);
  EXPECT_EQ(rc({"--name", "x", "--kind", "firewall", "--instance-id", "1", "--rule", "drop dport 53"}), 2);
  EXPECT_EQ(rc({"--name", "x", "--kind", "monitor", "--instance-id", "0"}), 2);
  EXPECT_EQ(rc({"--name", "x", "--kind", "monitor", "--instance-id", "1", "--iface", "nosuch0"}), 1);
}

}  // namespace
}  // namespace anychain::test
