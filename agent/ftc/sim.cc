// The FTC simulation (agent/ftc/sim.h): a chain of hops over the C++ twin with loss,
// reordering, duplicates, kills and recovery, checked against the invariants listed in sim.h
// (docs/ftc.md Section 9). One file over 500 lines because the event loop, the hops' state and
// the checks share one private Sim class; nothing in it is used elsewhere.
#include "ftc/sim.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include "ftc/buffer.h"
#include "ftc/hop.h"
#include "ftc/recovery.h"

namespace anychain::ftc::sim {

std::string Report::summary() const {
  std::ostringstream o;
  o << "sent " << sent << " (+" << duplicates << " duplicates), released " << released << ", filtered " << filtered
    << ", lost " << lost << ", dead " << dead << ", stale " << stale << ", hold expired " << hold_expired
    << ", buffer dropped " << buffer_dropped << ", fenced " << buffer_fenced << ", other " << other_drops
    << "; holds " << holds << ", resyncs " << resyncs << ", propagating " << propagating << ", stubs " << stubs
    << ", recoveries " << recoveries << " (" << transfers << " records), checks " << checks << ", violations "
    << violations.size();
  for (size_t i = 0; i < violations.size() && i < 5; ++i) o << "\n  " << violations[i];
  return o.str();
}

namespace {

constexpr uint32_t kSpi = 1, kIngress = 0x0a000001;

struct Tx {
  RecordKey rk;
  uint32_t seq;
};

struct Packet {
  uint64_t id = 0;
  Flow flow;
  Bytes nsh;
  bool data = true;  // false: a propagating packet the forwarder or an overflow injected
  std::vector<Tx> txs;
};

struct Held {
  Packet pkt;
  uint64_t since;
  RecordKey gap;
};

struct Instance {
  uint16_t id;
  int hop;
  int index;
  bool alive = true;
  Store store;
  std::map<Flow, std::deque<Held>> holds;
  std::set<Flow> checking;
  std::set<RecordKey> resyncing;
};

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Sim {
 public:
  explicit Sim(const Config& c) : cfg_(c), rng_(c.seed), fwd_(ForwarderLimits{.propagate_after_ns = c.propagate_after_ns}) {
    int n = static_cast<int>(cfg_.services.size());
    by_hop_.resize(n);
    for (int h = 0; h < n; ++h)
      for (int i = 0; i < cfg_.services[h].instances; ++i) {
        uint16_t id = static_cast<uint16_t>(100 * (h + 1) + i);
        by_hop_[h].push_back(static_cast<int>(inst_.size()));
        inst_.push_back(Instance{id, h, i, true, Store(id, 0), {}, {}, {}});
      }
    std::set<uint32_t> seen;
    while (static_cast<int>(flows_.size()) < cfg_.flows) {
      uint32_t h = static_cast<uint32_t>(rng_());
      if (seen.insert(h).second) flows_.push_back(Flow{kSpi, h});
    }
  }

  Report run() {
    if (static_cast<int>(cfg_.services.size()) < cfg_.f + 1)
      rep_.violations.push_back("configuration: fewer than f + 1 FTC hops");
    for (const auto& fl : cfg_.failures)
      at(fl.at_ns, [this, fl] { fail(fl); });
    at(0, [this] { generate(0); });
    at(0, [this] { tick(); });
    while (!ev_.empty()) {
      Ev e = ev_.top();
      ev_.pop();
      now_ = e.t;
      e.fn();
    }
    finish();
    return rep_;
  }

 private:
  struct Ev {
    uint64_t t, seq;
    std::function<void()> fn;
    bool operator>(const Ev& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };

  void at(uint64_t t, std::function<void()> fn) { ev_.push(Ev{t, evseq_++, std::move(fn)}); }
  void violation(std::string s) {
    if (rep_.violations.size() < 100) rep_.violations.push_back(fmt::format("t={}ns: {}", now_, s));
  }
  double uni() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  int hops() const { return static_cast<int>(cfg_.services.size()); }
  Instance& place(int hop, const Flow& f) { return inst_[by_hop_[hop][f.hash % by_hop_[hop].size()]]; }
  Instance* by_id(uint16_t id) {
    for (auto& x : inst_)
      if (x.id == id) return &x;
    return nullptr;
  }
  static uint8_t si_of(int hop) { return static_cast<uint8_t>(255 - hop); }

  // ---- traffic ----

  Bytes ingress_nsh(const Flow& flow, bool propagating, std::vector<Log> logs) {
    Nsh n;
    n.spi = flow.spi;
    n.si = 255;
    n.other.push_back(flow_hash_tlv(flow.hash));
    n.ctrl = Ctrl{static_cast<uint8_t>(propagating ? AC_FTC_CTRL_PROPAGATING : 0), static_cast<uint8_t>(cfg_.f), kIngress};
    n.logs = std::move(logs);
    auto b = encode_nsh(n);
    if (!b) violation("forwarder built a bad NSH: " + b.error().message);
    return b ? *b : Bytes{};
  }

  void generate(int i) {
    if (i >= cfg_.packets) {
      traffic_done_ = true;
      return;
    }
    Packet p;
    p.id = next_id_++;
    p.flow = flows_[rng_() % flows_.size()];
    p.nsh = ingress_nsh(p.flow, false, fwd_.piggyback(p.flow));
    rep_.sent++;
    send(std::move(p), 0);
    at(now_ + cfg_.gap_ns, [this, i] { generate(i + 1); });
  }

  void send(Packet p, int hop) {
    if (uni() < cfg_.loss) {
      if (p.data) rep_.lost++;
      return;
    }
    if (uni() < cfg_.dup) {
      Packet d = p;
      d.id = next_id_++;
      if (d.data) rep_.duplicates++;
      deliver(std::move(d), hop);
    }
    deliver(std::move(p), hop);
  }

  void deliver(Packet p, int hop) {
    uint64_t t = now_ + cfg_.delay_ns + (cfg_.jitter_ns ? rng_() % cfg_.jitter_ns : 0);
    if (hop >= hops())
      at(t, [this, p = std::move(p)]() mutable { at_buffer(std::move(p)); });
    else
      at(t, [this, p = std::move(p), hop]() mutable { arrive(std::move(p), hop); });
  }

  // ---- the hops ----

  NfFn nf_for(const Instance& x, const Packet& p) {
    const Service& s = cfg_.services[x.hop];
    switch (s.kind) {
      case Kind::Counter: {
        size_t width = static_cast<size_t>(std::clamp(s.value_bytes, 4, 32));
        return [width](Transaction* tx) {
          if (!tx) return NfResult{true};
          auto v = tx->get(1, Bytes{'c'});
          uint32_t n = v ? (uint32_t{(*v)[0]} << 24 | uint32_t{(*v)[1]} << 16 | uint32_t{(*v)[2]} << 8 | (*v)[3]) : 0;
          ++n;
          Bytes val(width, 0);
          val[0] = uint8_t(n >> 24);
          val[1] = uint8_t(n >> 16);
          val[2] = uint8_t(n >> 8);
          val[3] = uint8_t(n);
          (void)tx->put(1, Bytes{'c'}, val);
          return NfResult{};
        };
      }
      case Kind::Mapping: {
        uint16_t id = x.id;
        uint32_t h = p.flow.hash;
        return [id, h](Transaction* tx) {
          if (!tx) return NfResult{true};
          if (!tx->get(2, Bytes{'m'}))
            (void)tx->put(2, Bytes{'m'}, Bytes{uint8_t(id >> 8), uint8_t(id), uint8_t(h >> 8), uint8_t(h)});
          return NfResult{};
        };
      }
      case Kind::Firewall: {
        bool drop = (mix(p.id ^ cfg_.seed) % 1000) < static_cast<uint64_t>(s.filter * 1000);
        return [drop](Transaction*) { return NfResult{drop}; };
      }
      case Kind::Replica:
        return [](Transaction*) { return NfResult{}; };
    }
    return [](Transaction*) { return NfResult{}; };
  }

  bool stateful(const Instance& x) const {
    auto k = cfg_.services[x.hop].kind;
    return k == Kind::Counter || k == Kind::Mapping;
  }

  void arrive(Packet p, int hop) {
    Instance& x = place(hop, p.flow);
    if (!x.alive) {
      if (p.data) rep_.dead++;
      return;
    }
    process(x, std::move(p), false);
  }

  // Returns false when the packet is (still) held.
  bool process(Instance& x, Packet p, bool from_hold) {
    HopConfig hc{x.id, stateful(x), {}};
    auto in = decode_nsh(p.nsh);
    if (!in) {
      violation("a hop got a bad NSH: " + in.error().message);
      return true;
    }
    HopResult r = run_hop(hc, x.store, p.nsh, nf_for(x, p));
    switch (r.verdict) {
      case Verdict::Hold:
        if (!from_hold) {
          Flow f = p.flow;
          x.holds[f].push_back(Held{std::move(p), now_, *r.gap});
          schedule_check(x, f);
          rep_.holds++;
        } else {
          x.holds[p.flow].front().gap = *r.gap;
        }
        return false;
      case Verdict::Plain:
        violation("a packet without the control TLV");
        return true;
      case Verdict::Drop:
        if (r.reason == AC_FTC_ST_STALE) {
          if (p.data) rep_.stale++;
        } else {
          if (p.data) rep_.other_drops++;
          violation(fmt::format("instance {} dropped a packet: {}", x.id, r.detail));
        }
        return true;
      case Verdict::Forward:
        break;
    }
    // copies now held
    for (const auto& l : in->logs) {
      RecordKey rk{l.mbox.id, l.mbox.si, p.flow};
      if (const Record* rec = x.store.replica(rk)) note_reached(rk, x.id, rec->seq);
    }
    if (r.own) {
      RecordKey rk{x.id, si_of(x.hop), p.flow};
      if (r.own->count) ledger_[rk][r.own->seq] = r.own->writes;
      note_reached(rk, x.id, r.own->seq);
      if (p.data) p.txs.push_back(Tx{rk, r.own->seq});
      if (r.stubbed) {
        // the process sends the whole log ahead, in a propagating packet of the same flow
        rep_.stubs++;
        Nsh prop = *decode_nsh(r.nsh);
        prop.ctrl->flags |= AC_FTC_CTRL_PROPAGATING;
        prop.logs = {*r.own};
        prop.commits.clear();
        prop.si = static_cast<uint8_t>(prop.si - 1);
        Packet q;
        q.id = next_id_++;
        q.flow = p.flow;
        q.data = false;
        auto b = encode_nsh(prop);
        if (b) {
          q.nsh = *b;
          send(std::move(q), x.hop + 1);
        } else {
          violation("overflow packet: " + b.error().message);
        }
      }
    }
    p.nsh = r.nsh;
    p.nsh[7] = static_cast<uint8_t>(p.nsh[7] - 1);
    Flow f = p.flow;
    send(std::move(p), x.hop + 1);
    if (!from_hold) retry(x, f);
    return true;
  }

  void note_reached(const RecordKey& rk, uint16_t holder, uint32_t seq) {
    auto& s = reached_[rk][holder];
    if (!ac_ftc_seq_le(seq, s)) s = seq;
  }

  void retry(Instance& x, const Flow& f) {
    auto it = x.holds.find(f);
    while (it != x.holds.end() && !it->second.empty() && x.alive) {
      Packet p = it->second.front().pkt;
      if (!process(x, p, true)) break;
      it = x.holds.find(f);
      if (it != x.holds.end() && !it->second.empty()) it->second.pop_front();
    }
  }

  void schedule_check(Instance& x, const Flow& f) {
    if (!x.checking.insert(f).second) return;
    uint16_t id = x.id;
    at(now_ + cfg_.reorder_wait_ns, [this, id, f] { check(*by_id(id), f); });
  }

  void check(Instance& x, const Flow& f) {
    x.checking.erase(f);
    if (!x.alive) return;
    retry(x, f);
    auto& q = x.holds[f];
    while (!q.empty() && now_ - q.front().since >= cfg_.hold_timeout_ns) {
      if (q.front().pkt.data) rep_.hold_expired++;
      q.pop_front();
      retry(x, f);
    }
    if (q.empty()) return;
    if (now_ - q.front().since >= cfg_.reorder_wait_ns) resync(x, q.front().gap);
    schedule_check(x, f);
  }

  // Re-request (docs/ftc.md 4.3): the head's record, installed if newer.
  void resync(Instance& x, const RecordKey& rk) {
    if (!x.resyncing.insert(rk).second) return;
    rep_.resyncs++;
    uint16_t xid = x.id;
    at(now_ + cfg_.channel_ns, [this, xid, rk] {
      Instance* head = by_id(rk.id);
      std::optional<Record> snap;
      if (head && head->alive && head->store.head(rk)) snap = *head->store.head(rk);
      at(now_ + cfg_.channel_ns, [this, xid, rk, snap] {
        Instance& x = *by_id(xid);
        x.resyncing.erase(rk);
        if (!x.alive || !snap) return;
        Record r = *snap;
        r.held = 2;  // kept when the record exists; a distance is not needed for correctness
        if (x.store.install_replica(rk, r)) note_reached(rk, x.id, r.seq);
        retry(x, rk.flow);
      });
    });
  }

  // ---- the end of the chain ----

  void at_buffer(Packet p) {
    auto n = decode_nsh(p.nsh);
    if (!n) {
      violation("the buffer got a bad NSH: " + n.error().message);
      return;
    }
    auto a = buffer_.receive(*n, p.id, p.nsh.size() + 100, now_);
    if (cfg_.release_early && a.fate == EgressBuffer::Fate::Held) {
      release(p);
      return;
    }
    uint64_t token = p.id;
    bool data = p.data;
    bool propagating = n->ctrl && n->ctrl->propagating();
    if (a.fate == EgressBuffer::Fate::Held) held_.emplace(token, std::move(p));
    for (uint64_t t : a.released) {
      if (t == token) {
        release(p);
      } else if (cfg_.release_early && !held_.count(t)) {
        continue;  // released at arrival already
      } else {
        release(held_.at(t));
        held_.erase(t);
      }
    }
    for (uint64_t t : a.dropped) {
      if (cfg_.release_early && !held_.count(t)) continue;
      if (held_.at(t).data) rep_.buffer_fenced++;
      held_.erase(t);
    }
    if (a.fate == EgressBuffer::Fate::Dropped && data) rep_.buffer_dropped++;
    if (a.fate == EgressBuffer::Fate::Consumed) {
      if (data) rep_.filtered++;
      (void)propagating;
    }
    if (a.feedback) {
      Feedback fb = *a.feedback;
      at(now_ + cfg_.channel_ns, [this, fb] { fwd_.feedback(fb, now_); });
    }
    if (!n->commits.empty()) {
      Flow flow{n->spi, *n->hash()};
      CommitVector cv = *buffer_.commits(flow);
      at(now_ + cfg_.channel_ns, [this, flow, cv] { fwd_.released(flow, cv); });
    }
  }

  void release(const Packet& p) {
    if (!p.data) return;
    rep_.released++;
    for (const auto& tx : p.txs) {
      if (tx.seq == 0) continue;
      int copies = 0;
      for (const auto& [holder, s] : reached_[tx.rk])
        if (ac_ftc_seq_le(tx.seq, s)) ++copies;
      rep_.checks++;
      if (copies < cfg_.f + 1)
        violation(fmt::format("packet {} released with seq {} of instance {} held {} times (f = {})", p.id, tx.seq,
                         tx.rk.id, copies, cfg_.f));
      auto& m = released_[tx.rk];
      if (!ac_ftc_seq_le(tx.seq, m)) m = tx.seq;
    }
  }

  // ---- timers: buffer bounds and feedback, forwarder propagation ----

  void tick() {
    for (uint64_t t : buffer_.expire(now_)) {
      if (held_.count(t) && held_.at(t).data) rep_.buffer_dropped++;
      held_.erase(t);
    }
    for (auto& fb : buffer_.due_feedback(now_))
      at(now_ + cfg_.channel_ns, [this, fb] { fwd_.feedback(fb, now_); });
    for (auto& pr : fwd_.due(now_))
      for (auto& logs : pr.packets) {
        Packet q;
        q.id = next_id_++;
        q.flow = pr.flow;
        q.data = false;
        q.nsh = ingress_nsh(pr.flow, true, logs);
        rep_.propagating++;
        send(std::move(q), 0);
      }
    bool busy = buffer_.held() || fwd_.flows();
    for (const auto& x : inst_)
      for (const auto& [f, q] : x.holds) busy |= !q.empty();
    if (!traffic_done_ || busy || pending_recoveries_) {
      if (traffic_done_ && !drain_start_) drain_start_ = now_;
      if (!drain_start_ || now_ - drain_start_ < 2'000'000'000ULL) at(now_ + 50000, [this] { tick(); });
    }
  }

  // ---- failures and recovery (docs/ftc.md 7) ----

  void fail(const Failure& fl) {
    if (fl.service >= hops() || fl.instance >= cfg_.services[fl.service].instances) {
      violation("a failure names no instance");
      return;
    }
    Instance& x = inst_[by_hop_[fl.service][fl.instance]];
    if (!x.alive) return;
    x.alive = false;
    for (const auto& [f, q] : x.holds)
      for (const auto& h : q) rep_.dead += h.pkt.data;
    x.holds.clear();
    x.checking.clear();
    x.resyncing.clear();
    x.store.clear();
    // its copies stay counted: they were held when packets were released (recovery clamps
    // every holder to the recovered sequence)
    pending_recoveries_++;
    uint16_t id = x.id;
    at(now_ + cfg_.detect_ns, [this, id] { recover(*by_id(id)); });
  }

  void recover(Instance& x) {
    // round 1 at the holders: every alive holder fences its records of X with the new
    // incarnation, then reports them (a log of the old X still in flight is stale from now on)
    uint8_t inc = x.store.inc();
    for (const auto& y : inst_)
      if (y.alive)
        for (const auto& [k, r] : y.store.replicas())
          if (k.id == x.id && ac_ftc_inc_older(inc, r.inc)) inc = r.inc;
    uint8_t new_inc = static_cast<uint8_t>(inc + 1);
    std::vector<Holding> holdings;
    for (auto& y : inst_) {
      if (&y == &x || !y.alive) continue;
      for (const auto& [k, r] : y.store.replicas())
        if (k.id == x.id) y.store.fence(k, new_inc);
      for (const auto& [k, r] : y.store.replicas()) holdings.push_back(Holding{y.id, true, k, r});
      for (const auto& [k, r] : y.store.heads()) holdings.push_back(Holding{y.id, true, k, r});
    }
    Geometry geo;
    for (int d = 1; d <= cfg_.f; ++d) {
      int h = ((x.hop - d) % hops() + hops()) % hops();
      if (h != x.hop) geo.replicated_sis[kSpi].push_back(si_of(h));
    }
    RecoveryPlan plan = plan_recovery(x.id, new_inc, holdings, geo);
    if (plan.conflict) violation("recovery: a holder knows a newer incarnation");
    at(now_ + 2 * cfg_.channel_ns, [this, id = x.id, plan] { install(*by_id(id), plan); });
  }

  void install(Instance& x, const RecoveryPlan& plan) {
    x.store = Store(x.id, plan.new_inc);
    std::set<RecordKey> recovered;
    for (const auto& t : plan.transfers) {
      Record r = t.rec;
      if (t.head) {
        r.inc = plan.new_inc;
        x.store.install_head(t.key, r);
        recovered.insert(t.key);
        // anything after the recovered sequence was never released: it is gone
        auto& l = ledger_[t.key];
        for (auto it = l.begin(); it != l.end();) it = ac_ftc_seq_le(it->first, r.seq) ? std::next(it) : l.erase(it);
        auto rel = released_.find(t.key);
        if (rel != released_.end() && !ac_ftc_seq_le(rel->second, r.seq))
          violation(fmt::format("lost update: instance {} recovered at seq {} but seq {} was released", x.id, r.seq,
                           rel->second));
        for (auto& [holder, s] : reached_[t.key])
          if (!ac_ftc_seq_le(s, r.seq)) s = r.seq;
        note_reached(t.key, x.id, r.seq);
      } else {
        r.held = 2;
        x.store.install_replica(t.key, r);
        note_reached(t.key, x.id, r.seq);
      }
      rep_.transfers++;
    }
    // partitions of X nobody held restart empty: nothing of them may have been released
    for (auto& [rk, l] : ledger_) {
      if (rk.id != x.id || recovered.count(rk)) continue;
      if (released_.count(rk) && released_[rk] != 0)
        violation(fmt::format("lost partition: instance {} flow {} had released seq {}", x.id, rk.flow.hash, released_[rk]));
      l.clear();
      reached_[rk].clear();
    }
    check_records(x);
    x.alive = true;
    rep_.recoveries++;
    pending_recoveries_--;
  }

  // ---- invariants ----

  Kv reference(const RecordKey& rk, uint32_t seq, bool& known) {
    Kv kv;
    known = true;
    auto it = ledger_.find(rk);
    if (seq == 0) return kv;
    if (it == ledger_.end()) {
      known = false;
      return kv;
    }
    uint32_t applied = 0;
    for (const auto& [s, w] : it->second) {
      if (!ac_ftc_seq_le(s, seq)) break;
      apply_writes(kv, w);
      applied = s;
    }
    known = applied == seq;
    return kv;
  }

  void check_record(const Instance& x, const RecordKey& rk, const Record& r, const char* what) {
    bool known;
    Kv ref = reference(rk, r.seq, known);
    rep_.checks++;
    if (!known)
      violation(fmt::format("{} record of instance {} at {} has seq {} the head never produced", what, rk.id, x.id, r.seq));
    else if (ref != r.kv)
      violation(fmt::format("{} record of instance {} at {} (seq {}) differs from the sequential reference", what, rk.id,
                       x.id, r.seq));
  }

  void check_records(const Instance& x) {
    for (const auto& [rk, r] : x.store.heads()) check_record(x, rk, r, "head");
    for (const auto& [rk, r] : x.store.replicas()) check_record(x, rk, r, "replica");
  }

  void finish() {
    for (const auto& x : inst_)
      if (x.alive) check_records(x);
    // every head record of a live instance covers its released transactions
    for (const auto& [rk, s] : released_) {
      Instance* h = by_id(rk.id);
      const Record* r = h && h->alive ? h->store.head(rk) : nullptr;
      if (h && h->alive && (!r || !ac_ftc_seq_le(s, r->seq)))
        violation(fmt::format("instance {} lost released seq {} of flow {}", rk.id, s, rk.flow.hash));
    }
    uint64_t stuck = buffer_.held();
    for (const auto& x : inst_)
      for (const auto& [f, q] : x.holds)
        for (const auto& h : q) stuck += h.pkt.data;
    if (stuck) violation(fmt::format("{} packets still held after the drain", stuck));
    uint64_t in = rep_.sent + rep_.duplicates;
    uint64_t out = rep_.released + rep_.filtered + rep_.lost + rep_.dead + rep_.stale + rep_.hold_expired +
                   rep_.buffer_dropped + rep_.buffer_fenced + rep_.other_drops + stuck;
    if (in != out) violation(fmt::format("accounting: {} packets in, {} accounted for", in, out));
  }

  Config cfg_;
  Report rep_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0, next_id_ = 1, evseq_ = 0, drain_start_ = 0;
  bool traffic_done_ = false;
  int pending_recoveries_ = 0;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> ev_;
  std::vector<Instance> inst_;
  std::vector<std::vector<int>> by_hop_;
  std::vector<Flow> flows_;
  EgressBuffer buffer_;
  IngressForwarder fwd_;
  std::map<uint64_t, Packet> held_;                        // at the buffer, by token
  std::map<RecordKey, std::map<uint32_t, std::vector<Write>>> ledger_;  // head history
  std::map<RecordKey, std::map<uint16_t, uint32_t>> reached_;          // holders' sequences
  std::map<RecordKey, uint32_t> released_;                             // highest released
};

}  // namespace

Report run(const Config& cfg) { return Sim(cfg).run(); }

}  // namespace anychain::ftc::sim
