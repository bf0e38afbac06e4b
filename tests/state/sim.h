// An in-memory network of replicators over the C++ twin, with a manual clock, per-link delay,
// jitter (reordering), loss, duplication and partitions. Deterministic for a seed.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "state/replicator.h"
#include "state/twin_store.h"

namespace anychain::state::sim {

class ManualClock final : public Clock {
 public:
  uint64_t mono_us() const override { return now_; }
  uint64_t wall_us() const override { return 1'700'000'000'000'000ULL + now_; }
  void advance(uint64_t us) { now_ += us; }

 private:
  uint64_t now_ = 1'000'000;
};

struct Link {
  uint64_t delay_us = 200;
  uint64_t jitter_us = 0;    // uniform extra delay: reorders datagrams
  double loss = 0;
  double dup = 0;
  bool down = false;
  uint64_t bytes_per_ms = 0;  // capacity (0: unlimited): datagrams queue behind each other
};

class Net;

class SimTransport final : public Transport {
 public:
  SimTransport(Net& net, Endpoint me) : net_(net), me_(me) {}
  Result<void> send(const Endpoint& to, ByteView d) override;
  size_t receive(const RecvFn& fn, size_t max) override;
  std::vector<int> fds() const override { return {}; }
  TransportStatus status() const override { return st_; }
  Endpoint me() const { return me_; }

 private:
  friend class Net;
  Net& net_;
  Endpoint me_;
  TransportStatus st_ = [] {
    TransportStatus t;
    t.mode = "sim";
    return t;
  }();
};

class Net {
 public:
  explicit Net(uint64_t seed) : rng_(seed) {}
  ManualClock clock;
  // The link between two instance ids (instance i lives at 10.0.0.i).
  Link& link(uint32_t from, uint32_t to) {
    auto it = links_.find({from, to});
    if (it == links_.end()) it = links_.emplace(std::make_pair(from, to), default_).first;
    return it->second;
  }
  void set_all(const Link& l) {
    default_ = l;
    links_.clear();
  }
  // Every datagram in flight that a test may inspect or replay.
  std::vector<std::tuple<uint32_t, uint32_t, Bytes>> captured;
  bool capture = false;
  uint64_t sent = 0, dropped = 0, duplicated = 0, bytes = 0;

  void push(const Endpoint& from, const Endpoint& to, ByteView d) {
    ++sent;
    bytes += d.size();
    const Link& l = link_of(from.addr >> 24, to.addr >> 24);
    if (capture) captured.emplace_back(from.addr, to.addr, Bytes(d.begin(), d.end()));
    if (l.down || uniform() < l.loss) {
      ++dropped;
      return;
    }
    int copies = uniform() < l.dup ? 2 : 1;
    duplicated += copies - 1;
    uint64_t depart = clock.mono_us();
    if (l.bytes_per_ms) {  // a queue in front of a slow link: the delay grows with the load
      uint64_t& busy = busy_until_[{from.addr >> 24, to.addr >> 24}];
      depart = std::max(depart, busy) + d.size() * 1000 / l.bytes_per_ms;
      busy = depart;
    }
    for (int i = 0; i < copies; ++i) {
      uint64_t at = depart + l.delay_us + (l.jitter_us ? rng_() % (l.jitter_us + 1) : 0);
      queue_.push_back({at, seq_++, from, to, Bytes(d.begin(), d.end())});
    }
  }
  void inject(const Endpoint& from, const Endpoint& to, const Bytes& d) {
    queue_.push_back({clock.mono_us(), seq_++, from, to, d});
  }
  size_t deliver(const Endpoint& me, const RecvFn& fn, size_t max) {
    std::vector<Item> due;
    uint64_t now = clock.mono_us();
    for (auto it = queue_.begin(); it != queue_.end() && due.size() < max;) {
      if (it->to == me && it->at <= now) {
        due.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    std::sort(due.begin(), due.end(), [](const Item& a, const Item& b) { return std::tie(a.at, a.seq) < std::tie(b.at, b.seq); });
    for (const Item& i : due) fn(i.data, i.from);
    return due.size();
  }
  size_t in_flight() const { return queue_.size(); }

 private:
  struct Item {
    uint64_t at;
    uint64_t seq;
    Endpoint from, to;
    Bytes data;
  };
  const Link& link_of(uint32_t from, uint32_t to) {
    auto it = links_.find({from, to});
    return it == links_.end() ? default_ : it->second;
  }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  std::mt19937_64 rng_;
  std::map<std::pair<uint32_t, uint32_t>, Link> links_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> busy_until_;
  Link default_;
  std::vector<Item> queue_;
  uint64_t seq_ = 0;
};

inline Result<void> SimTransport::send(const Endpoint& to, ByteView d) {
  ++st_.tx_frames;
  st_.tx_bytes += d.size();
  net_.push(me_, to, d);
  return {};
}
inline size_t SimTransport::receive(const RecvFn& fn, size_t max) {
  return net_.deliver(me_, [&](ByteView d, const Endpoint& from) {
    ++st_.rx_frames;
    st_.rx_bytes += d.size();
    fn(d, from);
  }, max);
}

inline std::shared_ptr<const Keyring> test_keys(std::vector<uint8_t> ids = {1}, uint8_t send = 1) {
  std::vector<KeySpec> k;
  for (uint8_t id : ids) k.push_back({id, std::vector<uint8_t>(32, static_cast<uint8_t>(0x30 + id))});
  auto r = Keyring::make(k, send);
  if (!r) throw std::runtime_error(r.error().str());
  return *r;
}

// One instance: its twin, transport and replicator. Instance id i lives at 10.0.0.i:4795.
struct Node {
  Node(Net& net, const Schema& schema, uint32_t id, uint64_t incarnation, ReplicatorConfig cfg,
       std::shared_ptr<const Keyring> keys = test_keys())
      : id(id), store(schema), transport(net, Endpoint{addr_of(id), 4795}) {
    cfg.me = Identity{.service = 1, .id = id, .incarnation = incarnation};
    rep = std::make_unique<Replicator>(cfg, store, transport, std::move(keys), net.clock);
  }
  static uint32_t addr_of(uint32_t id) { return (10u) | (id << 24); }  // 10.0.0.id in network order
  uint32_t id;
  TwinStore store;
  SimTransport transport;
  std::unique_ptr<Replicator> rep;
};

// Everything a replica holds, numbered by origin instead of slot: equal on converged replicas.
using Canonical = std::map<std::tuple<uint8_t, Key, uint32_t, uint64_t>, CellValue>;
inline Canonical canonical(Store& store, const Replicator& rep) {
  Canonical out;
  auto slots = rep.slots();
  Origin self = rep.self();
  const Schema& schema = store.schema();
  std::vector<std::pair<uint8_t, Key>> cells;
  (void)store.cells([&](uint8_t obj, const Key& k) { cells.emplace_back(obj, k); });
  for (auto& [obj, k] : cells) {
    (void)store.read(obj, k, kAllSlots, [&](uint8_t s, const CellValue& v) {
      Origin o{};
      if (schema.find(obj)->kind == Kind::RegMap) o = {};              // a register has no origin
      else if (s == kRetiredSlot) o = {0xffffffff, 0};
      else if (s == 0) o = self;
      else if (slots.count(s)) o = slots.at(s);
      else o = {0xfffffffe, s};                                      // a slot with no origin: a bug
      out[{obj, k, o.id, o.incarnation}] = v;
    });
  }
  return out;
}
inline Canonical canonical(Node& n, const Schema&) { return canonical(n.store, *n.rep); }

}  // namespace anychain::state::sim
