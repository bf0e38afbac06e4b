#include "daemon/replication.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>

#include <fmt/format.h>

#include <algorithm>

#include "anychain/maps.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "nf/crdt.h"
#include "anychain/nf.h"
#include "state/nat_pool.h"
#include "state/neigh.h"
#include "state/udp_transport.h"
#include "state/xsk_transport.h"

namespace anychain::daemon {

using json = nlohmann::json;

bool ReplicationSpec::operator==(const ReplicationSpec& o) const {
  auto same_keys = [&] {
    if (keys.size() != o.keys.size()) return false;
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i].id != o.keys[i].id || keys[i].secret != o.keys[i].secret) return false;
    return true;
  };
  return port == o.port && interfaces == o.interfaces && same_keys() && send_key == o.send_key &&
         max_skew_us == o.max_skew_us && scan_interval_us == o.scan_interval_us && keepalive_us == o.keepalive_us &&
         window_bytes == o.window_bytes && node_gone_grace_us == o.node_gone_grace_us;
}

std::map<uint16_t, std::vector<state::Replicator::Member>> members_from_topology(
    const plane::Topology& topo, const std::vector<ServicePrefix>& services, uint16_t port,
    const std::function<bool(uint32_t)>& reachable) {
  std::map<uint16_t, std::vector<state::Replicator::Member>> out;
  for (const auto& s : services) out[s.id];  // a service whose instances all left: no members
  for (const auto& in : topo.instances) {
    if (in.held || in.info.down()) continue;  // withdrawn or dead: no longer a member
    // A node the LSDB no longer connects to ours keeps its LSAs there until they age out
    // (an hour) and nobody is left to withdraw them: its instances are lost (3.13).
    bool lost = reachable && !reachable(in.router);
    for (const auto& s : services)
      if (s.addr == in.info.service_addr && s.len == in.info.service_len)
        out[s.id].push_back({in.info.instance_id, state::Endpoint{htonl(in.info.nsh_endpoint), port}, lost});
  }
  for (auto& [id, v] : out)
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

// What every replicator sends through: the transport of the interface the kernel routes the
// peer through (the AF_XDP transports fall back to their UDP socket on their own when the next
// hop is not resolved), else the first one. Receiving is the dispatcher's.
class Replication::Sender final : public state::Transport {
 public:
  explicit Sender(Replication& r) : r_(r) {
    if (auto n = state::NeighbourTable::open()) neigh_.emplace(std::move(*n));
  }
  Result<void> send(const state::Endpoint& to, state::ByteView d) override {
    if (r_.links_.empty()) return fail("state: no transport", ENETDOWN);
    state::Transport* t = r_.links_.front().t.get();
    if (r_.links_.size() > 1 && neigh_)
      if (auto hop = neigh_->lookup(to.addr, r_.clock_.mono_us()))
        for (const auto& l : r_.links_)
          if (l.ifindex == hop->ifindex) t = l.t.get();
    return t->send(to, d);
  }
  size_t receive(const state::RecvFn&, size_t) override { return 0; }
  std::vector<int> fds() const override { return {}; }
  state::TransportStatus status() const override { return {}; }

 private:
  Replication& r_;
  std::optional<state::NeighbourTable> neigh_;
};

struct Replication::Replica {
  ReplicaSpec spec;
  nf::Published pub;
  std::vector<UniqueFd> fds;                  // the NF's maps and merge program, by id
  std::unique_ptr<state::BpfStore> store;
  std::unique_ptr<state::Replicator> rep;
  std::unique_ptr<state::Expiry> expiry;      // the objects whose entries expire (null: none)
  std::unique_ptr<state::NatPoolCheck> nat_pool;  // a NAT: others' mappings inside its block
  uint64_t next_expiry_us = 0;
  uint64_t created_us = 0, join_started_us = 0;
  bool ready = false, join_started = false, leaving = false;
  std::string ready_how;                      // "joined from N", "alone", "join timed out"
};

Replication::Replication(Options o, const state::Clock& clock) : opt_(std::move(o)), clock_(clock) {}

Replication::~Replication() = default;

Result<std::unique_ptr<Replication>> Replication::open(Options o, const state::Clock& clock) {
  auto keys = state::Keyring::make(o.spec.keys, o.spec.send_key);
  if (!keys) return unexpected(wrap(keys.error(), "state: keys"));
  std::unique_ptr<Replication> r(new Replication(std::move(o), clock));
  r->keys_ = std::move(*keys);
  r->sender_ = std::make_unique<Sender>(*r);
  if (auto t = r->open_transports(); !t) return unexpected(t.error());
  return r;
}

Result<void> Replication::open_transports() {
  links_.clear();
  state::Endpoint local{opt_.endpoint.s_addr, opt_.spec.port};
  const int xskmap = opt_.xskmap_fd;
  const std::string no_map = xskmap >= 0 ? "" : (opt_.no_xsk.empty() ? "no XSKMAP" : opt_.no_xsk);
  // The XSKMAP has a slot per (interface, RX queue) (AC_XSK_SLOT): AF_XDP on every state
  // interface that takes it, UDP with the reason on the others (the sockets share the port with
  // SO_REUSEPORT).
  for (const auto& ifname : opt_.spec.interfaces) {
    Link l{ifname, if_nametoindex(ifname.c_str()), nullptr};
    state::XskOptions xo;
    xo.ifname = ifname;
    xo.local = local;
    xo.xskmap_fd = xskmap;
    xo.slot_stride = AC_XSK_QUEUES;
    Result<std::unique_ptr<state::Transport>> t =
        xo.xskmap_fd >= 0 ? state::open_transport(xo)
                          : [&]() -> Result<std::unique_ptr<state::Transport>> {
                              auto u = state::UdpTransport::open(local, no_map);
                              if (!u) return unexpected(u.error());
                              return std::unique_ptr<state::Transport>(std::move(*u));
                            }();
    if (!t) return unexpected(wrap(t.error(), fmt::format("state: interface {}", ifname)));
    l.t = std::move(*t);
    log::info("state replication on {}: {}{}", ifname, l.t->status().mode,
              l.t->status().reason.empty() ? "" : " (" + l.t->status().reason + ")");
    links_.push_back(std::move(l));
  }
  if (links_.empty()) {
    auto u = state::UdpTransport::open(local, "no state interfaces");
    if (!u) return unexpected(u.error());
    links_.push_back({"", 0, std::move(*u)});
  }
  return {};
}

Result<void> Replication::reconfigure(const ReplicationSpec& spec, int xskmap_fd, const std::string& no_xsk) {
  auto keys = state::Keyring::make(spec.keys, spec.send_key);
  if (!keys) return unexpected(wrap(keys.error(), "state: keys"));
  bool reopen = spec.port != opt_.spec.port || spec.interfaces != opt_.spec.interfaces ||
                xskmap_fd != opt_.xskmap_fd || no_xsk != opt_.no_xsk;
  opt_.spec = spec;
  opt_.xskmap_fd = xskmap_fd;
  opt_.no_xsk = no_xsk;
  keys_ = std::move(*keys);
  for (auto& [id, r] : replicas_) {
    r->rep->set_keyring(keys_);
    r->rep->set_node_gone_grace(spec.node_gone_grace_us);
  }
  for (auto& r : leaving_) r->rep->set_keyring(keys_);
  if (reopen) {
    if (auto t = open_transports(); !t) return t;
    // members sit at our port on their nodes: new endpoints
    set_members(std::map(members_));
  }
  return {};
}

namespace {

// A NAT's own address and block, from its configuration map (nf_nat_cfg), for the check of
// overlapping blocks across instances (state/nat_pool.h); nothing for other NFs or a NAT whose
// map cannot be read (logged: the check is then off for it).
std::optional<state::NatPool> nat_pool_of(const nf::Published& p) {
  auto m = p.maps.find("nf_nat_cfg");
  if (p.kind != nf::Kind::Nat || m == p.maps.end() || !p.crdt) return std::nullopt;
  bool shared = std::any_of(p.crdt->objects.begin(), p.crdt->objects.end(),
                            [](const auto& o) { return o.id == AC_NF_NAT_OBJ_SHARED; });
  UniqueFd fd(bpf_map_get_fd_by_id(m->second));
  ac_nf_nat_cfg c{};
  const uint32_t k0 = 0;
  if (!shared || fd.get() < 0 || bpf_map_lookup_elem(fd.get(), &k0, &c) != 0 || c.address == 0) {
    log::warn("state: instance {} ({}): cannot read its NAT pool; overlapping pools are not checked", p.name,
              p.instance_id);
    return std::nullopt;
  }
  return state::NatPool{p.instance_id, c.address, c.port_lo, c.port_hi, AC_NF_NAT_OBJ_SHARED};
}

}  // namespace

Result<std::unique_ptr<Replication::Replica>> Replication::make_replica(const ReplicaSpec& r, const nf::Published& p) {
  auto opened = nf::open_crdt_store(p);  // the schema from the published objects, maps by id
  if (!opened) return unexpected(opened.error());
  auto rep = std::make_unique<Replica>();
  rep->spec = r;
  rep->pub = p;
  rep->fds = std::move(opened->fds);
  rep->store = std::move(opened->store);
  state::ReplicatorConfig rc;
  rc.me = {r.service, r.id, p.incarnation};
  rc.keepalive_us = opt_.spec.keepalive_us;
  rc.window_bytes = opt_.spec.window_bytes;
  rc.max_skew_us = opt_.spec.max_skew_us;
  rc.node_gone_grace_us = opt_.spec.node_gone_grace_us;
  rep->rep = std::make_unique<state::Replicator>(rc, *rep->store, *sender_, keys_, clock_);
  std::vector<state::ExpiryRule> rules;
  for (const auto& o : p.crdt->objects)
    if (o.expire_s && (o.kind == state::to_string(state::Kind::AwSet) || o.kind == state::to_string(state::Kind::RegMap)))
      rules.push_back({o.id, std::chrono::seconds(o.expire_s)});
  if (!rules.empty()) rep->expiry = std::make_unique<state::Expiry>(std::move(rules));
  if (auto pool = nat_pool_of(p)) rep->nat_pool = std::make_unique<state::NatPoolCheck>(*pool);
  rep->created_us = clock_.mono_us();
  return rep;
}

void Replication::set_local(const std::vector<ReplicaSpec>& instances) {
  std::map<uint32_t, std::unique_ptr<Replica>> keep;
  for (const auto& s : instances) {
    auto p = nf::read_published(s.published);
    bool replicates = p && p->crdt && !p->crdt->objects.empty() && p->instance_id == s.id;
    auto it = replicas_.find(s.id);
    if (it != replicas_.end() && replicates && it->second->pub.incarnation == p->incarnation &&
        it->second->pub.pid == p->pid) {
      keep[s.id] = std::move(it->second);
      continue;
    }
    if (!replicates) continue;  // not (yet) published, or not a replicating NF
    if (it != replicas_.end())
      log::info("state: instance {} ({}) has a new incarnation {}: replicating it afresh", s.name, s.id, p->incarnation);
    auto r = make_replica(s, *p);
    if (!r) {
      log::error("state: instance {} ({}): {}; not replicated", s.name, s.id, r.error().str());
      continue;
    }
    if (auto m = members_.find(s.service); m != members_.end()) {
      std::vector<state::Replicator::Member> others;
      for (const auto& x : m->second)
        if (x.id != s.id) others.push_back(x);
      (*r)->rep->set_members(others);
    }
    log::info("state: replicating instance {} ({}), service {}, incarnation {}", s.name, s.id, s.service, p->incarnation);
    keep[s.id] = std::move(*r);
  }
  for (auto& [id, r] : replicas_) {
    if (!r || keep.contains(id)) continue;
    // gone from the config (or its process is gone): drain what it has while its maps last
    log::info("state: instance {} ({}) leaves: draining", r->spec.name, id);
    r->leaving = true;
    r->rep->leave();
    leaving_.push_back(std::move(r));
  }
  replicas_ = std::move(keep);
}

void Replication::set_members(const std::map<uint16_t, std::vector<state::Replicator::Member>>& members) {
  members_ = members;
  members_known_ = true;
  for (auto& [id, m] : members_)
    for (auto& x : m) x.addr.port = opt_.spec.port;
  auto apply = [&](Replica& r) {
    std::vector<state::Replicator::Member> others;
    if (auto m = members_.find(r.spec.service); m != members_.end())
      for (const auto& x : m->second)
        if (x.id != r.spec.id) others.push_back(x);
    r.rep->set_members(others);
  };
  for (auto& [id, r] : replicas_) apply(*r);
  for (auto& r : leaving_) apply(*r);
}

bool Replication::ready(uint32_t instance) const {
  auto it = replicas_.find(instance);
  return it == replicas_.end() || it->second->ready;
}

std::vector<int> Replication::fds() const {
  std::vector<int> out;
  for (const auto& l : links_)
    for (int fd : l.t->fds()) out.push_back(fd);
  return out;
}

void Replication::dispatch(state::ByteView d, const state::Endpoint& from) {
  ++dstats_.datagrams;
  auto dst = state::peek_destination(d);
  if (!dst) {
    if (d.size() >= state::kHeaderSize && !state::wire_version_supported(d[0])) {
      // Another release on the other end: said once per version, counted always.
      ++dstats_.bad_version;
      if (warned_versions_.insert(d[0]).second)
        log::warn("state: refusing replication messages of wire version {} from {} (this agent speaks {} to {})", d[0],
                  from.str(), state::kWireVersionMin, state::kWireVersion);
      return;
    }
    ++dstats_.malformed;
    return;
  }
  auto deliver = [&](Replica& r) {
    if (r.spec.id != dst->receiver || r.spec.service != dst->service) return false;
    r.rep->on_datagram(d, from);
    return true;
  };
  if (auto it = replicas_.find(dst->receiver); it != replicas_.end() && deliver(*it->second)) return;
  for (auto& r : leaving_)
    if (deliver(*r)) return;
  ++dstats_.no_receiver;
}

void Replication::on_readable() {
  for (auto& l : links_) l.t->receive([this](state::ByteView d, const state::Endpoint& from) { dispatch(d, from); }, 4096);
}

// Once a second, a ready replica's expiring objects are swept (state/expiry.h): the IDS's flags,
// the NAT's idle shared entries. A set remove is a change the replicator sends at its next tick.
// A NAT's shared table is also checked for other instances' mappings inside its block.
void Replication::expire(Replica& r, uint64_t now_us) {
  if ((!r.expiry && !r.nat_pool) || now_us < r.next_expiry_us) return;
  r.next_expiry_us = now_us + 1'000'000;
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  const uint64_t tai = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  const auto mono = std::chrono::steady_clock::time_point(std::chrono::microseconds(now_us));
  if (auto s = r.expiry ? r.expiry->sweep(*r.store, mono, tai) : Result<void>{}; !s)
    log::warn("state: instance {} ({}): expiry: {}", r.spec.name, r.spec.id, s.error().str());
  if (!r.nat_pool) return;
  auto found = r.nat_pool->sweep(*r.store);
  if (!found) {
    log::warn("state: instance {} ({}): NAT pool check: {}", r.spec.name, r.spec.id, found.error().str());
    return;
  }
  const auto& pool = r.nat_pool->pool();
  char addr[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &pool.address, addr, sizeof(addr));
  for (const auto& o : *found)
    log::error("state: instance {} ({}): instance {} mapped external port {} of {}, inside this instance's block "
               "{}-{} ({} such mappings): the two instances' NAT port blocks overlap and both may give one port to "
               "two flows; give each instance its own block (nat: ports, docs/state.md 4.3)",
               r.spec.name, r.spec.id, o.writer, o.first_port, addr, pool.lo, pool.hi, o.mappings);
}

void Replication::tick() {
  uint64_t now = clock_.mono_us();
  for (auto& [id, r] : replicas_) {
    r->rep->tick();
    if (r->ready) {
      expire(*r, now);
      continue;
    }
    if (r->rep->join_state() == state::JoinState::Done) {
      r->ready = true;
      r->ready_how = "joined from a snapshot";
      log::info("state: instance {} ({}) joined from a snapshot", r->spec.name, id);
      continue;
    }
    if (!r->join_started && members_known_) {
      auto m = members_.find(r->spec.service);
      bool others = m != members_.end() &&
                    std::any_of(m->second.begin(), m->second.end(), [&](const auto& x) { return x.id != id && !x.lost; });
      if (!others) {
        r->ready = true;
        r->ready_how = "first of its service";
        continue;
      }
      if (r->rep->join()) {
        r->join_started = true;
        r->join_started_us = now;
      } else if (now - r->created_us > opt_.join_timeout_us) {
        r->ready = true;  // members, but none to ask (all unreachable)
        r->ready_how = "no member to join from";
        continue;
      }
    }
    if (r->join_started && now - r->join_started_us > opt_.join_timeout_us) {
      r->ready = true;
      r->ready_how = "join timed out";
      log::warn("state: instance {} ({}): no snapshot within {} ms; serving with its own state (it converges "
                "through deltas)", r->spec.name, id, opt_.join_timeout_us / 1000);
    }
  }
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    (*it)->rep->tick();
    if ((*it)->rep->drained() || (*it)->rep->drain_timed_out()) {
      if ((*it)->rep->drain_timed_out())
        log::warn("state: instance {} ({}): drain timed out", (*it)->spec.name, (*it)->spec.id);
      it = leaving_.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {

json transport_json(const state::TransportStatus& t) {
  json j{{"interface", t.ifname}, {"mode", t.mode},          {"queues", t.queues},
         {"tx_frames", t.tx_frames}, {"tx_bytes", t.tx_bytes}, {"rx_frames", t.rx_frames},
         {"rx_bytes", t.rx_bytes}, {"tx_fallback", t.tx_fallback}, {"rx_fallback", t.rx_fallback},
         {"tx_errors", t.tx_errors}, {"rx_errors", t.rx_errors}};
  if (!t.reason.empty()) j["reason"] = t.reason;
  return j;
}

json peer_json(const state::PeerStatus& p) {
  return {{"id", p.id},
          {"address", p.addr.str()},
          {"member", p.member},
          {"incarnation", p.incarnation},
          {"state", state::to_string(p.state)},
          {"joining", p.joining},
          {"draining", p.draining},
          {"wire_version", p.wire_version},
          {"node_lost", p.node_lost},
          {"gone_in_ms", p.gone_in_us / 1000},
          {"acked", p.acked},
          {"sent", p.sent},
          {"srtt_us", p.srtt_us},
          {"min_rtt_us", p.min_rtt_us},
          {"rto_us", p.rto_us},
          {"in_flight_bytes", p.in_flight_bytes},
          {"msgs_sent", p.msgs_sent},
          {"bytes_sent", p.bytes_sent},
          {"records_sent", p.records_sent},
          {"retransmits", p.retransmits},
          {"coalesced", p.coalesced},
          {"msgs_received", p.msgs_received}};
}

json rejected_json(const state::Gate& g) {
  json j = json::object();
  for (size_t i = 0; i < static_cast<size_t>(state::Reject::Count); ++i)
    j[state::to_string(static_cast<state::Reject>(i))] = g.rejected(static_cast<state::Reject>(i));
  return j;
}

}  // namespace

json Replication::status() const {
  json links = json::array();
  for (const auto& l : links_) {
    auto st = l.t->status();
    st.ifname = l.ifname;
    links.push_back(transport_json(st));
  }
  json inst = json::array();
  for (const auto& [id, r] : replicas_) inst.push_back(*instance(r->spec.name));
  for (const auto& r : leaving_) inst.push_back(*instance(r->spec.name));
  return {{"port", opt_.spec.port},
          {"send_key", keys_->send_id()},
          {"keys", keys_->ids()},
          {"transports", links},
          {"dispatch", {{"datagrams", dstats_.datagrams}, {"malformed", dstats_.malformed}, {"bad_version", dstats_.bad_version},
                        {"no_receiver", dstats_.no_receiver}}},
          {"instances", inst}};
}

std::optional<json> Replication::instance(const std::string& name) const {
  const Replica* r = nullptr;
  for (const auto& [id, x] : replicas_)
    if (x->spec.name == name) r = x.get();
  for (const auto& x : leaving_)
    if (x->spec.name == name) r = x.get();
  if (!r) return std::nullopt;
  const auto& s = r->rep->stats();
  const auto& b = r->store->stats();
  json peers = json::array();
  for (const auto& p : r->rep->peers()) peers.push_back(peer_json(p));
  json slots = json::object();
  for (const auto& [slot, o] : r->rep->slots()) slots[std::to_string(slot)] = {{"id", o.id}, {"incarnation", o.incarnation}};
  json by_key = json::object();
  for (const auto& [k, n] : r->rep->gate().by_key()) by_key[std::to_string(k)] = n;
  json gone = json::array();  // gone origins still announced (docs/state.md 3.12)
  for (const auto& [o, v] : r->rep->gone())
    gone.push_back({{"id", o.id}, {"incarnation", o.incarnation}, {"folded", v == state::kGoneFolded},
                    {"relay_version", v == state::kGoneFolded ? json(nullptr) : json(v)}});
  json folded = json::array();  // origins folded into the retired totals, here or in a snapshot joined from
  for (const auto& o : r->rep->folded()) folded.push_back({{"id", o.id}, {"incarnation", o.incarnation}});
  json received = json::array();
  for (const auto& [o, v] : r->rep->received())
    received.push_back({{"id", o.id}, {"incarnation", o.incarnation}, {"version", v}});
  json expiry = nullptr;
  if (r->expiry) {
    const auto& e = r->expiry->stats();
    expiry = {{"sweeps", e.sweeps}, {"set_removed", e.set_removed}, {"reg_deleted", e.reg_deleted}, {"errors", e.errors}};
  }
  json nat_pool = nullptr;
  if (r->nat_pool) {
    json overlaps = json::array();
    for (const auto& [w, o] : r->nat_pool->overlaps())
      overlaps.push_back({{"instance", w}, {"mappings", o.mappings}, {"first_port", o.first_port}});
    nat_pool = {{"block", fmt::format("{}-{}", r->nat_pool->pool().lo, r->nat_pool->pool().hi)},
                {"sweeps", r->nat_pool->sweeps()},
                {"overlaps", overlaps}};
  }
  return json{{"name", r->spec.name},
              {"id", r->spec.id},
              {"service", r->spec.service},
              {"expiry", expiry},
              {"nat_pool", nat_pool},
              {"incarnation", r->pub.incarnation},
              {"schema_digest", r->store->schema().digest()},
              {"state", r->leaving ? "leaving" : r->ready ? "ready" : "joining"},
              {"ready_how", r->ready_how},
              {"counters",
               {{"version", s.version},           {"changes", s.changes},
                {"records_applied", s.records_applied}, {"records_own_origin", s.records_own_origin},
                {"records_folded_origin", s.records_folded_origin}, {"records_no_slot", s.records_no_slot},
                {"not_member", s.not_member},     {"send_errors", s.send_errors},
                {"snapshots_served", s.snapshots_served}, {"snapshot_chunks_sent", s.snapshot_chunks_sent},
                {"folded", s.folded},             {"gone", s.gone},
                {"relayed_cells", s.relayed_cells}, {"store_errors", s.store_errors},
                {"folded_gone", s.folded_gone},   {"gone_adopted", s.gone_adopted},
                {"gone_node_lost", s.gone_node_lost},
                {"gone_sender", s.gone_sender},   {"declared_gone_self", s.declared_gone_self}}},
              {"store",
               {{"scans", b.scans}, {"full_scans", b.full_scans}, {"logged", b.logged}, {"reported", b.reported},
                {"batches", b.batches}, {"merged", b.merged}, {"merge_rejected", b.merge_rejected}}},
              {"accepted", r->rep->gate().accepted()},
              {"accepted_by_key", by_key},
              {"rejected", rejected_json(r->rep->gate())},
              {"received", received},
              {"slots", slots},
              {"gone", gone},
              {"folded", folded},
              {"peers", peers}};
}

}  // namespace anychain::daemon
