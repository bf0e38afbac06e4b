#include "nf/hold.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/if_ether.h>

#include <algorithm>
#include <cstring>

#include "anychain/ftc.h"
#include "nf/loader.h"

namespace anychain::nf {

namespace {
constexpr uint8_t kTtl = 63;
}  // namespace

Result<std::unique_ptr<HoldQueue>> HoldQueue::open(Nf& nf, const HoldOptions& o) {
  std::unique_ptr<HoldQueue> h(new HoldQueue);
  h->nf_ = &nf;
  h->opt_ = o;
  const Published& pub = nf.published();
  h->ifindex_ = pub.ifindex;
  h->prog_fd_ = nf.prog_fd();
  h->replica_fd_ = nf.map_fd("nf_replica");
  h->stats_fd_ = nf.map_fd("nf_proc_stats");
  h->own_id_ = pub.instance_id;
  const int hold_fd = nf.map_fd("nf_hold"), ovf_fd = nf.map_fd("nf_overflow");
  if (hold_fd < 0 || h->replica_fd_ < 0 || h->prog_fd_ < 0 || pub.iface.empty())
    return fail(fmt::format("{}: the program has no FTC hold path (nf_hold, nf_replica) or is not attached", pub.program),
                ENOENT);
  if (o.umem_frames < 64 || (o.umem_frames & (o.umem_frames - 1)))
    return fail("hold queue: UMEM frames must be a power of two >= 64", EINVAL);
  xsk::Options xo;
  xo.what = "hold queue";
  xo.ifname = pub.iface;
  xo.queue = 0;
  xo.frames = o.umem_frames;  // half RX (fill ring), half TX (overflow sender)
  xo.zerocopy = false;        // a veth has no zero-copy
  auto x = xsk::Socket::open(xo);
  if (!x) return unexpected(x.error());
  if (auto in = (*x)->insert_at_queue(hold_fd); !in) return unexpected(in.error());
  h->xsk_ = std::move(*x);
  if (!o.resync_socket.empty())
    h->asker_ = std::make_unique<ResyncAsker>(
        ResyncAsker::Options{o.resync_socket, o.resync_retry, o.resync_per_second});
  if (ovf_fd >= 0) {
    h->ring_ = ring_buffer__new(ovf_fd, &HoldQueue::on_overflow, h.get(), nullptr);
    if (!h->ring_) return fail_errno("hold queue: the overflow ring buffer");
  }
  return h;
}

HoldQueue::~HoldQueue() {
  if (ring_) ring_buffer__free(ring_);
}

std::vector<int> HoldQueue::fds() const {
  std::vector<int> v{xsk_->fd()};
  if (ring_) v.push_back(ring_buffer__epoll_fd(ring_));
  return v;
}

void HoldQueue::count(uint32_t stat, uint64_t n) {
  if (stats_fd_ < 0 || !n) return;
  uint64_t v = 0;
  (void)bpf_map_lookup_elem(stats_fd_, &stat, &v);
  v += n;
  (void)bpf_map_update_elem(stats_fd_, &stat, &v, BPF_ANY);
}

void HoldQueue::gauge(uint32_t stat, uint64_t v) {
  if (stats_fd_ >= 0) (void)bpf_map_update_elem(stats_fd_, &stat, &v, BPF_ANY);
}

// Frames the kernel could not hand to the socket (its RX ring full, no fill frame): counted too
void HoldQueue::poll_stats() {
  auto r = xsk_->statistics();
  if (!r) return;
  const xdp_statistics& st = *r;
  const uint64_t dropped = st.rx_dropped + st.rx_ring_full + st.rx_fill_ring_empty_descs;
  if (dropped > ring_dropped_seen_) count(AC_NF_PS_HOLD_RING_DROPPED, dropped - ring_dropped_seen_);
  ring_dropped_seen_ = dropped;
}

void HoldQueue::receive(Clock::time_point now) {
  // every frame is copied out, so its UMEM frame goes back to the fill ring at once
  xsk_->receive(SIZE_MAX, [&](std::span<const uint8_t> f) {
    Bytes frame(f.begin(), f.end());
    // the partition: SPI/SI of the NSH and its flow hash TLV (the program held it: it walked)
    uint8_t win[AC_FTC_WIN] = {};
    ac_ftc_view v{};
    const size_t nsh = frame.size() > ETH_HLEN + 1 ? (frame[ETH_HLEN + 1] & 0x3f) * 4u : 0;
    if (nsh < AC_NSH_BASE_LEN || ETH_HLEN + nsh > frame.size()) {
      count(AC_NF_PS_HOLD_BAD);
      return;
    }
    std::memcpy(win, frame.data() + ETH_HLEN, nsh);
    if (ac_ftc_walk(win, static_cast<uint32_t>(nsh), &v) != AC_FTC_OK || !v.has_hash || !v.ctrl) {
      count(AC_NF_PS_HOLD_BAD);
      return;
    }
    const Part p{ac_ftc_rd32(win, 4), v.hash};
    auto& fifo = q_[p];
    if (depth_ >= opt_.frames || fifo.size() >= opt_.per_partition) {
      if (fifo.empty()) q_.erase(p);
      count(AC_NF_PS_HOLD_FULL);
      return;
    }
    fifo.push_back(Held{std::move(frame), now});
    ++depth_;
    count(AC_NF_PS_HOLD_QUEUED);
  });
  if (ring_) ring_buffer__consume(ring_);
  poll_stats();
  gauge(AC_NF_PS_HOLD_DEPTH, depth_);
  gauge(AC_NF_PS_HOLD_PARTITIONS, q_.size());
}

// A gap still open after reorder_wait: the agent is asked for the record (docs/ftc.md 4.3)
void HoldQueue::resync(const Gap& g, Clock::time_point now) {
  const ResyncAsk a{static_cast<uint16_t>(own_id_), g.key.spi_si >> 8, g.key.hash, g.mbox, g.have};
  switch (asker_->ask(a, now)) {
    case ResyncAsker::Outcome::Asked: count(AC_NF_PS_RESYNC_ASKED); break;
    case ResyncAsker::Outcome::Limited: count(AC_NF_PS_RESYNC_LIMITED); break;
    case ResyncAsker::Outcome::Unsent: count(AC_NF_PS_RESYNC_UNSENT); break;
    case ResyncAsker::Outcome::Waiting: break;
  }
}

bool HoldQueue::rerun(const Bytes& frame) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = static_cast<uint32_t>(ifindex_);
  ctx.rx_queue_index = 0;
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
  return bpf_prog_test_run_opts(prog_fd_, &o) == 0;
}

size_t HoldQueue::release(Clock::time_point now) {
  size_t done = 0;
  for (auto it = q_.begin(); it != q_.end();) {
    auto& fifo = it->second;
    while (!fifo.empty()) {
      Held& h = fifo.front();
      // no log of the frame is a gap against the replica records any more: the program's own
      // rule (ac_ftc_order) on the records read under their locks
      const auto gap = first_gap(replica_fd_, own_id_, h.frame);
      if (!gap) {
        count(rerun(h.frame) ? AC_NF_PS_HOLD_RELEASED : AC_NF_PS_HOLD_RERUN_FAILED);
        ++done;
      } else if (now - h.at >= opt_.timeout) {
        count(AC_NF_PS_HOLD_EXPIRED);
      } else {
        if (asker_ && now - h.at >= opt_.reorder_wait) resync(*gap, now);
        break;
      }
      fifo.pop_front();
      --depth_;
    }
    it = fifo.empty() ? q_.erase(it) : std::next(it);
  }
  gauge(AC_NF_PS_HOLD_DEPTH, depth_);
  gauge(AC_NF_PS_HOLD_PARTITIONS, q_.size());
  return done;
}

HoldQueue::Bytes HoldQueue::propagating_frame(const ac_nf_overflow& r) {
  const uint32_t len = std::min<uint32_t>(r.o.len, AC_FTC_LOG_MAX);
  const uint32_t words = (AC_NSH_BASE_LEN + 8 + 4 + AC_FTC_CTRL_LEN + 4 + ac_ftc_pad4(len)) / 4;
  Bytes f;
  f.insert(f.end(), r.eth + 6, r.eth + 12);  // back where the packet came from
  f.insert(f.end(), r.eth, r.eth + 6);
  f.insert(f.end(), {static_cast<uint8_t>(AC_ETH_P_NSH >> 8), static_cast<uint8_t>(AC_ETH_P_NSH & 0xff)});
  auto be32 = [&](uint32_t v) {
    f.insert(f.end(), {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
                       static_cast<uint8_t>(v)});
  };
  const uint8_t si = static_cast<uint8_t>(r.o.spi_si & 0xff);
  f.insert(f.end(), {static_cast<uint8_t>(kTtl >> 2), static_cast<uint8_t>((kTtl & 3) << 6 | words), AC_NSH_MD_TYPE2,
                     r.next_proto});
  be32((r.o.spi_si & 0xffffff00u) | static_cast<uint8_t>(si - 1));  // as the hop returns its packets
  be32(uint32_t{AC_MD_CLASS} << 16 | uint32_t{AC_TLV_FLOW_HASH} << 8 | 4);
  be32(r.o.hash);
  be32(uint32_t{AC_MD_CLASS} << 16 | uint32_t{AC_TLV_FTC_CTRL} << 8 | AC_FTC_CTRL_LEN);
  f.insert(f.end(), {AC_FTC_CTRL_PROPAGATING, r.o.f, 0, 0});
  be32(r.ingress);
  be32(uint32_t{AC_MD_CLASS} << 16 | uint32_t{AC_TLV_FTC_LOG} << 8 | len);
  f.insert(f.end(), r.o.log, r.o.log + len);
  f.resize(f.size() + ac_ftc_pad4(len) - len, 0);
  return f;
}

void HoldQueue::send(const Bytes& frame) {
  if (!xsk_->send(frame)) {
    count(AC_NF_PS_OVERFLOW_FAILED);
    return;
  }
  count(AC_NF_PS_OVERFLOW_SENT);
}

int HoldQueue::on_overflow(void* ctx, void* data, size_t size) {
  auto* h = static_cast<HoldQueue*>(ctx);
  if (size < sizeof(ac_nf_overflow)) {
    h->count(AC_NF_PS_OVERFLOW_FAILED);
    return 0;
  }
  ac_nf_overflow r;
  std::memcpy(&r, data, sizeof r);
  h->send(propagating_frame(r));
  return 0;
}

}  // namespace anychain::nf
