// Writers of the fast path's maps. Each keeps the invariants the program relies on: a policy
// set is published with one store (two banks), every ac_paths change bumps the path epoch, an
// instance's generation changes whenever where it is changes.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>

#include "anychain.skel.h"
#include "anychain/ftc.h"
#include "common/unique_fd.h"
#include "dataplane/dataplane.h"
#include "dataplane/internal.h"

namespace anychain::dataplane {

using internal::num_cpus;
using internal::spsi_key;

Result<ac_policy> encode_policy(const PolicyRule& r) {
  if (r.src.family != r.dst.family && !(r.src.len == 0 || r.dst.len == 0))
    return fail("policy mixes IPv4 and IPv6 prefixes", EINVAL);
  int family = r.dst.len ? r.dst.family : r.src.family;
  if (r.spi == 0 || r.spi > 0xffffff) return fail(fmt::format("SPI {} out of range 1..16777215", r.spi), EINVAL);
  if (r.sport_lo > r.sport_hi || r.dport_lo > r.dport_hi) return fail("port range with low > high", EINVAL);
  if (r.ftc_f > AC_FTC_F_MAX)
    return fail(fmt::format("FTC f {} out of range 1..{}", r.ftc_f, AC_FTC_F_MAX), EINVAL);
  ac_policy p{};
  p.family = family == AF_INET6 ? 6 : 4;
  auto mask_into = [&](const Prefix& pf, __be32* out, __be32* mask) {
    const auto* w = reinterpret_cast<const uint32_t*>(&pf.addr);
    for (int i = 0; i < 4; ++i) {
      int bits = static_cast<int>(pf.len) - 32 * i;
      uint32_t m = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0u : htonl(~0u << (32 - bits));
      out[i] = w[i] & m;
      mask[i] = m;
    }
  };
  mask_into(r.src, p.src, p.src_mask);
  mask_into(r.dst, p.dst, p.dst_mask);
  p.proto = r.proto;
  p.sport_lo = r.sport_lo;
  p.sport_hi = r.sport_hi;
  p.dport_lo = r.dport_lo;
  p.dport_hi = r.dport_hi;
  p.spi = r.spi;
  p.flags = (r.symmetric ? AC_POL_SYMMETRIC : 0) | (r.md2 || r.ftc_f ? AC_POL_MD2 : 0) |
            (r.ftc_f ? AC_POL_FTC : 0);
  p.ftc_f = r.ftc_f;
  return p;
}

Result<void> Dataplane::modify_config(const std::function<void(ac_config&)>& edit, const char* what) {
  int fd = bpf_map__fd(skel_->maps.ac_config);
  uint32_t zero = 0;
  ac_config v{};
  if (bpf_map_lookup_elem(fd, &zero, &v) != 0) return fail_errno("read config");
  edit(v);
  if (bpf_map_update_elem(fd, &zero, &v, BPF_ANY) != 0) return fail_errno(what);
  return {};
}

// Every ac_paths change: flow cache ways holding path data of an older epoch re-read ac_paths.
Result<void> Dataplane::bump_path_epoch() {
  return modify_config([](ac_config& v) { ++v.path_epoch; }, "write config (path epoch)");
}

Result<void> Dataplane::set_config(const Config& c) {
  if (c.gpe_port == 0) return fail("VXLAN-GPE port must not be 0", EINVAL);
  if (c.state_port != 0 && c.state_port == c.gpe_port)
    return fail(fmt::format("state replication port {} is the VXLAN-GPE port", c.state_port), EINVAL);
  if (c.default_ttl < 2 || c.default_ttl > AC_NSH_TTL_MAX) return fail("NSH TTL must be 2..63", EINVAL);
  ac_config v{};
  v.local_endpoint = c.local_endpoint.s_addr;
  v.flags = c.symmetric_hash ? AC_CFG_SYMMETRIC_HASH : 0;
  uint32_t zero = 0;
  v.flow_timeout_jiffies = ns_to_jiffies(c.flow_timeout_ns);
  v.nexthop_ttl_jiffies = ns_to_jiffies(c.nexthop_ttl_ns);
  // keep what the policy writer, the loader and the path writer own
  ac_config old{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_config), &zero, &old) != 0) return fail_errno("read config");
  v.policies = old.policies;
  v.flow_set_mask = old.flow_set_mask;
  v.path_epoch = old.path_epoch;
  v.fib_gen = old.fib_gen;
  v.gpe_port = c.gpe_port;
  v.default_ttl = c.default_ttl;
  if (c.oam_forward) v.flags |= AC_CFG_OAM_FORWARD;
  v.slow_ifindex = c.slow_ifindex;
  v.state_port = c.state_port;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_config), &zero, &v, BPF_ANY) != 0) return fail_errno("write config");
  return {};
}

Result<Config> Dataplane::config() const {
  uint32_t zero = 0;
  ac_config v{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_config), &zero, &v) != 0) return fail_errno("read config");
  Config c;
  c.local_endpoint.s_addr = v.local_endpoint;
  c.symmetric_hash = v.flags & AC_CFG_SYMMETRIC_HASH;
  c.flow_timeout_ns = v.flow_timeout_jiffies * tick_ns();
  c.nexthop_ttl_ns = v.nexthop_ttl_jiffies * tick_ns();
  c.gpe_port = v.gpe_port;
  c.default_ttl = v.default_ttl;
  c.oam_forward = v.flags & AC_CFG_OAM_FORWARD;
  c.slow_ifindex = v.slow_ifindex;
  c.state_port = v.state_port;
  return c;
}

// ifindexes below AC_IFACE_DIRECT have a slot in the ac_ifaces array (flags 0: no role), the
// others an entry in the ac_ifaces_hi hash.
Result<void> Dataplane::set_interface(uint32_t ifindex, uint32_t flags, uint32_t instance_id, const Mac& mac) {
  if (ifindex == 0) return fail("interface index 0 is not an interface", EINVAL);
  if (flags & ~(AC_IF_CLASSIFY | AC_IF_VNF | AC_IF_SLOW_PATH | AC_IF_ATTACHED))
    return fail(fmt::format("interface {}: unknown role flags {}", ifindex, flags), EINVAL);
  ac_iface v{};
  v.flags = flags | AC_IF_ATTACHED;
  v.instance_id = instance_id;
  std::copy(mac.begin(), mac.end(), v.mac);
  const bool direct = ifindex < AC_IFACE_DIRECT;
  int fd = bpf_map__fd(direct ? skel_->maps.ac_ifaces : skel_->maps.ac_ifaces_hi);
  if (bpf_map_update_elem(fd, &ifindex, &v, BPF_ANY) != 0) {
    if (!direct && errno == E2BIG)
      return fail(fmt::format("interface {}: the table of interfaces with an index >= {} is full ({} entries)", ifindex,
                         AC_IFACE_DIRECT, AC_MAX_IFACES), E2BIG);
    return fail_errno(fmt::format("write interface {}", ifindex));
  }
  return {};
}

Result<void> Dataplane::del_interface(uint32_t ifindex) {
  if (ifindex < AC_IFACE_DIRECT) {
    ac_iface none{};
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_ifaces), &ifindex, &none, BPF_ANY) != 0)
      return fail_errno(fmt::format("clear interface {}", ifindex));
    return {};
  }
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ac_ifaces_hi), &ifindex) != 0 && errno != ENOENT)
    return fail_errno(fmt::format("delete interface {}", ifindex));
  return {};
}

Result<void> Dataplane::set_policies(std::span<const PolicyRule> rules) {
  if (rules.size() > AC_MAX_POLICIES)
    return fail(fmt::format("{} policies, at most {} are supported", rules.size(), AC_MAX_POLICIES), E2BIG);
  auto enc = std::make_unique<ac_policy_bank>();
  for (size_t i = 0; i < rules.size(); ++i) {
    auto p = encode_policy(rules[i]);
    if (!p) return fail(fmt::format("policy {}: {}", i, p.error().message), p.error().code);
    enc->rule[i] = *p;
  }
  int cfd = bpf_map__fd(skel_->maps.ac_config), pfd = bpf_map__fd(skel_->maps.ac_policies);
  uint32_t zero = 0;
  ac_config cfg{};
  if (bpf_map_lookup_elem(cfd, &zero, &cfg) != 0) return fail_errno("read config");
  // Fill the idle bank, then publish it: packets see the old rule set or the new one.
  uint32_t bank = AC_POLICY_BANK(cfg.policies) ^ 1;
  if (bpf_map_update_elem(pfd, &bank, enc.get(), BPF_ANY) != 0) return fail_errno("write the policy bank");
  cfg.policies = AC_POLICY_WORD(bank, rules.size());
  if (bpf_map_update_elem(cfd, &zero, &cfg, BPF_ANY) != 0) return fail_errno("write config");
  return {};
}

Result<void> Dataplane::set_path(uint32_t spi, uint8_t si, uint32_t service_id, bool last_hop) {
  if (spi == 0 || spi > 0xffffff) return fail(fmt::format("SPI {} out of range 1..16777215", spi), EINVAL);
  if (si == 0) return fail("SI 0 is never forwarded", EINVAL);
  if (!last_hop && (service_id == 0 || service_id >= AC_MAX_SERVICES))
    return fail(fmt::format("service id {} out of range 1..{}", service_id, AC_MAX_SERVICES - 1), EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_paths);
  uint32_t key = spsi_key(spi, si);
  ac_path old{}, v{};
  if (bpf_map_lookup_elem(fd, &key, &old) == 0) {
    v.stats_idx = old.stats_idx;
  } else {
    auto it = std::find(path_slot_used_.begin(), path_slot_used_.end(), false);
    if (it == path_slot_used_.end()) return fail("path table full", ENOSPC);
    v.stats_idx = static_cast<uint32_t>(it - path_slot_used_.begin());
    // fresh counters for a fresh path
    std::vector<ac_counter> z(num_cpus());
    bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_path_stats), &v.stats_idx, z.data(), BPF_ANY);
  }
  v.service_id = last_hop ? 0 : service_id;
  v.flags = last_hop ? AC_PATH_LAST_HOP : 0;
  if (bpf_map_update_elem(fd, &key, &v, BPF_ANY) != 0) return fail_errno(fmt::format("write path {}:{}", spi, si));
  path_slot_used_[v.stats_idx] = true;
  return bump_path_epoch();
}

Result<void> Dataplane::del_path(uint32_t spi, uint8_t si) {
  int fd = bpf_map__fd(skel_->maps.ac_paths);
  uint32_t key = spsi_key(spi, si);
  ac_path old{};
  if (bpf_map_lookup_elem(fd, &key, &old) != 0) return fail(fmt::format("no path {}:{}", spi, si), ENOENT);
  if (bpf_map_delete_elem(fd, &key) != 0) return fail_errno(fmt::format("delete path {}:{}", spi, si));
  if (old.stats_idx < AC_MAX_PATHS) path_slot_used_[old.stats_idx] = false;
  return bump_path_epoch();
}

Result<uint32_t> Dataplane::set_instance(const Instance& in) {
  if (in.id == 0 || in.id >= AC_MAX_INSTANCES)
    return fail(fmt::format("instance id {} out of range 1..{}", in.id, AC_MAX_INSTANCES - 1), EINVAL);
  if (in.local && in.ifindex == 0) return fail(fmt::format("local instance {} needs an interface", in.id), EINVAL);
  if (!in.local && in.endpoint.s_addr == 0) return fail(fmt::format("remote instance {} needs an NSH endpoint", in.id), EINVAL);
  if (in.vni > 0xffffff) return fail("VNI must fit 24 bits", EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance old{}, v{};
  if (bpf_map_lookup_elem(fd, &in.id, &old) != 0) return fail_errno(fmt::format("read instance {}", in.id));
  v.ifindex = in.local ? in.ifindex : 0;
  v.endpoint = in.local ? 0 : in.endpoint.s_addr;
  if (in.local) {
    std::copy(in.mac.begin(), in.mac.end(), v.mac);
    std::copy(in.if_mac.begin(), in.if_mac.end(), v.if_mac);
  }
  v.flags = AC_INST_LIVE | (in.local ? AC_INST_LOCAL : 0) | (in.nsh_aware ? AC_INST_NSH_AWARE : 0);
  v.vni = in.local ? 0 : (in.vni ? in.vni : in.id);
  if (in.service_id >= AC_MAX_SERVICES) return fail(fmt::format("service id {} out of range", in.service_id), EINVAL);
  v.service_id = static_cast<uint16_t>(in.service_id);
  v.mtu = in.local ? in.mtu : 0;
  v.generation = old.generation;
  bool same = (old.flags & AC_INST_LIVE) && old.ifindex == v.ifindex && old.endpoint == v.endpoint &&
              old.flags == v.flags && old.vni == v.vni && old.service_id == v.service_id && std::equal(v.mac, v.mac + 6, old.mac) &&
              std::equal(v.if_mac, v.if_mac + 6, old.if_mac);
  if (!same) ++v.generation;
  if (bpf_map_update_elem(fd, &in.id, &v, BPF_ANY) != 0) return fail_errno(fmt::format("write instance {}", in.id));
  return v.generation;
}

Result<void> Dataplane::del_instance(uint32_t id) {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance v{};
  if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(fmt::format("read instance {}", id));
  v.flags &= static_cast<uint8_t>(~(AC_INST_LIVE | AC_INST_RECOVERING));  // a freeze ends with it
  ++v.generation;
  if (bpf_map_update_elem(fd, &id, &v, BPF_ANY) != 0) return fail_errno(fmt::format("withdraw instance {}", id));
  return {};
}

Result<void> Dataplane::set_instance_recovering(uint32_t id) {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance v{};
  if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(fmt::format("read instance {}", id));
  v.flags = static_cast<uint8_t>((v.flags & ~AC_INST_LIVE) | AC_INST_RECOVERING);
  if (bpf_map_update_elem(fd, &id, &v, BPF_ANY) != 0)
    return fail_errno(fmt::format("mark instance {} recovering", id));
  return {};
}

namespace {
// Every placement of ac_affinity (one that vanishes during the walk is skipped)
template <class Fn>
void each_placement(int fd, Fn&& fn) {
  ac_affinity_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    ac_affinity a{};
    if (bpf_map_lookup_elem(fd, &key, &a) == 0) fn(key, a);
  }
}
}  // namespace

Result<size_t> Dataplane::repoint_affinity(uint32_t id) {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  ac_instance v{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_instances), &id, &v) != 0)
    return fail_errno(fmt::format("read instance {}", id));
  if (!(v.flags & AC_INST_RECOVERING))
    return fail(fmt::format("instance {} is not recovering: no placement to re-point", id), EINVAL);
  const uint64_t from = AC_AFFINITY(id, v.generation), to = AC_AFFINITY(id, v.generation + 1);
  const int fd = bpf_map__fd(skel_->maps.ac_affinity);
  size_t n = 0;
  int err = 0;
  each_placement(fd, [&](const ac_affinity_key& key, ac_affinity a) {
    if (a.pick != from || err) return;
    a.pick = to;
    // BPF_EXIST: a placement the LRU evicted meanwhile is not brought back
    if (bpf_map_update_elem(fd, &key, &a, BPF_EXIST) == 0) ++n;
    else if (errno != ENOENT) err = errno;
  });
  if (err) {
    errno = err;
    return fail_errno(fmt::format("re-point a placement of instance {}", id));
  }
  return n;
}

Result<size_t> Dataplane::count_affinity(uint32_t id) const {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  ac_instance v{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_instances), &id, &v) != 0)
    return fail_errno(fmt::format("read instance {}", id));
  const uint64_t pick = AC_AFFINITY(id, v.generation);
  size_t n = 0;
  each_placement(bpf_map__fd(skel_->maps.ac_affinity), [&](const ac_affinity_key&, ac_affinity a) {
    n += a.pick == pick;
  });
  return n;
}

Result<void> Dataplane::set_affinity(uint32_t spi, uint8_t si, uint32_t hash, uint32_t id) {
  if (spi == 0 || spi > 0xffffff) return fail(fmt::format("SPI {} out of range 1..16777215", spi), EINVAL);
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  ac_instance v{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_instances), &id, &v) != 0)
    return fail_errno(fmt::format("read instance {}", id));
  if (!(v.flags & AC_INST_LIVE)) return fail(fmt::format("instance {} is not live: no placement on it", id), EINVAL);
  ac_affinity_key key{spsi_key(spi, si), hash};
  ac_affinity a{AC_AFFINITY(id, v.generation)};
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_affinity), &key, &a, BPF_ANY) != 0)
    return fail_errno(fmt::format("write the placement of SPI {} SI {} hash {:#x}", spi, si, hash));
  return {};
}

Result<void> Dataplane::set_ftc_pending(uint32_t spi, uint32_t hash, std::span<const uint8_t> tlvs) {
  if (spi == 0 || spi > 0xffffff) return fail(fmt::format("SPI {} out of range 1..16777215", spi), EINVAL);
  if (tlvs.size() > AC_FTC_PENDING_MAX || tlvs.size() % 4)
    return fail(fmt::format("{} bytes of pending FTC logs: whole 4-byte words, at most {}", tlvs.size(),
                            AC_FTC_PENDING_MAX),
                EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_ftc_pending);
  ac_ftc_pending_key key{.spi = spi, .hash = hash};
  if (tlvs.empty()) {
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
      return fail_errno(fmt::format("delete pending FTC logs of SPI {} hash {:#x}", spi, hash));
    return {};
  }
  ac_ftc_pending v{};
  v.len = static_cast<uint16_t>(tlvs.size());
  std::copy(tlvs.begin(), tlvs.end(), v.tlvs);
  if (bpf_map_update_elem(fd, &key, &v, BPF_ANY) != 0)
    return fail_errno(fmt::format("write pending FTC logs of SPI {} hash {:#x}", spi, hash));
  return {};
}

Result<void> Dataplane::set_instance_mtu(uint32_t id, uint16_t mtu) {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(fmt::format("instance id {} out of range", id), EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance v{};
  if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(fmt::format("read instance {}", id));
  if ((v.flags & (AC_INST_LIVE | AC_INST_LOCAL)) != (AC_INST_LIVE | AC_INST_LOCAL) || v.mtu == mtu) return {};
  v.mtu = mtu;
  if (bpf_map_update_elem(fd, &id, &v, BPF_ANY) != 0) return fail_errno(fmt::format("write the MTU of instance {}", id));
  return {};
}

Result<bool> Dataplane::hold_proxy_for_fragments(uint32_t ifindex, uint32_t flow_key, uint32_t datagram_key) {
  int fd = bpf_map__fd(skel_->maps.ac_proxy);
  ac_proxy_key k{ifindex, flow_key};
  ac_proxy_entry e{};
  if (bpf_map_lookup_elem(fd, &k, &e) != 0) {
    if (errno == ENOENT) return false;
    return fail_errno(fmt::format("read the SFC proxy's entry of interface {}", ifindex));
  }
  k.hash = datagram_key;
  if (bpf_map_update_elem(fd, &k, &e, BPF_ANY) != 0)
    return fail_errno(fmt::format("hold the NSH for fragments on interface {}", ifindex));
  return true;
}

Result<double> Dataplane::set_wcmp_table(uint32_t service_id, std::span<const uint32_t> buckets) {
  if (service_id == 0 || service_id >= AC_MAX_SERVICES)
    return fail(fmt::format("service id {} out of range 1..{}", service_id, AC_MAX_SERVICES - 1), EINVAL);
  if (buckets.size() != AC_WCMP_BUCKETS)
    return fail(fmt::format("WCMP table has {} buckets, needs {}", buckets.size(), AC_WCMP_BUCKETS), EINVAL);
  auto cur = wcmp_table(service_id);
  return swap_wcmp_table(service_id, buckets, cur ? &*cur : nullptr);
}

Result<double> Dataplane::swap_wcmp_table(uint32_t service_id, std::span<const uint32_t> buckets,
                                          const std::vector<uint32_t>* current) {
  // the same table: nothing to swap (most recomputations change no weight)
  if (current && std::equal(current->begin(), current->end(), buckets.begin(), buckets.end())) return 0.0;

  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ac_wcmp_table", sizeof(uint32_t), sizeof(uint32_t),
                                AC_WCMP_BUCKETS, nullptr));
  if (!inner) return fail_errno("create WCMP table");
  // every bucket in one syscall
  std::vector<uint32_t> keys(AC_WCMP_BUCKETS);
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i) keys[i] = i;
  uint32_t count = AC_WCMP_BUCKETS;
  LIBBPF_OPTS(bpf_map_batch_opts, bo);
  if (bpf_map_update_batch(inner.get(), keys.data(), buckets.data(), &count, &bo) != 0 || count != AC_WCMP_BUCKETS)
    return fail_errno("fill WCMP table");
  int ifd = inner.get();
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id, &ifd, BPF_ANY) != 0)
    return fail_errno(fmt::format("swap WCMP table of service {}", service_id));
  // moved buckets against the table replaced (none: every bucket was empty, i.e. 0)
  size_t moved = 0;
  for (size_t i = 0; i < AC_WCMP_BUCKETS; ++i) moved += (current && i < current->size() ? (*current)[i] : 0) != buckets[i];
  return static_cast<double>(moved) / AC_WCMP_BUCKETS;
}

Result<double> Dataplane::set_wcmp_weights(uint32_t service_id, std::span<const WcmpMember> members) {
  auto current = wcmp_table(service_id);
  auto table = current ? rebalance_wcmp_table(*current, members) : build_wcmp_table(members);
  if (!table) return fail(fmt::format("WCMP weights of service {}: {}", service_id, table.error().message), EINVAL);
  return swap_wcmp_table(service_id, *table, current ? &*current : nullptr);
}

Result<void> Dataplane::del_wcmp_table(uint32_t service_id) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id) != 0 && errno != ENOENT)
    return fail_errno(fmt::format("delete WCMP table of service {}", service_id));
  return {};
}


Result<void> Dataplane::flush_flows() {
  int fd = bpf_map__fd(skel_->maps.ac_flow_cache);
  // every CPU's sets, in batches of one syscall
  const uint32_t n = bpf_map__max_entries(skel_->maps.ac_flow_cache);
  constexpr uint32_t kBatch = 4096;
  std::vector<ac_flow_set> empty(std::min(n, kBatch));
  std::vector<uint32_t> keys(empty.size());
  for (uint32_t first = 0; first < n; first += kBatch) {
    uint32_t count = std::min(kBatch, n - first);
    for (uint32_t i = 0; i < count; ++i) keys[i] = first + i;
    if (bpf_map_update_batch(fd, keys.data(), empty.data(), &count, nullptr) != 0) return fail_errno("flush flow cache");
  }
  // and the shared placements, so that flows are placed again by the tables in force
  int afd = bpf_map__fd(skel_->maps.ac_affinity);
  ac_affinity_key key{}, next{};
  while (bpf_map_get_next_key(afd, nullptr, &next) == 0) {
    key = next;
    if (bpf_map_delete_elem(afd, &key) != 0 && errno != ENOENT) return fail_errno("flush flow placements");
  }
  return {};
}

namespace {

// Every slot of a per-CPU array of cached FIB results emptied in one batch update.
template <typename Entry>
Result<void> empty_percpu_slots(int fd, uint32_t slots, const char* what) {
  std::vector<uint32_t> keys(slots);
  for (uint32_t i = 0; i < slots; ++i) keys[i] = i;
  std::vector<Entry> empty(static_cast<size_t>(num_cpus()) * slots);
  uint32_t count = slots;
  LIBBPF_OPTS(bpf_map_batch_opts, bo);
  if (bpf_map_update_batch(fd, keys.data(), empty.data(), &count, &bo) != 0 || count != slots)
    return fail_errno(what);
  return {};
}

}  // namespace

Result<void> Dataplane::flush_nexthops() {
  // The agent calls this on every neighbour, route, rule or link change. One config write makes
  // every cached FIB result of the older generation stale at once, on every CPU; the entries
  // stamp the generation they read before asking the FIB, so a lookup racing with the change
  // is not kept either. The generation has 16 bits: every AC_FIB_GEN_FLUSH bumps both caches are
  // emptied as well, so no entry lives to see its generation come back.
  uint16_t gen = 0;
  if (auto r = modify_config([&](ac_config& v) { gen = ++v.fib_gen; }, "write config (FIB generation)"); !r)
    return r;
  if (gen % AC_FIB_GEN_FLUSH != 0) return {};
  if (auto r = empty_percpu_slots<ac_nexthop>(bpf_map__fd(skel_->maps.ac_nexthop), AC_NEXTHOP_SLOTS,
                                             "flush next-hop cache");
      !r)
    return r;
  return empty_percpu_slots<ac_lasthop>(bpf_map__fd(skel_->maps.ac_lasthop), AC_LASTHOP_SLOTS,
                                        "flush last-hop cache");
}

}  // namespace anychain::dataplane
