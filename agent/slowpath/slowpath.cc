#include "slowpath/slowpath.h"

// <net/if.h> before the kernel's headers: they then leave its definitions alone
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/icmp.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <netinet/icmp6.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "anychain/slowpath.h"
#include "common/log.h"
#include "common/netlink.h"

namespace anychain::slowpath {

namespace {

constexpr size_t kBufLen = 65536 + 256;
constexpr int kBatch = 256;               // frames or datagrams per readiness, then back to the loop
constexpr uint16_t kProbePort = 9;        // discard: a path MTU probe is never meant to arrive

constexpr CounterName kNames[] = {
    {"fragmented", CounterKind::HandedOver, &Counters::fragmented},
    {"icmp_sent", CounterKind::HandedOver, &Counters::icmp_sent},
    {"icmp_rate_limited", CounterKind::HandedOver, &Counters::icmp_rate_limited},
    {"icmp_forbidden", CounterKind::HandedOver, &Counters::icmp_forbidden},
    {"unfragmentable", CounterKind::HandedOver, &Counters::unfragmentable},
    {"proxy_nsh_missing", CounterKind::HandedOver, &Counters::proxy_nsh_missing},
    {"malformed", CounterKind::HandedOver, &Counters::malformed},
    {"send_failed", CounterKind::HandedOver, &Counters::send_failed},
    {"gpe_reinjected", CounterKind::VxlanGpe, &Counters::gpe_reinjected},
    {"gpe_rejected", CounterKind::VxlanGpe, &Counters::gpe_rejected},
    {"gpe_looped", CounterKind::VxlanGpe, &Counters::gpe_looped},
    {"gpe_send_failed", CounterKind::VxlanGpe, &Counters::gpe_send_failed},
    {"fragments_sent", CounterKind::Note, &Counters::fragments_sent},
    {"underlay_frag_needed", CounterKind::Note, &Counters::underlay_frag_needed},
    {"pmtu_probes", CounterKind::Note, &Counters::pmtu_probes},
};

Result<void> ifreq_call(unsigned long req, ifreq& ifr, const std::string& what) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd || ioctl(fd.get(), req, &ifr) != 0) return fail_errno(what);
  return {};
}

ifreq ifreq_of(const std::string& name) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return ifr;
}

// MTU, no IPv6 (no neighbour discovery or MLD on the pair), up.
Result<void> set_up(const std::string& name) {
  if (std::ofstream f("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"); f) f << "1\n";
  ifreq ifr = ifreq_of(name);
  ifr.ifr_mtu = kPairMtu;
  if (auto r = ifreq_call(SIOCSIFMTU, ifr, fmt::format("set the MTU of {} to {}", name, kPairMtu)); !r) return r;
  ifr = ifreq_of(name);
  if (auto r = ifreq_call(SIOCGIFFLAGS, ifr, fmt::format("read the flags of {}", name)); !r) return r;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  return ifreq_call(SIOCSIFFLAGS, ifr, fmt::format("set {} up", name));
}

// GRO on the agent's end, so that frames redirected by native XDP reach it: a veth takes
// ndo_xdp_xmit only with NAPI on the receiving end, and turning GRO on gives it that only while
// the device is up (turned on before, the far end never becomes a redirect target).
// An adopted pair's GRO is turned off and on again: whoever turned it on may have done it while
// the device was down.
Result<void> gro_on(const std::string& name) {
  ifreq ifr = ifreq_of(name);
  ethtool_value ev{ETHTOOL_GGRO, 0};
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  if (auto r = ifreq_call(SIOCETHTOOL, ifr, fmt::format("read GRO of {}", name)); !r) return r;
  if (ev.data) {
    ev = {ETHTOOL_SGRO, 0};
    if (auto r = ifreq_call(SIOCETHTOOL, ifr, fmt::format("turn GRO off for {}", name)); !r) return r;
  }
  ev = {ETHTOOL_SGRO, 1};
  return ifreq_call(SIOCETHTOOL, ifr, fmt::format("turn GRO on for {}", name));
}

Result<Mac> mac_of(const std::string& name) {
  ifreq ifr = ifreq_of(name);
  if (auto r = ifreq_call(SIOCGIFHWADDR, ifr, fmt::format("MAC of {}", name)); !r) return unexpected(r.error());
  Mac m{};
  std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
  return m;
}

IcmpLimiter::Key limiter_key(const Address& a) {
  IcmpLimiter::Key k{};
  k[0] = static_cast<uint8_t>(a.family);
  std::copy(a.bytes.begin(), a.bytes.end(), k.begin() + 1);
  return k;
}

}  // namespace

std::span<const CounterName> counter_names() { return kNames; }

Result<std::unique_ptr<SlowPath>> SlowPath::open(Options o) {
  if (o.fast_if.empty() || o.fast_if.size() >= IFNAMSIZ || o.agent_if.empty() || o.agent_if.size() >= IFNAMSIZ)
    return fail("bad slow path interface names", EINVAL);
  std::unique_ptr<SlowPath> sp(new SlowPath(std::move(o)));
  const auto& fast = sp->opts_.fast_if;
  const auto& agent = sp->opts_.agent_if;
  auto s = nl_route_socket();
  if (!s) return unexpected(s.error());
  NlLink fl = nl_get_link(s->get(), fast), al = nl_get_link(s->get(), agent);
  if (fl || al) {
    // adopt only our own pair: the two ends of one veth, with these names
    const bool ours = fl && al && rtnl_link_is_veth(fl.get()) && rtnl_link_get_link(fl.get()) == rtnl_link_get_ifindex(al.get());
    if (!ours)
      return fail(fmt::format("{} or {} exists and is not the slow path's veth pair ({} <-> {}); remove it, or turn "
                              "the slow path off (node.slow_path: false)", fast, agent, fast, agent), EEXIST);
  } else {
    if (int e = rtnl_link_veth_add(s->get(), fast.c_str(), agent.c_str(), getpid()); e < 0)
      return fail(fmt::format("create the slow path's veth pair {} <-> {}: {}", fast, agent, nl_geterror(e)), EIO);
    sp->created_ = true;
  }
  for (const auto& name : {fast, agent})
    if (auto r = set_up(name); !r) return unexpected(r.error());
  if (auto r = gro_on(agent); !r) return unexpected(r.error());
  sp->fast_ifindex_ = static_cast<int>(if_nametoindex(fast.c_str()));
  sp->agent_ifindex_ = static_cast<int>(if_nametoindex(agent.c_str()));
  auto fm = mac_of(fast), am = mac_of(agent);
  if (!fm || !am || !sp->fast_ifindex_ || !sp->agent_ifindex_)
    return fail(fmt::format("the slow path's pair {} <-> {} vanished while it was set up", fast, agent), ENODEV);
  sp->fast_mac_ = *fm;
  sp->agent_mac_ = *am;
  if (auto r = sp->open_sockets(); !r) return unexpected(r.error());
  sp->buf_.resize(kBufLen);
  log::info("slow path: {} {} <-> {} (MTU {}), VXLAN-GPE socket {}", sp->created_ ? "created" : "adopted", fast, agent,
            kPairMtu, sp->gpe_error_.empty() ? "bound" : sp->gpe_error_);
  return sp;
}

SlowPath::~SlowPath() = default;

Result<void> SlowPath::open_sockets() {
  rx_.reset(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(AC_ETH_P_SLOW)));
  if (!rx_) return fail_errno("AF_PACKET socket for the slow path");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(AC_ETH_P_SLOW);
  sll.sll_ifindex = agent_ifindex_;
  if (bind(rx_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
    return fail_errno(fmt::format("bind AF_PACKET to {}", opts_.agent_if));
  int one = 1, big = 4 << 20;
  setsockopt(rx_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  setsockopt(rx_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  tx_.reset(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));  // protocol 0: receives nothing
  if (!tx_) return fail_errno("AF_PACKET socket for sending");
  setsockopt(tx_.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);

  icmp4_.reset(socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP));
  if (!icmp4_) return fail_errno("raw ICMP socket");
  icmp_filter only_unreachable{~(1u << ICMP_DEST_UNREACH)};  // a set bit filters its type out
  setsockopt(icmp4_.get(), SOL_RAW, ICMP_FILTER, &only_unreachable, sizeof only_unreachable);
  icmp6_.reset(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6));
  if (icmp6_) {  // send only
    icmp6_filter none;
    ICMP6_FILTER_SETBLOCKALL(&none);
    setsockopt(icmp6_.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &none, sizeof none);
  }
  bind_gpe_socket();
  return {};
}

void SlowPath::bind_gpe_socket() {
  gpe_.reset(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  gpe_error_.clear();
  if (!gpe_) {
    gpe_error_ = fmt::format("UDP socket: {}", std::strerror(errno));
    return;
  }
  int one = 1, big = 4 << 20;
  // the endpoint may not be configured yet (it lives on lo); the socket receives once it is
  setsockopt(gpe_.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
  setsockopt(gpe_.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  setsockopt(gpe_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = opts_.endpoint;
  a.sin_port = htons(opts_.gpe_port);
  char ep[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &opts_.endpoint, ep, sizeof ep);
  if (bind(gpe_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return;
  gpe_error_ = fmt::format("cannot bind {}:{} ({}): VXLAN-GPE the underlay fragments is not received", ep,
                           opts_.gpe_port, std::strerror(errno));
  log::error("slow path: {}", gpe_error_);
  // still send fragments to other nodes, from an ephemeral port
  a.sin_port = 0;
  if (bind(gpe_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) gpe_.reset();
}

void SlowPath::set_endpoint(in_addr endpoint) {
  if (endpoint.s_addr == opts_.endpoint.s_addr) return;
  opts_.endpoint = endpoint;
  bind_gpe_socket();
}

bool SlowPath::intact() const {
  return fast_ifindex_ && static_cast<int>(if_nametoindex(opts_.fast_if.c_str())) == fast_ifindex_ &&
         static_cast<int>(if_nametoindex(opts_.agent_if.c_str())) == agent_ifindex_;
}

std::vector<pollfd> SlowPath::poll_fds() const {
  std::vector<pollfd> out;
  for (const UniqueFd* f : {&rx_, &gpe_, &icmp4_})
    if (*f) out.push_back({f->get(), POLLIN, 0});
  return out;
}

void SlowPath::on_event(int fd, short revents) {
  if (!(revents & (POLLIN | POLLERR))) return;
  if (fd == rx_.get()) read_frames();
  else if (fd == gpe_.get()) read_datagrams();
  else if (fd == icmp4_.get()) read_icmp();
}

void SlowPath::log_once(const std::string& what, const std::string& detail) {
  auto now = Clock::now();
  auto& last = last_log_[what];
  if (last != Clock::time_point{} && now - last < std::chrono::seconds(10)) return;
  last = now;
  log::warn("slow path: {}: {}", what, detail);
}

void SlowPath::read_frames() {
  for (int i = 0; i < kBatch; ++i) {
    ssize_t n = recv(rx_.get(), buf_.data(), buf_.size(), MSG_TRUNC);
    if (n < 0) return;
    if (static_cast<size_t>(n) > buf_.size()) {
      ++c_.malformed;
      log_once("malformed", fmt::format("a frame of {} bytes is larger than the receive buffer", n));
      continue;
    }
    handle_frame({buf_.data(), static_cast<size_t>(n)});
  }
}

void SlowPath::handle_frame(std::span<const uint8_t> frame) {
  auto h = parse_handed_over(frame);
  if (!h) {
    ++c_.malformed;
    log_once("malformed", h.error().message);
    return;
  }
  auto plan = plan_too_big(*h);
  if (!plan) {
    ++c_.malformed;
    log_once("malformed", plan.error().message);
    return;
  }
  switch (plan->kind) {
    case Plan::Kind::IcmpForbidden:
      ++c_.icmp_forbidden;
      return;
    case Plan::Kind::Unfragmentable:
      ++c_.unfragmentable;
      log_once("unfragmentable", plan->why);
      return;
    case Plan::Kind::IcmpError:
      if (!limiter_.allow(limiter_key(plan->source), Clock::now())) {
        ++c_.icmp_rate_limited;
        return;
      }
      if (send_icmp(*plan)) ++c_.icmp_sent;
      else ++c_.send_failed;
      return;
    case Plan::Kind::Fragments:
      if (plan->proxy && !plan->proxy->fragment) {
        auto held = opts_.hold_for_fragments
                        ? opts_.hold_for_fragments(plan->to_ifindex, plan->proxy->flow, plan->proxy->datagram)
                        : Result<bool>(false);
        if (!held || !*held) {
          ++c_.proxy_nsh_missing;
          if (!held) log_once("SFC proxy", held.error().str());
          return;
        }
      }
      if (send_fragments(*plan)) ++c_.fragmented;
      else ++c_.send_failed;
      return;
  }
}

bool SlowPath::send_icmp(const Plan& p) {
  ssize_t n;
  if (p.source.family == 4) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, p.source.bytes.data(), 4);
    n = sendto(icmp4_.get(), p.icmp.data(), p.icmp.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    if (!icmp6_) {
      log_once("ICMPv6", "no ICMPv6 socket (IPv6 disabled on this node?)");
      return false;
    }
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    std::memcpy(&to.sin6_addr, p.source.bytes.data(), 16);
    n = sendto(icmp6_.get(), p.icmp.data(), p.icmp.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  if (n < 0) log_once("send ICMP", fmt::format("to {}: {}", to_string(p.source), std::strerror(errno)));
  return n >= 0;
}

bool SlowPath::send_fragments(const Plan& p) {
  for (const auto& s : p.sends) {
    ssize_t n;
    if (p.to_ifindex) {
      sockaddr_ll to{};
      to.sll_family = AF_PACKET;
      to.sll_ifindex = static_cast<int>(p.to_ifindex);
      to.sll_halen = 6;
      std::memcpy(to.sll_addr, s.data(), 6);
      n = sendto(tx_.get(), s.data(), s.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    } else {
      if (!gpe_) {
        log_once("send fragments", "no UDP socket for VXLAN-GPE");
        return false;
      }
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_addr = p.remote;
      to.sin_port = htons(p.remote_port);
      n = sendto(gpe_.get(), s.data(), s.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
    if (n < 0) {
      log_once("send fragments", fmt::format("{}: {}", p.to_ifindex ? fmt::format("interface {}", p.to_ifindex) : inet_ntoa(p.remote),
                                             std::strerror(errno)));
      return false;
    }
    ++c_.fragments_sent;
  }
  return true;
}

void SlowPath::read_datagrams() {
  for (int i = 0; i < kBatch; ++i) {
    sockaddr_in from{};
    iovec iov{buf_.data(), buf_.size()};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(in_pktinfo))];
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    ssize_t n = recvmsg(gpe_.get(), &m, 0);
    if (n < 0) return;
    int ifindex = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
        ifindex = reinterpret_cast<const in_pktinfo*>(CMSG_DATA(c))->ipi_ifindex;
    handle_datagram({buf_.data(), static_cast<size_t>(n)}, from.sin_addr, ntohs(from.sin_port), ifindex);
  }
}

void SlowPath::handle_datagram(std::span<const uint8_t> payload, in_addr from, uint16_t sport, int ifindex) {
  if (ifindex && ifindex == fast_ifindex_) {
    // the fast path passed a re-injected datagram to the stack: never around again
    ++c_.gpe_looped;
    return;
  }
  if (auto r = check_vxlan_gpe(payload); !r) {
    ++c_.gpe_rejected;
    log_once("VXLAN-GPE rejected", fmt::format("from {}:{}: {}", inet_ntoa(from), sport, r.error().message));
    return;
  }
  Bytes f = reinjection_frame(fast_mac_, agent_mac_, from, sport, opts_.endpoint, opts_.gpe_port, payload);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = agent_ifindex_;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, fast_mac_.data(), 6);
  if (sendto(tx_.get(), f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    ++c_.gpe_send_failed;
    log_once("re-inject VXLAN-GPE", fmt::format("{} bytes: {}", f.size(), std::strerror(errno)));
    return;
  }
  ++c_.gpe_reinjected;
}

// "Fragmentation needed" about VXLAN-GPE the fast path sent (from our endpoint, to port 4790):
// the kernel updates a route's path MTU only for an error that matches a socket, and the fast
// path's packets come from ports no socket has (0xC000 | flow hash). So the agent sends a probe
// of the refused size from its own socket (endpoint:4790, DF): the hop refuses it too, the error
// matches the socket, the kernel records the path MTU, and bpf_fib_lookup() reports it.
void SlowPath::read_icmp() {
  for (int i = 0; i < kBatch; ++i) {
    ssize_t n = recv(icmp4_.get(), buf_.data(), buf_.size(), 0);
    if (n < 0) return;
    std::span<const uint8_t> p(buf_.data(), static_cast<size_t>(n));
    if (p.size() < 20) continue;
    const size_t ihl = static_cast<size_t>(p[0] & 0xf) * 4;
    if (p.size() < ihl + 8 + 20 + 8) continue;
    const uint8_t* icmp = &p[ihl];
    const uint8_t* q = icmp + 8;  // the quoted IPv4 header
    const size_t qihl = static_cast<size_t>(q[0] & 0xf) * 4;
    if (icmp[0] != ICMP_DEST_UNREACH || icmp[1] != ICMP_FRAG_NEEDED || (q[0] >> 4) != 4 || q[9] != IPPROTO_UDP ||
        qihl < 20 || p.size() < ihl + 8 + qihl + 4)
      continue;
    in_addr qsrc, qdst;
    std::memcpy(&qsrc.s_addr, q + 12, 4);
    std::memcpy(&qdst.s_addr, q + 16, 4);
    const uint8_t* qudp = q + qihl;
    if (qsrc.s_addr != opts_.endpoint.s_addr || be16(qudp + 2) != opts_.gpe_port || be16(qudp) == opts_.gpe_port) continue;
    ++c_.underlay_frag_needed;
    const uint16_t mtu = be16(icmp + 6), refused = be16(q + 2);
    auto now = Clock::now();
    auto& last = last_probe_[qdst.s_addr];
    if (!gpe_ || refused <= 28 || (last != Clock::time_point{} && now - last < std::chrono::seconds(1))) continue;
    last = now;
    Bytes probe(refused - 28, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr = qdst;
    to.sin_port = htons(kProbePort);
    if (sendto(gpe_.get(), probe.data(), probe.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) >= 0) ++c_.pmtu_probes;
    log::info("slow path: the path to {} takes {} bytes (a {}-byte VXLAN-GPE packet was refused); probed", inet_ntoa(qdst),
              mtu, refused);
  }
}

nlohmann::json SlowPath::status() const {
  nlohmann::json handed = nlohmann::json::object(), gpe = nlohmann::json::object(), notes = nlohmann::json::object();
  for (const auto& n : kNames)
    (n.kind == CounterKind::HandedOver ? handed : n.kind == CounterKind::VxlanGpe ? gpe : notes)[n.name] = c_.*n.field;
  char ep[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &opts_.endpoint, ep, sizeof ep);
  return {{"state", intact() ? "up" : "broken: the veth pair was removed"},
          {"interface", opts_.fast_if},
          {"ifindex", fast_ifindex_},
          {"agent_interface", opts_.agent_if},
          {"vxlan_gpe_socket", gpe_error_.empty() ? fmt::format("{}:{}", ep, opts_.gpe_port) : gpe_error_},
          {"handed_over", handed},
          {"vxlan_gpe", gpe},
          {"notes", notes}};
}

Result<void> SlowPath::remove(const std::string& fast_if) {
  auto s = nl_route_socket();
  if (!s) return unexpected(s.error());
  NlLink l = nl_get_link(s->get(), fast_if);
  if (!l) return {};
  if (int e = rtnl_link_delete(s->get(), l.get()); e < 0)
    return fail(fmt::format("delete {}: {}", fast_if, nl_geterror(e)), EIO);
  return {};
}

}  // namespace anychain::slowpath
