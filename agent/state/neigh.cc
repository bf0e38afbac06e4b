#include "state/neigh.h"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

namespace anychain::state {

namespace {
constexpr uint64_t kPositiveUs = 1'000'000;
constexpr uint64_t kNegativeUs = 10'000;

// A netlink request: header, a fixed family struct, then IPv4 attributes.
template <class Fixed>
std::vector<uint8_t> build(uint16_t type, uint32_t seq, const Fixed& fixed,
                           std::initializer_list<std::pair<uint16_t, uint32_t>> attrs) {
  std::vector<uint8_t> b(NLMSG_LENGTH(sizeof(Fixed)));
  auto* h = reinterpret_cast<nlmsghdr*>(b.data());
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST;
  h->nlmsg_seq = seq;
  std::memcpy(NLMSG_DATA(h), &fixed, sizeof fixed);
  for (auto [t, v] : attrs) {
    size_t at = NLMSG_ALIGN(b.size());
    b.resize(at + RTA_LENGTH(sizeof v));
    auto* a = reinterpret_cast<rtattr*>(b.data() + at);
    a->rta_type = t;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(sizeof v));
    std::memcpy(RTA_DATA(a), &v, sizeof v);
  }
  reinterpret_cast<nlmsghdr*>(b.data())->nlmsg_len = static_cast<uint32_t>(b.size());
  return b;
}
}  // namespace

Result<NeighbourTable> NeighbourTable::open() {
  NeighbourTable t;
  t.fd_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!t.fd_) return fail_errno("state transport: rtnetlink socket");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(t.fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return fail_errno("state transport: bind rtnetlink");
  timeval tv{.tv_sec = 0, .tv_usec = 20'000};  // the kernel answers at once; never stall the event loop
  (void)setsockopt(t.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return t;
}

Result<std::vector<uint8_t>> NeighbourTable::request(const std::vector<uint8_t>& msg) {
  uint32_t seq = reinterpret_cast<const nlmsghdr*>(msg.data())->nlmsg_seq;
  if (::send(fd_.get(), msg.data(), msg.size(), 0) != static_cast<ssize_t>(msg.size()))
    return fail_errno("rtnetlink send");
  std::vector<uint8_t> buf(8192);
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) return fail_errno("rtnetlink receive");
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<uint32_t>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq) continue;  // an answer to an earlier request that timed out
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return fail_errno("rtnetlink", -e->error);
      }
      return std::vector<uint8_t>(reinterpret_cast<uint8_t*>(h), reinterpret_cast<uint8_t*>(h) + h->nlmsg_len);
    }
  }
}

Result<std::pair<uint32_t, uint32_t>> NeighbourTable::route(uint32_t dst) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = 32;
  auto reply = request(build(RTM_GETROUTE, seq_++, rt, {{RTA_DST, dst}}));
  if (!reply) return unexpected(reply.error());
  auto* h = reinterpret_cast<nlmsghdr*>(reply->data());
  auto* r = static_cast<rtmsg*>(NLMSG_DATA(h));
  uint32_t oif = 0, gw = 0;
  int len = static_cast<int>(RTM_PAYLOAD(h));
  for (auto* a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == RTA_OIF) std::memcpy(&oif, RTA_DATA(a), 4);
    if (a->rta_type == RTA_GATEWAY) std::memcpy(&gw, RTA_DATA(a), 4);
  }
  if (!oif) return fail("no route");
  return std::make_pair(oif, gw ? gw : dst);
}

Result<std::optional<std::array<uint8_t, 6>>> NeighbourTable::neighbour(uint32_t ifindex, uint32_t addr) {
  ndmsg nd{};
  nd.ndm_family = AF_INET;
  nd.ndm_ifindex = static_cast<int>(ifindex);
  auto reply = request(build(RTM_GETNEIGH, seq_++, nd, {{NDA_DST, addr}}));
  if (!reply) {
    if (reply.error().code == ENOENT) return std::optional<std::array<uint8_t, 6>>{};
    return unexpected(reply.error());
  }
  auto* h = reinterpret_cast<nlmsghdr*>(reply->data());
  auto* n = static_cast<ndmsg*>(NLMSG_DATA(h));
  constexpr uint16_t usable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;
  if (!(n->ndm_state & usable)) return std::optional<std::array<uint8_t, 6>>{};
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
  for (auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<uint8_t*>(n) + NLMSG_ALIGN(sizeof(ndmsg))); RTA_OK(a, len);
       a = RTA_NEXT(a, len)) {
    if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
      std::array<uint8_t, 6> mac;
      std::memcpy(mac.data(), RTA_DATA(a), 6);
      return std::optional<std::array<uint8_t, 6>>(mac);
    }
  }
  return std::optional<std::array<uint8_t, 6>>{};
}

std::optional<NextHop> NeighbourTable::lookup(uint32_t dst, uint64_t now_us) {
  auto it = cache_.find(dst);
  if (it != cache_.end() && now_us < it->second.expires_us) return it->second.hop;
  Entry e;
  e.expires_us = now_us + kNegativeUs;
  if (auto r = route(dst)) {
    auto [oif, via] = *r;
    if (auto mac = neighbour(oif, via); mac && *mac) {
      e.hop = NextHop{oif, **mac};
      e.expires_us = now_us + kPositiveUs;
    }
  }
  cache_[dst] = e;
  return e.hop;
}

}  // namespace anychain::state
