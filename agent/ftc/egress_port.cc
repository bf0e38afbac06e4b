#include "ftc/egress_port.h"

#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/mman.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "anychain/maps.h"

namespace anychain::ftc {

namespace {
constexpr uint32_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;
}

struct EgressPort::Queue {
  uint32_t id = 0;
  void* area = nullptr;
  size_t size = 0;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{}, tx{};
  xsk_ring_cons comp{}, rx{};

  ~Queue() {
    if (xsk) xsk_socket__delete(xsk);
    if (umem) xsk_umem__delete(umem);
    if (area) munmap(area, size);
  }
};

Result<Bytes> strip_ftc(std::span<const uint8_t> frame) {
  if (frame.size() < sizeof(ethhdr) + AC_NSH_BASE_LEN) return fail("frame shorter than Ethernet and NSH");
  auto nsh = decode_nsh(frame.subspan(sizeof(ethhdr)));
  if (!nsh) return std::unexpected(nsh.error());
  size_t old_len = size_t{frame[sizeof(ethhdr) + 1] & 0x3fu} * 4;
  nsh->ctrl.reset();
  nsh->logs.clear();
  nsh->commits.clear();
  nsh->ttl = static_cast<uint8_t>(std::min(63, nsh->ttl + 1));
  auto enc = encode_nsh(*nsh);
  if (!enc) return std::unexpected(enc.error());
  Bytes out(frame.begin(), frame.begin() + sizeof(ethhdr));
  out.insert(out.end(), enc->begin(), enc->end());
  out.insert(out.end(), frame.begin() + static_cast<ptrdiff_t>(sizeof(ethhdr) + old_len), frame.end());
  return out;
}

Result<std::unique_ptr<EgressPort>> EgressPort::open(const EgressOptions& o) {
  std::unique_ptr<EgressPort> p(new EgressPort());
  p->opt_ = o;
  p->buffer_ = EgressBuffer(o.limits);
  p->ifindex_ = if_nametoindex(o.ifname.c_str());
  if (!p->ifindex_) return fail_errno("FTC buffer: interface " + o.ifname);
  if (o.xskmap_fd < 0 || o.prog_fd < 0) return fail("FTC buffer: needs the fast path's ac_ftc_xsk and program");
  if (o.frames < 64 || (o.frames & (o.frames - 1))) return fail("FTC buffer: frames must be a power of two >= 64");
  if (p->ifindex_ >= AC_XSK_IFS)
    return fail("FTC buffer: " + o.ifname + " has ifindex " + std::to_string(p->ifindex_) + ", the XSKMAP serves below " +
                std::to_string(AC_XSK_IFS));
  for (uint32_t qid : o.queues) {
    if (qid >= AC_XSK_QUEUES) return fail("FTC buffer: queue " + std::to_string(qid) + " beyond the XSKMAP's");
    auto q = std::make_unique<Queue>();
    q->id = qid;
    q->size = size_t{o.frames} * kFrameSize;
    q->area = mmap(nullptr, q->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q->area == MAP_FAILED) {
      q->area = nullptr;
      return fail_errno("FTC buffer: UMEM");
    }
    xsk_umem_config ucfg{};
    ucfg.fill_size = o.frames;
    ucfg.comp_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
    ucfg.frame_size = kFrameSize;
    if (int e = xsk_umem__create(&q->umem, q->area, q->size, &q->fill, &q->comp, &ucfg)) {
      q->umem = nullptr;
      return fail_errno("FTC buffer: UMEM on " + o.ifname, -e);
    }
    xsk_socket_config scfg{};
    scfg.rx_size = o.frames;
    scfg.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    int e = 0;
    // a socket just closed on this queue (a restarted agent) is released by the kernel after a
    // grace period: EBUSY until then, so retry for up to a second
    for (int attempt = 0; attempt < 50; ++attempt) {
      for (uint16_t mode : {uint16_t{XDP_ZEROCOPY}, uint16_t{XDP_COPY}}) {
        scfg.bind_flags = mode;
        e = xsk_socket__create(&q->xsk, o.ifname.c_str(), qid, q->umem, &q->rx, &q->tx, &scfg);
        if (!e) break;
        q->xsk = nullptr;
      }
      if (e != -EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (e) return fail_errno("FTC buffer: AF_XDP socket on " + o.ifname + " queue " + std::to_string(qid), -e);
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&q->fill, o.frames, &idx) != o.frames) return fail("FTC buffer: fill ring");
    for (uint32_t i = 0; i < o.frames; ++i) *xsk_ring_prod__fill_addr(&q->fill, idx + i) = uint64_t{i} * kFrameSize;
    xsk_ring_prod__submit(&q->fill, o.frames);
    uint32_t slot = AC_XSK_SLOT(p->ifindex_, qid);
    int fd = xsk_socket__fd(q->xsk);
    if (bpf_map_update_elem(o.xskmap_fd, &slot, &fd, BPF_ANY) != 0)
      return fail_errno("FTC buffer: ac_ftc_xsk slot of " + o.ifname + " queue " + std::to_string(qid));
    p->queues_.push_back(std::move(q));
  }
  return p;
}

EgressPort::~EgressPort() {
  for (const auto& q : queues_) {
    uint32_t slot = AC_XSK_SLOT(ifindex_, q->id);
    bpf_map_delete_elem(opt_.xskmap_fd, &slot);
  }
}

std::vector<int> EgressPort::fds() const {
  std::vector<int> out;
  for (const auto& q : queues_) out.push_back(xsk_socket__fd(q->xsk));
  return out;
}

size_t EgressPort::poll(uint64_t now, size_t max) {
  size_t total = 0;
  for (auto& q : queues_) {
    uint32_t idx = 0;
    uint32_t n = xsk_ring_cons__peek(&q->rx, static_cast<uint32_t>(max), &idx);
    if (!n) continue;
    std::vector<uint64_t> addrs;
    addrs.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
      const auto* data = static_cast<const uint8_t*>(xsk_umem__get_data(q->area, d->addr));
      handle(data, d->len, now);
      addrs.push_back(xsk_umem__extract_addr(d->addr));
    }
    xsk_ring_cons__release(&q->rx, n);
    // the frames' contents were copied: their UMEM frames go back at once
    uint32_t fi = 0;
    if (xsk_ring_prod__reserve(&q->fill, n, &fi) == n) {
      for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&q->fill, fi + i) = addrs[i];
      xsk_ring_prod__submit(&q->fill, n);
    }
    st_.rx += n;
    total += n;
  }
  return total;
}

void EgressPort::handle(const uint8_t* data, size_t len, uint64_t now) {
  std::span<const uint8_t> frame(data, len);
  if (len < sizeof(ethhdr)) {
    st_.bad_nsh++;
    return;
  }
  auto nsh = decode_nsh(frame.subspan(sizeof(ethhdr)));
  if (!nsh) {
    st_.bad_nsh++;
    return;
  }
  uint64_t token = next_token_++;
  frames_.emplace(token, Bytes(frame.begin(), frame.end()));
  auto a = buffer_.receive(*nsh, token, len, now);
  if (a.feedback) feedback_.push_back(std::move(*a.feedback));
  if (!nsh->commits.empty() && nsh->ctrl)
    if (auto h = nsh->hash()) commits_changed_[Flow{nsh->spi, *h}] = nsh->ctrl->ingress;
  for (uint64_t t : a.dropped) {
    frames_.erase(t);
    st_.fenced++;
  }
  for (uint64_t t : a.released) release(t);
  switch (a.fate) {
    case EgressBuffer::Fate::Released:
    case EgressBuffer::Fate::Held:
      break;
    case EgressBuffer::Fate::Consumed:
      st_.consumed++;
      frames_.erase(token);
      break;
    case EgressBuffer::Fate::Dropped:
      if (!nsh->ctrl || !nsh->hash()) st_.not_ftc++;
      else if (a.reason.find("full") != std::string::npos) st_.full++;
      else st_.fenced++;
      frames_.erase(token);
      break;
  }
}

void EgressPort::release(uint64_t token) {
  auto it = frames_.find(token);
  if (it == frames_.end()) return;
  auto out = strip_ftc(it->second);
  frames_.erase(it);
  if (!out) {
    st_.release_failed++;
    return;
  }
  if (!run_live_frame(opt_.prog_fd, ifindex_, *out)) {
    st_.release_failed++;
    return;
  }
  st_.released++;
}

Result<void> run_live_frame(int prog_fd, uint32_t ifindex, Bytes& frame) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
  if (bpf_prog_test_run_opts(prog_fd, &o) != 0) return fail("BPF_PROG_TEST_RUN of a live frame", errno);
  return {};
}

void EgressPort::expire(uint64_t now) {
  for (uint64_t t : buffer_.expire(now)) {
    frames_.erase(t);
    st_.expired++;
  }
  for (auto& fb : buffer_.due_feedback(now)) feedback_.push_back(std::move(fb));
}

std::vector<Feedback> EgressPort::take_feedback() { return std::exchange(feedback_, {}); }

std::vector<EgressPort::Released> EgressPort::take_released() {
  std::vector<Released> out;
  for (const auto& [flow, ingress] : commits_changed_)
    if (const CommitVector* cv = buffer_.commits(flow); cv && !cv->empty()) out.push_back({ingress, flow, *cv});
  commits_changed_.clear();
  return out;
}

EgressPort::Stats EgressPort::stats() const {
  Stats s = st_;
  s.held_now = buffer_.held();
  s.held_bytes = buffer_.held_bytes();
  return s;
}

}  // namespace anychain::ftc
