// The replication protocol of docs/state.md Section 3, one state machine: membership, sending
// with acks and retransmission, receiving, snapshots (serve and join), leave and drain. One file
// over 500 lines because every part reads and writes the same per-peer state (sent/acked
// ranges, RTT, snapshot cursors); the sections below are in the order a message lives.
#include "state/replicator.h"

#include <algorithm>
#include <limits>

namespace anychain::state {

namespace {
constexpr uint64_t kFoldedMarker = std::numeric_limits<uint64_t>::max();  // snapshot coverage entry
constexpr size_t kMaxRanges = 64;
constexpr uint64_t kMinRttWindowUs = 10'000'000;
constexpr uint64_t kUnreachableKeepaliveUs = 1'000'000;
constexpr uint64_t kFoldRetryUs = 1'000'000;
}  // namespace

const char* to_string(PeerState s) {
  switch (s) {
    case PeerState::Active: return "active";
    case PeerState::Lagging: return "lagging";
    case PeerState::Straggler: return "straggler";
    case PeerState::Unreachable: return "unreachable";
  }
  return "unknown";
}

// ---- received ranges ----------------------------------------------------------------------

bool Replicator::RecvState::add(uint64_t from, uint64_t to) {
  if (to <= contig) return false;
  if (from <= contig) {
    contig = to;
    while (!ranges.empty() && ranges.begin()->first <= contig) {
      contig = std::max(contig, ranges.begin()->second);
      ranges.erase(ranges.begin());
    }
    return true;
  }
  // merge with overlapping or adjacent ranges
  auto it = ranges.lower_bound(from);
  if (it != ranges.begin() && std::prev(it)->second >= from) {
    --it;
    from = it->first;
    to = std::max(to, it->second);
    it = ranges.erase(it);
  }
  while (it != ranges.end() && it->first <= to) {
    to = std::max(to, it->second);
    it = ranges.erase(it);
  }
  ranges[from] = to;
  if (ranges.size() > kMaxRanges) ranges.erase(std::prev(ranges.end()));  // sent again later
  return false;
}

void Replicator::RecvState::raise(uint64_t v) {
  if (v <= contig) return;
  add(0, v);
}

// ---- construction, membership ---------------------------------------------------------------

Replicator::Replicator(ReplicatorConfig cfg, Store& store, Transport& transport, std::shared_ptr<const Keyring> keys,
                       const Clock& clock)
    : cfg_(cfg),
      store_(store),
      transport_(transport),
      keys_(std::move(keys)),
      clock_(clock),
      gate_(cfg.me, GateOptions{.max_skew_us = cfg.max_skew_us}) {}

void Replicator::set_members(const std::vector<Member>& members) {
  uint64_t now = clock_.mono_us();
  std::set<uint32_t> ids, lost;
  for (const Member& m : members) {
    if (m.id == cfg_.me.id) continue;
    if (m.lost) {  // its node is lost: not a member, gone after the node grace (3.13)
      lost.insert(m.id);
      continue;
    }
    ids.insert(m.id);
    Peer& p = peers_[m.id];
    if (!p.member) {
      p.member = true;
      p.id = m.id;
      p.last_progress_us = now;
      if (!p.rto_us) p.rto_us = cfg_.rto_initial_us;
      if (!p.last_rx_us) p.last_rx_us = 0;
      p.lagging_since_us = now;
      p.leave_sent_us = 0;
    }
    p.removed_us = 0;
    p.node_lost = false;
    p.addr = m.addr;
  }
  for (auto& [id, p] : peers_) {
    if (ids.count(id)) continue;
    bool was = p.member;
    p.member = false;
    // Its node lost and found again before the grace ran out: the grace starts over when the
    // node is lost again; withdrawn meanwhile (its LSA gone): the ordinary grace, from the start.
    if (p.removed_us) p.node_lost = p.node_lost && lost.count(id);
    if (!was) continue;
    // Gone unless it turns out to be leaving: the LSDB may withdraw a leaver before its first
    // DRAINING message arrives, and a gone origin's messages are refused (tick()).
    if (!p.leave_seen && !p.draining && p.incarnation) {
      p.removed_us = now;
      p.node_lost = lost.count(id) > 0;
    }
  }
}

// ---- versions of local changes ---------------------------------------------------------------

void Replicator::stamp(const CellId& c) {
  auto it = version_of_.find(c);
  if (it != version_of_.end() && !pins_.count(it->second)) index_.erase(it->second);
  ++cur_;
  index_[cur_] = c;
  version_of_[c] = cur_;
  ++stats_.changes;
}

void Replicator::extract() {
  auto r = store_.changes([&](uint8_t o, const Key& k) { stamp({o, k}); });
  if (!r) ++stats_.store_errors;
  stats_.version = cur_;
}

// ---- origins and slots -------------------------------------------------------------------------

std::optional<uint8_t> Replicator::reserved_slot(const Origin& o) {
  if (auto it = slot_.find(o); it != slot_.end()) return it->second;
  for (uint8_t s = 1; s < AC_CRDT_SLOTS; ++s)
    if (!origin_of_[s]) {
      origin_of_[s] = o;
      slot_[o] = s;
      return s;
    }
  return std::nullopt;
}

std::optional<uint8_t> Replicator::slot_of(const Origin& o, bool allocate) {
  if (o == self()) return 0;
  if (auto it = slot_.find(o); it != slot_.end()) return it->second;
  if (!allocate || folded_.count(o)) return std::nullopt;
  return reserved_slot(o);
}

// An origin that will send no more (crashed, restarted, removed without a leave): from now on
// its own messages are refused (its inputs are frozen) and every member relays what it holds
// of it, so they all converge on the most complete view; the relay stamps are pinned and their
// highest version is announced in the gone section until the origin is folded (3.12).
void Replicator::origin_gone(const Origin& o) {
  if (o == self() || folded_.count(o) || gone_.count(o)) return;
  GoneState& g = gone_[o];
  dead_.insert(o);
  ++stats_.gone;
  auto s = slot_of(o, false);
  if (!s || *s == 0) return;
  relayed_ |= 1u << *s;
  std::vector<CellId> cells;
  (void)store_.cells([&](uint8_t obj, const Key& k) {
    bool has = false;
    (void)store_.read(obj, k, 1u << *s, [&](uint8_t slot, const CellValue&) { has |= slot == *s; });
    if (has) cells.push_back({obj, k});
  });
  for (const CellId& c : cells) {
    stamp(c);
    g.pins.push_back(cur_);
    ++pins_[cur_];
  }
  if (!cells.empty()) g.relay = cur_;
  stats_.relayed_cells += cells.size();
}

void Replicator::unpin(std::vector<uint64_t>& pins) {
  for (uint64_t v : pins) {
    auto p = pins_.find(v);
    if (p == pins_.end() || --p->second) continue;
    pins_.erase(p);
    auto it = index_.find(v);
    if (it == index_.end()) continue;
    auto cur = version_of_.find(it->second);
    if (cur == version_of_.end() || cur->second != v) index_.erase(it);  // superseded meanwhile
  }
  pins.clear();
}

// Fold an origin's slot into the retired totals and remember it as folded. False if set
// elements still hold live adds of it: the slot stays reserved and is retried (try_folds).
bool Replicator::fold_slot(const Origin& o) {
  folded_.insert(o);
  recv_.erase(o);
  ++stats_.folded;
  auto s = slot_of(o, false);
  if (!s || !*s) return true;
  auto empty = store_.fold(*s);
  if (!empty) ++stats_.store_errors;
  relayed_ &= ~(1u << *s);
  if (empty && *empty) {
    origin_of_[*s].reset();
    slot_.erase(o);
    return true;
  }
  return false;
}

// A member's gone section: its relay version of each origin it declared gone. An origin we did
// not know to be gone is adopted (declared gone here too: a member saw it crash or restart, or
// we never heard of it), so that every member takes part in its fold.
void Replicator::on_gone(Peer& p, const Message& m) {
  const std::vector<GoneEntry>& gone = m.gone;
  for (const GoneEntry& g : gone) {
    if (g.origin == self()) {
      ++stats_.declared_gone_self;
      continue;
    }
    auto [it, fresh] = p.their_gone.try_emplace(g.origin, TheirGone{g.relay, m.h.seq});
    if (!fresh) {
      it->second.relay = std::max(it->second.relay, g.relay);
      it->second.since_seq = std::min(it->second.since_seq, m.h.seq);
    }
    if (!folded_.count(g.origin) && !gone_.count(g.origin)) {
      origin_gone(g.origin);
      ++stats_.gone_adopted;
    }
  }
  // A member stops announcing an origin only once it folded it (and saw every member fold it):
  // a message sent after one that announced it (sequence numbers grow) and without it means
  // folded there, even if the announcement of the fold was lost.
  for (auto& [o, r] : p.their_gone)
    if (r.relay != kGoneFolded && m.h.seq > r.since_seq &&
        std::none_of(gone.begin(), gone.end(), [&o = o](const GoneEntry& g) { return g.origin == o; }))
      r.relay = kGoneFolded;
}

// A gone origin is folded once, for every member N, we hold N's view of it (our contiguous
// version of N reaches N's relay version, or N folded it already) and N holds ours (N's ack of
// us reaches our relay version). Every member then holds the maximum of all members' views,
// which are the same values everywhere, and nobody needs our copy any more (3.12).
void Replicator::try_gone_folds() {
  for (auto it = gone_.begin(); it != gone_.end();) {
    const Origin o = it->first;
    GoneState& g = it->second;
    bool ready = true, all_folded = true;
    for (auto& [qid, q] : peers_) {
      if (!q.member) continue;
      // A member not heard from yet, or heard only in the gone incarnation (it restarted and
      // its new incarnation has not reached us, or our LSDB still lists it): wait for it.
      auto r = q.incarnation && Origin{qid, q.incarnation} != o ? q.their_gone.find(o) : q.their_gone.end();
      if (r == q.their_gone.end()) {
        ready = all_folded = false;
        break;
      }
      if (r->second.relay != kGoneFolded) {
        all_folded = false;
        auto rc = recv_.find(Origin{qid, q.incarnation});
        if ((rc == recv_.end() ? 0 : rc->second.contig) < r->second.relay) ready = false;
      }
      auto a = q.their_acks.find(self());
      if (g.relay && (a == q.their_acks.end() || a->second < g.relay)) ready = false;
    }
    if (!g.folded && ready) {
      g.folded = true;
      unpin(g.pins);
      fold_slot(o);
      ++stats_.folded_gone;
    }
    if (g.folded && all_folded) {  // every member folded it: no need to announce it any more
      for (auto& [qid, q] : peers_) q.their_gone.erase(o);
      it = gone_.erase(it);
    } else {
      ++it;
    }
  }
}

// A member that left gracefully is folded once every member's ack vector shows its final
// version: each of them then holds exactly its final values, so the folds agree.
void Replicator::try_folds() {
  uint64_t now = clock_.mono_us();
  for (auto& [id, p] : peers_) {
    if (!p.leave_seen || !p.incarnation) continue;
    Origin l{id, p.incarnation};
    if (folded_.count(l)) continue;
    auto mine = recv_.find(l);
    if (mine == recv_.end() || mine->second.contig < p.leave_final) continue;
    bool stable = true;
    for (auto& [qid, q] : peers_) {
      if (qid == id || !q.member) continue;
      auto a = q.their_acks.find(l);
      if (a == q.their_acks.end() || a->second < p.leave_final) {
        stable = false;
        break;
      }
    }
    if (!stable) continue;
    if (auto g = gone_.find(l); g != gone_.end()) {  // it left after all: its final values are known
      unpin(g->second.pins);
      gone_.erase(g);
    }
    fold_slot(l);
  }
  try_gone_folds();
  // slots whose fold left live set elements: tried again now and then
  static_assert(AC_CRDT_SLOTS <= 32);
  for (uint8_t s = 1; s < AC_CRDT_SLOTS; ++s) {
    if (!origin_of_[s] || !folded_.count(*origin_of_[s])) continue;
    if (now - last_fold_try_us_ < kFoldRetryUs) break;
    auto empty = store_.fold(s);
    if (empty && *empty) {
      slot_.erase(*origin_of_[s]);
      origin_of_[s].reset();
    }
  }
  if (now - last_fold_try_us_ >= kFoldRetryUs) last_fold_try_us_ = now;
}

// ---- sending ---------------------------------------------------------------------------------

std::vector<AckEntry> Replicator::ack_vector() const {
  std::vector<AckEntry> v;
  v.push_back({self(), cur_});
  for (const auto& [o, r] : recv_)
    if (!folded_.count(o)) v.push_back({o, r.contig});
  return v;
}

Message Replicator::header_for(Peer& p, MsgType t) {
  Message m;
  m.h.version = p.wire_version ? p.wire_version : kWireVersion;  // an older peer gets what it speaks
  m.h.type = t;
  m.h.flags = static_cast<uint8_t>((join_ == JoinState::Requested || join_ == JoinState::Receiving ? kFlagJoining : 0) |
                                   (leaving_ ? kFlagDraining : 0));
  m.h.service = cfg_.me.service;
  m.h.schema = store_.schema().digest();
  m.h.sender = self();
  m.h.receiver = p.id;
  m.h.receiver_incarnation = p.incarnation;
  return m;
}

bool Replicator::send(Peer& p, Message& m, size_t records) {
  uint64_t now = clock_.mono_us();
  m.h.seq = ++seq_;
  m.h.wall_us = clock_.wall_us();
  m.h.tx_us = now;
  m.h.echo_us = p.echo_tx_us;
  m.h.echo_delay_us = p.echo_tx_us ? static_cast<uint32_t>(std::min<uint64_t>(now - p.echo_rx_at_us, UINT32_MAX)) : 0;
  auto b = encode(m, store_.schema(), *keys_);
  if (!b) {
    ++stats_.send_errors;
    return false;
  }
  p.last_tx_us = now;
  ++p.msgs_sent;
  p.bytes_sent += b->size();
  p.records_sent += records;
  if (m.h.type == MsgType::Delta || m.h.type == MsgType::Snap) p.ack_owed = false;
  if (m.h.type == MsgType::Delta && m.to > m.from) {
    if (p.in_flight.empty()) p.last_progress_us = now;
    p.in_flight.push_back({m.to, b->size()});
    p.in_flight_bytes += b->size();
  }
  if (!transport_.send(p.addr, *b)) {
    ++stats_.send_errors;
    return false;
  }
  return true;
}

// A leaver we hold completely is told so.
void Replicator::answer_leave(uint32_t id, Peer& p) {
  if (!p.leave_seen || p.leave_ack_sent >= p.leave_final) return;
  auto r = recv_.find(Origin{id, p.incarnation});
  if (r != recv_.end() && r->second.contig >= p.leave_final) {
    Message m = header_for(p, MsgType::LeaveAck);
    m.final_version = p.leave_final;
    if (send(p, m, 0)) p.leave_ack_sent = p.leave_final;
  }
}

std::vector<GoneEntry> Replicator::gone_section(const Peer& p) const {
  std::vector<GoneEntry> v;
  if (p.wire_version && p.wire_version < 2) return v;
  for (const auto& [o, g] : gone_) v.push_back({o, g.folded ? kGoneFolded : g.relay});
  return v;
}

void Replicator::send_keepalive(Peer& p) {
  Message m = header_for(p, MsgType::Delta);
  m.from = m.to = p.sent;
  m.acks = ack_vector();
  m.gone = gone_section(p);
  send(p, m, 0);
}

// Send (p.sent, cur] with current values, cut into messages that each cover their range.
void Replicator::send_range(Peer& p, size_t max_msgs) {
  if (p.sent >= cur_) return;
  const Schema& schema = store_.schema();
  std::vector<AckEntry> acks = ack_vector();
  std::vector<GoneEntry> gone = gone_section(p);
  std::vector<uint64_t> vanished;
  size_t msgs = 0;

  Message m;
  std::array<int, AC_CRDT_SLOTS> index_of{};
  size_t size = 0, cells = 0;
  auto start = [&](uint64_t from) {
    m = header_for(p, MsgType::Delta);
    m.from = from;
    m.acks = acks;
    m.gone = gone;
    index_of.fill(-1);
    size = base_size(m);
    cells = 0;
  };
  auto flush = [&](uint64_t to) {
    m.to = to;
    if (m.from >= p.high_sent) p.coalesced += (m.to - m.from) - cells;
    send(p, m, m.records.size());
    p.sent = to;
    p.high_sent = std::max(p.high_sent, to);
    ++msgs;
  };
  start(p.sent);
  struct Pending {
    uint8_t slot;
    CellValue v;
  };
  std::vector<Pending> recs;
  uint64_t last = p.sent;
  bool stopped = false;
  for (auto it = index_.upper_bound(p.sent); it != index_.end(); ++it) {
    const CellId& c = it->second;
    const ObjectSpec* spec = schema.find(c.object);
    recs.clear();
    auto exists = store_.read(c.object, c.key, kOwnSlot | relayed_, [&](uint8_t s, const CellValue& v) {
      if (s < AC_CRDT_SLOTS && (s == 0 || origin_of_[s])) recs.push_back({s, v});
    });
    if (!exists) ++stats_.store_errors;
    if (!spec || !exists || !*exists) {
      vanished.push_back(it->first);  // a key removed meanwhile: its version is still covered
      continue;
    }
    size_t add = recs.size() * record_size(*spec);
    for (const Pending& r : recs)
      if (index_of[r.slot] < 0) add += kOriginBytes;
    if (size + add > cfg_.max_message && !m.records.empty()) {
      flush(last);
      if (msgs >= max_msgs || p.in_flight_bytes >= cfg_.window_bytes) {
        stopped = true;
        break;
      }
      start(last);
    }
    for (const Pending& r : recs) {
      if (index_of[r.slot] < 0) {
        index_of[r.slot] = static_cast<int>(m.origins.size());
        m.origins.push_back(r.slot == 0 ? self() : *origin_of_[r.slot]);
        size += kOriginBytes;
      }
      m.records.push_back({.object = c.object, .origin = static_cast<uint8_t>(index_of[r.slot]),
                           .epoch = store_.epoch(c.object),
                           .key = c.key, .value = r.v});
      size += record_size(*spec);
    }
    ++cells;
    last = it->first;
  }
  // The last message covers up to cur: versions whose cells were stamped again later are
  // covered by their newer version, removed keys by nothing.
  if (!stopped) flush(cur_);
  for (uint64_t v : vanished) {
    auto it = index_.find(v);
    if (it == index_.end()) continue;
    if (auto vo = version_of_.find(it->second); vo != version_of_.end() && vo->second == v) version_of_.erase(vo);
    index_.erase(it);
  }
}

uint64_t Replicator::lookahead(const Peer& p) const {
  if (p.state == PeerState::Straggler) return cfg_.lookahead_max_us;
  return std::clamp(p.srtt_us, cfg_.lookahead_min_us, cfg_.lookahead_max_us);
}

void Replicator::update_state(Peer& p, uint64_t now) {
  uint64_t heard = p.last_rx_us ? p.last_rx_us : p.last_progress_us;
  if (now - heard > cfg_.unreachable_after_us) {
    p.state = PeerState::Unreachable;
    return;
  }
  bool lag = (p.have_rtt && static_cast<double>(p.srtt_us) >
                                static_cast<double>(p.min_rtt_us) * cfg_.lag_rtt_factor + cfg_.lag_rtt_slack_us) ||
             p.in_flight_bytes >= cfg_.window_bytes;
  bool behind = p.acked < p.sent && now - p.last_progress_us >= cfg_.straggler_after_us;
  if (!lag && !behind) {
    p.state = PeerState::Active;
    return;
  }
  if (p.state == PeerState::Active || p.state == PeerState::Unreachable) {
    p.state = PeerState::Lagging;
    p.lagging_since_us = now;
    p.next_flush_us = now + lookahead(p);
  }
  if (behind || now - p.lagging_since_us >= cfg_.straggler_after_us) p.state = PeerState::Straggler;
}

// ---- the tick ----------------------------------------------------------------------------------

void Replicator::tick() {
  uint64_t now = clock_.mono_us();
  extract();
  for (auto& [id, p] : peers_) {
    if (!p.member) {
      if (p.removed_us && (p.draining || p.leave_seen)) p.removed_us = 0;  // a leaver after all
      if (p.removed_us && now - p.removed_us >= (p.node_lost ? cfg_.node_gone_grace_us : cfg_.gone_grace_us)) {
        if (p.node_lost && !dead_.count({id, p.incarnation}) && !folded_.count({id, p.incarnation}))
          ++stats_.gone_node_lost;
        p.removed_us = 0;
        p.node_lost = false;
        origin_gone({id, p.incarnation});
      }
      // A leaver is announced down as it leaves, so the LSDB may take it out of the members
      // before it drained: it still gets our acknowledgements and the answer to its LEAVE.
      if (p.draining && p.incarnation) {
        answer_leave(id, p);
        if (p.ack_owed && now - p.ack_owed_since_us >= cfg_.ack_delay_us) send_keepalive(p);
      }
      continue;
    }
    update_state(p, now);
    if (!p.incarnation || p.state == PeerState::Unreachable) {
      // never heard, or silent: keepalives only (they also carry our acks)
      uint64_t every = p.incarnation ? std::max(cfg_.keepalive_us, kUnreachableKeepaliveUs) : cfg_.keepalive_us;
      if (!p.last_tx_us || now - p.last_tx_us >= every) send_keepalive(p);
      continue;
    }
    if (!p.joining) {
      if (p.acked < p.sent && now - p.last_progress_us >= p.rto_us) {
        p.sent = p.acked;  // go back: the range is sent again with current values
        p.rto_us = std::min(p.rto_us * 2, cfg_.rto_max_us);
        ++p.retransmits;
        p.last_progress_us = now;
        p.in_flight.clear();
        p.in_flight_bytes = 0;
      }
      bool due = p.sent < cur_;
      if (due && cfg_.coalesce && (p.state == PeerState::Lagging || p.state == PeerState::Straggler)) {
        if (now < p.next_flush_us) due = false;
        else p.next_flush_us = now + lookahead(p);
      }
      if (due && p.in_flight_bytes < cfg_.window_bytes) send_range(p, cfg_.max_messages_per_tick);
    }
    answer_leave(id, p);
    if ((p.ack_owed && now - p.ack_owed_since_us >= cfg_.ack_delay_us) || now - p.last_tx_us >= cfg_.keepalive_us)
      send_keepalive(p);
  }
  serve_snapshots(now);
  join_progress(now);
  drain_progress(now);
  try_folds();
}

void Replicator::poll() {
  transport_.receive([&](ByteView d, const Endpoint& from) { on_datagram(d, from); }, 4096);
  tick();
}

// ---- receiving ---------------------------------------------------------------------------------

void Replicator::on_datagram(ByteView d, const Endpoint& from) {
  auto m = gate_.admit(d, store_.schema(), *keys_, clock_.wall_us());
  if (!m) return;
  uint64_t now = clock_.mono_us();
  if (dead_.count(m->h.sender)) {  // its inputs are frozen: only relays of it count now (3.12)
    ++stats_.gone_sender;
    return;
  }
  Peer& p = peers_[m->h.sender.id];
  if (!p.id) {  // not a member (yet): a joiner, or the LSDB is behind
    p.id = m->h.sender.id;
    p.addr = from;
    p.rto_us = cfg_.rto_initial_us;
    p.last_progress_us = now;
  }
  if (!p.member) ++stats_.not_member;
  if (m->h.sender.incarnation != p.incarnation) {
    // a restarted sender: its previous life is a gone origin, the new one starts from nothing
    if (p.incarnation) origin_gone({p.id, p.incarnation});
    p.incarnation = m->h.sender.incarnation;
    p.acked = p.sent = p.high_sent = 0;
    p.in_flight.clear();
    p.in_flight_bytes = 0;
    p.their_acks.clear();
    p.their_gone.clear();
    p.leave_seen = false;
    p.leave_final = p.leave_ack_sent = p.leave_acked = 0;
    p.echo_tx_us = 0;
    p.last_progress_us = now;
  }
  ++p.msgs_received;
  p.wire_version = m->h.version;
  p.last_rx_us = now;
  p.joining = m->h.flags & kFlagJoining;
  p.draining = m->h.flags & kFlagDraining;
  on_rtt(p, m->h, now);
  switch (m->h.type) {
    case MsgType::Delta: on_delta(p, *m); break;
    case MsgType::SnapReq: on_snap_req(p, *m); break;
    case MsgType::Snap: on_snap(p, *m); break;
    case MsgType::Leave: on_leave(p, *m); break;
    case MsgType::LeaveAck: p.leave_acked = std::max(p.leave_acked, m->final_version); break;
  }
}

void Replicator::on_rtt(Peer& p, const Header& h, uint64_t now) {
  if (h.echo_us && now >= h.echo_us + h.echo_delay_us) {
    uint64_t s = now - h.echo_us - h.echo_delay_us;
    if (!p.have_rtt) {
      p.srtt_us = s;
      p.rttvar_us = s / 2;
      p.have_rtt = true;
    } else {
      uint64_t diff = p.srtt_us > s ? p.srtt_us - s : s - p.srtt_us;
      p.rttvar_us = (3 * p.rttvar_us + diff) / 4;
      p.srtt_us = (7 * p.srtt_us + s) / 8;
    }
    if (!p.min_rtt_at_us || s <= p.min_rtt_us || now - p.min_rtt_at_us > kMinRttWindowUs) {
      p.min_rtt_us = s;
      p.min_rtt_at_us = now;
    }
    p.rto_us = std::clamp(p.srtt_us + std::max<uint64_t>(4 * p.rttvar_us, 1000), cfg_.rto_min_us, cfg_.rto_max_us);
  }
  p.echo_tx_us = h.tx_us;
  p.echo_rx_at_us = now;
}

void Replicator::on_ack(Peer& p, const std::vector<AckEntry>& acks, uint64_t now) {
  p.their_acks.clear();
  for (const AckEntry& a : acks) {
    p.their_acks[a.origin] = a.version;
    if (a.origin != self()) continue;
    uint64_t v = std::min(a.version, cur_);
    if (v <= p.acked) continue;
    p.acked = v;
    p.last_progress_us = now;
    while (!p.in_flight.empty() && p.in_flight.front().to <= v) {
      p.in_flight_bytes -= p.in_flight.front().bytes;
      p.in_flight.pop_front();
    }
    if (p.sent < p.acked) p.sent = p.acked;
    if (p.have_rtt)
      p.rto_us = std::clamp(p.srtt_us + std::max<uint64_t>(4 * p.rttvar_us, 1000), cfg_.rto_min_us, cfg_.rto_max_us);
    // a lagging peer that acknowledges gets what coalesced meanwhile at once
    if (p.state == PeerState::Lagging || p.state == PeerState::Straggler) p.next_flush_us = now;
  }
}

size_t Replicator::apply_records(const Message& m) {
  bool snapshot = m.h.type == MsgType::Snap;
  size_t n = 0;
  for (const WireRecord& r : m.records) {
    uint8_t slot;
    if (r.origin == kRetiredOrigin) {
      if (!snapshot) continue;  // retired totals travel only in snapshots
      slot = kRetiredSlot;
    } else {
      const Origin& o = m.origins[r.origin];
      if (o == self()) ++stats_.records_own_origin;
      std::optional<uint8_t> s;
      if (folded_.count(o)) {
        // A folded origin's live set adds in a snapshot: held in a reserved slot until removes
        // make them dead (try_folds); anything else of it is late and dropped.
        const ObjectSpec* spec = store_.schema().find(r.object);
        if (!snapshot || !spec || spec->kind != Kind::AwSet) {
          ++stats_.records_folded_origin;
          continue;
        }
        s = reserved_slot(o);
      } else {
        s = slot_of(o, true);
      }
      if (!s) {
        ++stats_.records_no_slot;
        continue;
      }
      slot = *s;
    }
    if (!store_.merge(r.object, r.key, slot, r.value, r.epoch)) ++stats_.store_errors;
    ++n;
  }
  if (!store_.flush()) ++stats_.store_errors;
  stats_.records_applied += n;
  return n;
}

void Replicator::on_delta(Peer& p, const Message& m) {
  uint64_t now = clock_.mono_us();
  on_ack(p, m.acks, now);
  if (m.h.version >= 2) on_gone(p, m);
  apply_records(m);
  if (m.to > m.from) {
    recv_[m.h.sender].add(m.from, m.to);
    if (!p.ack_owed) {
      p.ack_owed = true;
      p.ack_owed_since_us = now;
    }
  }
}

void Replicator::on_leave(Peer& p, const Message& m) {
  p.leave_seen = true;
  p.leave_final = std::max(p.leave_final, m.final_version);
  p.leave_ack_sent = 0;  // a repeated LEAVE means our answer was lost: answer again
}

// ---- snapshots: serving -----------------------------------------------------------------------

void Replicator::on_snap_req(Peer& p, const Message& m) {
  uint64_t now = clock_.mono_us();
  if (m.snap_id) {
    auto it = snapshots_.find(m.snap_id);
    if (it == snapshots_.end() || it->second.joiner != p.id) return;  // expired: it asks anew
    Snapshot& s = it->second;
    s.touched_us = now;
    for (size_t i = 0; i < m.bitmap.size() * 8; ++i) {
      if (!(m.bitmap[i / 8] & (1u << (i % 8)))) continue;
      uint64_t c = uint64_t{m.first_missing} + i;
      if (c < s.chunks.size() && std::find(s.queue.begin(), s.queue.end(), c) == s.queue.end())
        s.queue.push_back(static_cast<uint16_t>(c));
    }
    return;
  }
  // a new request; a repeated one (its first chunks were lost) gets the same snapshot again
  for (auto& [id, s] : snapshots_)
    if (s.joiner == p.id && s.joiner_incarnation == p.incarnation) {
      s.queue.clear();
      for (size_t c = 0; c < s.chunks.size(); ++c) s.queue.push_back(static_cast<uint16_t>(c));
      s.touched_us = now;
      return;
    }
  extract();  // everything local so far is in it
  Snapshot s;
  s.id = next_snap_id_++;
  s.joiner = p.id;
  s.joiner_incarnation = p.incarnation;
  s.touched_us = now;
  s.coverage = ack_vector();
  for (const Origin& o : folded_) s.coverage.push_back({o, kFoldedMarker});
  std::array<int, AC_CRDT_SLOTS> index_of{};
  index_of.fill(-1);
  index_of[0] = 0;
  s.origins.push_back(self());
  // every held slot, those of folded origins too: what remains of them are set elements with
  // live adds (their counters were folded into the retired totals), which the joiner must hold
  for (uint8_t i = 1; i < AC_CRDT_SLOTS; ++i)
    if (origin_of_[i]) {
      index_of[i] = static_cast<int>(s.origins.size());
      s.origins.push_back(*origin_of_[i]);
    }
  Message probe = header_for(p, MsgType::Snap);
  probe.acks = s.coverage;
  probe.origins = s.origins;
  const size_t base = base_size(probe);
  const Schema& schema = store_.schema();
  std::vector<WireRecord> chunk;
  size_t size = base;
  (void)store_.cells([&](uint8_t obj, const Key& k) {
    const ObjectSpec* spec = schema.find(obj);
    (void)store_.read(obj, k, kAllSlots, [&](uint8_t slot, const CellValue& v) {
      uint8_t origin;
      if (slot == kRetiredSlot) origin = kRetiredOrigin;
      else if (slot < AC_CRDT_SLOTS && index_of[slot] >= 0) origin = static_cast<uint8_t>(index_of[slot]);
      else return;
      if (size + record_size(*spec) > cfg_.max_message && !chunk.empty()) {
        s.chunks.push_back(std::move(chunk));
        chunk.clear();
        size = base;
      }
      chunk.push_back({.object = obj, .origin = origin, .epoch = store_.epoch(obj), .key = k, .value = v});
      size += record_size(*spec);
    });
  });
  if (!chunk.empty() || s.chunks.empty()) s.chunks.push_back(std::move(chunk));
  for (size_t c = 0; c < s.chunks.size(); ++c) s.queue.push_back(static_cast<uint16_t>(c));
  ++stats_.snapshots_served;
  snapshots_[s.id] = std::move(s);
}

void Replicator::serve_snapshots(uint64_t now) {
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    Snapshot& s = it->second;
    auto pit = peers_.find(s.joiner);
    if (pit == peers_.end() || pit->second.incarnation != s.joiner_incarnation ||
        (s.queue.empty() && now - s.touched_us > cfg_.snapshot_linger_us)) {
      it = snapshots_.erase(it);
      continue;
    }
    Peer& p = pit->second;
    for (size_t n = 0; n < cfg_.snapshot_burst && !s.queue.empty(); ++n) {
      uint16_t c = s.queue.front();
      s.queue.pop_front();
      Message m = header_for(p, MsgType::Snap);
      m.snap_id = s.id;
      m.chunk = c;
      m.chunks = static_cast<uint16_t>(s.chunks.size());
      m.acks = s.coverage;
      m.origins = s.origins;
      m.records = s.chunks[c];
      if (send(p, m, m.records.size())) ++stats_.snapshot_chunks_sent;
      s.touched_us = now;
    }
    ++it;
  }
}

// ---- snapshots: joining -----------------------------------------------------------------------

Result<void> Replicator::join(std::optional<uint32_t> source) {
  if (!source) {
    const Peer* best = nullptr;
    for (const auto& [id, p] : peers_) {
      if (!p.member || p.state == PeerState::Unreachable) continue;
      if (!best || (p.have_rtt && (!best->have_rtt || p.srtt_us < best->srtt_us))) best = &p;
    }
    if (!best) return fail("state: no member to join from");
    source = best->id;
  }
  auto it = peers_.find(*source);
  if (it == peers_.end() || !it->second.member) return fail("state: join source " + std::to_string(*source) + " is not a member");
  join_ = JoinState::Requested;
  join_source_ = *source;
  incoming_ = Incoming{};
  incoming_.source = *source;
  Message m = header_for(it->second, MsgType::SnapReq);
  incoming_.requested_us = clock_.mono_us();
  send(it->second, m, 0);
  return {};
}

void Replicator::on_snap(Peer& p, const Message& m) {
  if ((join_ != JoinState::Requested && join_ != JoinState::Receiving) || p.id != incoming_.source) return;
  if (!incoming_.id) {
    incoming_.id = m.snap_id;
    incoming_.chunks = m.chunks;
    incoming_.have.assign(m.chunks, false);
  }
  if (m.snap_id != incoming_.id || m.chunks != incoming_.chunks || incoming_.have[m.chunk]) return;
  join_ = JoinState::Receiving;
  incoming_.have[m.chunk] = true;
  ++incoming_.received;
  incoming_.progress_us = clock_.mono_us();
  for (const AckEntry& a : m.acks) {
    if (a.version == kFoldedMarker) {
      folded_.insert(a.origin);
      continue;
    }
    uint64_t& v = incoming_.coverage[a.origin];
    v = std::max(v, a.version);
  }
  apply_records(m);
  if (incoming_.received < incoming_.chunks) return;
  for (const auto& [o, v] : incoming_.coverage)
    if (o != self() && !folded_.count(o)) recv_[o].raise(v);
  join_ = JoinState::Done;
  for (auto& [id, q] : peers_)
    if (q.member) {
      q.ack_owed = true;
      q.ack_owed_since_us = 0;  // at the next tick
    }
}

void Replicator::join_progress(uint64_t now) {
  if (join_ != JoinState::Requested && join_ != JoinState::Receiving) return;
  auto it = peers_.find(incoming_.source);
  if (it == peers_.end()) return;
  Peer& p = it->second;
  uint64_t wait = std::max(p.rto_us, cfg_.rto_min_us);
  if (join_ == JoinState::Requested) {
    if (now - incoming_.requested_us < wait) return;
    Message m = header_for(p, MsgType::SnapReq);
    send(p, m, 0);
    incoming_.requested_us = now;
    return;
  }
  if (now - incoming_.progress_us < wait || now - incoming_.requested_us < wait) return;
  // ask for the missing chunks: a bitmap from the first one, at most 1024 chunks per request
  size_t first = 0;
  while (first < incoming_.have.size() && incoming_.have[first]) ++first;
  Message m = header_for(p, MsgType::SnapReq);
  m.snap_id = incoming_.id;
  m.first_missing = static_cast<uint32_t>(first);
  size_t span = std::min<size_t>(incoming_.have.size() - first, 1024);
  m.bitmap.assign((span + 7) / 8, 0);
  for (size_t i = 0; i < span; ++i)
    if (!incoming_.have[first + i]) m.bitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  send(p, m, 0);
  incoming_.requested_us = now;
}

// ---- leaving ------------------------------------------------------------------------------------

void Replicator::leave() {
  if (leaving_) return;
  leaving_ = true;
  leave_started_us_ = clock_.mono_us();
}

void Replicator::drain_progress(uint64_t now) {
  if (!leaving_ || drained() || drain_timed_out_) return;
  if (now - leave_started_us_ >= cfg_.drain_timeout_us) {
    drain_timed_out_ = true;
    return;
  }
  // each member that acknowledged everything is told we leave (and told again until it answers)
  for (auto& [id, p] : peers_) {
    if (!p.member || p.acked < cur_ || p.leave_acked >= cur_) continue;
    if (p.leave_sent_us && now - p.leave_sent_us < std::max(p.rto_us, cfg_.rto_min_us)) continue;
    Message m = header_for(p, MsgType::Leave);
    m.final_version = cur_;
    send(p, m, 0);
    p.leave_sent_us = now;
  }
}

bool Replicator::drained() const {
  if (!leaving_) return false;
  for (const auto& [id, p] : peers_)
    if (p.member && (p.acked < cur_ || p.leave_acked < cur_)) return false;
  return true;
}

std::vector<uint32_t> Replicator::drain_missing() const {
  std::vector<uint32_t> v;
  for (const auto& [id, p] : peers_)
    if (p.member && (p.acked < cur_ || p.leave_acked < cur_)) v.push_back(id);
  return v;
}

// ---- status --------------------------------------------------------------------------------------

std::vector<PeerStatus> Replicator::peers() const {
  std::vector<PeerStatus> v;
  for (const auto& [id, p] : peers_) {
    PeerStatus s;
    s.id = id;
    s.addr = p.addr;
    s.member = p.member;
    s.incarnation = p.incarnation;
    s.state = p.state;
    s.joining = p.joining;
    s.draining = p.draining;
    s.acked = p.acked;
    s.sent = p.sent;
    s.srtt_us = p.srtt_us;
    s.min_rtt_us = p.min_rtt_us;
    s.rto_us = p.rto_us;
    s.in_flight_bytes = p.in_flight_bytes;
    s.msgs_sent = p.msgs_sent;
    s.bytes_sent = p.bytes_sent;
    s.records_sent = p.records_sent;
    s.retransmits = p.retransmits;
    s.coalesced = p.coalesced;
    s.msgs_received = p.msgs_received;
    s.wire_version = p.wire_version;
    if (p.removed_us) {
      uint64_t grace = p.node_lost ? cfg_.node_gone_grace_us : cfg_.gone_grace_us, since = clock_.mono_us() - p.removed_us;
      s.gone_in_us = since < grace ? grace - since : 1;
      s.node_lost = p.node_lost;
    }
    v.push_back(s);
  }
  return v;
}

std::map<Origin, uint64_t> Replicator::received() const {
  std::map<Origin, uint64_t> v;
  for (const auto& [o, r] : recv_) v[o] = r.contig;
  return v;
}

std::map<Origin, uint64_t> Replicator::gone() const {
  std::map<Origin, uint64_t> v;
  for (const auto& [o, g] : gone_) v[o] = g.folded ? kGoneFolded : g.relay;
  return v;
}

std::map<uint8_t, Origin> Replicator::slots() const {
  std::map<uint8_t, Origin> v;
  for (uint8_t s = 1; s < AC_CRDT_SLOTS; ++s)
    if (origin_of_[s]) v[s] = *origin_of_[s];
  return v;
}

}  // namespace anychain::state
