// Integration test of anychain-vnf (root): the VNF runs in namespace B on its veth end; this
// test, in namespace A, sends crafted frames over the veth with an AF_PACKET socket and reads
// what the VNF sends back.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/netns.h"
#include "common/packet.h"
#include "common/proc.h"
#include "tools/common.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace anychain::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using tools::Fd;

const Mac kHarnessMac{0x02, 0xac, 0, 0, 0, 0x0a};  // VethPair::mac_a
const Mac kVnfMac{0x02, 0xac, 0, 0, 0, 0x0b};      // VethPair::mac_b
constexpr std::size_t kEth = 14;

// AF_PACKET socket on the harness end of the veth.
class RawPort {
 public:
  RawPort(const std::string& ns, const std::string& ifname) {
    fd_ = in_netns(ns, [&] {
      Fd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
      if (!fd) throw std::runtime_error("AF_PACKET socket");
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = htons(ETH_P_ALL);
      sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
      if (sll.sll_ifindex == 0 ||
          ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
        throw std::runtime_error("bind AF_PACKET to " + ifname);
      }
      int one = 1;
      ::setsockopt(fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
      return fd;
    });
  }
  void send(const Bytes& f) {
    ASSERT_EQ(::send(fd_.get(), f.data(), f.size(), 0), static_cast<ssize_t>(f.size()));
  }
  // Frames from the VNF's MAC within `timeout` (stops early after `max` frames).
  std::vector<Bytes> receive(std::chrono::milliseconds timeout, std::size_t max = SIZE_MAX) {
    std::vector<Bytes> out;
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (out.size() < max) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      Bytes buf(16384);
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      const ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &fl);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      buf.resize(static_cast<std::size_t>(n));
      if (buf.size() >= kEth && std::equal(kVnfMac.begin(), kVnfMac.end(), buf.begin() + 6)) {
        out.push_back(std::move(buf));
      }
    }
    return out;
  }

 private:
  Fd fd_;
};

class VnfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, AF_PACKET)";
    net_ = std::make_unique<VethPair>("vnf", false);
    char tmpl[] = "/tmp/anychain-vnf-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    port_ = std::make_unique<RawPort>(net_->ns_a.name(), net_->if_a);
  }
  void TearDown() override {
    vnf_.reset();
    port_.reset();
    net_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void start_vnf(const std::vector<std::string>& extra) {
    stats_ = dir_ + "/stats.json";
    std::vector<std::string> argv{ANYCHAIN_VNF_BIN, "--iface", net_->if_b, "--stats-json",
                                  stats_, "--stats-interval", "0.2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    vnf_ = std::make_unique<Proc>(net_->ns_b.name(), argv, stdout_to(dir_ + "/stdout"));
    ASSERT_TRUE(wait_for_file(stats_, 5s)) << "the VNF did not start";
  }
  // SIGTERM, clean exit, final stats.
  json stop_vnf() {
    EXPECT_EQ(vnf_->stop(), 0) << "clean exit on SIGTERM";
    json j = json::parse(read_file(stats_));
    EXPECT_TRUE(j["final"].get<bool>());
    // The final stats are printed on stdout too.
    EXPECT_EQ(json::parse(read_file(dir_ + "/stdout"))["rx"], j["rx"]);
    return j;
  }

  std::unique_ptr<VethPair> net_;
  std::unique_ptr<RawPort> port_;
  std::unique_ptr<Proc> vnf_;
  std::string dir_, stats_;
};

Bytes nsh_frame(std::uint8_t md, int family, std::uint8_t si, std::uint32_t flow = 7,
                const Bytes& tlvs = {}) {
  const Bytes ip = udp_packet(family, lab_payload(flow, 1, 20));
  const Bytes h = nsh(md, 0x00abcd, si, family == 4 ? AC_NSH_NP_IPV4 : AC_NSH_NP_IPV6, tlvs);
  return eth(kVnfMac, kHarnessMac, AC_ETH_P_NSH, {h, ip});
}

// What the VNF must send back for `in`: MACs swapped, SI - 1, served_by[slot] = id, and the UDP
// checksum 0 (IPv4) or recomputed (checked separately for IPv6).
Bytes expected_reply(const Bytes& in, std::size_t nsh_len, unsigned slot, std::uint32_t id) {
  Bytes e = in;
  std::copy(in.begin() + 6, in.begin() + 12, e.begin());
  std::copy(in.begin(), in.begin() + 6, e.begin() + 6);
  e[kEth + 7] = static_cast<std::uint8_t>(in[kEth + 7] - 1);
  const std::size_t ip = kEth + nsh_len;
  const bool v4 = (in[ip] >> 4) == 4;
  const std::size_t udp = ip + (v4 ? 20 : 40);
  set32(e, udp + 8 + AC_LAB_OFF_SERVED_BY + 4 * slot, id);
  if (v4) set16(e, udp + 6, 0);
  return e;
}

TEST_F(VnfTest, NshMd1AndMd2WithIpv4AndIpv6) {
  start_vnf({"--mode", "nsh", "--instance-id", "4242", "--slot", "1"});
  int n = 0;
  for (std::uint8_t md : {AC_NSH_MD_TYPE1, AC_NSH_MD_TYPE2}) {
    for (int family : {4, 6}) {
      SCOPED_TRACE("MD" + std::to_string(md) + " IPv" + std::to_string(family));
      const std::uint8_t si = static_cast<std::uint8_t>(255 - n);
      const Bytes tlvs = md == AC_NSH_MD_TYPE2 ? flow_hash_tlv(0x1234) : Bytes{};
      const Bytes f = nsh_frame(md, family, si, static_cast<std::uint32_t>(100 + n), tlvs);
      const std::size_t nsh_len = md == AC_NSH_MD_TYPE1 ? 24 : 16;
      ++n;
      port_->send(f);
      auto r = port_->receive(2s, 1);
      ASSERT_EQ(r.size(), 1u);
      ASSERT_EQ(r[0].size(), f.size());
      EXPECT_EQ(r[0][kEth + 7], si - 1) << "SI decremented";
      EXPECT_TRUE(udp_csum_ok(r[0], kEth + nsh_len)) << "UDP checksum valid";
      Bytes e = expected_reply(f, nsh_len, 1, 4242);
      if (family == 6) {
        // IPv6: the checksum is recomputed (served_by changed, so it must differ); the rest
        // is compared byte for byte.
        const std::size_t csum = kEth + nsh_len + 40 + 6;
        EXPECT_NE(get16(r[0], csum), get16(f, csum));
        e[csum] = r[0][csum];
        e[csum + 1] = r[0][csum + 1];
      }
      EXPECT_EQ(r[0], e) << "MACs swapped, served_by[1] written, nothing else changed";
    }
  }
  // No echo of its own transmissions: nothing more arrives.
  EXPECT_TRUE(port_->receive(300ms).empty());
  json s = stop_vnf();
  EXPECT_EQ(s["rx"], 4u);
  EXPECT_EQ(s["tx"], 4u);
  EXPECT_EQ(s["served"], 4u);
  EXPECT_EQ(s["instance_id"], 4242u);
}

TEST_F(VnfTest, MalformedSiZeroAndNonNshAreCountedAndDropped) {
  start_vnf({"--mode", "nsh", "--instance-id", "9"});
  std::vector<Bytes> bad;
  Bytes ver = nsh_frame(AC_NSH_MD_TYPE1, 4, 9);
  ver[kEth] |= 0x40;  // version 1
  bad.push_back(ver);
  Bytes len = nsh_frame(AC_NSH_MD_TYPE1, 4, 9);
  set16(len, kEth, AC_NSH_W0(0, 63, 63));  // 252-byte header in a short frame
  bad.push_back(len);
  Bytes md = nsh_frame(AC_NSH_MD_TYPE1, 4, 9);
  md[kEth + 2] = 0x0f;  // MD type 15
  bad.push_back(md);
  Bytes tlv_bad = flow_hash_tlv(1);
  tlv_bad[3] = 12;  // value longer than the TLV area
  bad.push_back(nsh_frame(AC_NSH_MD_TYPE2, 4, 9, 7, tlv_bad));
  Bytes inner = nsh_frame(AC_NSH_MD_TYPE1, 6, 9);
  inner[kEth + 3] = AC_NSH_NP_IPV4;  // says IPv4, carries IPv6
  bad.push_back(inner);
  for (const auto& f : bad) port_->send(f);
  port_->send(nsh_frame(AC_NSH_MD_TYPE1, 4, 0));  // SI already 0
  const Bytes ip = udp_packet(4, lab_payload(1, 1));
  port_->send(eth(kVnfMac, kHarnessMac, 0x0800, {ip}));
  port_->send(eth(kVnfMac, kHarnessMac, 0x88b5, {ip}));
  // Then a good one, which must still come back.
  port_->send(nsh_frame(AC_NSH_MD_TYPE1, 4, 3));
  auto got = port_->receive(1s);
  ASSERT_EQ(got.size(), 1u) << "only the valid frame comes back";
  EXPECT_EQ(got[0][kEth + 7], 2);

  json s = stop_vnf();
  EXPECT_EQ(s["dropped_malformed"], 5u);
  EXPECT_EQ(s["malformed_by_reason"]["nsh_version"], 1u);
  EXPECT_EQ(s["malformed_by_reason"]["nsh_truncated"], 1u);
  EXPECT_EQ(s["malformed_by_reason"]["nsh_md_type"], 1u);
  EXPECT_EQ(s["malformed_by_reason"]["nsh_tlv"], 1u);
  EXPECT_EQ(s["malformed_by_reason"]["inner_ip"], 1u);
  EXPECT_EQ(s["dropped_si_zero"], 1u);
  EXPECT_EQ(s["non_nsh"], 2u);
  EXPECT_EQ(s["tx"], 1u);
  EXPECT_EQ(s["rx"], 9u);
}

TEST_F(VnfTest, CapacityLimitDropsTheExcess) {
  start_vnf({"--mode", "nsh", "--instance-id", "5", "--capacity", "100", "--burst", "10"});
  // 1000 frames spread over about one second.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    port_->send(nsh_frame(AC_NSH_MD_TYPE1, 4, 200, static_cast<std::uint32_t>(i)));
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(1000 * (i + 1)));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto got = port_->receive(500ms);
  json s = stop_vnf();
  const double allowed = 10 + 100 * secs;  // burst + rate * time
  EXPECT_EQ(s["rx"], 1000u);
  EXPECT_EQ(s["tx"], got.size());
  EXPECT_EQ(s["dropped_capacity"].get<std::uint64_t>() + s["tx"].get<std::uint64_t>(), 1000u);
  EXPECT_LE(static_cast<double>(got.size()), allowed + 1);
  EXPECT_GE(static_cast<double>(got.size()), 0.8 * allowed) << "capacity is not under-used";
  EXPECT_GE(s["dropped_capacity"].get<std::uint64_t>(), 800u);
}

TEST_F(VnfTest, PlainModeServesBareIpAndIgnoresTheRest) {
  start_vnf({"--mode", "plain", "--instance-id", "31", "--slot", "2"});
  for (int family : {4, 6}) {
    const Bytes ip = udp_packet(family, lab_payload(3, 4, 50));
    const Bytes f = eth(kVnfMac, kHarnessMac, family == 4 ? 0x0800 : 0x86dd, {ip});
    port_->send(f);
    auto got = port_->receive(2s, 1);
    ASSERT_EQ(got.size(), 1u) << "family " << family;
    const Bytes& r = got[0];
    ASSERT_EQ(r.size(), f.size());
    EXPECT_TRUE(std::equal(r.begin(), r.begin() + 6, kHarnessMac.begin()));
    EXPECT_TRUE(std::equal(r.begin() + 6, r.begin() + 12, kVnfMac.begin()));
    const std::size_t payload = kEth + (family == 4 ? 20 : 40) + 8;
    EXPECT_EQ(get32(r, payload + AC_LAB_OFF_SERVED_BY + 8), 31u);
    EXPECT_EQ(get32(r, payload + AC_LAB_OFF_FLOW_ID), 3u);
    EXPECT_TRUE(udp_csum_ok(r, kEth));
    // IP header untouched.
    EXPECT_TRUE(std::equal(r.begin() + 12, r.begin() + kEth + (family == 4 ? 20 : 40),
                           f.begin() + 12));
  }
  const Bytes junk(50, 0x11);
  port_->send(eth(kVnfMac, kHarnessMac, 0x88b5, {junk}));
  // Broadcast IP is link chatter, not traffic: not served, not reflected.
  const Bytes bip = udp_packet(4, lab_payload(3, 5));
  port_->send(eth(Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kHarnessMac, 0x0800, {bip}));
  // Neither is IPv6 neighbour discovery addressed to the VNF.
  Bytes ns6(40 + 24, 0);
  ns6[0] = 0x60;
  set16(ns6, 4, 24);
  ns6[6] = 58;
  ns6[7] = 255;
  ns6[40] = 135;
  port_->send(eth(kVnfMac, kHarnessMac, 0x86dd, {ns6}));
  const Bytes h = nsh(AC_NSH_MD_TYPE1, 1, 9, AC_NSH_NP_IPV4);
  port_->send(eth(kVnfMac, kHarnessMac, AC_ETH_P_NSH, {h}));
  EXPECT_TRUE(port_->receive(300ms).empty());
  json s = stop_vnf();
  EXPECT_EQ(s["mode"], "plain");
  EXPECT_EQ(s["tx"], 2u);
  EXPECT_EQ(s["served"], 2u);
  EXPECT_EQ(s["non_ip"], 2u);
  EXPECT_EQ(s["not_unicast"], 1u);
  EXPECT_EQ(s["link_control"], 1u);
}

TEST_F(VnfTest, StatsAreRewrittenPeriodically) {
  start_vnf({"--mode", "nsh", "--instance-id", "1"});
  port_->send(nsh_frame(AC_NSH_MD_TYPE1, 4, 5));
  ASSERT_EQ(port_->receive(2s, 1).size(), 1u);
  std::this_thread::sleep_for(600ms);
  json mid = json::parse(read_file(stats_));
  EXPECT_FALSE(mid["final"].get<bool>());
  EXPECT_GE(mid["uptime_s"].get<double>(), 0.3);
  EXPECT_EQ(mid["tx"], 1u);
  json s = stop_vnf();
  EXPECT_GT(s["uptime_s"].get<double>(), mid["uptime_s"].get<double>());
}

TEST_F(VnfTest, RejectsBadArguments) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--mode", "nsh"},  // no instance id
           {"--mode", "nsh", "--instance-id", "0"},
           {"--mode", "bogus", "--instance-id", "1"},
           {"--mode", "nsh", "--instance-id", "1", "--slot", "4"}}) {
    std::vector<std::string> argv{ANYCHAIN_VNF_BIN, "--iface", net_->if_b};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc c(net_->ns_b.name(), argv);
    EXPECT_EQ(c.wait(5s), std::optional<int>(2)) << args.back();
  }
  Proc missing(net_->ns_b.name(), {ANYCHAIN_VNF_BIN, "--iface", "nosuchif0", "--instance-id", "1"});
  EXPECT_EQ(missing.wait(5s), std::optional<int>(1));
}

}  // namespace
}  // namespace anychain::test
