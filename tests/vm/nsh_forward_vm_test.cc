// Guest-only test (tests/vm, run by vm-tests/guest/nsh-forward.sh under vm-tests/run with 4
// virtio-net NICs): anychain's XDP program in native (driver) mode on virtio-net, forwarding
// NSH between NICs through the kernel FIB, and sharing a NIC with another XDP program through
// libxdp's dispatcher.
//
//   netns prev: PREV ==wire== IN [anychain, classify] --FIB--> OUT [anychain] ==wire== NEXT :netns next
//                10.97.1.2        10.97.1.1                      10.97.2.1           10.97.2.2
//
// The node (root namespace) has NSH endpoint 192.0.2.1; the remote instance's endpoint
// 192.0.2.2 is routed via 10.97.2.2 (a static neighbour: NEXT's MAC), as is 198.51.100.0/24
// for the last hop. Frames are sent raw from PREV (AF_PACKET, addressed to IN's MAC) and read
// raw on NEXT; every frame that leaves OUT is compared byte for byte with the one the fast path
// must build. ANYCHAIN_VM_NICS="IN PREV OUT NEXT" names the NICs (vm-tests/guest/nsh-forward.sh).
//
// Over 500 lines: one guest boot runs every case (a VM under TCG costs about 30 s to start), so
// the cases live in one binary beside their shared wire set-up.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "common/netns.h"
#include "common/packet.h"
#include "dataplane/dataplane.h"

namespace anychain::test {
namespace {

namespace dp = anychain::dataplane;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kN = 25;  // frames per kind of input
constexpr const char* kPrevIp = "10.97.1.2";
constexpr const char* kNextIp = "10.97.2.2";
constexpr const char* kLocalEp = "192.0.2.1";
constexpr const char* kRemoteEp = "192.0.2.2";
constexpr const char* kLastHopDst = "198.51.100.7";
constexpr uint32_t kVni = 7;
constexpr uint32_t kService = 2, kInstance = 2;
constexpr const char* kAnychainProg = "anychain_xdp";
constexpr const char* kCountProg = "xdp_count";

template <class R>
void ok(const R& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().str());
}

Mac mac_of(const std::string& ifname) {
  std::ifstream f("/sys/class/net/" + ifname + "/address");
  std::string text;
  if (!(f >> text) || text.size() != 17) throw std::runtime_error("no MAC for " + ifname);
  return mac(text);
}

std::string driver_of(const std::string& ifname) {
  std::error_code ec;
  auto link = std::filesystem::read_symlink("/sys/class/net/" + ifname + "/device/driver", ec);
  return ec ? "none" : link.filename().string();
}

// A raw AF_PACKET socket on one interface of a namespace ("" = the current one). A sending
// socket (rx = false) is bound with protocol 0, so it receives nothing.
class PacketSocket {
 public:
  PacketSocket(const std::string& netns, const std::string& ifname, bool rx) {
    std::unique_ptr<InNetns> g;
    if (!netns.empty()) g = std::make_unique<InNetns>(netns);
    uint16_t proto = rx ? htons(ETH_P_ALL) : 0;
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd_ < 0) throw std::runtime_error("AF_PACKET socket: " + std::string(std::strerror(errno)));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = proto;
    sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (sll.sll_ifindex == 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
      throw std::runtime_error("bind AF_PACKET to " + ifname + " in " + netns + ": " + std::strerror(errno));
    drain();
  }
  ~PacketSocket() { close(fd_); }
  PacketSocket(const PacketSocket&) = delete;
  PacketSocket& operator=(const PacketSocket&) = delete;

  void send(const Bytes& frame) const {
    if (::send(fd_, frame.data(), frame.size(), 0) != static_cast<ssize_t>(frame.size()))
      throw std::runtime_error("send: " + std::string(std::strerror(errno)));
  }

  // Frames received (not our own outgoing ones) until `enough` of them or `timeout`, then for
  // `grace` more, so duplicates and strays show up too.
  std::vector<Bytes> receive(size_t enough, std::chrono::milliseconds timeout,
                             std::chrono::milliseconds grace = 300ms) const {
    std::vector<Bytes> got;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool grace_started = false;
    for (;;) {
      if (!grace_started && got.size() >= enough) {
        deadline = std::chrono::steady_clock::now() + grace;
        grace_started = true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      Bytes buf(4096);
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 0) continue;
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      buf.resize(static_cast<size_t>(n));
      got.push_back(std::move(buf));
    }
    return got;
  }

  void drain() const {
    Bytes buf(4096);
    while (recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT) > 0) {
    }
  }

 private:
  int fd_ = -1;
};

// One frame sent into IN and the frame that must come out of OUT (empty: none).
struct Exchange {
  std::string kind;
  Bytes in;
  Bytes want;
};

// What arrived compared with what must: each wanted frame exactly once, nothing else.
struct Tally {
  size_t matched = 0;
  std::vector<Bytes> missing, unexpected;
};

Tally tally(const std::vector<Exchange>& sent, const std::vector<Bytes>& got) {
  std::map<Bytes, int> want;
  for (const auto& e : sent)
    if (!e.want.empty()) ++want[e.want];
  Tally t;
  for (const auto& f : got) {
    auto it = want.find(f);
    if (it != want.end() && it->second > 0) {
      --it->second;
      ++t.matched;
    } else {
      t.unexpected.push_back(f);
    }
  }
  for (const auto& [f, n] : want)
    for (int i = 0; i < n; ++i) t.missing.push_back(f);
  return t;
}

std::string describe(const Tally& t) {
  std::ostringstream o;
  o << t.matched << " frames as expected, " << t.missing.size() << " missing, " << t.unexpected.size()
    << " unexpected";
  if (!t.missing.empty()) o << "\n  first missing:    " << hex(t.missing.front());
  if (!t.unexpected.empty()) o << "\n  first unexpected: " << hex(t.unexpected.front());
  return o.str();
}

// Sum of `ethtool -S DEV` counters whose names match re; -1 if none does.
long long ethtool_sum(const std::string& dev, const std::string& re) {
  std::istringstream in(sh_out("ethtool -S " + dev + " 2>/dev/null"));
  std::regex line("^\\s*(\\S+):\\s*([0-9]+)\\s*$");
  std::regex name(re);
  long long sum = -1;
  std::smatch m;
  for (std::string l; std::getline(in, l);)
    if (std::regex_match(l, m, line) && std::regex_match(m[1].str(), name)) sum = (sum < 0 ? 0 : sum) + std::stoll(m[2]);
  return sum;
}

json link_json(const std::string& dev) {
  json j = json::parse(sh_out("ip -d -j link show dev " + dev), nullptr, false);
  if (!j.is_array() || j.empty()) throw std::runtime_error("ip -d -j link show dev " + dev + ": no answer");
  return j[0];
}

// The programs libxdp finds on an interface, in run order (name, priority).
struct XdpView {
  bool present = false;
  bool legacy = false;
  std::string main_name;
  enum xdp_attach_mode mode = XDP_MODE_UNSPEC;
  std::vector<std::pair<std::string, unsigned>> progs;
  uint32_t count_prog_id = 0;  // xdp_count's id, if it is there
};

XdpView xdp_view(const std::string& dev) {
  XdpView v;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(static_cast<int>(if_nametoindex(dev.c_str())));
  if (libxdp_get_error(mp) || !mp) return v;
  v.present = true;
  v.legacy = xdp_multiprog__is_legacy(mp);
  v.mode = xdp_multiprog__attach_mode(mp);
  if (xdp_program* m = xdp_multiprog__main_prog(mp)) v.main_name = xdp_program__name(m);
  if (!v.legacy)
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp)) {
      v.progs.emplace_back(xdp_program__name(p), xdp_program__run_prio(p));
      if (v.progs.back().first == kCountProg) v.count_prog_id = xdp_program__id(p);
    }
  xdp_multiprog__close(mp);
  return v;
}

std::string names(const XdpView& v) {
  std::string s = v.main_name + (v.legacy ? " (alone)" : " [");
  for (const auto& [n, prio] : v.progs) s += " " + n + ":" + std::to_string(prio);
  return v.legacy ? s : s + " ]";
}

// xdp_count's packet counter, found through its program's map ids.
uint64_t count_of(uint32_t prog_id) {
  int pfd = bpf_prog_get_fd_by_id(prog_id);
  if (pfd < 0) throw std::runtime_error("open program " + std::to_string(prog_id));
  uint32_t map_ids[4] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 4;
  info.map_ids = reinterpret_cast<uint64_t>(map_ids);
  uint32_t len = sizeof info;
  int rc = bpf_obj_get_info_by_fd(pfd, &info, &len);
  close(pfd);
  if (rc != 0 || info.nr_map_ids < 1) throw std::runtime_error("xdp_count has no map");
  for (uint32_t i = 0; i < std::min<uint32_t>(info.nr_map_ids, 4); ++i) {
    int mfd = bpf_map_get_fd_by_id(map_ids[i]);
    if (mfd < 0) continue;
    bpf_map_info mi{};
    uint32_t ml = sizeof mi;
    uint64_t n = 0;
    uint32_t key = 0;
    bool found = bpf_obj_get_info_by_fd(mfd, &mi, &ml) == 0 && std::string(mi.name) == "xdp_count_pkts" &&
                 bpf_map_lookup_elem(mfd, &key, &n) == 0;
    close(mfd);
    if (found) return n;
  }
  throw std::runtime_error("xdp_count_pkts not found among the program's maps");
}

class VirtioNsh : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      setup();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void setup() {
    if (const char* vm = getenv("ANYCHAIN_VM"); !vm || std::string(vm) != "1")
      throw std::runtime_error("guest-only test: run vm-tests/run --nics 4 --nic-backend tap -- "
                               "vm-tests/guest/nsh-forward.sh");
    const char* nics = getenv("ANYCHAIN_VM_NICS");
    std::istringstream ns(nics ? nics : "");
    ns >> in_ >> prev_ >> out_ >> next_;
    if (next_.empty()) throw std::runtime_error("ANYCHAIN_VM_NICS must be 'IN PREV OUT NEXT'");
    for (const auto& d : {in_, prev_, out_, next_}) {
      if (std::string drv = driver_of(d); drv != "virtio_net")
        throw std::runtime_error(d + " is not a virtio_net NIC (driver " + drv + ")");
    }
    mac_in_ = mac_of(in_);
    mac_prev_ = mac_of(prev_);
    mac_out_ = mac_of(out_);
    mac_next_ = mac_of(next_);

    // Only the frames this test sends: no IPv6 (router/neighbour solicitations) anywhere.
    for (const auto& d : {in_, prev_, out_, next_}) must("sysctl -qw net.ipv6.conf." + d + ".disable_ipv6=1");
    prev_ns_ = std::make_unique<Netns>("prev");
    next_ns_ = std::make_unique<Netns>("next");
    must("ip link set " + prev_ + " netns " + prev_ns_->name());
    prev_ns_->ip("link set " + prev_ + " up");
    must("ip link set " + next_ + " netns " + next_ns_->name());
    next_ns_->ip("link set " + next_ + " up");
    must("ip addr add 10.97.1.1/24 dev " + in_ + " && ip link set " + in_ + " up");
    must("ip addr add 10.97.2.1/24 dev " + out_ + " && ip link set " + out_ + " up");
    must(std::string("ip addr add ") + kLocalEp + "/32 dev lo");
    must(std::string("ip neigh replace ") + kNextIp + " lladdr " + mac_str(mac_next_) + " dev " + out_ +
         " nud permanent");
    must(std::string("ip route add ") + kRemoteEp + "/32 via " + kNextIp + " dev " + out_);
    must(std::string("ip route add 198.51.100.0/24 via ") + kNextIp + " dev " + out_);
    // bpf_fib_lookup needs forwarding on the receiving interface (docs/fastpath.md)
    must("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
         "net.ipv4.conf.all.accept_local=1 net.ipv4.conf." + in_ + ".rp_filter=0 net.ipv4.conf." + out_ +
         ".rp_filter=0");

    auto d = dp::Dataplane::open();
    ok(d, "open the dataplane");
    dp_ = std::make_unique<dp::Dataplane>(std::move(*d));
    dp::Config cfg;
    inet_pton(AF_INET, kLocalEp, &cfg.local_endpoint);
    ok(dp_->set_config(cfg), "config");
    ok(dp_->set_interface(if_nametoindex(in_.c_str()), AC_IF_CLASSIFY, 0, mac_in_), "interface " + in_);
    dp::Instance remote{.id = kInstance, .local = false};
    inet_pton(AF_INET, kRemoteEp, &remote.endpoint);
    remote.vni = kVni;
    ok(dp_->set_instance(remote), "instance");
    ok(dp_->set_wcmp_table(kService, std::vector<uint32_t>(AC_WCMP_BUCKETS, kInstance)), "WCMP table");
    std::vector<dp::PolicyRule> rules(2);
    rules[0].dst = *dp::parse_prefix("203.0.113.0/24");
    rules[0].proto = IPPROTO_UDP;
    rules[0].spi = 100;
    rules[1].src = *dp::parse_prefix("any6");
    rules[1].dst = *dp::parse_prefix("2001:db8:99::/64");
    rules[1].proto = IPPROTO_UDP;
    rules[1].spi = 100;
    ok(dp_->set_policies(rules), "policies");
    ok(dp_->set_path(100, 255, kService, false), "path 100:255");  // classified here
    ok(dp_->set_path(200, 254, kService, false), "path 200:254");  // NSH over Ethernet from prev
    ok(dp_->set_path(300, 200, kService, false), "path 300:200");  // VXLAN-GPE from prev
    ok(dp_->set_path(400, 10, 0, true), "path 400:10");            // last hop

    for (const auto& dev : {in_, out_}) {
      auto a = dp_->attach(dev, dp::XdpMode::Native);
      ok(a, "attach anychain to " + dev + " in native mode");
      attach_mode_[dev] = a->mode;
    }
    tx_ = std::make_unique<PacketSocket>(prev_ns_->name(), prev_, false);
    rx_ = std::make_unique<PacketSocket>(next_ns_->name(), next_, true);
  }

  static void TearDownTestSuite() {
    tx_.reset();
    rx_.reset();
    if (!in_.empty()) sh("xdp-loader unload " + in_ + " --all >/dev/null 2>&1");
    if (!out_.empty() && if_nametoindex(out_.c_str())) (void)dp::Dataplane::detach(out_);
    dp_.reset();
    prev_ns_.reset();  // the NICs go back to the root namespace
    next_ns_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "setup: " << setup_error_; }

  static std::vector<ac_counter> stats() {
    auto s = dp_->stats();
    if (!s) throw std::runtime_error(s.error().str());
    return *s;
  }

  // Send the frames from prev (paced: TCG is slow and the rings are small) and collect what
  // reaches next.
  // With expect 0 (nothing may come out) it listens for 1 s after the last frame.
  static std::vector<Bytes> exchange(const std::vector<Exchange>& xs, size_t expect) {
    rx_->drain();
    for (const auto& x : xs) {
      tx_->send(x.in);
      std::this_thread::sleep_for(2ms);
    }
    return rx_->receive(expect, 15s, expect ? 300ms : 1000ms);
  }

  // --- frames ---

  static Nsh nsh_of(uint32_t spi, uint8_t si, uint8_t ttl, uint8_t np, uint32_t hash) {
    Nsh n;
    n.spi = spi;
    n.si = si;
    n.ttl = ttl;
    n.next_proto = np;
    n.ctx[0] = hash;
    return n;
  }

  static L4 udp(int i, uint8_t tag) {
    L4 l;
    l.proto = IPPROTO_UDP;
    l.sport = static_cast<uint16_t>(10000 + i);
    l.dport = 5000;
    l.payload = Bytes(32, tag);
    return l;
  }

  // [eth to NEXT from OUT][IPv4 UDP 4790 VXLAN-GPE from us to the remote endpoint][inner]
  static Bytes gpe_out(const Bytes& inner, uint32_t hash) {
    Bytes b = eth(mac_next_, mac_out_, ETH_P_IP);
    append(b, gpe_outer(kLocalEp, kRemoteEp, static_cast<uint16_t>(0xc000 | (hash & 0x3fff)), inner.size(),
                        AC_GPE_NP_NSH, AC_GPE_FLAG_I | AC_GPE_FLAG_P, kVni));
    append(b, inner);
    return b;
  }

  // Plain IPv4 UDP to 203.0.113.10: classified on IN (SPI 100, SI 255, TTL 63), sent to the
  // remote instance as VXLAN-GPE.
  static Exchange classify_v4(int i, uint8_t tag = 0xa1) {
    L4 l = udp(i, tag);
    Bytes ip = ipv4(kPrevIp, "203.0.113.10", l);
    uint32_t h = flow_hash(kPrevIp, "203.0.113.10", l);
    Exchange x{"classify-v4", eth(mac_in_, mac_prev_, ETH_P_IP), {}};
    append(x.in, ip);
    Bytes inner = nsh(nsh_of(100, 255, AC_NSH_DEFAULT_TTL - 1, AC_NSH_NP_IPV4, h));  // this node's SFF decrements
    append(inner, ip);
    x.want = gpe_out(inner, h);
    return x;
  }

  static Exchange classify_v6(int i) {
    const char* src = "2001:db8:5::2";
    const char* dst = "2001:db8:99::10";
    L4 l = udp(i, 0xa2);
    Bytes ip = ipv6(src, dst, l);
    uint32_t h = flow_hash(src, dst, l);
    Exchange x{"classify-v6", eth(mac_in_, mac_prev_, ETH_P_IPV6), {}};
    append(x.in, ip);
    Bytes inner = nsh(nsh_of(100, 255, AC_NSH_DEFAULT_TTL - 1, AC_NSH_NP_IPV6, h));
    append(inner, ip);
    x.want = gpe_out(inner, h);
    return x;
  }

  // NSH over Ethernet from the previous hop (SPI 200, SI 254, TTL 10): TTL 9, VXLAN-GPE out.
  static Exchange nsh_eth(int i) {
    L4 l = udp(i, 0xa3);
    Bytes ip = ipv4(kPrevIp, "203.0.114.10", l);
    uint32_t h = 0x1000 + static_cast<uint32_t>(i) * 7919;
    Exchange x{"nsh-ethernet", eth(mac_in_, mac_prev_, AC_ETH_P_NSH), {}};
    append(x.in, nsh(nsh_of(200, 254, 10, AC_NSH_NP_IPV4, h)));
    append(x.in, ip);
    Bytes inner = nsh(nsh_of(200, 254, 9, AC_NSH_NP_IPV4, h));
    append(inner, ip);
    x.want = gpe_out(inner, h);
    return x;
  }

  // VXLAN-GPE from the previous node to our endpoint (SPI 300, SI 200, TTL 20): decapsulated,
  // TTL 19, encapsulated again towards the remote instance.
  static Exchange gpe_in(int i) {
    L4 l = udp(i, 0xa4);
    Bytes ip = ipv4(kPrevIp, "203.0.115.10", l);
    uint32_t h = 0x2000 + static_cast<uint32_t>(i) * 104729;
    Bytes in_inner = nsh(nsh_of(300, 200, 20, AC_NSH_NP_IPV4, h));
    append(in_inner, ip);
    Exchange x{"vxlan-gpe", eth(mac_in_, mac_prev_, ETH_P_IP), {}};
    append(x.in, gpe_outer(kPrevIp, kLocalEp, 0xc123, in_inner.size(), AC_GPE_NP_NSH,
                           AC_GPE_FLAG_I | AC_GPE_FLAG_P, 5));
    append(x.in, in_inner);
    Bytes inner = nsh(nsh_of(300, 200, 19, AC_NSH_NP_IPV4, h));
    append(inner, ip);
    x.want = gpe_out(inner, h);
    return x;
  }

  // NSH over Ethernet at the end of its chain (SPI 400, SI 10): NSH popped, the inner IPv4
  // routed by the FIB out of OUT to 10.97.2.2 with its TTL decremented.
  static Exchange last_hop(int i) {
    L4 l = udp(i, 0xa5);
    Exchange x{"last-hop", eth(mac_in_, mac_prev_, AC_ETH_P_NSH), {}};
    append(x.in, nsh(nsh_of(400, 10, 5, AC_NSH_NP_IPV4, 0x3000 + static_cast<uint32_t>(i))));
    append(x.in, ipv4(kPrevIp, kLastHopDst, l, 64));
    x.want = eth(mac_next_, mac_out_, ETH_P_IP);
    append(x.want, ipv4(kPrevIp, kLastHopDst, l, 63));
    return x;
  }

  // Plain IPv4 that no policy matches: passed to the stack untouched (pass_not_ours).
  static Exchange not_ours(int i) {
    L4 l = udp(i, 0xa6);
    Exchange x{"not-ours", eth(mac_in_, mac_prev_, ETH_P_IP), {}};
    append(x.in, ipv4(kPrevIp, "10.97.1.1", l));
    return x;
  }

  static inline std::string setup_error_;
  static inline std::string in_, prev_, out_, next_;
  static inline Mac mac_in_{}, mac_prev_{}, mac_out_{}, mac_next_{};
  static inline std::map<std::string, dp::XdpMode> attach_mode_;
  static inline std::unique_ptr<dp::Dataplane> dp_;
  static inline std::unique_ptr<PacketSocket> tx_, rx_;
  static inline std::unique_ptr<Netns> prev_ns_, next_ns_;
};

uint64_t delta(const std::vector<ac_counter>& before, const std::vector<ac_counter>& after, uint32_t r) {
  return after[r].packets - before[r].packets;
}

uint64_t pass_delta(const std::vector<ac_counter>& before, const std::vector<ac_counter>& after) {
  uint64_t n = 0;
  for (uint32_t r : {AC_PASS_NOT_OURS, AC_PASS_NO_CONFIG, AC_PASS_NO_NEIGH, AC_PASS_LAST_HOP,
                     AC_PASS_PROXY_MISS})
    n += delta(before, after, r);
  return n;
}

// Native mode as the kernel reports it, and libxdp's dispatcher in front of anychain (6.1
// allows freplace, unlike kernels that refuse BPF_PROG_TYPE_EXT).
TEST_F(VirtioNsh, AnychainIsAttachedInDriverModeThroughTheDispatcher) {
  struct utsname u{};
  uname(&u);
  std::cout << "kernel " << u.release << "\n";
  for (const auto& dev : {in_, out_}) {
    SCOPED_TRACE(dev);
    EXPECT_EQ(attach_mode_[dev], dp::XdpMode::Native);
    json l = link_json(dev);
    ASSERT_TRUE(l.contains("xdp")) << l.dump();
    EXPECT_EQ(l["xdp"]["mode"], 1) << "XDP_ATTACHED_DRV expected: " << l["xdp"].dump();
    EXPECT_EQ(l["xdp"]["prog"]["name"], "xdp_dispatcher") << l["xdp"].dump();
    std::string text = sh_out("ip -d link show dev " + dev);
    std::cout << text;
    EXPECT_TRUE(std::regex_search(text, std::regex(" xdp |prog/xdp "))) << text;
    EXPECT_EQ(text.find("xdpgeneric"), std::string::npos) << text;
    XdpView v = xdp_view(dev);
    ASSERT_TRUE(v.present);
    EXPECT_FALSE(v.legacy) << "libxdp attached anychain without its dispatcher: " << names(v);
    EXPECT_EQ(v.mode, XDP_MODE_NATIVE);
    ASSERT_EQ(v.progs.size(), 1u) << names(v);
    EXPECT_EQ(v.progs[0].first, kAnychainProg);
    EXPECT_EQ(v.progs[0].second, 10u) << "anychain's XDP_RUN_CONFIG priority";
  }
}

// Every kind of input anychain forwards, N frames each, through virtio-net's XDP path: each
// frame leaving OUT byte-exact (VXLAN-GPE, NSH SPI/SI/TTL and context, inner packet; or the
// routed inner packet at the last hop), all of them, and the counters agree.
TEST_F(VirtioNsh, ForwardsNshOutOfAnotherNicThroughTheFib) {
  std::vector<Exchange> xs;
  for (int i = 0; i < kN; ++i) {
    xs.push_back(classify_v4(i));
    xs.push_back(classify_v6(i));
    xs.push_back(nsh_eth(i));
    xs.push_back(gpe_in(i));
    xs.push_back(last_hop(i));
  }
  long long rx_redir0 = ethtool_sum(in_, "rx_queue_[0-9]+_xdp_redirects");
  long long tx_xdp0 = ethtool_sum(out_, "tx_queue_[0-9]+_xdp_tx");
  auto before = stats();
  auto p100 = dp_->path_stats(100, 255);
  auto inst = dp_->instance_stats(kInstance);
  ASSERT_TRUE(p100 && inst);

  auto t0 = std::chrono::steady_clock::now();
  auto got = exchange(xs, xs.size());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  Tally t = tally(xs, got);
  std::cout << xs.size() << " frames sent, " << got.size() << " received on " << next_ << " in " << ms << " ms\n";
  EXPECT_EQ(t.matched, xs.size()) << describe(t);
  EXPECT_TRUE(t.missing.empty()) << describe(t);
  EXPECT_TRUE(t.unexpected.empty()) << describe(t);
  for (const char* kind : {"classify-v4", "classify-v6", "nsh-ethernet", "vxlan-gpe", "last-hop"}) {
    std::vector<Exchange> k;
    for (const auto& x : xs)
      if (x.kind == kind) k.push_back(x);
    Tally tk = tally(k, got);
    EXPECT_EQ(tk.matched, static_cast<size_t>(kN)) << kind;
  }

  auto after = stats();
  EXPECT_EQ(delta(before, after, AC_NOTE_CLASSIFIED), 2u * kN);
  EXPECT_EQ(delta(before, after, AC_NOTE_GPE_DECAP), 1u * kN);
  EXPECT_EQ(delta(before, after, AC_FWD_REMOTE), 4u * kN);
  EXPECT_EQ(delta(before, after, AC_FWD_LAST_HOP), 1u * kN);
  for (uint32_t r = AC_STAT_DROP_BASE; r < AC_DROP_END; ++r)
    EXPECT_EQ(delta(before, after, r), 0u) << dp::reason_name(r);
  auto p100b = dp_->path_stats(100, 255);
  auto instb = dp_->instance_stats(kInstance);
  ASSERT_TRUE(p100b && instb);
  EXPECT_EQ(p100b->packets - p100->packets, 2u * kN) << "path 100:255";
  EXPECT_EQ(instb->packets - inst->packets, 4u * kN) << "instance " << kInstance;
  for (const auto& sr : dp::stat_reasons())
    if (auto n = delta(before, after, sr.slot)) std::cout << "  " << sr.name << " +" << n << "\n";

  // virtio-net's own XDP counters: the driver ran the program and redirected (driver mode;
  // generic XDP would leave them at 0), and OUT transmitted the frames from its XDP queues.
  long long rx_redir = ethtool_sum(in_, "rx_queue_[0-9]+_xdp_redirects");
  long long tx_xdp = ethtool_sum(out_, "tx_queue_[0-9]+_xdp_tx");
  ASSERT_GE(rx_redir0, 0) << "no rx_queue_*_xdp_redirects in ethtool -S " << in_;
  ASSERT_GE(tx_xdp0, 0) << "no tx_queue_*_xdp_tx in ethtool -S " << out_;
  std::cout << in_ << " xdp_redirects +" << rx_redir - rx_redir0 << ", " << out_ << " xdp_tx +" << tx_xdp - tx_xdp0
            << "\n";
  EXPECT_EQ(rx_redir - rx_redir0, 5LL * kN);
  EXPECT_EQ(tx_xdp - tx_xdp0, 5LL * kN);
}

// Another XDP program (xdp_count, loaded by xdp-loader, i.e. another libxdp user) on IN next to
// anychain: both run from one dispatcher, anychain first; what anychain passes reaches the
// other program, what it forwards does not. Dataplane::detach then removes anychain only, and
// attaching again joins the dispatcher the other program now owns.
TEST_F(VirtioNsh, SharesTheNicWithAnotherXdpProgram) {
  const std::string obj = ANYCHAIN_XDP_COUNT_OBJECT;
  ASSERT_EQ(sh("xdp-loader load -m native " + in_ + " " + obj), 0) << "xdp-loader load " << obj;
  std::string status = sh_out("xdp-loader status " + in_);
  std::cout << status;
  EXPECT_NE(status.find("xdp_dispatcher"), std::string::npos) << status;
  EXPECT_NE(status.find(kAnychainProg), std::string::npos) << status;
  EXPECT_NE(status.find(kCountProg), std::string::npos) << status;
  XdpView v = xdp_view(in_);
  ASSERT_FALSE(v.legacy) << names(v);
  EXPECT_EQ(v.mode, XDP_MODE_NATIVE);
  ASSERT_EQ(v.progs.size(), 2u) << names(v);
  EXPECT_EQ(v.progs[0].first, kAnychainProg) << names(v);
  EXPECT_EQ(v.progs[1].first, kCountProg) << names(v);
  ASSERT_NE(v.count_prog_id, 0u);
  EXPECT_EQ(link_json(in_)["xdp"]["mode"], 1);

  {
    SCOPED_TRACE("both programs");
    std::vector<Exchange> xs;
    for (int i = 0; i < kN; ++i) {
      xs.push_back(not_ours(i));
      xs.push_back(classify_v4(i, 0xb1));
    }
    auto before = stats();
    uint64_t c0 = count_of(v.count_prog_id);
    auto got = exchange(xs, kN);
    uint64_t c1 = count_of(v.count_prog_id);
    auto after = stats();
    Tally t = tally(xs, got);
    EXPECT_EQ(t.matched, static_cast<size_t>(kN)) << describe(t);
    EXPECT_TRUE(t.missing.empty() && t.unexpected.empty()) << describe(t);
    EXPECT_EQ(delta(before, after, AC_NOTE_CLASSIFIED), 1u * kN);
    EXPECT_EQ(delta(before, after, AC_FWD_REMOTE), 1u * kN);
    EXPECT_EQ(delta(before, after, AC_PASS_NOT_OURS), 1u * kN);
    // xdp_count ran on exactly the packets anychain passed: not on the ones it redirected
    std::cout << "xdp_count +" << c1 - c0 << ", anychain passed +" << pass_delta(before, after) << "\n";
    EXPECT_EQ(c1 - c0, pass_delta(before, after));
    EXPECT_GE(c1 - c0, static_cast<uint64_t>(kN));
  }

  {
    SCOPED_TRACE("after Dataplane::detach");
    auto d = dp::Dataplane::detach(in_);
    ASSERT_TRUE(d) << d.error().str();
    std::string st = sh_out("xdp-loader status " + in_);
    std::cout << st;
    EXPECT_EQ(st.find(kAnychainProg), std::string::npos) << st;
    EXPECT_NE(st.find(kCountProg), std::string::npos) << st;
    XdpView w = xdp_view(in_);
    ASSERT_TRUE(w.present) << "detaching anychain removed every XDP program from " << in_;
    ASSERT_EQ(w.progs.size(), 1u) << names(w);
    EXPECT_EQ(w.progs[0].first, kCountProg);
    EXPECT_EQ(w.mode, XDP_MODE_NATIVE);
    auto still = dp::Dataplane::attached({in_, out_});
    ASSERT_TRUE(still);
    ASSERT_EQ(still->size(), 1u) << "anychain must stay on " << out_;
    EXPECT_EQ((*still)[0].ifname, out_);

    std::vector<Exchange> xs;
    for (int i = 0; i < kN; ++i) {
      Exchange x = classify_v4(i, 0xb2);
      x.want.clear();  // nobody classifies them now: nothing may come out of OUT
      xs.push_back(x);
    }
    auto before = stats();
    uint64_t c0 = count_of(w.count_prog_id);
    auto got = exchange(xs, 0);
    uint64_t c1 = count_of(w.count_prog_id);
    auto after = stats();
    Tally t = tally(xs, got);
    EXPECT_TRUE(t.unexpected.empty()) << describe(t);
    EXPECT_EQ(delta(before, after, AC_NOTE_CLASSIFIED), 0u);
    EXPECT_GE(c1 - c0, static_cast<uint64_t>(kN)) << "xdp_count must now see every frame";
  }

  {
    SCOPED_TRACE("attach again next to xdp_count");
    auto a = dp_->attach(in_, dp::XdpMode::Native);
    ASSERT_TRUE(a) << a.error().str();
    EXPECT_EQ(a->mode, dp::XdpMode::Native);
    EXPECT_TRUE(a->dispatcher) << "6.1 has freplace: anychain must sit behind libxdp's dispatcher";
    XdpView x = xdp_view(in_);
    ASSERT_EQ(x.progs.size(), 2u) << names(x);
    EXPECT_EQ(x.progs[0].first, kAnychainProg) << names(x);
    EXPECT_EQ(x.progs[1].first, kCountProg) << names(x);
    std::vector<Exchange> xs;
    for (int i = 0; i < kN; ++i) xs.push_back(classify_v4(i, 0xb3));
    auto before = stats();
    auto got = exchange(xs, kN);
    auto after = stats();
    Tally t = tally(xs, got);
    EXPECT_EQ(t.matched, static_cast<size_t>(kN)) << describe(t);
    EXPECT_EQ(delta(before, after, AC_FWD_REMOTE), 1u * kN);
  }
}

}  // namespace
}  // namespace anychain::test
