// The fixture of the anychain-nf process tests (nf_process_test.cc: the lifecycle under the
// supervisor; nf_hold_test.cc: the FTC hold queue and overflow sender on real frames): a private
// network and mount namespace, a run directory, the supervisor driven as the daemon's loop would,
// state read by the published ids, NSH frames through an instance's veth.
#pragma once
#include <arpa/inet.h>
#include <bpf/bpf.h>
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
#include <functional>
#include <thread>

#include "common/netns.h"
#include "common/packet.h"
#include "common/proc.h"
#include "nf/maps.h"
#include "nf/netns.h"
#include "nf/published.h"
#include "nf/state.h"
#include "nf/supervisor.h"

namespace anychain::test::nfproc {

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

}  // namespace anychain::test::nfproc
