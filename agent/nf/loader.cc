#include "nf/loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include "anychain/crdt.h"
#include "anychain/ftc.h"
#include "common/percpu.h"
#include "nf/crdt.h"

namespace anychain::nf {

uint64_t tick_ns() {
  timespec res{};
  // CLOCK_MONOTONIC_COARSE advances once per kernel tick: its resolution is the jiffy
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0) return 1'000'000;
  return static_cast<uint64_t>(res.tv_nsec);
}

uint64_t seconds_to_jiffies(uint64_t s) {
  const uint64_t ns = s * 1'000'000'000ULL, t = tick_ns();
  return ns / t + (ns % t != 0);
}

namespace {

constexpr size_t kPoolBytes = AC_NF_NAT_POOL_WORDS * sizeof(uint64_t);

uint32_t map_id_of(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

uint32_t prog_id_of(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

bool ends_with(std::string_view s, std::string_view t) { return s.size() >= t.size() && s.substr(s.size() - t.size()) == t; }

}  // namespace

Nf::~Nf() {
  if (link_) bpf_link__destroy(link_);
  if (pool_) munmap(pool_, kPoolBytes);
  if (obj_) bpf_object__close(obj_);
}

int Nf::map_fd(const std::string& name) const {
  bpf_map* m = bpf_object__find_map_by_name(obj_, name.c_str());
  return m ? bpf_map__fd(m) : -1;
}

int Nf::prog_fd() const {
  bpf_program* p = bpf_object__find_program_by_name(obj_, pub_.program.c_str());
  return p ? bpf_program__fd(p) : -1;
}

Result<std::unique_ptr<Nf>> Nf::load(const Params& p, const LoadOptions& o) {
  std::unique_ptr<Nf> nf(new Nf);
  nf->params_ = p;
  nf->opts_ = o;
  if (o.object_path.empty()) {
    if (auto v = validate(p); !v) return unexpected(v.error());
  }
  std::vector<uint8_t> file;
  std::span<const uint8_t> bytes;
  std::string object_name = fmt::format("nf_{}", to_string(p.kind));
  if (!o.object_path.empty()) {
    std::ifstream f(o.object_path, std::ios::binary);
    if (!f) return fail_errno(fmt::format("read {}", o.object_path));
    file.assign(std::istreambuf_iterator<char>(f), {});
    bytes = file;
    object_name = "nf_object";
  } else {
    bytes = object_bytes(p.kind);
    if (bytes.empty()) return fail(fmt::format("nf '{}' has no program yet", to_string(p.kind)), EOPNOTSUPP);
  }
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = object_name.c_str());
  nf->obj_ = bpf_object__open_mem(bytes.data(), bytes.size(), &oo);
  if (!nf->obj_) return fail_errno(fmt::format("open the BPF object of {}", object_name));
  auto size = [&](const char* map, uint32_t n) {
    if (bpf_map* m = bpf_object__find_map_by_name(nf->obj_, map)) bpf_map__set_max_entries(m, std::max<uint32_t>(n, 1));
  };
  size("nf_head", o.flows);
  size("nf_replica", o.replica_records);
  size("nf_nat_rev", o.flows * AC_ST_SLOTS);
  if (o.object_path.empty())  // the shared-state objects' geometry, from the parameters
    for (const auto& c : crdt_objects(p)) size(c.map.c_str(), c.cells);
  // the program to attach: the kind's, or the named one, or the object's first XDP program
  std::string prog = o.program.empty() && o.object_path.empty() ? std::string(info(p.kind).program) : o.program;
  if (prog.empty()) {
    bpf_program* q = nullptr;
    bpf_object__for_each_program(q, nf->obj_) {
      if (bpf_program__type(q) == BPF_PROG_TYPE_XDP && !ends_with(bpf_program__name(q), "_merge")) {
        prog = bpf_program__name(q);
        break;
      }
    }
  }
  if (prog.empty() || !bpf_object__find_program_by_name(nf->obj_, prog.c_str()))
    return fail(fmt::format("{} has no XDP program '{}'", object_name, prog), ENOENT);
  nf->pub_.program = prog;
  if (int err = bpf_object__load(nf->obj_); err)
    return fail_errno(fmt::format("load {} (the verifier's log is above)", object_name), err);
  if (auto r = nf->configure(); !r) return unexpected(r.error());
  if (o.attach) {
    if (auto r = nf->do_attach(); !r) return unexpected(r.error());
  }
  if (auto r = nf->fill_ids(); !r) return unexpected(r.error());
  return nf;
}

Result<void> Nf::configure() {
  uint32_t k0 = 0;
  if (int fd = map_fd("nf_ftc_cfg"); fd >= 0) {
    ac_nf_ftc_cfg c{};
    c.instance = static_cast<uint16_t>(params_.instance_id);
    c.inc = 0;  // the FTC incarnation: set by FTC recovery (issue 13 phase B2)
    c.flags = info(params_.kind).stateful ? AC_NF_STATEFUL : 0;
    c.idle_jiffies = seconds_to_jiffies(params_.idle_timeout_s);
    if (bpf_map_update_elem(fd, &k0, &c, 0)) return fail_errno("write nf_ftc_cfg");
  }
  if (params_.kind == Kind::Firewall && opts_.object_path.empty()) {
    int rules = map_fd("nf_fw_rules"), cfg = map_fd("nf_fw_cfg");
    if (rules < 0 || cfg < 0) return fail("the firewall object has no nf_fw_rules or nf_fw_cfg", ENOENT);
    for (uint32_t i = 0; i < params_.fw_rules.size(); ++i) {
      ac_nf_fw_rule r = encode(params_.fw_rules[i]);
      if (bpf_map_update_elem(rules, &i, &r, 0)) return fail_errno(fmt::format("write firewall rule {}", i));
    }
    ac_nf_fw_cfg c{static_cast<uint32_t>(params_.fw_rules.size()),
                   params_.fw_default_drop ? uint32_t{AC_NF_FW_DROP} : uint32_t{AC_NF_FW_PASS}};
    if (bpf_map_update_elem(cfg, &k0, &c, 0)) return fail_errno("write nf_fw_cfg");
  }
  if (params_.kind == Kind::Nat && opts_.object_path.empty()) {
    int ports = map_fd("nf_nat_ports"), cfg = map_fd("nf_nat_cfg");
    if (ports < 0 || cfg < 0) return fail("the NAT object has no nf_nat_ports or nf_nat_cfg", ENOENT);
    pool_ = mmap(nullptr, kPoolBytes, PROT_READ | PROT_WRITE, MAP_SHARED, ports, 0);
    if (pool_ == MAP_FAILED) {
      pool_ = nullptr;
      return fail_errno("mmap nf_nat_ports");
    }
    // every bit outside the pool is taken for good (port 0 included)
    auto* w = static_cast<uint64_t*>(pool_);
    for (uint32_t i = 0; i < AC_NF_NAT_POOL_WORDS; ++i) {
      uint64_t v = 0;
      for (uint32_t b = 0; b < 64; ++b) {
        uint32_t port = i * 64 + b;
        if (port < params_.nat_port_lo || port > params_.nat_port_hi) v |= 1ULL << b;
      }
      w[i] = v;
    }
    ac_nf_nat_cfg c{};
    c.address = params_.nat_address.s_addr;
    c.port_lo = params_.nat_port_lo;
    c.port_hi = params_.nat_port_hi;
    if (bpf_map_update_elem(cfg, &k0, &c, 0)) return fail_errno("write nf_nat_cfg");
  }
  if (params_.kind == Kind::Ids && opts_.object_path.empty()) {
    int cfg = map_fd("nf_ids_cfg");
    if (cfg < 0) return fail("the ids object has no nf_ids_cfg", ENOENT);
    ac_nf_ids_cfg c{};
    c.threshold = params_.ids_threshold;
    c.action = params_.ids_drop ? AC_NF_IDS_DROP : AC_NF_IDS_PASS;
    c.pairs_mask = params_.ids_pairs_cells - 1;
    c.pairs_hashes = params_.ids_pairs_hashes;
    c.ports_mask = params_.ids_sketch_width - 1;
    c.ports_rows = params_.ids_sketch_rows;
    if (bpf_map_update_elem(cfg, &k0, &c, 0)) return fail_errno("write nf_ids_cfg");
  }
  if (params_.kind == Kind::Ratelimit && opts_.object_path.empty()) {
    int cfg = map_fd("nf_rl_cfg");
    if (cfg < 0) return fail("the ratelimit object has no nf_rl_cfg", ENOENT);
    ac_nf_rl_cfg c{};
    c.limit = params_.rl_limit;
    c.unit = params_.rl_packets ? AC_NF_RL_PACKETS : AC_NF_RL_BYTES;
    if (bpf_map_update_elem(cfg, &k0, &c, 0)) return fail_errno("write nf_rl_cfg");
  }
  if (windowed(params_.kind) && opts_.object_path.empty()) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    auto r = roll_windows(static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec));
    if (!r) return unexpected(r.error());
  }
  return {};
}

Result<void> Nf::reset_generation(int g) {
  int merge = -1;
  bpf_program* q = nullptr;
  bpf_object__for_each_program(q, obj_) {
    if (ends_with(bpf_program__name(q), "_merge")) merge = bpf_program__fd(q);
  }
  if (merge < 0) return fail("no merge program to reset a window with", ENOENT);
  for (const auto& o : crdt_objects(params_)) {
    if (o.generation != g) continue;
    // one RESET record: the merge program zeroes every cell of the object in the kernel
    struct {
      ac_crdt_batch_hdr h;
      ac_crdt_op op;
    } b{};
    b.h.magic = AC_CRDT_BATCH_MAGIC;
    b.h.version = AC_CRDT_BATCH_VERSION;
    b.h.count = 1;
    b.op.op = AC_CRDT_OP_RESET;
    b.op.object = o.id;
    decltype(b) out{};
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = &b, .data_out = &out, .data_size_in = sizeof b,
                .data_size_out = sizeof out, .repeat = 1);
    if (int e = bpf_prog_test_run_opts(merge, &t); e) return fail_errno(fmt::format("reset {}", o.map), -e);
    if (t.retval != XDP_PASS || out.h.applied != 1 || out.h.changed != static_cast<uint16_t>(o.cells))  // cells visited, mod 2^16
      return fail(fmt::format("reset {}: the merge program reset {} of {} cells", o.map, out.h.changed, o.cells), EIO);
  }
  return {};
}

Result<bool> Nf::roll_windows(uint64_t realtime_ns) {
  int fd = map_fd("ac_crdt_win");
  if (!windowed(params_.kind) || fd < 0 || params_.window_s == 0) return false;
  const uint64_t n64 = realtime_ns / (uint64_t{params_.window_s} * 1'000'000'000ULL);
  const auto n = static_cast<uint32_t>(n64);
  if (n == 0 || n >= AC_CRDT_WIN_NONE - 1) return fail(fmt::format("window number {} out of range", n64), ERANGE);
  uint32_t k0 = 0;
  ac_crdt_windows w{};
  if (bpf_map_lookup_elem(fd, &k0, &w)) return fail_errno("read ac_crdt_win");
  if (w.cur >= n) return false;  // the same window, or the clock went back: keep counting in this one
  auto put = [&]() -> Result<void> {
    if (bpf_map_update_elem(fd, &k0, &w, 0)) return fail_errno("write ac_crdt_win");
    return {};
  };
  const int g = static_cast<int>(n & 1), o = g ^ 1;
  if (w.gen[g] != n) {  // not prepared (the first window, or a jump of several windows)
    w.gen[g] = AC_CRDT_WIN_NONE;
    if (auto r = put(); !r) return unexpected(r.error());
    if (auto r = reset_generation(g); !r) return unexpected(r.error());
    w.gen[g] = n;
  }
  w.cur = n;
  w.gen[o] = AC_CRDT_WIN_NONE;  // the past window: its late records are refused from now on
  if (auto r = put(); !r) return unexpected(r.error());
  if (auto r = reset_generation(o); !r) return unexpected(r.error());
  w.gen[o] = n + 1;  // a peer whose clock is ahead may already send the next window's records
  if (auto r = put(); !r) return unexpected(r.error());
  return true;
}

Result<void> Nf::do_attach() {
  unsigned idx = if_nametoindex(opts_.iface.c_str());
  if (idx == 0) return fail_errno(fmt::format("interface {}", opts_.iface));
  bpf_program* p = bpf_object__find_program_by_name(obj_, pub_.program.c_str());
  bpf_link* l = bpf_program__attach_xdp(p, static_cast<int>(idx));
  if (long err = libbpf_get_error(l); err)
    return fail_errno(fmt::format("attach {} to {}", pub_.program, opts_.iface), static_cast<int>(err));
  link_ = l;
  pub_.ifindex = static_cast<int>(idx);
  return {};
}

Result<void> Nf::fill_ids() {
  pub_.name = opts_.name;
  pub_.kind = params_.kind;
  pub_.instance_id = params_.instance_id;
  pub_.pid = getpid();
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  pub_.incarnation = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  pub_.iface = opts_.attach ? opts_.iface : "";
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj_) pub_.maps[bpf_map__name(m)] = map_id_of(bpf_map__fd(m));
  bpf_program* q = nullptr;
  uint32_t merge = 0;
  bpf_object__for_each_program(q, obj_) {
    uint32_t id = prog_id_of(bpf_program__fd(q));
    pub_.progs[bpf_program__name(q)] = id;
    if (ends_with(bpf_program__name(q), "_merge")) merge = id;
  }
  pub_.prog_id = pub_.progs[pub_.program];
  if (link_) {
    bpf_link_info li{};
    uint32_t len = sizeof li;
    if (bpf_obj_get_info_by_fd(bpf_link__fd(link_), &li, &len) == 0) pub_.link_id = li.id;
  }
  if (pub_.map_id("ac_crdt_ctl") && pub_.map_id("ac_crdt_changes") && pub_.map_id("ac_crdt_stats")) {
    pub_.crdt.emplace();
    pub_.crdt->merge_prog_id = merge;
    pub_.crdt->ctl_map_id = pub_.map_id("ac_crdt_ctl");
    pub_.crdt->changes_map_id = pub_.map_id("ac_crdt_changes");
    pub_.crdt->stats_map_id = pub_.map_id("ac_crdt_stats");
    pub_.crdt->win_map_id = pub_.map_id("ac_crdt_win");
    if (opts_.object_path.empty()) {
      pub_.crdt->objects = crdt_objects(params_);
      for (auto& o : pub_.crdt->objects) {
        o.map_id = pub_.map_id(o.map);
        if (!o.map_id) return fail(fmt::format("the {} object has no map {}", to_string(params_.kind), o.map), ENOENT);
        if (o.generation >= 0) pub_.crdt->window_s = params_.window_s;
      }
    }
  }
  return {};
}

bool Nf::iface_present() const {
  if (!link_) return true;
  return if_nametoindex(opts_.iface.c_str()) == static_cast<unsigned>(pub_.ifindex);
}

Result<uint64_t> Nf::ftc_counter(uint32_t s) const {
  const int fd = map_fd("nf_ftc_stats");
  if (fd < 0) return uint64_t{0};
  auto n = percpu_u64_sum(fd, s);
  if (!n) return fail_errno(fmt::format("read nf_ftc_stats[{}]", s));
  return *n;
}

std::optional<std::string> StoreFullWatch::update(uint64_t store_full, uint64_t replica_full,
                                                  std::chrono::steady_clock::time_point now) {
  const bool moved = store_full > store_seen_ || replica_full > replica_seen_;
  if (!moved || (warned_ && now - *warned_ < every_)) return std::nullopt;
  std::string out;
  if (replica_full > replica_seen_)
    out = fmt::format("FTC replica store full: {} logs of predecessors refused so far ({} new; ftc_replica_full): "
                      "their packets are dropped and those partitions' state cannot be recovered from this "
                      "instance; it holds {} records: raise ftc.replica_records (anychain-nf --replica-records)",
                      replica_full, replica_full - replica_seen_, replica_);
  if (store_full > store_seen_)
    out += fmt::format("{}FTC head store full: {} transactions refused so far ({} new; ftc_store_full): their "
                       "packets are dropped; it holds {} partitions (anychain-nf --flows)",
                       out.empty() ? "" : "; ", store_full, store_full - store_seen_, head_);
  store_seen_ = store_full;
  replica_seen_ = replica_full;
  warned_ = now;
  return out;
}

void Nf::count(uint32_t s, uint64_t n) const {
  int fd = map_fd("nf_proc_stats");
  if (fd < 0 || !n) return;
  uint64_t v = 0;
  (void)bpf_map_lookup_elem(fd, &s, &v);
  v += n;
  (void)bpf_map_update_elem(fd, &s, &v, BPF_ANY);
}

Result<void> Nf::apply_control(const FtcControl& c) {
  uint32_t k0 = 0;
  int cfg = map_fd("nf_ftc_cfg"), peers = map_fd("nf_peers");
  if (cfg < 0 || peers < 0) return fail("the program has no nf_ftc_cfg or nf_peers", ENOENT);
  ac_nf_ftc_cfg fc{};
  if (bpf_map_lookup_elem(cfg, &k0, &fc)) return fail_errno("read nf_ftc_cfg");
  fc.inc = c.incarnation;
  if (bpf_map_update_elem(cfg, &k0, &fc, 0)) return fail_errno("write nf_ftc_cfg");
  std::set<uint32_t> now;
  for (const auto& p : c.peers) {
    uint32_t id = p.id, v = uint32_t{p.incarnation} + 1;
    if (bpf_map_update_elem(peers, &id, &v, 0)) return fail_errno(fmt::format("write nf_peers[{}]", id));
    now.insert(id);
  }
  for (const auto& p : control_.peers) {
    uint32_t id = p.id, zero = 0;
    if (!now.count(id) && bpf_map_update_elem(peers, &id, &zero, 0))
      return fail_errno(fmt::format("clear nf_peers[{}]", id));
  }
  control_ = c;
  count(AC_NF_PS_CONTROL_LOADS);
  return {};
}

Result<uint64_t> Nf::reclaim_replicas(std::chrono::steady_clock::time_point now) {
  int fd = map_fd("nf_replica");
  if (fd < 0) return 0;
  std::map<uint32_t, uint32_t> idle;  // peer id -> its idle timeout
  for (const auto& p : control_.peers) idle[p.id] = p.idle_timeout_s;
  std::vector<ac_st_rkey> keys;
  ac_st_rkey k{}, next{};
  for (void* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &k) {
    keys.push_back(next);
    k = next;
  }
  uint64_t n = 0;
  decltype(seen_replica_) keep;
  for (const auto& key : keys) {
    auto it = idle.find(key.id);
    const uint32_t t = it == idle.end() ? kFtcDefaultPeerIdle : it->second;
    if (t == 0) continue;
    ac_st_rec rec{};
    if (bpf_map_lookup_elem_flags(fd, &key, &rec, BPF_F_LOCK)) continue;
    const auto id = std::make_tuple(key.id, key.spi_si, key.hash);
    auto s = seen_replica_.find(id);
    Seen seen = s == seen_replica_.end() || s->second.last_used != rec.last_used ? Seen{rec.last_used, now} : s->second;
    if (now - seen.since >= std::chrono::seconds(t)) {
      if (bpf_map_delete_elem(fd, &key) == 0) ++n;
      continue;
    }
    keep.emplace(id, seen);
  }
  seen_replica_ = std::move(keep);
  return n;
}

Result<ReclaimStats> Nf::reclaim(std::chrono::steady_clock::time_point now) {
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  return reclaim(now, static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec));
}

Result<ReclaimStats> Nf::reclaim(std::chrono::steady_clock::time_point now, uint64_t tai_ns) {
  ReclaimStats st;
  auto rep = reclaim_replicas(now);
  if (!rep) return unexpected(rep.error());
  st.replicas = *rep;
  count(AC_NF_PS_REPLICA_RECLAIMED, st.replicas);
  int head = map_fd("nf_head");
  if (head < 0 || params_.idle_timeout_s == 0) return st;
  const auto limit = std::chrono::seconds(params_.idle_timeout_s) + opts_.reclaim_grace;
  std::vector<ac_st_pkey> keys;
  ac_st_pkey k{}, next{};
  for (void* prev = nullptr; bpf_map_get_next_key(head, prev, &next) == 0; prev = &k) {
    keys.push_back(next);
    k = next;
  }
  std::set<uint64_t> present;
  for (const auto& key : keys) {
    ac_st_rec rec{};
    if (bpf_map_lookup_elem_flags(head, &key, &rec, BPF_F_LOCK)) continue;
    const uint64_t id = (uint64_t(key.spi_si) << 32) | key.hash;
    auto [it, fresh] = seen_.try_emplace(id, Seen{rec.last_used, now});
    if (!fresh && it->second.last_used != rec.last_used) it->second = Seen{rec.last_used, now};
    if (now - it->second.since >= limit) {
      if (bpf_map_delete_elem(head, &key) == 0) ++st.records;
      seen_.erase(it);
      continue;
    }
    present.insert(id);
  }
  std::erase_if(seen_, [&](const auto& e) { return !present.count(e.first); });
  if (params_.kind == Kind::Nat && pool_) {
    // the shared table first: a port is kept only while an unexpired entry still maps it
    auto e = expire_nat_shared(limit, tai_ns);
    if (!e) return unexpected(e.error());
    st.shared = *e;
    auto n = reclaim_nat_ports(st.held);
    if (!n) return unexpected(n.error());
    st.mappings = *n;
    if (int fd = map_fd("nf_proc_stats"); fd >= 0) {
      const uint32_t slot = AC_NF_PS_NAT_PORTS_HELD;
      (void)bpf_map_update_elem(fd, &slot, &st.held, BPF_ANY);
    }
  }
  count(AC_NF_PS_HEAD_RECLAIMED, st.records);
  return st;
}

Result<uint64_t> Nf::expire_nat_shared(std::chrono::seconds limit, uint64_t now) {
  const uint64_t age = static_cast<uint64_t>(limit.count()) * 1'000'000'000ULL;
  uint64_t n = 0;
  // the reply and the outbound tables (docs/state.md 4.3), by the same merged seen as the agent's
  // expiry (state/expiry.h): an instance that does not replicate keeps them bounded too
  static_assert(sizeof(ac_nf_nat_rkey) <= 16 && sizeof(ac_nf_nat_fkey) <= 16);
  for (const char* map : {"nat_shared", "nat_fwd"}) {
    int fd = map_fd(map);
    if (fd < 0) continue;
    std::vector<std::array<uint8_t, 16>> keys;
    std::array<uint8_t, 16> k{}, next{};
    for (void* prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0; prev = k.data()) {
      keys.push_back(next);
      k = next;
    }
    for (const auto& key : keys) {
      ac_register r{};
      if (bpf_map_lookup_elem(fd, key.data(), &r)) continue;
      if (r.v.seen + age < now && bpf_map_delete_elem(fd, key.data()) == 0) ++n;
    }
  }
  return n;
}

Result<uint64_t> Nf::reclaim_nat_ports(uint64_t& held) {
  int rev = map_fd("nf_nat_rev"), head = map_fd("nf_head"), shared = map_fd("nat_shared");
  held = 0;
  std::vector<ac_nf_nat_rkey> keys;
  ac_nf_nat_rkey k{}, next{};
  for (void* prev = nullptr; bpf_map_get_next_key(rev, prev, &next) == 0; prev = &k) {
    keys.push_back(next);
    k = next;
  }
  uint64_t freed = 0;
  for (const auto& rk : keys) {
    ac_nf_nat_rval rv{};
    if (bpf_map_lookup_elem(rev, &rk, &rv)) continue;
    // the mapping this reply entry was made for: key (inside, remote, proto, ports), value port
    uint8_t want[AC_FTC_KEY_MAX]{};
    std::memcpy(want, &rv.inside, 4);
    std::memcpy(want + 4, &rk.remote, 4);
    want[8] = rk.proto;
    std::memcpy(want + 9, &rv.inside_port, 2);
    std::memcpy(want + 11, &rk.remote_port, 2);
    ac_st_pkey pk{rv.spi_si, rv.hash};
    ac_st_rec rec{};
    bool backed = false;
    if (bpf_map_lookup_elem_flags(head, &pk, &rec, BPF_F_LOCK) == 0) {
      for (const auto& sl : rec.slot)
        if ((sl.flags & AC_ST_USED) && sl.table == AC_NF_TABLE_FLOW && sl.klen == AC_NF_KEY4_LEN &&
            std::memcmp(sl.key, want, AC_NF_KEY4_LEN) == 0 && std::memcmp(sl.val + 4, &rk.port, 2) == 0)
          backed = true;
    }
    if (backed) continue;
    // No record of ours holds the mapping, but while nat_shared maps this port to the same inside
    // flow another instance may be translating the flow with it (nat_fwd: a flow moved by WCMP),
    // its replies may still come here: the port is not given to a new flow. The entry expires by
    // its merged seen (expire_nat_shared, the same limit), i.e. once nobody used it for the idle
    // timeout plus the grace; a mapping only this instance used goes with its record.
    ac_register r{};
    if (shared >= 0 && bpf_map_lookup_elem(shared, &rk, &r) == 0) {
      ac_nf_nat_shared m{};
      std::memcpy(&m, r.v.data, sizeof(m));
      if (m.external == params_.nat_address.s_addr && m.external_port == rk.port && m.inside == rv.inside &&
          m.inside_port == rv.inside_port) {
        ++held;
        continue;
      }
    }
    if (bpf_map_delete_elem(rev, &rk) != 0) continue;
    const uint16_t port = ntohs(rk.port);
    __atomic_fetch_and(static_cast<uint64_t*>(pool_) + port / 64, ~(1ULL << (port % 64)), __ATOMIC_SEQ_CST);
    ++freed;
  }
  return freed;
}

}  // namespace anychain::nf
