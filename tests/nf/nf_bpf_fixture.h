// What the BPF tests of the built-in NF programs share (nf_bpf_test.cc: each NF's own work;
// nf_ftc_bpf_test.cc: the FTC hop inside them): frames as the fast path delivers them and as
// the NF returns them, the fixture that loads an NF with anychain-nf's loader (not attached)
// and runs it with BPF_PROG_TEST_RUN, and the parameters of the NFs the tests load.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <sched.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "anychain/nf.h"
#include "common/netns.h"
#include "common/packet.h"
#include "ftc/wire.h"
#include "nf/loader.h"
#include "nf/maps.h"
#include "nf/state.h"

namespace anychain::test::nfbpf {


using json = nlohmann::json;
namespace nf = anychain::nf;

inline const Mac kHost = {0x02, 0, 0, 0, 0xa0, 0x01}, kNf = {0x02, 0xac, 0x6e, 0x66, 0, 0x07};
constexpr uint32_t kSpi = 42, kHash = 0x11223344;

struct Out {
  int verdict = -1;
  Bytes frame;
};

// A frame as the fast path delivers it to the instance: Ethernet host -> NF, NSH, inner packet.
inline Bytes to_nf(const Bytes& nsh_bytes, const Bytes& inner) {
  Bytes f = eth(kNf, kHost, AC_ETH_P_NSH);
  append(f, nsh_bytes);
  append(f, inner);
  return f;
}
// What the NF gives back for it: MACs swapped, SI - 1, the NSH (possibly rebuilt) and inner.
inline Bytes from_nf(Bytes nsh_bytes, const Bytes& inner) {
  nsh_bytes[7] -= 1;
  Bytes f = eth(kHost, kNf, AC_ETH_P_NSH);
  append(f, nsh_bytes);
  append(f, inner);
  return f;
}
inline Bytes md1(uint32_t hash = kHash, uint8_t np = AC_NSH_NP_IPV4, uint8_t si = 255) {
  Nsh n;
  n.spi = kSpi;
  n.si = si;
  n.next_proto = np;
  n.ctx[0] = hash;
  return nsh(n);
}
inline Bytes md2(uint32_t hash = kHash, uint8_t np = AC_NSH_NP_IPV4) {
  return nsh(AC_NSH_MD_TYPE2, kSpi, 255, np, flow_hash_tlv(hash));
}
inline L4 udp(uint16_t sport, uint16_t dport, size_t payload = 32) {
  return L4{IPPROTO_UDP, sport, dport, Bytes(payload, 0xab)};
}
// ICMP echo (type 8) or echo reply (0) with a valid checksum, as an IPv4 packet
inline Bytes icmp4(const std::string& src, const std::string& dst, uint8_t type, uint16_t id) {
  Bytes b;
  put8(b, type);
  put8(b, 0);
  put16(b, 0);
  put16(b, id);
  put16(b, 1);
  append(b, Bytes(16, 0x5a));
  uint16_t c = inet_csum(b.data(), b.size());
  b[2] = c >> 8;
  b[3] = c & 0xff;
  return ipv4(src, dst, L4{IPPROTO_ICMP, 0, 0, b});
}

// One frame through an XDP program (BPF_PROG_TEST_RUN): its verdict and the frame it leaves.
inline Out run_prog(int prog_fd, const Bytes& frame) {
  Out o;
  o.frame.resize(frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame.data(), .data_out = o.frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(o.frame.size()), .repeat = 1);
  int e = bpf_prog_test_run_opts(prog_fd, &t);
  EXPECT_EQ(e, 0) << strerror(-e);
  o.verdict = static_cast<int>(t.retval);
  o.frame.resize(t.data_size_out);
  return o;
}

class NfBpf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    sandbox_ = enter_sandbox();
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
    ASSERT_EQ(sandbox_, "");
  }
  void load(const nf::Params& p, nf::LoadOptions o = {}) {
    o.name = "t-" + std::string(nf::to_string(p.kind));
    o.attach = false;
    auto r = nf::Nf::load(p, o);
    ASSERT_TRUE(r.has_value()) << r.error().str();
    nf_ = std::move(*r);
    auto m = nf::InstanceMaps::open(nf_->published());
    ASSERT_TRUE(m.has_value()) << m.error().str();
    maps_.emplace(std::move(*m));
  }
  Out run(const Bytes& frame) const { return run_prog(nf_->prog_fd(), frame); }
  uint64_t count(enum ac_nf_stat s) const {
    auto v = maps_->percpu_sum("nf_stats", s);
    EXPECT_TRUE(v.has_value());
    return v ? (*v)[0] : 0;
  }
  json state() const {
    auto s = nf::decode_state(*maps_);
    EXPECT_TRUE(s.has_value()) << s.error().str();
    return s ? *s : json();
  }
  void set_idle_jiffies(uint64_t j) const {
    ac_nf_ftc_cfg c{};
    uint32_t k = 0;
    ASSERT_EQ(bpf_map_lookup_elem(maps_->fd("nf_ftc_cfg"), &k, &c), 0);
    c.idle_jiffies = j;
    ASSERT_EQ(bpf_map_update_elem(maps_->fd("nf_ftc_cfg"), &k, &c, 0), 0);
  }
  // Every frame ends as exactly one outcome
  void outcomes_add_up() const {
    EXPECT_EQ(count(AC_NF_RX), count(AC_NF_TX) + count(AC_NF_DROP_BAD_NSH) + count(AC_NF_DROP_BAD_INNER) +
                                   count(AC_NF_DROP_FILTERED) + count(AC_NF_DROP_FTC) + count(AC_NF_HOLD));
  }

  static inline std::string sandbox_;
  std::unique_ptr<nf::Nf> nf_;
  std::optional<nf::InstanceMaps> maps_;
};

inline nf::Params firewall(std::vector<std::string> rules, bool default_drop = false) {
  nf::Params p;
  p.kind = nf::Kind::Firewall;
  p.instance_id = 7;
  p.fw_default_drop = default_drop;
  for (const auto& r : rules) {
    auto x = nf::parse_rule(r);
    EXPECT_TRUE(x.has_value()) << x.error().message;
    if (x) p.fw_rules.push_back(*x);
  }
  return p;
}

inline nf::Params monitor(uint32_t id = 7) {
  nf::Params p;
  p.kind = nf::Kind::Monitor;
  p.instance_id = id;
  p.idle_timeout_s = 60;
  return p;
}

inline nf::Params nat(const std::string& ports = "20032-20095") {
  nf::Params p;
  p.kind = nf::Kind::Nat;
  p.instance_id = 9;
  p.idle_timeout_s = 300;
  inet_pton(AF_INET, "192.0.2.10", &p.nat_address);
  auto r = nf::parse_port_range(ports);
  EXPECT_TRUE(r.has_value());
  p.nat_port_lo = r->first;
  p.nat_port_hi = r->second;
  return p;
}

}  // namespace anychain::test::nfbpf
