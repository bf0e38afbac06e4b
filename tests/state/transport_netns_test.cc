// Two replicators in two network namespaces joined by a veth pair, with real sockets: AF_XDP
// through libxdp (copy mode: veth has no zero-copy) behind the node's own fast path, which
// redirects the replication port into its XSKMAP; the UDP fallback; one of each, so the frames our AF_XDP transport
// writes (Ethernet, IPv4 and UDP headers and checksums) are received by the kernel's own stack;
// and the fallback when AF_XDP cannot be set up, with its reason.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/netns.h"
#include "common/netns_fastpath.h"
#include "dataplane/dataplane.h"
#include "state/replicator.h"
#include "state/twin_store.h"
#include "state/xsk_transport.h"

namespace anychain::state {
namespace {

using test::InNetns;
using test::VethPair;

constexpr uint16_t kPort = 4795;

Schema schema() {
  static const Schema s = *Schema::make({
      {.id = 1, .kind = Kind::GCounter, .name = "pkts", .cells = 64},
      {.id = 2, .kind = Kind::CountMin, .name = "ports", .cells = 4 * 1024, .rows = 4},
      {.id = 3, .kind = Kind::RegMap, .name = "nat", .cells = 65536, .key_size = 16},
  });
  return s;
}

std::shared_ptr<const Keyring> keys() { return *Keyring::make({{1, std::vector<uint8_t>(32, 0x5a)}}, 1); }

// The node's fast path (bpf/anychain.bpf.c through the dataplane library) on one interface,
// loaded, configured and attached inside its namespace: IPv4/UDP to its endpoint on the
// replication port goes to the AF_XDP socket of the RX queue (ac_state_xsk), counted.
struct Redirect : test::NetnsFastPath {
  Redirect(const std::string& ns, const std::string& ifname, uint32_t addr)
      : NetnsFastPath(ns, ifname, addr, kPort, "/sys/fs/bpf/anychain-test-state-") {}
  int xskmap() const { return map_fd("ac_state_xsk"); }
};

struct Side {
  uint32_t id;
  std::string ns, ifname;
  Endpoint local;
  TwinStore store{schema()};
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Replicator> rep;
};

class TransportNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, XDP, AF_XDP)";
    pair = std::make_unique<VethPair>("st", false);
    pair->ns_a.ip("addr add 10.77.0.1/24 dev veth-a");
    pair->ns_b.ip("addr add 10.77.0.2/24 dev veth-b");
    a.id = 1;
    a.ns = pair->ns_a.name();
    a.ifname = "veth-a";
    a.local = *parse_endpoint("10.77.0.1", kPort);
    b.id = 2;
    b.ns = pair->ns_b.name();
    b.ifname = "veth-b";
    b.local = *parse_endpoint("10.77.0.2", kPort);
  }
  void open(Side& s, const Redirect* r, std::vector<uint32_t> queues = {}) {
    InNetns in(s.ns);
    XskOptions o{.ifname = s.ifname, .local = s.local, .xskmap_fd = r ? r->xskmap() : -1, .slot_stride = AC_XSK_QUEUES, .queues = queues};
    auto t = open_transport(o);
    ASSERT_TRUE(t.has_value()) << t.error().str();
    s.transport = std::move(*t);
    ReplicatorConfig cfg;
    cfg.me = Identity{.service = 9, .id = s.id, .incarnation = 1000 + s.id};
    s.rep = std::make_unique<Replicator>(cfg, s.store, *s.transport, keys(), clock);
  }
  void connect() {
    a.rep->set_members({{2, b.local}});
    b.rep->set_members({{1, a.local}});
  }
  // Both sides update for `ms`, then run until each has the other's state (or 10 s).
  void exchange(int ms) {
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::steady_clock::now() - t0; };
    while (elapsed() < std::chrono::milliseconds(ms)) {
      for (Side* s : {&a, &b}) {
        s->store.gc_add(1, Key::index(s->id), 1);
        s->store.cms_add(2, ac_mix64(updates % 300), 1);
        ac_reg_value v{};
        v.writer = s->id;
        v.data[0] = static_cast<uint8_t>(s->id);
        uint8_t k[16] = {static_cast<uint8_t>(s->id)};
        std::memcpy(k + 4, &updates, sizeof updates);
        s->store.reg_insert(3, Key::bytes(k, 16), v);
      }
      ++updates;
      a.rep->poll();
      b.rep->poll();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    const uint64_t want = updates;
    while (elapsed() < std::chrono::milliseconds(ms + 10000)) {
      a.rep->poll();
      b.rep->poll();
      if (a.store.gc_value(1, Key::index(2)) == want && b.store.gc_value(1, Key::index(1)) == want &&
          a.rep->peers()[0].acked == a.rep->stats().version && b.rep->peers()[0].acked == b.rep->stats().version)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (Side* s : {&a, &b}) {
      EXPECT_EQ(s->store.gc_value(1, Key::index(1)), want) << "side " << s->id;
      EXPECT_EQ(s->store.gc_value(1, Key::index(2)), want) << "side " << s->id;
      uint64_t regs = 0;
      (void)s->store.cells([&](uint8_t o, const Key&) { regs += o == 3; });
      EXPECT_EQ(regs, 2 * want) << "side " << s->id << ": every flow-table entry of both";
      EXPECT_EQ(s->rep->gate().rejected_total(), 0u);
    }
    for (uint32_t c = 0; c < 4 * 1024; ++c)
      ASSERT_EQ(a.store.gc_value(2, Key::index(c)), b.store.gc_value(2, Key::index(c))) << "sketch cell " << c;
  }

  uint64_t updates = 0;
  SystemClock clock;
  std::unique_ptr<VethPair> pair;
  Side a, b;
};

TEST_F(TransportNetns, AfXdpBothWays) {
  Redirect ra(a.ns, a.ifname, a.local.addr), rb(b.ns, b.ifname, b.local.addr);
  open(a, &ra);
  open(b, &rb);
  connect();
  exchange(1000);
  uint64_t fallback[2] = {a.transport->status().tx_fallback, b.transport->status().tx_fallback};
  exchange(1000);  // both neighbours are resolved by now: every message goes through AF_XDP
  for (Side* s : {&a, &b}) {
    TransportStatus st = s->transport->status();
    std::printf("side %u: tx %lu (fallback %lu) rx %lu (fallback %lu)\n", s->id, (unsigned long)st.tx_frames,
                (unsigned long)st.tx_fallback, (unsigned long)st.rx_frames, (unsigned long)st.rx_fallback);
    EXPECT_EQ(st.tx_fallback, fallback[s->id - 1]) << "no UDP fallback once the neighbour is resolved";
    EXPECT_EQ(st.mode, "afxdp-copy") << st.reason;
    EXPECT_EQ(st.ifname, s->ifname);
    EXPECT_GE(st.queues, 1u);
    EXPECT_GT(st.tx_frames, 100u) << "written to the TX ring";
    EXPECT_GT(st.rx_frames, 100u) << "read from the RX ring";
    EXPECT_LT(st.tx_fallback * 10, st.tx_frames) << "the UDP socket only until the neighbour was resolved";
    EXPECT_EQ(st.rx_errors, 0u);
  }
  EXPECT_GT(ra.stat(AC_FWD_STATE_XSK), 100u) << "redirected into the XSKMAP";
  EXPECT_GT(rb.stat(AC_FWD_STATE_XSK), 100u);
  EXPECT_EQ(ra.stat(AC_PASS_STATE_NO_XSK) + rb.stat(AC_PASS_STATE_NO_XSK), 0u) << "every queue had a socket";
}

TEST_F(TransportNetns, UdpBothWays) {
  open(a, nullptr);
  open(b, nullptr);
  connect();
  exchange(1000);
  for (Side* s : {&a, &b}) {
    TransportStatus st = s->transport->status();
    EXPECT_EQ(st.mode, "udp");
    EXPECT_NE(st.reason.find("no XSKMAP"), std::string::npos) << st.reason;
    EXPECT_GT(st.tx_frames, 100u);
    EXPECT_GT(st.rx_frames, 100u);
  }
}

// a writes its frames itself (AF_XDP), b's kernel receives them on a plain UDP socket: the
// kernel checks our IPv4 and UDP checksums and lengths, a stack no one here wrote.
TEST_F(TransportNetns, AfXdpFramesAreAcceptedByTheKernelStack) {
  Redirect ra(a.ns, a.ifname, a.local.addr);
  open(a, &ra);
  open(b, nullptr);
  connect();
  exchange(1000);
  TransportStatus sa = a.transport->status(), sb = b.transport->status();
  EXPECT_EQ(sa.mode, "afxdp-copy");
  EXPECT_EQ(sb.mode, "udp");
  EXPECT_GT(sa.tx_frames, 100u);
  EXPECT_GE(sb.rx_frames, sa.tx_frames + sa.tx_fallback) << "the kernel dropped none of our frames";
  std::string drops = test::sh_out("ip netns exec " + b.ns + " nstat -az Udp* 2>/dev/null | grep -E 'UdpInCsumErrors|UdpInErrors'");
  EXPECT_EQ(drops.find_first_of("123456789"), std::string::npos) << drops;
}

TEST_F(TransportNetns, AfXdpRefusedFallsBackToUdpWithTheReason) {
  Redirect ra(a.ns, a.ifname, a.local.addr);
  open(a, &ra, {7});  // veth-a has no queue 7
  open(b, nullptr);
  TransportStatus st = a.transport->status();
  EXPECT_EQ(st.mode, "udp");
  EXPECT_NE(st.reason.find("queue 7"), std::string::npos) << st.reason;
  connect();
  exchange(500);
  EXPECT_EQ(ra.stat(AC_FWD_STATE_XSK), 0u);
  EXPECT_GT(ra.stat(AC_PASS_STATE_NO_XSK), 0u) << "no socket on the queue: the redirect passed them to the stack";
}

}  // namespace
}  // namespace anychain::state
