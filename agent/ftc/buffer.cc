#include "ftc/buffer.h"

#include <algorithm>

namespace anychain::ftc {

void commit_merge(CommitVector& cv, const Commit& c) {
  auto k = std::make_pair(c.mbox.id, c.mbox.si);
  auto it = cv.find(k);
  if (it == cv.end()) {
    cv[k] = {c.mbox.inc, c.seq};
    return;
  }
  auto& [inc, seq] = it->second;
  if (ac_ftc_inc_older(c.mbox.inc, inc)) return;
  if (c.mbox.inc != inc || !ac_ftc_seq_le(c.seq, seq)) it->second = {c.mbox.inc, c.seq};
}

Coverage covered(const CommitVector& cv, const Mbox& m, uint32_t seq) {
  auto it = cv.find({m.id, m.si});
  if (it == cv.end()) return seq == 0 ? Coverage::Covered : Coverage::Pending;
  auto [inc, cseq] = it->second;
  if (inc != m.inc) return ac_ftc_inc_older(m.inc, inc) ? Coverage::Fenced : Coverage::Pending;
  return ac_ftc_seq_le(seq, cseq) ? Coverage::Covered : Coverage::Pending;
}

ac_ftc_egress egress_entry(const CommitVector* cv, bool holding) {
  ac_ftc_egress e{};
  e.slow = holding ? 1 : 0;
  if (!cv) return e;
  if (cv->size() > AC_FTC_EGRESS_MBOXES) {
    e.slow = 1;  // the fast path could not tell every middlebox's commits: the buffer decides
    return e;
  }
  for (const auto& [mbox, c] : *cv) {
    e.mbox[e.n] = AC_FTC_MBOX(mbox.first, c.first, mbox.second);
    e.seq[e.n] = c.second;
    e.n++;
  }
  return e;
}

// ---- egress buffer ----

void EgressBuffer::drain(PerFlow& pf, Arrival& a) {
  while (!pf.q.empty()) {
    Held& h = pf.q.front();
    bool ready = true, fenced = false;
    for (const auto& n : h.need) {
      auto c = covered(pf.cv, n.mbox, n.seq);
      if (c == Coverage::Fenced) fenced = true;
      if (c != Coverage::Covered) ready = false;
    }
    if (!ready && !fenced) break;
    if (fenced) {
      a.dropped.push_back(h.token);
      stats_.fenced++;
    } else {
      a.released.push_back(h.token);
      stats_.released++;
    }
    held_packets_--;
    held_bytes_ -= h.bytes;
    pf.q.pop_front();
  }
}

EgressBuffer::Arrival EgressBuffer::receive(const Nsh& nsh, uint64_t token, size_t bytes, uint64_t now) {
  Arrival a;
  auto hash = nsh.hash();
  if (!nsh.ctrl || !hash) {
    a.fate = Fate::Dropped;
    a.reason = "not an FTC packet (no control or flow hash TLV)";
    return a;
  }
  Flow flow{nsh.spi, *hash};
  auto& pf = flows_[flow];
  for (const auto& c : nsh.commits) commit_merge(pf.cv, c);

  Held h{token, bytes, now, now, {}, Feedback{flow, nsh.ctrl->ingress, nsh.ctrl->f, {}}};
  for (const auto& l : nsh.logs) {
    h.need.push_back({l.mbox, l.seq});
    // a committed log is held f + 1 times already: returning it would only make its tail strip
    // it again (and the forwarder ignore it); a fenced one must never go back either
    if (covered(pf.cv, l.mbox, l.seq) != Coverage::Pending) continue;
    Log back = l;
    back.flags |= AC_FTC_LOG_WRAPPED;
    h.feedback.logs.push_back(std::move(back));
  }
  if (!h.feedback.logs.empty()) a.feedback = h.feedback;

  drain(pf, a);  // the commits this packet brought may release earlier ones
  if (nsh.ctrl->propagating()) {
    a.fate = Fate::Consumed;
    stats_.consumed++;
    return a;
  }
  bool ready = pf.q.empty();
  for (const auto& n : h.need)
    if (covered(pf.cv, n.mbox, n.seq) != Coverage::Covered) ready = false;
  if (ready) {
    a.fate = Fate::Released;
    a.released.push_back(token);
    stats_.released++;
    return a;
  }
  if (held_packets_ >= lim_.packets || held_bytes_ + bytes > lim_.bytes || pf.q.size() >= lim_.per_flow) {
    a.fate = Fate::Dropped;
    a.reason = pf.q.size() >= lim_.per_flow ? "flow's queue full" : "buffer full";
    stats_.full++;
    return a;
  }
  a.fate = Fate::Held;
  stats_.held++;
  held_packets_++;
  held_bytes_ += bytes;
  pf.q.push_back(std::move(h));
  drain(pf, a);  // a fenced requirement drops it at once
  return a;
}

std::vector<uint64_t> EgressBuffer::expire(uint64_t now) {
  std::vector<uint64_t> out;
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto& q = it->second.q;
    while (!q.empty() && now - q.front().since >= lim_.max_hold_ns) {
      out.push_back(q.front().token);
      held_packets_--;
      held_bytes_ -= q.front().bytes;
      stats_.expired++;
      q.pop_front();
    }
    // a flow with nothing held keeps its commit vector only while it has one worth keeping
    if (q.empty() && it->second.cv.empty())
      it = flows_.erase(it);
    else
      ++it;
  }
  return out;
}

std::vector<Feedback> EgressBuffer::due_feedback(uint64_t now) {
  std::vector<Feedback> out;
  for (auto& [flow, pf] : flows_) {
    if (pf.q.empty()) continue;
    // the newest held packet's logs cover the older ones' (same middleboxes, higher sequences)
    // only for its own transactions; send every held packet's whose turn came
    for (auto& h : pf.q) {
      if (h.feedback.logs.empty() || now - h.fed_back < lim_.feedback_every_ns) continue;
      h.fed_back = now;
      out.push_back(h.feedback);
    }
  }
  return out;
}

bool EgressBuffer::holding(const Flow& flow) const {
  auto it = flows_.find(flow);
  return it != flows_.end() && !it->second.q.empty();
}

const CommitVector* EgressBuffer::commits(const Flow& flow) const {
  auto it = flows_.find(flow);
  return it == flows_.end() ? nullptr : &it->second.cv;
}

// ---- ingress forwarder ----

std::optional<Log> coalesce(const Log& a, const Log& b, size_t max_tlv) {
  if (a.mbox != b.mbox || a.stub() || b.stub() || a.noop() || b.noop()) return std::nullopt;
  if (b.from() != a.seq + 1 || a.count + b.count > 255) return std::nullopt;
  Log m = a;
  for (const auto& w : b.writes) {
    auto it = std::find_if(m.writes.begin(), m.writes.end(),
                           [&](const Write& x) { return x.table == w.table && x.key == w.key; });
    if (it != m.writes.end())
      *it = w;
    else
      m.writes.push_back(w);
  }
  m.count = static_cast<uint8_t>(a.count + b.count);
  m.seq = b.seq;
  m.held = b.held;
  if (m.writes.size() > AC_FTC_MAX_WRITES || m.value_len() > AC_FTC_LOG_MAX || m.tlv_len() > max_tlv)
    return std::nullopt;
  return m;
}

namespace {
bool full(const Log& l) { return !l.noop() && !l.stub(); }
// e makes l unnecessary: l needs nothing e does not give (a replica that applied e is at or past
// l's sequence, and e's tail commits at least that much).
bool covers(const Log& e, const Log& l) {
  if (!ac_ftc_seq_le(l.seq, e.seq)) return false;
  if (!full(l)) return true;  // any later entry requires at least as much
  return full(e) && ac_ftc_seq_le(e.from(), l.from());
}
}  // namespace

void IngressForwarder::add(PerFlow& pf, Log log) {
  if (covered(pf.cv, log.mbox, log.seq) != Coverage::Pending) return;  // committed, or fenced
  auto k = std::make_pair(log.mbox.id, log.mbox.si);
  auto& list = pf.logs[k];
  if (std::find(pf.order.begin(), pf.order.end(), k) == pf.order.end()) pf.order.push_back(k);
  // a newer incarnation voids the older one's pending logs (recovery fenced them); a late log of
  // an older incarnation is ignored
  std::erase_if(list, [&](const Log& e) { return ac_ftc_inc_older(e.mbox.inc, log.mbox.inc); });
  for (const auto& e : list)
    if (ac_ftc_inc_older(log.mbox.inc, e.mbox.inc) || covers(e, log)) return;
  if (full(log))  // the log makes earlier no-ops and stubs it covers unnecessary
    std::erase_if(list, [&](const Log& e) { return !full(e) && covers(log, e); });
  if (!list.empty() && ac_ftc_seq_le(list.back().seq, log.seq)) {
    if (auto m = coalesce(list.back(), log, ac_ftc_share(pf.f))) {
      list.back() = *m;
      coalesced_++;
      return;
    }
  }
  if (list.size() >= lim_.max_logs_per_flow) return;  // the buffer re-sends it later
  auto pos = std::find_if(list.begin(), list.end(), [&](const Log& e) { return !ac_ftc_seq_le(e.seq, log.seq); });
  list.insert(pos, std::move(log));
}

void IngressForwarder::prune(PerFlow& pf) {
  for (auto& [k, list] : pf.logs)
    std::erase_if(list, [&](const Log& l) { return covered(pf.cv, l.mbox, l.seq) != Coverage::Pending; });
  std::erase_if(pf.order, [&](const auto& k) { return pf.logs[k].empty(); });
  std::erase_if(pf.logs, [](const auto& kv) { return kv.second.empty(); });
}

void IngressForwarder::feedback(const Feedback& fb, uint64_t now) {
  auto& pf = flows_[fb.flow];
  pf.f = fb.f;
  pf.ingress = fb.ingress;
  bool had = false;
  for (const auto& [k, l] : pf.logs) had |= !l.empty();
  if (!had) pf.since = now;
  for (auto l : fb.logs) {
    l.flags |= AC_FTC_LOG_WRAPPED;
    add(pf, std::move(l));
  }
  prune(pf);
  if (pf.logs.empty() && pf.cv.empty()) flows_.erase(fb.flow);
}

void IngressForwarder::released(const Flow& flow, const CommitVector& cv) {
  auto it = flows_.find(flow);
  if (it == flows_.end()) return;
  for (const auto& [k, v] : cv) commit_merge(it->second.cv, Commit{Mbox{k.first, v.first, k.second}, v.second});
  prune(it->second);
  if (it->second.logs.empty()) flows_.erase(it);
}

std::vector<std::vector<Log>> IngressForwarder::pack(const PerFlow& pf, bool data_packet) {
  const size_t share = ac_ftc_share(pf.f);
  // a data packet carries at most f x share bytes of them (docs/ftc.md 5.2), the rest waits: its
  // classifier pushes them in front of a frame whose headroom is about 216 bytes (a frame
  // redirected into a veth), with VXLAN-GPE's outer headers still to come for a remote hop
  size_t room = AC_FTC_ROOM - (4 + AC_FTC_COMMIT_LEN * size_t{pf.f});
  if (data_packet) room = std::min(room, size_t{pf.f} * share);
  std::vector<std::vector<Log>> packets(1);
  size_t used = 0;
  for (const auto& k : pf.order) {
    auto it = pf.logs.find(k);
    if (it == pf.logs.end()) continue;
    for (const auto& l : it->second) {
      size_t n = l.tlv_len();
      if (data_packet && n > share) break;  // larger logs go in propagating packets only
      if (used + n > room) {
        if (data_packet) break;
        packets.emplace_back();
        used = 0;
      }
      packets.back().push_back(l);
      used += n;
    }
  }
  if (packets.back().empty()) packets.pop_back();
  return packets;
}

std::vector<Log> IngressForwarder::piggyback(const Flow& flow) const {
  auto it = flows_.find(flow);
  if (it == flows_.end()) return {};
  auto p = pack(it->second, true);
  return p.empty() ? std::vector<Log>{} : p.front();
}

std::vector<IngressForwarder::Propagate> IngressForwarder::due(uint64_t now) {
  std::vector<Propagate> out;
  for (auto& [flow, pf] : flows_) {
    if (pf.logs.empty() || now - pf.since < lim_.propagate_after_ns) continue;
    pf.since = now;
    out.push_back({flow, pf.ingress, pf.f, pack(pf, false)});
  }
  return out;
}

size_t IngressForwarder::pending(const Flow& flow) const {
  auto it = flows_.find(flow);
  if (it == flows_.end()) return 0;
  size_t n = 0;
  for (const auto& [k, l] : it->second.logs) n += l.size();
  return n;
}

}  // namespace anychain::ftc
