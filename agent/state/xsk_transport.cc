#include "state/xsk_transport.h"

#include <bpf/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

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

int rx_queue_count(int sock, const std::string& ifname) {
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  if (ioctl(sock, SIOCETHTOOL, &ifr) != 0) return 1;
  int n = static_cast<int>(std::max(ch.rx_count, ch.combined_count));
  return n > 0 ? n : 1;
}
}  // namespace

struct XskTransport::Queue {
  uint32_t id = 0;
  void* area = nullptr;
  size_t size = 0;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{}, tx{};
  xsk_ring_cons comp{}, rx{};
  std::vector<uint64_t> free_tx;
  bool zerocopy = false;

  ~Queue() {
    if (xsk) xsk_socket__delete(xsk);
    if (umem) xsk_umem__delete(umem);
    if (area) munmap(area, size);
  }
  int fd() const { return xsk_socket__fd(xsk); }
  void reap() {
    uint32_t idx = 0;
    uint32_t n = xsk_ring_cons__peek(&comp, 256, &idx);
    for (uint32_t i = 0; i < n; ++i) free_tx.push_back(*xsk_ring_cons__comp_addr(&comp, idx + i));
    if (n) xsk_ring_cons__release(&comp, n);
  }
};

namespace {
// One socket on one queue with its own UMEM: half the frames wait in the fill ring for RX, half
// are free for TX.
Result<void> setup_queue(XskTransport::Queue& q, const XskOptions& o, uint32_t ifindex, bool zerocopy) {
  q.size = size_t{o.frames} * kFrameSize;
  q.area = mmap(nullptr, q.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (q.area == MAP_FAILED) {
    q.area = nullptr;
    return fail_errno("AF_XDP: UMEM of " + std::to_string(q.size) + " bytes");
  }
  xsk_umem_config ucfg{};
  ucfg.fill_size = o.frames / 2;
  ucfg.comp_size = o.frames / 2;
  ucfg.frame_size = kFrameSize;
  int err = xsk_umem__create(&q.umem, q.area, q.size, &q.fill, &q.comp, &ucfg);
  if (err) {
    q.umem = nullptr;
    return fail_errno("AF_XDP: UMEM on " + o.ifname, err);
  }
  xsk_socket_config scfg{};
  scfg.rx_size = o.frames / 2;
  scfg.tx_size = o.frames / 2;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  scfg.bind_flags = static_cast<uint16_t>(XDP_USE_NEED_WAKEUP | (zerocopy ? XDP_ZEROCOPY : XDP_COPY));
  err = xsk_socket__create(&q.xsk, o.ifname.c_str(), q.id, q.umem, &q.rx, &q.tx, &scfg);
  if (err) {
    q.xsk = nullptr;
    return fail_errno("AF_XDP: socket on " + o.ifname + " queue " + std::to_string(q.id) +
                          (zerocopy ? " (zero-copy)" : " (copy mode)"),
                      err);
  }
  q.zerocopy = zerocopy;
  uint32_t idx = 0;
  uint32_t half = o.frames / 2;
  if (xsk_ring_prod__reserve(&q.fill, half, &idx) != half) return fail("AF_XDP: fill ring");
  for (uint32_t i = 0; i < half; ++i) *xsk_ring_prod__fill_addr(&q.fill, idx + i) = uint64_t{i} * kFrameSize;
  xsk_ring_prod__submit(&q.fill, half);
  for (uint32_t i = half; i < o.frames; ++i) q.free_tx.push_back(uint64_t{i} * kFrameSize);
  if (o.slot_stride) {
    const uint32_t key = ifindex * o.slot_stride + q.id;
    const int fd = xsk_socket__fd(q.xsk);
    if (bpf_map_update_elem(o.xskmap_fd, &key, &fd, BPF_ANY) != 0)
      return fail_errno("AF_XDP: XSKMAP slot " + std::to_string(key) + " for " + o.ifname + " queue " + std::to_string(q.id));
  } else {
    err = xsk_socket__update_xskmap(q.xsk, o.xskmap_fd);
    if (err) return fail_errno("AF_XDP: XSKMAP entry for queue " + std::to_string(q.id), err);
  }
  return {};
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
    for (int i = 0, n = rx_queue_count(sock.get(), o.ifname); i < n; ++i) queues.push_back(static_cast<uint32_t>(i));
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
    auto q = std::make_unique<Queue>();
    q->id = id;
    auto r = o.zerocopy ? setup_queue(*q, o, t->ifindex_, true) : fail("");
    if (!r) {
      q = std::make_unique<Queue>();
      q->id = id;
      r = setup_queue(*q, o, t->ifindex_, false);
    }
    if (!r) return unexpected(r.error());
    t->queues_.push_back(std::move(q));
  }
  bool zc = true;
  for (auto& q : t->queues_) zc &= q->zerocopy;
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
  Queue& q = *queues_.front();
  if (!hop || hop->ifindex != ifindex_ || kHeaders + d.size() > kFrameSize) {
    ++st_.tx_fallback;  // the kernel routes it (and resolves the neighbour for the next ones)
    return udp_->send(to, d);
  }
  q.reap();
  if (q.free_tx.empty()) {
    ++st_.tx_errors;
    return fail("AF_XDP: no free TX frame on " + opt_.ifname, EAGAIN);
  }
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&q.tx, 1, &idx) != 1) {
    ++st_.tx_errors;
    return fail("AF_XDP: TX ring full on " + opt_.ifname, EAGAIN);
  }
  uint64_t frame = q.free_tx.back();
  q.free_tx.pop_back();
  size_t len = 0;
  build_frame(static_cast<uint8_t*>(xsk_umem__get_data(q.area, frame)), len, *hop, to, d);
  xdp_desc* desc = xsk_ring_prod__tx_desc(&q.tx, idx);
  desc->addr = frame;
  desc->len = static_cast<uint32_t>(len);
  xsk_ring_prod__submit(&q.tx, 1);
  if (xsk_ring_prod__needs_wakeup(&q.tx)) (void)::sendto(q.fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  ++st_.tx_frames;
  st_.tx_bytes += d.size();
  return {};
}

size_t XskTransport::receive(const RecvFn& fn, size_t max) {
  size_t n = 0;
  for (auto& qp : queues_) {
    Queue& q = *qp;
    if (xsk_ring_prod__needs_wakeup(&q.fill)) (void)::recvfrom(q.fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    uint32_t idx = 0;
    uint32_t got = xsk_ring_cons__peek(&q.rx, static_cast<uint32_t>(std::min<size_t>(max - n, 256)), &idx);
    std::vector<uint64_t> done;
    for (uint32_t i = 0; i < got; ++i) {
      const xdp_desc* desc = xsk_ring_cons__rx_desc(&q.rx, idx + i);
      done.push_back(xsk_umem__extract_addr(desc->addr));
      auto* f = static_cast<const uint8_t*>(xsk_umem__get_data(q.area, desc->addr));
      size_t len = desc->len;
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
        continue;
      }
      size_t plen = ntohs(udp->len) - sizeof(udphdr);
      ++st_.rx_frames;
      st_.rx_bytes += plen;
      fn(ByteView(reinterpret_cast<const uint8_t*>(udp + 1), plen), Endpoint{ip->saddr, ntohs(udp->source)});
      ++n;
    }
    if (got) xsk_ring_cons__release(&q.rx, got);
    if (!done.empty()) {
      uint32_t fidx = 0;
      uint32_t r = xsk_ring_prod__reserve(&q.fill, static_cast<uint32_t>(done.size()), &fidx);
      for (uint32_t i = 0; i < r; ++i) *xsk_ring_prod__fill_addr(&q.fill, fidx + i) = done[i];
      xsk_ring_prod__submit(&q.fill, r);
    }
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
