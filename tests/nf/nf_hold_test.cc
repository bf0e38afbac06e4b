// The FTC hold queue and overflow sender of anychain-nf on real frames (docs/ftc.md 4.2 and 2.6,
// docs/nf.md "The hold queue"): NSH frames written into the host side of an instance's veth with
// AF_PACKET reach the NF's XDP program in its namespace; gaps go to the process's AF_XDP socket
// and come back out, in order, once the missing log arrives; the queue's bounds under a burst,
// expiry, and a stubbed log sent in a propagating packet. The FTC control file reaches the
// program through the supervisor. Root; a private network namespace (enter_sandbox).
#include <linux/if_packet.h>

#include "common/proc.h"
#include "nf/ftc_control.h"
#include "nf/resync.h"
#include "nf_process_fixture.h"

namespace anychain::test {
namespace {

using namespace nfproc;
using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr uint32_t kSpi = 42;

// The monitor's (instance 7, head SI 255) log of seq `seq` for the flow 10.1.0.1:40000 ->
// 198.51.100.7:9000, packets = seq, held 1
Bytes mon_log(uint32_t seq, uint8_t held = 1) {
  Bytes l = {0xff, 0xf6, 0x02, 0x2d, 0x00, held, 0x01, 0x01, 0x00, 0x07, 0x00, 0xff};
  put32(l, seq);
  append(l, {0x01, 0x00, 0x0d, 0x10, 0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23, 0x28});
  append(l, {0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(seq), 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(60 * seq)});
  append(l, {0, 0, 0});
  return l;
}
// Base header (words, MD2, IPv4, SPI 42, SI 254), flow hash, control (f, ingress 10.0.0.1)
Bytes head(uint8_t words, uint32_t hash, uint8_t f, uint8_t si = 254) {
  Bytes h = {0x0f, static_cast<uint8_t>(0xc0 | words), 0x02, 0x01, 0x00, 0x00, 0x2a, si, 0xff, 0xf6, 0x01, 0x04};
  put32(h, hash);
  append(h, {0xff, 0xf6, 0x04, 0x08, 0x00, f, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01});
  return h;
}
Bytes cat(Bytes a, const Bytes& b) {
  append(a, b);
  return a;
}
Bytes inner_packet() { return ipv4("10.1.0.1", "198.51.100.7", L4{IPPROTO_UDP, 40000, 9000, Bytes(32, 0xab)}); }

// An AF_PACKET socket on the host side of an instance's veth: frames to the NF, frames from it.
class Wire {
 public:
  Wire(const std::string& veth, uint32_t id) {
    ifindex_ = static_cast<int>(if_nametoindex(veth.c_str()));
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(AC_ETH_P_NSH));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(AC_ETH_P_NSH);
    sll.sll_ifindex = ifindex_;
    bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll);
    int big = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    host_ = mac(sh_out("cat /sys/class/net/" + veth + "/address").substr(0, 17));
    nf_ = nf::nf_mac(id);
  }
  ~Wire() { close(fd_); }
  bool ok() const { return fd_ >= 0 && ifindex_ > 0; }
  void send_nsh(const Bytes& nsh_bytes, const Bytes& inner) {
    Bytes f = eth(nf_, host_, AC_ETH_P_NSH);
    append(f, nsh_bytes);
    append(f, inner);
    ASSERT_EQ(::send(fd_, f.data(), f.size(), 0), static_cast<ssize_t>(f.size())) << strerror(errno);
  }
  // Frames from the NF until `n` arrived or `wait` passed
  std::vector<Bytes> recv(size_t n, std::chrono::milliseconds wait = 2000ms) {
    std::vector<Bytes> got;
    auto end = std::chrono::steady_clock::now() + wait;
    while (got.size() < n && std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      Bytes b(4096);
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(fd_, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (r <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      b.resize(static_cast<size_t>(r));
      got.push_back(std::move(b));
    }
    return got;
  }
  const Mac& host() const { return host_; }

 private:
  int fd_ = -1, ifindex_ = 0;
  Mac host_{}, nf_{};
};

// The monitor's sequence numbers of the frames that came back (the log's seq in each NSH)
std::vector<uint32_t> seqs(const std::vector<Bytes>& frames) {
  std::vector<uint32_t> v;
  for (const auto& f : frames) {
    const size_t at = 14 + 28;  // base, hash, control; then the log TLV
    v.push_back(f.size() >= at + 16 ? get32(f, at + 12) : 0);
  }
  return v;
}

class NfHold : public NfProcess {
 protected:
  nf::InstanceSpec replica(const std::string& name, uint32_t id) {
    nf::InstanceSpec s;
    s.name = name;
    s.veth = "nf" + name;
    s.params.kind = nf::Kind::Replica;
    s.params.instance_id = id;
    made_.push_back(prefix() + name);
    return s;
  }
  uint64_t proc(const std::string& name, const char* c) { return state(name)["process"].value(c, uint64_t{0}); }
  uint64_t ftc(const std::string& name, const char* c) {
    return state(name)["ftc"]["counters"].value(c, uint64_t{0});
  }
  bool settle(const std::function<bool()>& pred) {
    for (int i = 0; i < 200; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }
};

// f = 2, a replica hop (not the tail: the logs stay, so each frame that comes back names its
// seq). Seq 1 passes; 3 and 4 are gaps, held by the process (nothing comes back); seq 2 fills the
// gap and passes at once; then the process re-runs 3 and 4, in the order they were held, and
// they leave with held 2. The control file written through the supervisor is what makes
// instance 7 a peer.
TEST_F(NfHold, AGapIsHeldAndReleasedInOrderWhenTheMissingLogArrives) {
  supervise();
  sup_->configure({replica("r1", 8)});
  ASSERT_TRUE(drive([&] { return sup_->alive("r1"); })) << sup_->status().dump();
  nf::FtcControl c;
  c.f = 2;
  c.peers = {{7, 0, 60}};
  c.successors = {9};
  ASSERT_TRUE(sup_->set_ftc_control("r1", c).has_value());
  ASSERT_TRUE(settle([&] { return state("r1")["ftc"]["peers"].contains("7"); })) << state("r1").dump();
  Wire w("nfr1", 8);
  ASSERT_TRUE(w.ok());
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(1)), inner_packet());
  ASSERT_EQ(seqs(w.recv(1)), std::vector<uint32_t>{1});
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(3)), inner_packet());
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(4)), inner_packet());
  EXPECT_TRUE(w.recv(1, 300ms).empty()) << "gaps are held";
  ASSERT_TRUE(settle([&] { return proc("r1", "hold_depth") == 2; })) << state("r1").dump();
  EXPECT_EQ(ftc("r1", "ftc_gap"), 2u);
  EXPECT_EQ(ftc("r1", "ftc_hold_unavailable"), 0u);
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(2)), inner_packet());
  auto back = w.recv(3);
  ASSERT_EQ(seqs(back), (std::vector<uint32_t>{2, 3, 4}));
  for (const auto& f : back) {
    EXPECT_EQ(f[14 + 28 + 5], 2) << "held counted by this hop";
    EXPECT_EQ(f[14 + 7], 253) << "SI - 1";
    EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(w.host().begin(), w.host().end()));
    EXPECT_EQ(hex(Bytes(f.end() - 60, f.end())), hex(inner_packet())) << "the inner packet as sent";
  }
  // the process counts a release after the frame left: wait for the count, not only the frame
  ASSERT_TRUE(settle([&] { return proc("r1", "hold_released") == 2; })) << state("r1").dump();
  json s = state("r1");
  EXPECT_EQ(s["process"]["hold_queued"], 2u);
  EXPECT_EQ(s["process"]["hold_released"], 2u);
  EXPECT_EQ(s["process"]["hold_depth"], 0u);
  ASSERT_EQ(s["ftc"]["replicas"].size(), 1u);
  EXPECT_EQ(s["ftc"]["replicas"][0]["seq"], 4u);
  EXPECT_EQ(s["ftc"]["replicas"][0]["middlebox"], 7u);
  EXPECT_EQ(s["ftc"]["counters"]["ftc_applied"], 4u);
  // the CLI shows the same, with the control file's f and successors
  const std::string cli = std::string(ANYCHAIN_CLI) + " state r1 --run-dir " + run_dir_.string();
  json j = json::parse(sh_out(cli + " --json"));
  EXPECT_EQ(j["ftc"]["control"]["successors"], json({9}));
  EXPECT_EQ(j["ftc"]["control"]["f"], 2);
  EXPECT_EQ(j["ftc"]["replicas"][0]["seq"], 4u);
  const std::string text = sh_out(cli);
  EXPECT_NE(text.find("replica records: 1"), std::string::npos) << text;
  EXPECT_NE(text.find("hold_queued 2, hold_released 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ftc control: f 2, successors: 9"), std::string::npos) << text;
}

// A burst of gaps over the bounds (8 frames in all, 4 per partition): three partitions of 40
// frames each, one after the other. Every frame is accounted for: queued, refused as full, or
// dropped by the kernel before the socket; A fills its 4, B its 4, C finds the queue full. Partition A's gap then closes:
// its 4 frames come out in order; the others expire after the hold timeout (counted).
TEST_F(NfHold, ABurstOverflowsTheBoundsCountedAndTheRestExpires) {
  const std::string ns = prefix() + "h2";
  made_.push_back(ns);
  ASSERT_TRUE(nf::create_netns(ns).has_value());
  ASSERT_TRUE(nf::ensure_veth({"nfh2", ns, AC_NF_IFNAME, nf::nf_mac(8), AC_NF_VETH_MTU}).has_value());
  must("ip -force link set dev nfh2 xdpdrv obj " ANYCHAIN_XDP_PASS " sec xdp");
  nf::FtcControl c;
  c.f = 2;
  c.peers = {{7, 0, 60}};
  ASSERT_TRUE(nf::write_ftc_control(nf::ftc_control_path(run_dir_, "h2"), c).has_value());
  Proc p(ns, {ANYCHAIN_NF_BIN, "--name", "h2", "--kind", "replica", "--instance-id", "8", "--run-dir", run_dir_.string(),
              "--hold-frames", "8", "--hold-per-partition", "4", "--hold-timeout-ms", "3000"});
  ASSERT_TRUE(settle([&] { return std::filesystem::exists(run_dir_ / "h2.json"); }));
  Wire w("nfh2", 8);
  ASSERT_TRUE(w.ok());
  const uint32_t hashes[] = {0xa0000001, 0xb0000002, 0xc0000003};
  for (uint32_t h : hashes) {
    w.send_nsh(cat(head(20, h, 2), mon_log(1)), inner_packet());
    ASSERT_EQ(w.recv(1).size(), 1u);
  }
  constexpr int kPer = 40;
  for (uint32_t h : hashes)
    for (int i = 0; i < kPer; ++i) w.send_nsh(cat(head(20, h, 2), mon_log(3 + static_cast<uint32_t>(i))), inner_packet());
  ASSERT_TRUE(settle([&] {
    return proc("h2", "hold_queued") + proc("h2", "hold_full") + proc("h2", "hold_ring_dropped") == 3 * kPer;
  })) << state("h2").dump();
  json s = state("h2");
  EXPECT_EQ(s["ftc"]["counters"]["ftc_gap"], 3u * kPer);
  EXPECT_EQ(s["process"]["hold_queued"], 8u) << "the bound in all";
  EXPECT_EQ(s["process"]["hold_depth"], 8u);
  EXPECT_EQ(s["process"]["hold_partitions"], 2u) << "4 per partition: the first two filled it";
  EXPECT_GT(s["process"]["hold_full"].get<uint64_t>(), 0u);
  // A's gap closes: seq 2, then the 4 held frames of A (seq 3..6), in order
  w.send_nsh(cat(head(20, hashes[0], 2), mon_log(2)), inner_packet());
  auto back = w.recv(5);
  EXPECT_EQ(seqs(back), (std::vector<uint32_t>{2, 3, 4, 5, 6}));
  EXPECT_TRUE(settle([&] { return proc("h2", "hold_expired") == 4; })) << state("h2").dump();
  s = state("h2");
  EXPECT_EQ(s["process"]["hold_released"], 4u);
  EXPECT_EQ(s["process"]["hold_depth"], 0u);
}

// f = 4, the monitor: its log is over the share, so the packet leaves with the STUB and the
// process sends the whole log at once in a propagating packet of the same partition, out of the
// same veth: two frames come back.
TEST_F(NfHold, AStubbedLogLeavesInAPropagatingPacket) {
  supervise();
  sup_->configure({monitor("m9", 7)});
  ASSERT_TRUE(drive([&] { return sup_->alive("m9"); })) << sup_->status().dump();
  Wire w("nfm9", 7);
  ASSERT_TRUE(w.ok());
  w.send_nsh(head(7, 0x11223344, 4, 255), inner_packet());
  auto back = w.recv(2);
  ASSERT_EQ(back.size(), 2u) << state("m9").dump();
  const Bytes* data = nullptr;
  const Bytes* prop = nullptr;
  for (const auto& f : back) (f.size() > 14 + 80 ? data : prop) = &f;
  ASSERT_TRUE(data && prop);
  // the data packet: base, hash, control, the 16-byte stub, the inner packet
  EXPECT_EQ(hex(Bytes(data->begin() + 14 + 28, data->begin() + 14 + 44)),
            hex({0xff, 0xf6, 0x02, 0x0c, 0x02, 0x01, 0x00, 0x01, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x01}));
  // the propagating packet: control PROPAGATING, the whole log, no inner packet
  Bytes want = eth(w.host(), nf::nf_mac(7), AC_ETH_P_NSH);
  Bytes h = head(20, 0x11223344, 4);
  h[20] = AC_FTC_CTRL_PROPAGATING;
  append(want, cat(h, mon_log(1)));
  EXPECT_EQ(hex(*prop), hex(want));
  // counted once the send returned, so possibly after the frame arrived here
  ASSERT_TRUE(settle([&] { return proc("m9", "overflow_sent") == 1; })) << state("m9").dump();
  json s = state("m9");
  EXPECT_EQ(s["ftc"]["counters"]["ftc_stub"], 1u);
  EXPECT_EQ(s["process"]["overflow_sent"], 1u);
}


// The re-request (docs/ftc.md 4.3) from the process's side: log 2 is lost, log 3 is held; 1 ms
// later the process asks the agent's socket (here the test is the agent) for the record of
// middlebox 7; the test installs the head's record at seq 3 into the replica's nf_replica under
// its lock, as the agent does, and the held frame leaves before its hold timeout (1 s): it
// was released by the re-request, not by expiry. Asks are rate-limited per record (10 ms).
TEST_F(NfHold, AGapIsReRequestedFromTheAgentAndReleasedByTheInstalledRecord) {
  auto listener = nf::ResyncListener::open(nf::resync_socket_path(run_dir_.string()));
  ASSERT_TRUE(listener.has_value()) << listener.error().str();
  supervise();
  sup_->configure({replica("r3", 8)});
  ASSERT_TRUE(drive([&] { return sup_->alive("r3"); })) << sup_->status().dump();
  nf::FtcControl c;
  c.f = 2;
  c.peers = {{7, 0, 60}};
  ASSERT_TRUE(sup_->set_ftc_control("r3", c).has_value());
  ASSERT_TRUE(settle([&] { return state("r3")["ftc"]["peers"].contains("7"); })) << state("r3").dump();
  Wire w("nfr3", 8);
  ASSERT_TRUE(w.ok());
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(1)), inner_packet());
  ASSERT_EQ(seqs(w.recv(1)), std::vector<uint32_t>{1});
  const auto held_at = std::chrono::steady_clock::now();
  w.send_nsh(cat(head(20, 0x11223344, 2), mon_log(3)), inner_packet());
  std::vector<nf::ResyncAsk> asks;
  ASSERT_TRUE(settle([&] {
    (*listener)->receive([&](const nf::ResyncAsk& a) { asks.push_back(a); });
    return !asks.empty();
  })) << state("r3").dump();
  EXPECT_EQ(asks[0], (nf::ResyncAsk{8, kSpi, 0x11223344, AC_FTC_MBOX(7, 0, 255), 1}));
  EXPECT_EQ(proc("r3", "hold_depth"), 1u);
  // the head's record at seq 3 (the monitor's packets and bytes for the flow), installed
  auto maps = nf::InstanceMaps::open(run_dir_.string(), "r3");
  ASSERT_TRUE(maps.has_value()) << maps.error().str();
  ac_st_rec rec{};
  rec.seq = 3;
  rec.held = 2;
  rec.flags = AC_ST_REC_VALID;
  rec.slot[0].table = 1;
  rec.slot[0].flags = AC_ST_USED;
  rec.slot[0].klen = 13;
  rec.slot[0].vlen = 16;
  const Bytes key = {0x0a, 0x01, 0x00, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x9c, 0x40, 0x23, 0x28};
  std::memcpy(rec.slot[0].key, key.data(), key.size());
  rec.slot[0].val[7] = 3;
  rec.slot[0].val[15] = 180;
  ASSERT_TRUE(maps->install_replica(ac_st_rkey{7, kSpi << 8 | 255, 0x11223344}, rec).has_value());
  ASSERT_EQ(seqs(w.recv(1)), std::vector<uint32_t>{3});
  EXPECT_LT(std::chrono::steady_clock::now() - held_at, 900ms) << "released by the re-request, not by expiry";
  ASSERT_TRUE(settle([&] { return proc("r3", "hold_released") == 1; })) << state("r3").dump();
  json s = state("r3");
  EXPECT_EQ(s["process"]["hold_released"], 1u);
  EXPECT_EQ(s["process"]["hold_expired"], 0u);
  EXPECT_GE(s["process"]["resync_asked"].get<uint64_t>(), 1u);
  EXPECT_EQ(s["process"]["resync_unsent"], 0u);
  EXPECT_EQ(s["ftc"]["replicas"][0]["seq"], 3u);
  (*listener)->receive([&](const nf::ResyncAsk& a) { asks.push_back(a); });
  EXPECT_EQ(asks.size(), s["process"]["resync_asked"].get<uint64_t>()) << "every ask reached the agent";
  EXPECT_EQ((*listener)->malformed, 0u);
}

}  // namespace
}  // namespace anychain::test
