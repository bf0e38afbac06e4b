#include "xsk/socket.h"

#include <bpf/bpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "common/unique_fd.h"

namespace anychain::xsk {

struct Socket::Rings {
  xsk_ring_prod fill{}, tx{};
  xsk_ring_cons comp{}, rx{};
};

uint32_t rx_queue_count(const std::string& ifname) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return 1;
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  if (ioctl(sock.get(), SIOCETHTOOL, &ifr) != 0) return 1;
  return std::max<uint32_t>({ch.rx_count, ch.combined_count, 1});
}

Result<std::unique_ptr<Socket>> Socket::open(const Options& o) {
  if (o.frames < 64 || (o.frames & (o.frames - 1))) return fail(o.what + ": frames must be a power of two >= 64", EINVAL);
  if (o.frame_size != 2048 && o.frame_size != 4096) return fail(o.what + ": frame size must be 2048 or 4096", EINVAL);
  if (o.rx_frames > o.frames) return fail(o.what + ": more RX frames than UMEM frames", EINVAL);
  std::unique_ptr<Socket> s(new Socket);
  s->opt_ = o;
  if (!s->opt_.rx_frames) s->opt_.rx_frames = o.frames / 2;
  s->r_ = std::make_unique<Rings>();
  s->bytes_ = size_t{o.frames} * o.frame_size;
  s->area_ = mmap(nullptr, s->bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (s->area_ == MAP_FAILED) {
    s->area_ = nullptr;
    return fail_errno(o.what + ": UMEM of " + std::to_string(s->bytes_) + " bytes");
  }
  xsk_umem_config uc{};
  uc.fill_size = s->opt_.rx_frames;
  uc.comp_size = std::max<uint32_t>(o.frames - s->opt_.rx_frames, XSK_RING_CONS__DEFAULT_NUM_DESCS);
  uc.frame_size = o.frame_size;
  if (int e = xsk_umem__create(&s->umem_, s->area_, s->bytes_, &s->r_->fill, &s->r_->comp, &uc); e) {
    s->umem_ = nullptr;
    return fail_errno(o.what + ": UMEM on " + o.ifname, e);
  }
  Result<void> r = fail("");
  const auto until = std::chrono::steady_clock::now() + o.busy_retry;
  for (;;) {
    r = o.zerocopy ? s->bind(true) : fail("");
    if (!r) r = s->bind(false);
    if (r || r.error().code != EBUSY || std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!r) return unexpected(r.error());
  uint32_t idx = 0;
  const uint32_t rx = s->opt_.rx_frames;
  if (xsk_ring_prod__reserve(&s->r_->fill, rx, &idx) != rx) return fail(o.what + ": fill ring", EIO);
  for (uint32_t i = 0; i < rx; ++i) *xsk_ring_prod__fill_addr(&s->r_->fill, idx + i) = uint64_t{i} * o.frame_size;
  xsk_ring_prod__submit(&s->r_->fill, rx);
  for (uint32_t i = rx; i < o.frames; ++i) s->tx_free_.push_back(uint64_t{i} * o.frame_size);
  return s;
}

Result<void> Socket::bind(bool zerocopy) {
  xsk_socket_config sc{};
  sc.rx_size = std::max<uint32_t>(opt_.rx_frames, XSK_RING_CONS__DEFAULT_NUM_DESCS);
  sc.tx_size = std::max<uint32_t>(opt_.frames - opt_.rx_frames, XSK_RING_PROD__DEFAULT_NUM_DESCS);
  sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // the interface's program redirects
  sc.bind_flags = static_cast<uint16_t>((opt_.need_wakeup ? XDP_USE_NEED_WAKEUP : 0) | (zerocopy ? XDP_ZEROCOPY : XDP_COPY));
  if (int e = xsk_socket__create(&sock_, opt_.ifname.c_str(), opt_.queue, umem_, &r_->rx, &r_->tx, &sc); e) {
    sock_ = nullptr;
    return fail_errno(opt_.what + ": socket on " + opt_.ifname + " queue " + std::to_string(opt_.queue) +
                          (zerocopy ? " (zero-copy)" : " (copy mode)"),
                      e);
  }
  zerocopy_ = zerocopy;
  return {};
}

Socket::~Socket() {
  if (sock_) xsk_socket__delete(sock_);
  if (umem_) xsk_umem__delete(umem_);
  if (area_) munmap(area_, bytes_);
}

int Socket::fd() const { return xsk_socket__fd(sock_); }

uint8_t* Socket::at(uint64_t addr) const { return static_cast<uint8_t*>(xsk_umem__get_data(area_, addr)); }

Result<void> Socket::insert(int xskmap_fd, uint32_t key) const {
  const int f = fd();
  if (bpf_map_update_elem(xskmap_fd, &key, &f, BPF_ANY) != 0)
    return fail_errno(opt_.what + ": XSKMAP slot " + std::to_string(key) + " for " + opt_.ifname + " queue " +
                      std::to_string(opt_.queue));
  return {};
}

Result<void> Socket::insert_at_queue(int xskmap_fd) const {
  if (int e = xsk_socket__update_xskmap(sock_, xskmap_fd); e)
    return fail_errno(opt_.what + ": XSKMAP slot " + std::to_string(opt_.queue) + " for " + opt_.ifname, e);
  return {};
}

size_t Socket::receive(size_t max, const RxFn& fn) {
  Rings& r = *r_;
  if (xsk_ring_prod__needs_wakeup(&r.fill)) (void)::recvfrom(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
  size_t total = 0;
  std::vector<uint64_t> back;
  while (total < max) {
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_cons__peek(&r.rx, static_cast<uint32_t>(std::min<size_t>(max - total, 256)), &idx);
    if (!n) break;
    back.clear();
    for (uint32_t i = 0; i < n; ++i) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&r.rx, idx + i);
      back.push_back(xsk_umem__extract_addr(d->addr));
      fn(std::span<const uint8_t>(at(d->addr), d->len));
    }
    xsk_ring_cons__release(&r.rx, n);
    // every frame read goes back: the fill ring has room for all rx_frames
    uint32_t fi = 0;
    const uint32_t got = xsk_ring_prod__reserve(&r.fill, n, &fi);
    for (uint32_t i = 0; i < got; ++i) *xsk_ring_prod__fill_addr(&r.fill, fi + i) = back[i];
    xsk_ring_prod__submit(&r.fill, got);
    total += n;
  }
  return total;
}

void Socket::complete() {
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&r_->comp, 256, &idx);
  for (uint32_t i = 0; i < n; ++i) tx_free_.push_back(*xsk_ring_cons__comp_addr(&r_->comp, idx + i));
  if (n) xsk_ring_cons__release(&r_->comp, n);
}

Result<void> Socket::send(const TxFn& write) {
  complete();
  if (tx_free_.empty()) return fail(opt_.what + ": no free TX frame on " + opt_.ifname, EAGAIN);
  // written into a free frame first: the frame is only taken once the ring has a slot for it
  const uint64_t addr = tx_free_.back();
  const size_t len = write(at(addr), opt_.frame_size);
  if (!len || len > opt_.frame_size)
    return fail(opt_.what + ": frame of " + std::to_string(len) + " bytes does not fit a UMEM frame on " + opt_.ifname,
                EMSGSIZE);
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&r_->tx, 1, &idx) != 1) return fail(opt_.what + ": TX ring full on " + opt_.ifname, EAGAIN);
  tx_free_.pop_back();
  xdp_desc* d = xsk_ring_prod__tx_desc(&r_->tx, idx);
  d->addr = addr;
  d->len = static_cast<uint32_t>(len);
  xsk_ring_prod__submit(&r_->tx, 1);
  // copy mode transmits on this syscall; zero-copy only needs it when the driver asks
  if (!zerocopy_ || !opt_.need_wakeup || xsk_ring_prod__needs_wakeup(&r_->tx)) (void)::sendto(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  return {};
}

Result<void> Socket::send(std::span<const uint8_t> frame) {
  if (frame.size() > opt_.frame_size)
    return fail(opt_.what + ": frame of " + std::to_string(frame.size()) + " bytes does not fit a UMEM frame on " +
                    opt_.ifname,
                EMSGSIZE);
  return send([&](uint8_t* buf, size_t) {
    std::memcpy(buf, frame.data(), frame.size());
    return frame.size();
  });
}

Result<xdp_statistics> Socket::statistics() const {
  xdp_statistics st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd(), SOL_XDP, XDP_STATISTICS, &st, &len) != 0) return fail_errno(opt_.what + ": XDP_STATISTICS");
  return st;
}

}  // namespace anychain::xsk
