// Integration with real FRR: two routers in network namespaces (scripts/lab with
// tests/integration/ospf_pair.toml). Router 1's client originates a VNF LSA; router 2's client
// mirrors it and its SPF gives the right path cost. Then ospfd on router 1 is restarted: the
// client reconnects and re-originates, and router 2 sees the LSA again with a newer sequence
// number.
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/netns.h"
#include "common/proc.h"
#include "ospf/client.h"
#include "plane/service_plane.h"

using namespace std::chrono_literals;
using anychain::ospf::Client;
using anychain::ospf::ClientConfig;
using anychain::ospf::ClientStats;
using anychain::ospf::Lsdb;
using anychain::ospf::VnfInfo;

namespace {

constexpr std::uint32_t ip(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d;
}

using anychain::test::sh;
using anychain::test::sh_out;
using json = nlohmann::json;

const std::string kLab = ANYCHAIN_LAB;
const std::string kTopology = ANYCHAIN_OSPF_PAIR;

// Runs a Client inside a network namespace, on its own thread.
class NsAgent {
 public:
  explicit NsAgent(std::string netns) : netns_(std::move(netns)) {}
  ~NsAgent() { stop(); }

  void start(std::optional<VnfInfo> announce) {
    thread_ = std::thread([this, announce] {
      std::optional<anychain::test::InNetns> in;
      try {
        in.emplace(netns_);
      } catch (const std::exception& e) {
        std::lock_guard g(mu_);
        error_ = e.what();
        return;
      }
      ClientConfig cfg;
      cfg.backoff_initial = 200ms;
      cfg.backoff_max = 1s;
      Client c(cfg);
      c.on_lsdb_changed = [this](const Lsdb& db) {
        std::lock_guard g(mu_);
        lsdb_ = db;
      };
      if (announce) (void)c.announce(*announce);
      (void)c.connect();  // failures reschedule themselves
      while (!stop_) {
        c.poll_once(50ms);
        std::vector<std::function<void(Client&)>> todo;
        {
          std::lock_guard g(mu_);
          todo.swap(queue_);
        }
        for (auto& f : todo) f(c);
        std::lock_guard g(mu_);
        stats_ = c.stats();
        connected_ = c.ready();
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Runs f(client) on the agent's thread.
  void post(std::function<void(Client&)> f) {
    std::lock_guard g(mu_);
    queue_.push_back(std::move(f));
  }
  template <class F>
  auto with(F f) {
    std::lock_guard g(mu_);
    return f(lsdb_, stats_, connected_, error_);
  }

 private:
  std::string netns_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  Lsdb lsdb_;
  ClientStats stats_;
  bool connected_ = false;
  std::string error_;
  std::vector<std::function<void(Client&)>> queue_;
};

template <class Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return p();
}

// The two routers, brought up by scripts/lab under a prefix unique to this process
// (act<o|b><pid>), taken down again after the test.
class FrrLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    if (!std::filesystem::exists("/usr/lib/frr/ospfd")) GTEST_SKIP() << "FRR not installed";
    prefix_ = (net_type() == "p2p" ? "acto" : "actb") + std::to_string(::getpid());
    lab("down >/dev/null 2>&1");  // what a killed run with this pid left
    const std::string log = "/tmp/anychain-" + prefix_ + "-up.log";
    ASSERT_EQ(lab("up " + kTopology + " --timeout 60 >" + log + " 2>&1"), 0)
        << "lab did not come up: " << anychain::test::read_file(log);
    up_ = true;
    std::filesystem::remove(log);
    if (net_type() == "broadcast") {
      // a transit network with a DR and a network-LSA instead of the lab's point-to-point link
      for (auto [self, peer] : {std::pair{"R1", "R2"}, {"R2", "R1"}})
        ASSERT_EQ(lab(std::string("vtysh ") + self + " -c 'configure terminal' -c 'interface to-" + peer +
                      "' -c 'ip ospf network broadcast'"),
                  0);
    }
    status_ = json::parse(sh_out(kLab + " status --json --prefix " + prefix_));
  }
  void TearDown() override {
    if (up_) lab("down >/dev/null 2>&1");
  }
  virtual std::string net_type() const { return "p2p"; }
  // scripts/lab <cmd> --prefix <ours> ...
  int lab(const std::string& args) const {
    const auto sp = args.find(' ');
    return sh(kLab + " " + args.substr(0, sp) + " --prefix " + prefix_ + (sp == std::string::npos ? "" : args.substr(sp)));
  }
  std::string ns(int n) const { return status_.at("routers").at("R" + std::to_string(n)).at("netns"); }
  std::string vtysh(int n, const std::string& cmd) const {
    return sh_out(kLab + " vtysh --prefix " + prefix_ + " R" + std::to_string(n) + " -c '" + cmd + "' 2>&1");
  }
  // SIGTERM router n's ospfd, wait for it to exit, start it again with the same command line.
  void restart_ospfd(int n) const {
    const json st = json::parse(sh_out(kLab + " status --json --prefix " + prefix_));
    const int pid = st.at("routers").at("R" + std::to_string(n)).at("daemons").at("ospfd").at("pid");
    std::istringstream cmdline(anychain::test::read_file("/proc/" + std::to_string(pid) + "/cmdline"));
    std::string argv;
    for (std::string arg; std::getline(cmdline, arg, '\0');) argv += " '" + arg + "'";
    ASSERT_FALSE(argv.empty()) << "no command line for ospfd pid " << pid;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 50 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(100ms);
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    ASSERT_EQ(lab("exec R" + std::to_string(n) + " --" + argv), 0) << "ospfd did not start again:" << argv;
  }
  std::string prefix_;
  json status_;
  bool up_ = false;
};

// Cost of the service's candidate hosted by `router` as seen by `self`, if any.
std::optional<std::uint64_t> candidate_cost(const Lsdb& db, std::uint32_t self, std::uint32_t router,
                                            std::uint32_t instance) {
  anychain::plane::PlaneConfig cfg;
  cfg.self_router = self;
  auto view = anychain::plane::compute_plane(db, cfg);
  if (!view) return std::nullopt;
  for (const auto& s : view->services)
    for (const auto& c : s.candidates)
      if (c.router == router && c.info.instance_id == instance) return c.path_cost;
  return std::nullopt;
}

std::optional<std::int32_t> vnf_seq(const Lsdb& db, std::uint32_t router, std::uint32_t instance) {
  const auto* e = db.find({0, 10, anychain::ospf::opaque_lsid(200, instance), router});
  if (!e) return std::nullopt;
  return e->hdr.seq;
}

}  // namespace

TEST_F(FrrLab, VnfLsaFloodsMirrorsAndSurvivesOspfdRestart) {
  const std::uint32_t r1 = ip(1, 1, 1, 1), r2 = ip(2, 2, 2, 2);
  VnfInfo vnf{ip(10, 100, 0, 1), 32, 7, 40, 150, r1, anychain::ospf::kVnfFlagNshAware};
  NsAgent a1(ns(1)), a2(ns(2));
  a1.start(vnf);
  a2.start(std::nullopt);

  // Router 2 mirrors router 1's VNF LSA; path cost = link cost 25 + VNF cost 40.
  std::optional<std::uint64_t> cost;
  bool seen = wait_for(
      [&] {
        return a2.with([&](const Lsdb& db, auto&, bool, auto&) {
          cost = candidate_cost(db, r2, r1, 7);
          return cost.has_value();
        });
      },
      15s);
  ASSERT_TRUE(seen) << "router 2 never saw router 1's VNF LSA";
  EXPECT_EQ(*cost, 65u);
  // Router 1 sees its own instance as local with cost 40.
  EXPECT_TRUE(wait_for([&] { return a1.with([&](const Lsdb& db, auto&, bool, auto&) {
    return candidate_cost(db, r1, r1, 7) == std::optional<std::uint64_t>(40);
  }); }, 5s));
  // Independent check: router 2's ospfd itself holds the LSA (56 bytes of opaque data).
  std::string db2 = vtysh(2, "show ip ospf database opaque-area");
  EXPECT_NE(db2.find("Link State ID: 200.0.0.7"), std::string::npos) << db2;
  EXPECT_NE(db2.find("Advertising Router: 1.1.1.1"), std::string::npos) << db2;
  EXPECT_NE(db2.find("56 octets of data"), std::string::npos) << db2;
  auto seq_before = a2.with([&](const Lsdb& db, auto&, bool, auto&) { return vnf_seq(db, r1, 7); });
  ASSERT_TRUE(seq_before.has_value());
  a2.with([&](auto&, const ClientStats& st, bool, auto&) {
    EXPECT_EQ(st.rejected_lsas, 0u);
    EXPECT_EQ(st.bad_messages, 0u);
    return 0;
  });

  // Restart ospfd on router 1: the client must reconnect and re-originate.
  ASSERT_NO_FATAL_FAILURE(restart_ospfd(1));
  bool reconnected = wait_for([&] {
    return a1.with([&](auto&, const ClientStats& st, bool ready, auto&) {
      return st.connects >= 2 && ready && st.originations >= 2;
    });
  }, 20s);
  ASSERT_TRUE(reconnected) << "client on router 1 did not reconnect and re-originate";
  bool back = wait_for([&] {
    return a2.with([&](const Lsdb& db, auto&, bool, auto&) {
      auto s = vnf_seq(db, r1, 7);
      return s && *s > *seq_before && candidate_cost(db, r2, r1, 7) == std::optional<std::uint64_t>(65);
    });
  }, 25s);
  EXPECT_TRUE(back) << "router 2 did not get the re-originated VNF LSA";

  // Update: a new VNF cost reaches router 2.
  std::atomic<int> update_rc{1}, withdraw_rc{1};
  VnfInfo updated = vnf;
  updated.cost = 90;
  a1.post([&](Client& c) { update_rc = c.announce(updated) ? 0 : -1; });
  EXPECT_TRUE(wait_for([&] {
    return a2.with([&](const Lsdb& db, auto&, bool, auto&) {
      return candidate_cost(db, r2, r1, 7) == std::optional<std::uint64_t>(115);
    });
  }, 10s)) << "router 2 did not see the updated VNF cost";
  EXPECT_EQ(update_rc, 0);

  // Withdraw: DELETE_REQUEST flushes it from router 2's mirror.
  a1.post([&](Client& c) { withdraw_rc = c.withdraw(7) ? 0 : -1; });
  EXPECT_TRUE(wait_for([&] {
    return a2.with([&](const Lsdb& db, auto&, bool, auto&) { return !vnf_seq(db, r1, 7).has_value(); });
  }, 10s)) << "router 2 still has the withdrawn VNF LSA";
  EXPECT_EQ(withdraw_rc, 0);
  a1.stop();
  a2.stop();
}

// Broadcast veth: the routers meet on a transit network (DR, network-LSA). The path cost from
// router 2 is its interface cost to the network (25) + 0 (network to router 1) + the VNF cost.
class FrrLabBroadcast : public FrrLab {
 protected:
  std::string net_type() const override { return "broadcast"; }
};

TEST_F(FrrLabBroadcast, TransitNetworkFromRealNetworkLsa) {
  const std::uint32_t r1 = ip(1, 1, 1, 1), r2 = ip(2, 2, 2, 2);
  VnfInfo vnf{ip(10, 100, 0, 1), 32, 9, 40, 150, r1, 0};
  NsAgent a1(ns(1)), a2(ns(2));
  a1.start(vnf);
  a2.start(std::nullopt);
  std::optional<std::uint64_t> cost;
  std::size_t networks = 0;
  bool seen = wait_for(
      [&] {
        return a2.with([&](const Lsdb& db, auto&, bool, auto&) {
          cost = candidate_cost(db, r2, r1, 9);
          networks = 0;
          for (const auto& [k, e] : db.entries()) networks += k.type == 2;
          return cost.has_value() && networks == 1;
        });
      },
      25s);
  ASSERT_TRUE(seen) << "no VNF LSA via the transit network (network-LSAs: " << networks << ")";
  EXPECT_EQ(*cost, 65u);
  a2.with([&](const Lsdb& db, const ClientStats& st, bool, auto&) {
    EXPECT_EQ(st.rejected_lsas, 0u);
    auto topo = anychain::plane::build_topology(db, 0, 200);
    EXPECT_EQ(topo.network_index.size(), 1u);
    EXPECT_EQ(topo.stats.one_way_links, 0u);
    EXPECT_EQ(topo.stats.malformed_router_lsas + topo.stats.malformed_network_lsas, 0u);
    return 0;
  });
  a1.stop();
  a2.stop();
}
