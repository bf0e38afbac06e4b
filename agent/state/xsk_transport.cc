#include "state/xsk_transport.h"

#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

namespace anychain::state {

namespace {
constexpr uint32_t kFrameSize = 2048;  // the smallest UMEM frame: a 1400-byte message fits
constexpr size_t kHeaders = sizeof(ethhdr) + sizeof(iphdr) + sizeof(udphdr);

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
uint32_t add_bytes(uint32_t sum, const uint8_t* p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}

}  // namespace

Result<std::unique_ptr<XskTransport>> XskTransport::open(const XskOptions& o) {
  std::unique_ptr<XskTransport> t(new XskTransport());
  t->opt_ = o;
  if (!o.local.addr || !o.local.port) return fail("AF_XDP: needs the local IPv4 address and port");
  if (o.xskmap_fd < 0) return fail("AF_XDP: no XSKMAP (nothing redirects the replication port)");
  if (o.frames < 64 || (o.frames & (o.frames - 1))) return fail("AF_XDP: frames must be a power of two >= 64");
  t->ifindex_ = if_nametoindex(o.ifname.c_str());
  if (!t->ifindex_) return fail_errno("AF_XDP: interface '" + o.ifname + "'");
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("AF_XDP: socket for ioctl");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, o.ifname.c_str(), IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFHWADDR, &ifr) != 0) return fail_errno("AF_XDP: MAC of " + o.ifname);
  std::memcpy(t->mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  std::vector<uint32_t> queues = o.queues;
  if (queues.empty())
    for (uint32_t i = 0, n = xsk::rx_queue_count(o.ifname); i < n; ++i) queues.push_back(i);
  auto udp = UdpTransport::open(o.local);
  if (!udp) return unexpected(udp.error());
  t->udp_ = std::move(*udp);
  auto neigh = NeighbourTable::open();
  if (!neigh) return unexpected(neigh.error());
  t->neigh_ = std::move(*neigh);
  for (uint32_t id : queues) {
    if (o.slot_stride && id >= o.slot_stride)
      return fail("AF_XDP: " + o.ifname + " queue " + std::to_string(id) + " has no XSKMAP slot (queues below " +
                  std::to_string(o.slot_stride) + ")");
    xsk::Options xo;
    xo.ifname = o.ifname;
    xo.queue = id;
    xo.frames = o.frames;
    xo.frame_size = kFrameSize;
    xo.zerocopy = o.zerocopy;
    auto q = xsk::Socket::open(xo);
    if (!q) return unexpected(q.error());
    auto in = o.slot_stride ? (*q)->insert(o.xskmap_fd, t->ifindex_ * o.slot_stride + id) : (*q)->insert_at_queue(o.xskmap_fd);
    if (!in) return unexpected(in.error());
    t->queues_.push_back(std::move(*q));
  }
  bool zc = true;
  for (auto& q : t->queues_) zc &= q->zerocopy();
  t->st_.ifname = o.ifname;
  t->st_.mode = zc ? "afxdp-zerocopy" : "afxdp-copy";
  t->st_.queues = static_cast<uint32_t>(t->queues_.size());
  return t;
}

XskTransport::~XskTransport() = default;

bool XskTransport::build_frame(uint8_t* f, size_t& len, const NextHop& hop, const Endpoint& to, ByteView payload) const {
  len = kHeaders + payload.size();
  if (len > kFrameSize) return false;
  auto* eth = reinterpret_cast<ethhdr*>(f);
  std::memcpy(eth->h_dest, hop.mac.data(), 6);
  std::memcpy(eth->h_source, mac_.data(), 6);
  eth->h_proto = htons(ETH_P_IP);
  auto* ip = reinterpret_cast<iphdr*>(f + sizeof(ethhdr));
  std::memset(ip, 0, sizeof *ip);
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(iphdr) + sizeof(udphdr) + payload.size()));
  ip->frag_off = htons(0x4000);  // DF: the message is sized for the path
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->saddr = opt_.local.addr;
  ip->daddr = to.addr;
  ip->check = htons(static_cast<uint16_t>(~fold(add_bytes(0, reinterpret_cast<uint8_t*>(ip), sizeof *ip))));
  auto* udp = reinterpret_cast<udphdr*>(f + sizeof(ethhdr) + sizeof(iphdr));
  uint16_t ulen = static_cast<uint16_t>(sizeof(udphdr) + payload.size());
  udp->source = htons(opt_.local.port);
  udp->dest = htons(to.port);
  udp->len = htons(ulen);
  udp->check = 0;
  std::memcpy(f + kHeaders, payload.data(), payload.size());
  // checksum over the pseudo header, the UDP header and the payload
  uint32_t sum = add_bytes(0, reinterpret_cast<const uint8_t*>(&ip->saddr), 8);
  sum += IPPROTO_UDP + ulen;
  sum = add_bytes(sum, reinterpret_cast<uint8_t*>(udp), ulen);
  uint16_t c = static_cast<uint16_t>(~fold(sum));
  udp->check = htons(c ? c : 0xffff);
  return true;
}

Result<void> XskTransport::send(const Endpoint& to, ByteView d) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
  auto hop = neigh_.lookup(to.addr, now);
  xsk::Socket& q = *queues_.front();
  if (!hop || hop->ifindex != ifindex_ || kHeaders + d.size() > kFrameSize) {
    ++st_.tx_fallback;  // the kernel routes it (and resolves the neighbour for the next ones)
    return udp_->send(to, d);
  }
  auto sent = q.send([&](uint8_t* f, size_t) {
    size_t len = 0;
    build_frame(f, len, *hop, to, d);
    return len;
  });
  if (!sent) {
    ++st_.tx_errors;
    return unexpected(sent.error());
  }
  ++st_.tx_frames;
  st_.tx_bytes += d.size();
  return {};
}

size_t XskTransport::receive(const RecvFn& fn, size_t max) {
  size_t n = 0;
  for (auto& q : queues_) {
    q->receive(max - n, [&](std::span<const uint8_t> fr) {
      const uint8_t* f = fr.data();
      const size_t len = fr.size();
      // only IPv4/UDP to our address and port, unfragmented, lengths consistent
      auto* eth = reinterpret_cast<const ethhdr*>(f);
      auto* ip = reinterpret_cast<const iphdr*>(f + sizeof(ethhdr));
      size_t ihl = len >= sizeof(ethhdr) + sizeof(iphdr) ? size_t{ip->ihl} * 4 : 0;
      auto* udp = reinterpret_cast<const udphdr*>(f + sizeof(ethhdr) + ihl);
      if (len < kHeaders || eth->h_proto != htons(ETH_P_IP) || ip->version != 4 || ihl < sizeof(iphdr) ||
          len < sizeof(ethhdr) + ihl + sizeof(udphdr) || ip->protocol != IPPROTO_UDP ||
          (ntohs(ip->frag_off) & 0x3fff) || ip->daddr != opt_.local.addr || udp->dest != htons(opt_.local.port) ||
          ntohs(udp->len) < sizeof(udphdr) || sizeof(ethhdr) + ihl + ntohs(udp->len) > len) {
        ++st_.rx_errors;
        return;
      }
      size_t plen = ntohs(udp->len) - sizeof(udphdr);
      ++st_.rx_frames;
      st_.rx_bytes += plen;
      fn(ByteView(reinterpret_cast<const uint8_t*>(udp + 1), plen), Endpoint{ip->saddr, ntohs(udp->source)});
      ++n;
    });
    if (n >= max) return n;
  }
  return n + udp_->receive(fn, max - n);
}

std::vector<int> XskTransport::fds() const {
  std::vector<int> v;
  for (auto& q : queues_) v.push_back(q->fd());
  v.push_back(udp_->fds().front());
  return v;
}

TransportStatus XskTransport::status() const {
  TransportStatus s = st_;
  TransportStatus u = udp_->status();
  s.rx_fallback = u.rx_frames;
  s.tx_errors += u.tx_errors;
  return s;
}

Result<std::unique_ptr<Transport>> open_transport(const XskOptions& o) {
  std::string reason;
  if (o.xskmap_fd >= 0) {
    auto x = XskTransport::open(o);
    if (x) return std::unique_ptr<Transport>(std::move(*x));
    reason = x.error().str();
  } else {
    reason = "no XSKMAP: nothing redirects the replication port to AF_XDP";
  }
  auto u = UdpTransport::open(o.local, reason);
  if (!u) return unexpected(u.error());
  return std::unique_ptr<Transport>(std::move(*u));
}

}  // namespace anychain::state
