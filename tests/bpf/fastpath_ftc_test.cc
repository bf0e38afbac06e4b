// The fast path's part of FTC (docs/ftc.md 2.1, 5.1, 5.2, 7.2), exact bytes: the classifier
// writes the control TLV (and the partition's pending logs) for an FTC policy and not otherwise,
// to a local NSH-aware VNF and over VXLAN-GPE; a chain's last hop hands FTC packets, NSH kept, to
// the egress buffer's XSKMAP (dropped without a socket, never released); flows placed on a
// recovering instance are held back (drop_ftc_recovering) and keep their placement; the agent's
// forwarder (daemon/ftc_forwarder.*) turns the buffer's FEEDBACK into the pending map, the next
// packet of the partition carries the returned log, the buffer's RELEASED prunes it, and pending
// logs not committed in time leave in a propagating packet through the fast path.
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <xdp/xsk.h>

#include <cstring>

#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "anychain/ftc.h"
#include "fastpath_cases.h"
#include "daemon/ftc_egress.h"
#include "daemon/ftc_forwarder.h"
#include "ftc/egress_port.h"

namespace anychain::test {
namespace {

constexpr uint8_t kTtl = AC_NSH_DEFAULT_TTL - 1;  // classified, decremented by this node's SFF

std::vector<dp::PolicyRule> ftc_rule(const Flow& f, uint32_t spi, uint8_t ftc_f, bool md2 = true) {
  auto r = rule_for(f, spi);
  r[0].md2 = md2;
  r[0].ftc_f = ftc_f;
  return r;
}

// control TLV value: flags 0, f, reserved, ingress endpoint 192.0.2.1 (the fixture node's)
Bytes ctrl_tlv(uint8_t f, uint8_t flags = 0) {
  return tlv(AC_MD_CLASS, AC_TLV_FTC_CTRL, Bytes{flags, f, 0, 0, 192, 0, 2, 1});
}

// the NSH the classifier assigns to flow fl of an FTC chain, with `pending` after the control TLV
Nsh ftc_nsh(const Flow& fl, uint32_t spi, uint8_t si, uint8_t ttl, uint8_t f, const Bytes& pending = {}) {
  Nsh n;
  n.spi = spi;
  n.si = si;
  n.ttl = ttl;
  n.md_type = AC_NSH_MD_TYPE2;
  n.next_proto = fl.np();
  n.tlvs = flow_hash_tlv(fl.hash());
  append(n.tlvs, ctrl_tlv(f));
  append(n.tlvs, pending);
  return n;
}

// A returned (WRAPPED) no-op log of instance 7 at SI 255, seq 5, held 1: what the buffer sends back
Bytes returned_log() {
  return tlv(AC_MD_CLASS, AC_TLV_FTC_LOG,
             Bytes{AC_FTC_LOG_WRAPPED, 1, 0, 0, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x05});
}

TEST(FtcClassify, ControlTlvForAnFtcPolicyOnlyAndMd2Forced) {
  for (uint8_t f : {1, 4}) {
    ScopedChain sc(ftc_rule(kV4, 100, f, /*md2=*/false), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
    ASSERT_TRUE(sc.ok_);
    Counters c;
    auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
    append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, f)));
    append(want, kV4.ip());
    // base 8 + flow hash 8 + control 12 = 28 bytes: length 7 words
    EXPECT_EQ(hex(r.out), hex(want)) << "f = " << int(f);
    EXPECT_EQ(r.out[14 + 1] & 0x3f, 7) << "NSH length in words";
    EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
  }
  // the same rule without FTC: MD2 with the flow hash only
  ScopedChain sc(ftc_rule(kV4, 100, 0), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  Nsh plain = ftc_nsh(kV4, 100, 255, kTtl, 1);
  plain.tlvs = flow_hash_tlv(kV4.hash());
  Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(plain));
  append(want, kV4.ip());
  EXPECT_EQ(hex(r.out), hex(want));
}

TEST(FtcClassify, PendingLogsRideAfterTheControlTlvOfTheirPartitionOnly) {
  auto& d = FastPathEnv::dataplane();
  ScopedChain sc(ftc_rule(kV4, 100, 1), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  Bytes logs = returned_log();
  append(logs, returned_log());
  logs[16 + 4 + 11] = 6;  // the second one: seq 6
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), logs).has_value());
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash() ^ 1, returned_log()).has_value()) << "another partition";
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, 1, logs)));
  append(want, kV4.ip());
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(r.out[14 + 1] & 0x3f, 15) << "28 + 32 bytes";

  // over VXLAN-GPE to the remote instance (the chain's first service there)
  {
    ScopedChain remote(ftc_rule(kV4, 100, 1), 100, 255, kSvcRemote, false, std::pair{kSvcLocal, false});
    ASSERT_TRUE(remote.ok_);
    Counters c;
    auto g = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
    Bytes inner = nsh(ftc_nsh(kV4, 100, 255, kTtl, 1, logs));
    append(inner, kV4.ip());
    Bytes gwant = eth(kCore0Peer, kCore0, ETH_P_IP);
    append(gwant, gpe_outer(kLocalEndpoint, kRemoteEndpoint, 0xc000 | (kV4.hash() & 0x3fff), inner.size(),
                            AC_GPE_NP_NSH, AC_GPE_FLAG_I | AC_GPE_FLAG_P, 7));
    append(gwant, inner);
    EXPECT_EQ(g.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(g.out), hex(gwant));
    EXPECT_EQ(c.delta(AC_FWD_REMOTE), 1u);
  }
  ASSERT_TRUE(d.set_policies(ftc_rule(kV4, 100, 1)).has_value()) << "the inner scope restored the fixture's";
  // the forwarder pruned them: the packet carries the control TLV only
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), {}).has_value());
  r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, 1)));
  append(want, kV4.ip());
  EXPECT_EQ(hex(r.out), hex(want));
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash() ^ 1, {}).has_value());
  // bad blobs are refused by the writer
  EXPECT_FALSE(d.set_ftc_pending(100, 1, Bytes(3, 0)).has_value()) << "not whole words";
  EXPECT_FALSE(d.set_ftc_pending(100, 1, Bytes(AC_FTC_PENDING_MAX + 4, 0)).has_value()) << "over the room";
  EXPECT_FALSE(d.set_ftc_pending(0, 1, Bytes(4, 0)).has_value()) << "SPI 0";
}

// Returned logs the frame has no headroom for: a frame keeps XDP_PACKET_HEADROOM (256 bytes)
// less the kernel's xdp_frame (a BPF_PROG_TEST_RUN frame, like one redirected into a veth), so
// 208 bytes of pending logs (236 of NSH) cannot be pushed. The packet is not dropped: it goes
// with the control TLV only, counted as ftc_pending_no_room, and the logs stay pending; a blob
// that fits rides on the next packet.
TEST(FtcClassify, PendingLogsWithoutHeadroomStayPendingAndThePacketGoesOn) {
  auto& d = FastPathEnv::dataplane();
  ScopedChain sc(ftc_rule(kV4, 100, 1), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  Bytes big;
  for (int i = 0; i < 13; ++i) append(big, returned_log());
  ASSERT_EQ(big.size(), 208u);
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), big).has_value());
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  EXPECT_EQ(r.verdict, XDP_REDIRECT);
  Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, 1)));
  append(want, kV4.ip());
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(c.delta(AC_NOTE_FTC_PENDING_NO_ROOM), 1u);
  EXPECT_EQ(c.delta(AC_DROP_NO_ROOM), 0u);
  ac_ftc_pending_key key{.spi = 100, .hash = kV4.hash()};
  ac_ftc_pending val{};
  ASSERT_EQ(bpf_map_lookup_elem(d.map_fd("ac_ftc_pending"), &key, &val), 0);
  EXPECT_EQ(val.len, 208u) << "still pending";
  // what fits rides on the packet as before
  Bytes logs = returned_log();
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), logs).has_value());
  r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
  want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, 1, logs)));
  append(want, kV4.ip());
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(c.delta(AC_NOTE_FTC_PENDING_NO_ROOM), 1u);
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), {}).has_value());
}

TEST(FtcClassify, NshUnawareInstanceRefusesFtcPackets) {
  // chain 200 is the proxied instance: the proxy keeps one NSH per flow, logs cannot cross it
  Flow f = kV4;
  f.l4.proto = IPPROTO_TCP;
  f.l4.dport = 80;
  f.dst = "203.0.113.200";
  auto rules = ftc_rule(f, 200, 1);
  ScopedChain sc(rules, 200, 255, kSvcProxy, false, std::pair{kSvcProxy, false});
  ASSERT_TRUE(sc.ok_);
  Counters c;
  auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, f.ip()));
  EXPECT_EQ(r.verdict, XDP_DROP);
  EXPECT_EQ(c.delta(AC_DROP_FTC_PROXY), 1u);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_PROXY), 0u);
}

// An AF_XDP socket on vnf0's queue 0 (copy mode), for the buffer's XSKMAP slot of vnf0.
class BufferSocket {
 public:
  BufferSocket() {
    area_ = mmap(nullptr, kFrames * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area_ == MAP_FAILED) return;
    if (xsk_umem__create(&umem_, area_, kFrames * kFrameSize, &fill_, &comp_, nullptr)) return;
    xsk_socket_config xc{};
    xc.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
    xc.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    xc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    xc.bind_flags = XDP_COPY;
    err_ = xsk_socket__create(&xsk_, "vnf0", 0, umem_, &rx_, &tx_, &xc);
  }
  ~BufferSocket() {
    if (xsk_) xsk_socket__delete(xsk_);
    if (umem_) xsk_umem__delete(umem_);
    if (area_ != MAP_FAILED) munmap(area_, kFrames * kFrameSize);
  }
  int fd() const { return xsk_ ? xsk_socket__fd(xsk_) : -1; }
  int err() const { return err_; }

 private:
  static constexpr uint32_t kFrames = 64, kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;
  void* area_ = MAP_FAILED;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{}, tx_{};
  xsk_ring_cons comp_{}, rx_{};
  int err_ = -1;
};

TEST(FtcLastHop, FtcPacketsToTheBufferSocketNshKeptOrDroppedWithoutOne) {
  // chain 100 ends at SI 253; a packet back from the local VNF at SI 253 with the control TLV
  Nsh n = ftc_nsh(kV4, 100, 253, 40, 1, returned_log());
  Bytes in = nsh_frame(n);
  Nsh dec = n;
  dec.ttl = 39;  // this SFF decrements before its lookup
  Bytes kept = nsh_frame(dec);
  int xskmap = FastPathEnv::dataplane().map_fd("ac_ftc_xsk");
  ASSERT_GE(xskmap, 0);
  uint32_t slot = AC_XSK_SLOT(FastPathEnv::ifindex("vnf0"), 0);
  {
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_DROP) << "no socket: never released uncommitted";
    EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 1u);
    EXPECT_EQ(c.delta(AC_FWD_LAST_HOP) + c.delta(AC_PASS_LAST_HOP), 0u);
  }
  BufferSocket s;
  ASSERT_EQ(s.err(), 0) << "xsk_socket__create: " << strerror(-s.err());
  int fd = s.fd();
  ASSERT_EQ(bpf_map_update_elem(xskmap, &slot, &fd, BPF_ANY), 0) << strerror(errno);
  {
    Counters c;
    auto r = run_prog(prog(), "vnf0", in);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(r.out), hex(kept)) << "the NSH stays for the buffer";
    EXPECT_EQ(c.delta(AC_FWD_FTC_BUFFER), 1u);
    EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 0u);
  }
  {
    // another interface's packet does not use vnf0's socket
    Counters c;
    Bytes inner = nsh(n);
    append(inner, kV4.ip());
    Bytes gin = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(gin, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size()));
    append(gin, inner);
    EXPECT_EQ(run_prog(prog(), "core0", gin).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 1u);
  }
  {
    // without the control TLV, the same chain end pops and routes as always
    Counters c;
    Nsh plain = n;
    plain.tlvs = flow_hash_tlv(kV4.hash());
    auto r = run_prog(prog(), "vnf0", nsh_frame(plain));
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(hex(r.out), hex(frame(kCore0Peer, kCore0, ETH_P_IP, kV4.ip(63))));
    EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u);
    EXPECT_EQ(c.delta(AC_FWD_FTC_BUFFER), 0u);
  }
  ASSERT_EQ(bpf_map_delete_elem(xskmap, &slot), 0);
}

// A log TLV of middlebox (id, inc, SI 254) at seq, held once, no writes (a no-op), flags as given
Bytes nat_log(uint32_t seq, uint16_t id = 9, uint8_t inc = 0, uint8_t flags = 0) {
  return tlv(AC_MD_CLASS, AC_TLV_FTC_LOG,
             Bytes{flags, 1, 0, 0, static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), inc, 0xfe,
                   static_cast<uint8_t>(seq >> 24), static_cast<uint8_t>(seq >> 16), static_cast<uint8_t>(seq >> 8),
                   static_cast<uint8_t>(seq)});
}

// The chain's end releases an FTC packet itself when the egress buffer's entry for its partition
// (ac_ftc_egress, written by the agent) covers every log it carries and nothing of it is held,
// exactly as the buffer would release it: NSH popped, routed, the same bytes as a plain packet.
// Every other case goes to the buffer (here: no socket, so dropped, never released).
TEST(FtcLastHop, CommittedPacketsLeaveAtTheChainsEndWithoutTheBuffer) {
  const int fd = FastPathEnv::dataplane().map_fd("ac_ftc_egress");
  ASSERT_GE(fd, 0);
  const ac_ftc_egress_key key{static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), 100, kV4.hash()};
  auto entry = [&](uint32_t slow, std::vector<std::pair<uint32_t, uint32_t>> c) {
    ac_ftc_egress e{};
    e.slow = slow;
    for (auto [m, q] : c) {
      e.mbox[e.n] = m;
      e.seq[e.n] = q;
      e.n++;
    }
    ASSERT_EQ(bpf_map_update_elem(fd, &key, &e, BPF_ANY), 0) << strerror(errno);
  };
  auto drop_entry = [&] { bpf_map_delete_elem(fd, &key); };
  const Bytes routed = frame(kCore0Peer, kCore0, ETH_P_IP, kV4.ip(63));
  // released here: popped and routed, counted as such; false: to the buffer (no socket: dropped)
  auto released = [&](const Bytes& tlvs, const std::string& why) {
    Counters c;
    Nsh n = ftc_nsh(kV4, 100, 253, 40, 1, tlvs);
    auto r = run_prog(prog(), "vnf0", nsh_frame(n));
    if (c.delta(AC_NOTE_FTC_COMMITTED) == 1) {
      EXPECT_EQ(r.verdict, XDP_REDIRECT) << why;
      EXPECT_EQ(hex(r.out), hex(routed)) << why << ": the packet as a plain chain's end routes it";
      EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 1u) << why;
      EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 0u) << why;
      return true;
    }
    EXPECT_EQ(c.delta(AC_NOTE_FTC_COMMITTED), 0u) << why;
    EXPECT_EQ(r.verdict, XDP_DROP) << why;
    EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 1u) << why << ": to the buffer";
    EXPECT_EQ(c.delta(AC_FWD_LAST_HOP) + c.delta(AC_PASS_LAST_HOP), 0u) << why;
    return false;
  };
  const uint32_t nat = AC_FTC_MBOX(9, 0, 254), mon = AC_FTC_MBOX(7, 0, 254);
  drop_entry();
  EXPECT_FALSE(released(nat_log(3), "no entry, seq 3"));
  EXPECT_TRUE(released(nat_log(0), "no entry, seq 0: the middlebox never wrote for the partition"));
  entry(0, {{nat, 3}});
  EXPECT_TRUE(released(nat_log(3), "committed up to its seq"));
  EXPECT_TRUE(released(nat_log(2), "committed beyond its seq"));
  EXPECT_FALSE(released(nat_log(4), "seq 4, committed up to 3"));
  EXPECT_FALSE(released(nat_log(3, 9, 1), "another incarnation: the buffer fences or waits"));
  EXPECT_FALSE(released(nat_log(0, 9, 1), "another incarnation at seq 0"));
  EXPECT_FALSE(released(nat_log(3, 9, 0, AC_FTC_LOG_WRAPPED), "a returned log"));
  Bytes two = nat_log(3);
  append(two, nat_log(1, 7));
  EXPECT_FALSE(released(two, "the second log's middlebox has no entry"));
  Bytes with_commit = nat_log(3);
  append(with_commit, tlv(AC_MD_CLASS, AC_TLV_FTC_COMMIT, Bytes{0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1}));
  EXPECT_FALSE(released(with_commit, "a commit TLV: the buffer learns it"));
  {
    Counters c;
    Nsh n = ftc_nsh(kV4, 100, 253, 40, 1, nat_log(3));
    n.tlvs = flow_hash_tlv(kV4.hash());
    append(n.tlvs, ctrl_tlv(1, AC_FTC_CTRL_PROPAGATING));
    append(n.tlvs, nat_log(3));
    EXPECT_EQ(run_prog(prog(), "vnf0", nsh_frame(n)).verdict, XDP_DROP) << "a propagating packet: the buffer's";
    EXPECT_EQ(c.delta(AC_DROP_FTC_NO_BUFFER), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_FTC_COMMITTED), 0u);
  }
  entry(0, {{nat, 3}, {mon, 1}});
  EXPECT_TRUE(released(two, "both logs committed"));
  entry(1, {{nat, 3}, {mon, 1}});
  EXPECT_FALSE(released(nat_log(3), "packets of the partition held in the buffer: it keeps their order"));
  {
    // another interface's entry does not cover this one's packets
    drop_entry();
    ac_ftc_egress_key k2 = key;
    k2.ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("core0"));
    ac_ftc_egress e{};
    e.n = 1;
    e.mbox[0] = nat;
    e.seq[0] = 3;
    ASSERT_EQ(bpf_map_update_elem(fd, &k2, &e, BPF_ANY), 0);
    EXPECT_FALSE(released(nat_log(3), "core0's entry, a packet on vnf0"));
    bpf_map_delete_elem(fd, &k2);
  }
  drop_entry();
}

TEST(FtcRecovering, PlacedFlowsAreHeldBackAndKeepTheirPlacement) {
  auto& d = FastPathEnv::dataplane();
  PinCpu pin;
  ScopedChain sc(ftc_rule(kV4, 100, 1), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  Bytes in = frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip());
  ASSERT_EQ(run_prog(prog(), "src0", in).verdict, XDP_REDIRECT) << "placed on the local instance";
  ASSERT_TRUE(d.set_instance_recovering(kInstLocal).has_value());
  {
    Counters c;
    auto r = run_prog(prog(), "src0", in);
    EXPECT_EQ(r.verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 1u);
    EXPECT_EQ(c.delta(AC_NOTE_AFFINITY_NEW), 0u) << "not placed elsewhere";
  }
  {
    // a new flow whose WCMP bucket names the recovering instance waits too
    Flow other = kV4;
    other.l4.sport = 4242;
    Counters c;
    EXPECT_EQ(run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, other.ip())).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 1u);
    EXPECT_EQ(c.delta(AC_DROP_NO_INSTANCE), 0u);
  }
  {
    // VXLAN-GPE from a node that placed the flow on it (VNI names it): held back as well
    Counters c;
    Nsh n = ftc_nsh(kV4, 100, 255, 40, 1);
    Bytes inner = nsh(n);
    append(inner, kV4.ip());
    Bytes gin = eth(kCore0, kCore0Peer, ETH_P_IP);
    append(gin, gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size(), AC_GPE_NP_NSH,
                          AC_GPE_FLAG_I | AC_GPE_FLAG_P, kInstLocal));
    append(gin, inner);
    EXPECT_EQ(run_prog(prog(), "core0", gin).verdict, XDP_DROP);
    EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 1u);
    EXPECT_EQ(c.delta(AC_DROP_INSTANCE_GONE), 0u);
  }
  // the replacement is live again: the flow resumes there
  dp::Instance local{.id = kInstLocal, .local = true, .nsh_aware = true,
                     .ifindex = static_cast<uint32_t>(FastPathEnv::ifindex("vnf0")), .mac = kVnf0Peer,
                     .if_mac = kVnf0Host, .service_id = kSvcLocal};
  ASSERT_TRUE(d.set_instance(local).has_value());
  Counters c;
  EXPECT_EQ(run_prog(prog(), "src0", in).verdict, XDP_REDIRECT);
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u);
  EXPECT_EQ(c.delta(AC_DROP_FTC_RECOVERING), 0u);
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// vnf0 with the fast path attached natively and the egress buffer's socket bound there; frames
// sent from vnf0p arrive as from the chain's last VNF. core0p captures what is routed out.
struct BufferRig {
  dp::Dataplane& d = FastPathEnv::dataplane();
  int vnf0 = FastPathEnv::ifindex("vnf0");
  int tx = -1;
  sockaddr_ll to{};
  std::unique_ptr<ftc::EgressPort> port;
  bool ok = false;
  // egress: the port writes ac_ftc_egress as anychaind's does
  explicit BufferRig(bool egress = false) {
    must("ip link set core0p up && ethtool -K core0p gro on >/dev/null");  // receives XDP redirects
    // what core0p receives is not routed back out of core0 by this sandbox's stack (a loop that
    // would flood the capture); vnf0's forwarding, which the fast path's FIB lookup needs, stays
    must("sysctl -qw net.ipv4.conf.core0p.forwarding=0");
    if (bpf_xdp_attach(vnf0, d.prog_fd(), XDP_FLAGS_DRV_MODE, nullptr) != 0) return;
    ftc::EgressOptions o;
    o.ifname = "vnf0";
    o.xskmap_fd = d.map_fd("ac_ftc_xsk");
    o.prog_fd = d.prog_fd();
    o.egress_fd = egress ? d.map_fd("ac_ftc_egress") : -1;
    o.frames = 64;
    auto p = ftc::EgressPort::open(o);
    if (!p) {
      ADD_FAILURE() << p.error().str();
      return;
    }
    port = std::move(*p);
    tx = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = FastPathEnv::ifindex("vnf0p");
    to.sll_halen = 6;
    ok = tx >= 0;
  }
  ~BufferRig() {
    if (tx >= 0) close(tx);
    port.reset();
    bpf_xdp_detach(vnf0, XDP_FLAGS_DRV_MODE, nullptr);
    must("sysctl -qw net.ipv4.conf.core0p.forwarding=1");
  }
  // send f from vnf0p and poll the buffer until it read want_rx frames in all
  void send(const Bytes& f, uint64_t want_rx) {
    ASSERT_EQ(sendto(tx, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(f.size()));
    for (int i = 0; i < 200 && port->stats().rx < want_rx; ++i) {
      pollfd pf{port->fds()[0], POLLIN, 0};
      ::poll(&pf, 1, 10);
      port->poll(now_ns());
    }
    ASSERT_EQ(port->stats().rx, want_rx);
  }
};

// What the fast path routes out of core0 (captured on its peer core0p) for 203.0.113.10, the
// fixture flows' destination: frames in arrival order.
struct Core0Capture {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_IP));
  Core0Capture() {
    sockaddr_ll at{};
    at.sll_family = AF_PACKET;
    at.sll_protocol = htons(ETH_P_IP);
    at.sll_ifindex = FastPathEnv::ifindex("core0p");
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) {
      close(fd);
      fd = -1;
    }
  }
  ~Core0Capture() {
    if (fd >= 0) close(fd);
  }
  Core0Capture(const Core0Capture&) = delete;
  Core0Capture& operator=(const Core0Capture&) = delete;
  // What arrived so far; with settle_ms, what arrives within that time too
  std::vector<Bytes> take(int settle_ms = 0) const {
    std::vector<Bytes> out;
    uint8_t buf[2048];
    for (int waited = 0;; waited += 5) {
      for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        Bytes b(buf, buf + n);
        if (n >= 34 && b[30] == 203 && b[31] == 0 && b[32] == 113 && b[33] == 10) out.push_back(b);
      }
      if (waited >= settle_ms) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
};

// The buffer with a real XDP attach: the fast path runs natively on vnf0; the chain's last VNF
// (behind vnf0) sends FTC packets at chain 100's end (SI 253). The first carries a log held once
// (f = 1: not yet f + 1 times), so the egress buffer's AF_XDP socket holds it and nothing leaves
// the node; the second brings the tail's commit of that log: both are released, in order, their
// FTC TLVs removed, re-run through the fast path, which pops the NSH and routes them out of core0.
TEST(FtcEgressBuffer, HeldInTheAfXdpSocketUntilCommittedThenReleasedInOrder) {
  BufferRig rig;
  ASSERT_TRUE(rig.ok);
  auto& port = rig.port;
  Core0Capture cap;
  ASSERT_GE(cap.fd, 0);
  auto captured = [&] { return cap.take(); };
  auto send_and_poll = [&](const Bytes& f, uint64_t want_rx) { rig.send(f, want_rx); };
  // a no-op log of middlebox (7, incarnation 0, SI 254) at seq 1, held once
  Bytes log = tlv(AC_MD_CLASS, AC_TLV_FTC_LOG, Bytes{0, 1, 0, 0, 0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  Bytes commit = tlv(AC_MD_CLASS, AC_TLV_FTC_COMMIT, Bytes{0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  Bytes first = nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log));
  // the same partition (the NSH's flow hash), another inner packet, to tell them apart
  Flow other = kV4;
  other.l4.sport = 4242;
  Bytes second = nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, commit), other.ip());
  (void)captured();
  Counters c;
  send_and_poll(first, 1);
  EXPECT_EQ(c.delta(AC_FWD_FTC_BUFFER), 1u);
  auto s = port->stats();
  EXPECT_EQ(s.held_now, 1u) << "held until its log is held f + 1 times";
  EXPECT_EQ(s.released, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(captured().empty()) << "nothing left the chain before the commit";
  auto fb = port->take_feedback();
  ASSERT_EQ(fb.size(), 1u) << "the log goes back to the ingress forwarder";
  EXPECT_EQ(fb[0].ingress, 0xc0000201u) << "192.0.2.1, from the control TLV";
  ASSERT_EQ(fb[0].logs.size(), 1u);
  EXPECT_TRUE(fb[0].logs[0].flags & AC_FTC_LOG_WRAPPED);

  send_and_poll(second, 2);
  s = port->stats();
  EXPECT_EQ(s.held_now, 0u);
  EXPECT_EQ(s.released, 2u);
  EXPECT_EQ(c.delta(AC_FWD_LAST_HOP), 2u) << "the re-runs popped the NSH and routed";
  std::vector<Bytes> got;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (auto& b : captured()) got.push_back(b);
  }
  ASSERT_EQ(got.size(), 2u) << [&] {
    std::string t;
    for (auto& b : got) t += hex(b) + "\n";
    return t;
  }();
  EXPECT_EQ(hex(got[0]), hex(frame(kCore0Peer, kCore0, ETH_P_IP, kV4.ip(63)))) << "the held one first";
  EXPECT_EQ(hex(got[1]), hex(frame(kCore0Peer, kCore0, ETH_P_IP, other.ip(63))));
}

// The buffer's port writes what it knows of each partition into ac_ftc_egress after every frame
// it reads (natively attached fast path, real AF_XDP socket): held packets make the partition
// slow; once a commit released them, the next packet whose log is committed leaves at the chain's
// end itself, never reaching the socket, with the bytes a release would have. Logs the commit
// vector covers are not returned to the forwarder.
TEST(FtcEgressBuffer, ItsCommitVectorLetsTheChainsEndReleaseCommittedPacketsItself) {
  BufferRig rig(true);
  ASSERT_TRUE(rig.ok);
  auto& port = rig.port;
  const int fd = rig.d.map_fd("ac_ftc_egress");
  const ac_ftc_egress_key key{static_cast<uint32_t>(rig.vnf0), 100, kV4.hash()};
  bpf_map_delete_elem(fd, &key);
  auto entry = [&] {
    ac_ftc_egress e{};
    EXPECT_EQ(bpf_map_lookup_elem(fd, &key, &e), 0) << "the port wrote the partition's entry";
    return e;
  };
  Core0Capture cap;
  ASSERT_GE(cap.fd, 0);
  auto captured = [&] { return cap.take(100); };
  auto log = [](uint32_t seq) {
    return tlv(AC_MD_CLASS, AC_TLV_FTC_LOG,
               Bytes{0, 1, 0, 0, 0x00, 0x07, 0x00, 0xfe, 0, 0, 0, static_cast<uint8_t>(seq)});
  };
  Bytes commit = tlv(AC_MD_CLASS, AC_TLV_FTC_COMMIT, Bytes{0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  auto flow = [](uint16_t sport) {
    Flow f = kV4;
    f.l4.sport = sport;
    return f;
  };
  (void)captured();
  Counters c;
  rig.send(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log(1))), 1);
  EXPECT_EQ(port->stats().held_now, 1u);
  EXPECT_EQ(entry().slow, 1u) << "a packet of the partition is held: the chain's end must not overtake it";
  ASSERT_EQ(port->take_feedback().size(), 1u) << "the uncommitted log goes back";
  rig.send(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, commit), flow(4242).ip()), 2);
  EXPECT_EQ(port->stats().released, 2u);
  ac_ftc_egress e = entry();
  EXPECT_EQ(e.slow, 0u);
  ASSERT_EQ(e.n, 1u) << "the partition's commit vector";
  EXPECT_EQ(e.mbox[0], AC_FTC_MBOX(7, 0, 254));
  EXPECT_EQ(e.seq[0], 1u);
  EXPECT_EQ(port->stats().egress_writes, 2u) << "one write per frame read";
  EXPECT_EQ(port->stats().egress_write_failed, 0u);
  EXPECT_EQ(captured().size(), 2u) << "both released through the buffer";

  // the next packet carries the same, committed, sequence: the chain's end releases it
  const Bytes third = nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log(1)), flow(4343).ip());
  ASSERT_EQ(sendto(rig.tx, third.data(), third.size(), 0, reinterpret_cast<sockaddr*>(&rig.to), sizeof rig.to),
            static_cast<ssize_t>(third.size()));
  auto got = captured();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(hex(got[0]), hex(frame(kCore0Peer, kCore0, ETH_P_IP, flow(4343).ip(63)))) << "as a release routes it";
  EXPECT_EQ(c.delta(AC_NOTE_FTC_COMMITTED), 1u);
  EXPECT_EQ(c.delta(AC_FWD_FTC_BUFFER), 2u) << "only the first two went to the buffer";
  port->poll(now_ns());
  EXPECT_EQ(port->stats().rx, 2u) << "the socket never saw it";

  // a packet with a later, uncommitted, sequence goes to the buffer and makes the partition slow;
  // one after it whose log is committed waits behind it there, and its covered log is not returned
  rig.send(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log(2)), flow(4444).ip()), 3);
  EXPECT_EQ(port->stats().held_now, 1u);
  EXPECT_EQ(entry().slow, 1u);
  auto fb = port->take_feedback();
  ASSERT_EQ(fb.size(), 1u);
  ASSERT_EQ(fb[0].logs.size(), 1u);
  EXPECT_EQ(fb[0].logs[0].seq, 2u);
  rig.send(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log(1)), flow(4545).ip()), 4);
  EXPECT_EQ(port->stats().held_now, 2u) << "behind the held one, in order";
  EXPECT_TRUE(port->take_feedback().empty()) << "a committed log is not returned";
  EXPECT_EQ(c.delta(AC_NOTE_FTC_COMMITTED), 1u);
  bpf_map_delete_elem(fd, &key);
}

TEST(FtcForwarder, ReturnedLogRidesOnTheNextPacketCommitReleasesAndPrunes) {
  BufferRig rig;
  ASSERT_TRUE(rig.ok);
  auto& d = rig.d;
  auto& port = rig.port;
  auto send_and_poll = [&](const Bytes& f, uint64_t want_rx) { rig.send(f, want_rx); };
  // the chain's last middlebox (7, SI 254) logged seq 1; its packet reaches the buffer held once
  Bytes log = tlv(AC_MD_CLASS, AC_TLV_FTC_LOG, Bytes{0, 1, 0, 0, 0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  Bytes commit = tlv(AC_MD_CLASS, AC_TLV_FTC_COMMIT, Bytes{0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  send_and_poll(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, log)), 1);
  ASSERT_EQ(port->stats().held_now, 1u);
  auto fb = port->take_feedback();
  ASSERT_EQ(fb.size(), 1u);

  // the ingress node's forwarder (this node: 192.0.2.1, the control TLV's ingress)
  ftc::ForwarderLimits lim;
  lim.propagate_after_ns = 3'600'000'000'000ULL;  // not in this part
  daemon::FtcForwarder fw(d, 0xc0000201, lim);
  fw.feedback(fb[0]);
  EXPECT_EQ(fw.status()["pending_writes"], 1);
  Bytes returned = tlv(AC_MD_CLASS, AC_TLV_FTC_LOG, Bytes{AC_FTC_LOG_WRAPPED, 1, 0, 0, 0x00, 0x07, 0x00, 0xfe, 0, 0, 0, 1});
  {
    ScopedChain sc(ftc_rule(kV4, 100, 1), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
    ASSERT_TRUE(sc.ok_);
    auto r = run_prog(prog(), "src0", frame(kSrc0, kSrcHost, ETH_P_IP, kV4.ip()));
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    Bytes want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
    append(want, nsh(ftc_nsh(kV4, 100, 255, kTtl, 1, returned)));
    append(want, kV4.ip());
    EXPECT_EQ(hex(r.out), hex(want)) << "the next packet of the partition carries the returned log, WRAPPED";
  }
  ASSERT_TRUE(d.set_policies(ftc_rule(kV4, 100, 1)).has_value());
  // a feedback naming another ingress node is not this forwarder's
  auto foreign = fb[0];
  foreign.ingress = 0xc0000202;
  fw.feedback(foreign);
  EXPECT_EQ(fw.status()["foreign_ingress"], 1);

  // that packet came round the chain: the log's tail committed it; the buffer releases the held
  // packet and tells the forwarder, which prunes the pending log
  Flow other = kV4;
  other.l4.sport = 4242;
  send_and_poll(nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, commit), other.ip()), 2);
  auto s = port->stats();
  EXPECT_EQ(s.held_now, 0u);
  EXPECT_EQ(s.released, 2u) << "the held packet left with the one that brought the commit";
  auto rel = port->take_released();
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].ingress, 0xc0000201u);
  EXPECT_EQ(rel[0].flow.spi, 100u);
  EXPECT_EQ(rel[0].flow.hash, kV4.hash());
  ASSERT_EQ(rel[0].cv.size(), 1u);
  EXPECT_EQ(rel[0].cv.begin()->second.second, 1u);
  EXPECT_TRUE(port->take_released().empty()) << "once per change";
  ac_ftc_pending_key key{.spi = 100, .hash = kV4.hash()};
  ac_ftc_pending val{};
  ASSERT_EQ(bpf_map_lookup_elem(d.map_fd("ac_ftc_pending"), &key, &val), 0) << "pending until RELEASED";
  fw.released(rel[0].flow, rel[0].cv);
  EXPECT_NE(bpf_map_lookup_elem(d.map_fd("ac_ftc_pending"), &key, &val), 0) << "pruned: the entry is gone";
  EXPECT_EQ(fw.logic().flows(), 0u);
}

TEST(FtcForwarder, UncommittedLogsLeaveInAPropagatingPacketThroughTheFastPath) {
  auto& d = FastPathEnv::dataplane();
  ScopedChain sc(ftc_rule(kV4, 100, 1), 100, 255, kSvcLocal, false, std::pair{kSvcLocal, false});
  ASSERT_TRUE(sc.ok_);
  ftc::ForwarderLimits lim;
  lim.propagate_after_ns = 300'000'000;  // 300 ms: "not due yet" holds on a loaded host or in a TCG VM
  daemon::FtcForwarder fw(d, 0xc0000201, lim);
  ftc::Feedback fb;
  fb.flow = {100, kV4.hash()};
  fb.ingress = 0xc0000201;
  fb.f = 1;
  ftc::Log l;
  l.flags = AC_FTC_LOG_WRAPPED;
  l.count = 0;
  l.mbox = {7, 0, 254};
  l.seq = 2;
  fb.logs.push_back(l);
  fw.feedback(fb);
  fw.on_timer("src0");
  EXPECT_EQ(fw.status()["propagating"], 0) << "not due yet";
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  Counters c;
  fw.on_timer("src0");
  EXPECT_EQ(fw.status()["propagating"], 1) << fw.status().dump();
  EXPECT_EQ(fw.status()["propagate_failed"], 0) << fw.status().dump();
  EXPECT_EQ(c.delta(AC_FWD_LOCAL_NSH), 1u) << "placed like the flow's packets: to the SI 255 instance";
  // the frame that went in: NSH only, SI 255, control PROPAGATING, the pending log
  auto mac = dataplane::interface_mac("src0");
  ASSERT_TRUE(mac.has_value());
  auto f = daemon::propagating_frame(fb.flow, 1, 0xc0000201, fb.logs, *mac);
  ASSERT_TRUE(f.has_value()) << f.error().str();
  Nsh want;
  want.spi = 100;
  want.si = 255;
  want.ttl = AC_NSH_DEFAULT_TTL;
  want.md_type = AC_NSH_MD_TYPE2;
  want.next_proto = AC_NSH_NP_IPV4;
  want.tlvs = flow_hash_tlv(kV4.hash());
  append(want.tlvs, ctrl_tlv(1, AC_FTC_CTRL_PROPAGATING));
  append(want.tlvs, tlv(AC_MD_CLASS, AC_TLV_FTC_LOG, Bytes{AC_FTC_LOG_WRAPPED, 1, 0, 0, 0, 7, 0, 0xfe, 0, 0, 0, 2}));
  EXPECT_EQ(hex(Bytes(f->begin() + 14, f->end())), hex(nsh(want)));
  ASSERT_TRUE(d.set_ftc_pending(100, kV4.hash(), {}).has_value());
}

// An NF's veth deleted with its namespace and made again under its name (the NF restarted) is a
// new interface: the egress buffer's sockets were bound to the old one's XSKMAP slot, so the
// chain's last-hop packets from the new one found no socket and were all dropped
// (drop_ftc_no_buffer: the chain carried nothing after a NAT's recovery, ftc_recovery_lab).
// FtcEgress binds the new one.
TEST(FtcEgressBuffer, AnInterfaceMadeAgainUnderItsNameIsBoundAgain) {
  auto& d = FastPathEnv::dataplane();
  const std::string up = "ip link set egr0 up && ip link set egr0p up";
  must("ip link add egr0 type veth peer name egr0p && " + up);
  std::vector<uint32_t> described;
  // egr0 plays vnf0's part (the local VNF's veth, with its MAC, so nsh_frame()'s frames are for it)
  auto describe = [&] {
    described.push_back(static_cast<uint32_t>(FastPathEnv::ifindex("egr0")));
    return d.set_interface(described.back(), AC_IF_VNF, kInstLocal, kVnf0Host).has_value();
  };
  struct Gone {
    dp::Dataplane& d;
    std::vector<uint32_t>& described;
    ~Gone() {
      for (auto i : described) (void)d.del_interface(i);
      (void)system("ip link del egr0 2>/dev/null");
    }
  } gone{d, described};
  ASSERT_TRUE(describe());
  daemon::FtcEgress egress(d, ftc::BufferLimits{.packets = 64, .bytes = 1u << 20, .per_flow = 0, .max_hold_ns = 0});
  Bytes in = nsh_frame(ftc_nsh(kV4, 100, 253, 40, 1, returned_log()));  // at chain 100's end
  auto to_buffer = [&] {
    Counters c;
    auto r = run_prog(prog(), "egr0", in);
    return r.verdict == XDP_REDIRECT && c.delta(AC_FWD_FTC_BUFFER) == 1 && c.delta(AC_DROP_FTC_NO_BUFFER) == 0;
  };
  egress.ensure({"egr0"});
  ASSERT_TRUE(to_buffer()) << egress.status().dump();
  const int first = FastPathEnv::ifindex("egr0");
  must("ip link del egr0 && ip link add egr0 type veth peer name egr0p && " + up);
  ASSERT_NE(FastPathEnv::ifindex("egr0"), first);
  ASSERT_TRUE(describe());
  EXPECT_FALSE(to_buffer()) << "no socket on the new interface yet";
  egress.ensure({"egr0"});
  EXPECT_TRUE(to_buffer()) << "bound again on the new interface: " << egress.status().dump();
  auto st = egress.status();
  EXPECT_EQ(st["rebound"], 1u);
  EXPECT_EQ(st["ports"]["egr0"]["ifindex"], FastPathEnv::ifindex("egr0"));
  egress.ensure({"egr0"});
  EXPECT_EQ(egress.status()["rebound"], 1u) << "the same interface is not bound twice";
}

TEST(FtcEgressBuffer, StripRemovesEveryFtcTlvAndGivesTheTtlBack) {
  Nsh n = ftc_nsh(kV4, 100, 253, 40, 1, returned_log());
  append(n.tlvs, tlv(0x0123, 0x45, Bytes{1, 2, 3, 4}));  // a foreign TLV stays
  auto out = ftc::strip_ftc(nsh_frame(n));
  ASSERT_TRUE(out.has_value()) << out.error().str();
  Nsh want = n;
  want.ttl = 41;
  want.tlvs = flow_hash_tlv(kV4.hash());
  append(want.tlvs, tlv(0x0123, 0x45, Bytes{1, 2, 3, 4}));
  EXPECT_EQ(hex(*out), hex(nsh_frame(want)));
  EXPECT_FALSE(ftc::strip_ftc(Bytes(20, 0)).has_value());
}

}  // namespace
}  // namespace anychain::test
