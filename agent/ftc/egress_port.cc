#include "ftc/egress_port.h"

#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <net/if.h>

#include <algorithm>
#include <chrono>

#include "anychain/maps.h"
#include "common/percpu.h"

namespace anychain::ftc {

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
    xsk::Options xo;
    xo.what = "FTC buffer";
    xo.ifname = o.ifname;
    xo.queue = qid;
    xo.frames = o.frames;
    xo.rx_frames = o.frames;  // all for RX: releases go through the fast path, not our TX ring
    xo.need_wakeup = false;
    xo.busy_retry = std::chrono::seconds(1);  // a restarted agent's old socket on this queue
    auto q = xsk::Socket::open(xo);
    if (!q) return unexpected(q.error());
    if (auto in = (*q)->insert(o.xskmap_fd, AC_XSK_SLOT(p->ifindex_, qid)); !in) return unexpected(in.error());
    p->queues_.push_back(std::move(*q));
  }
  p->end_base_ = p->end_released();
  return p;
}

uint64_t EgressPort::end_released() const {
  return opt_.end_stats_fd < 0 ? 0 : percpu_u64_sum(opt_.end_stats_fd, ifindex_).value_or(0);
}

EgressPort::~EgressPort() {
  for (const auto& q : queues_) {
    uint32_t slot = AC_XSK_SLOT(ifindex_, q->queue());
    bpf_map_delete_elem(opt_.xskmap_fd, &slot);
  }
}

std::vector<int> EgressPort::fds() const {
  std::vector<int> out;
  for (const auto& q : queues_) out.push_back(q->fd());
  return out;
}

size_t EgressPort::poll(uint64_t now, size_t max) {
  size_t total = 0;
  // a held frame is copied out (handle()): its UMEM frame goes back to the fill ring at once
  for (auto& q : queues_) total += q->receive(max, [&](std::span<const uint8_t> f) { handle(f.data(), f.size(), now); });
  st_.rx += total;
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
  if (auto h = nsh->hash(); h && nsh->ctrl) write_egress(Flow{nsh->spi, *h});
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

// Written after every frame of the partition, not only when it changed: an entry the LRU map
// evicted comes back with the partition's next frame here.
void EgressPort::write_egress(const Flow& flow) {
  if (opt_.egress_fd < 0) return;
  ac_ftc_egress_key k{ifindex_, flow.spi, flow.hash};
  ac_ftc_egress v = egress_entry(buffer_.commits(flow), buffer_.holding(flow));
  if (bpf_map_update_elem(opt_.egress_fd, &k, &v, BPF_ANY) == 0)
    st_.egress_writes++;
  else
    st_.egress_write_failed++;
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
  s.released_at_end = end_released() - end_base_;
  s.held_now = buffer_.held();
  s.held_bytes = buffer_.held_bytes();
  return s;
}

}  // namespace anychain::ftc
