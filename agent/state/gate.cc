#include "state/gate.h"

namespace anychain::state {

std::optional<Reject> ReplayWindow::check(uint64_t incarnation, uint64_t seq) const {
  if (incarnation < inc_) return Reject::StaleIncarnation;
  if (incarnation > inc_) return std::nullopt;  // a new incarnation starts a new window
  if (seq > top_) return std::nullopt;
  if (top_ - seq >= kSize) return Reject::TooOld;
  if (seen_[seq % kSize]) return Reject::Replay;
  return std::nullopt;
}

void ReplayWindow::commit(uint64_t incarnation, uint64_t seq) {
  if (incarnation != inc_) {
    inc_ = incarnation;
    top_ = 0;
    seen_.reset();
  }
  if (seq > top_) {
    if (seq - top_ >= kSize) {
      seen_.reset();
    } else {
      for (uint64_t s = top_ + 1; s < seq; ++s) seen_[s % kSize] = false;
    }
    top_ = seq;
  }
  seen_[seq % kSize] = true;
}

std::optional<Destination> peek_destination(ByteView d) {
  if (d.size() < kHeaderSize || !wire_version_supported(d[0])) return std::nullopt;
  Destination to;
  to.service = static_cast<uint16_t>((d[4] << 8) | d[5]);
  to.receiver = (uint32_t{d[24]} << 24) | (uint32_t{d[25]} << 16) | (uint32_t{d[26]} << 8) | d[27];
  return to;
}

uint64_t Gate::rejected_total() const {
  uint64_t n = 0;
  for (uint64_t v : rejected_) n += v;
  return n;
}

Decoded<Message> Gate::admit(ByteView d, const Schema& schema, const Keyring& keys, uint64_t now_wall_us) {
  auto m = decode(d, schema, keys);
  if (!m) return refuse(m.error());
  const Header& h = m->h;
  if (h.service != me_.service) return refuse(Reject::Service);
  if (h.receiver != me_.id) return refuse(Reject::Receiver);
  if (h.receiver_incarnation && h.receiver_incarnation != me_.incarnation) return refuse(Reject::ReceiverIncarnation);
  ReplayWindow& w = windows_[h.sender.id];
  if (auto r = w.check(h.sender.incarnation, h.seq)) return refuse(*r);
  if (opt_.max_skew_us) {
    uint64_t skew = h.wall_us > now_wall_us ? h.wall_us - now_wall_us : now_wall_us - h.wall_us;
    if (skew > opt_.max_skew_us) return refuse(Reject::Clock);
  }
  w.commit(h.sender.incarnation, h.seq);
  ++accepted_;
  ++by_key_[h.key_id];
  return m;
}

}  // namespace anychain::state
