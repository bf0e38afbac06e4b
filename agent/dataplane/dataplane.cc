#include "dataplane/dataplane.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include "common/format.h"

#include "anychain.skel.h"
#include "common/unique_fd.h"

namespace anychain::dataplane {
namespace {

constexpr unsigned long kBpfFsMagic = 0xcafe4a11;
// a flow cache way keeps the service id and the path counter slot in 16 bits each
static_assert(AC_MAX_SERVICES <= 65536 && AC_MAX_PATHS <= 65536);
constexpr const char* kProgName = "anychain_xdp";

uint32_t spsi_key(uint32_t spi, uint8_t si) { return htonl(AC_SPI_SI(spi, si)); }

int num_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}

Result<std::vector<uint32_t>> read_table(int fd) {
  std::vector<uint32_t> out(AC_WCMP_BUCKETS);
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i) {
    if (bpf_map_lookup_elem(fd, &i, &out[i]) != 0) return fail_errno("read WCMP bucket");
  }
  return out;
}

}  // namespace

std::string_view to_string(XdpMode m) {
  switch (m) {
    case XdpMode::Native: return "native";
    case XdpMode::Generic: return "generic";
    case XdpMode::Auto: return "auto";
  }
  return "?";
}

Result<XdpMode> parse_xdp_mode(std::string_view s) {
  if (s == "native" || s == "drv") return XdpMode::Native;
  if (s == "generic" || s == "skb") return XdpMode::Generic;
  if (s == "auto") return XdpMode::Auto;
  return fail(format("unknown XDP mode '{}' (use native, generic or auto)", s), EINVAL);
}

uint64_t tick_ns() {
  static const uint64_t tick = [] {
    timespec res{};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0)
      return uint64_t{1'000'000};  // not expected on Linux; 1 ms = HZ 1000, the shortest tick
    return static_cast<uint64_t>(res.tv_nsec);
  }();
  return tick;
}

uint64_t ns_to_jiffies(uint64_t ns) { return ns / tick_ns() + (ns % tick_ns() != 0); }

Result<Prefix> parse_prefix(std::string_view text) {
  Prefix p;
  if (text == "any4" || text == "any") return p;  // 0.0.0.0/0
  if (text == "any6") {
    p.family = AF_INET6;
    return p;
  }
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  p.family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  int maxlen = p.family == AF_INET ? 32 : 128;
  int len = maxlen;
  if (slash != std::string_view::npos) {
    auto ls = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), len);
    if (ec != std::errc() || ptr != ls.data() + ls.size() || len < 0 || len > maxlen)
      return fail(format("bad prefix length in '{}' (0..{})", text, maxlen), EINVAL);
  }
  if (inet_pton(p.family, addr.c_str(), &p.addr) != 1)
    return fail(format("bad address in prefix '{}'", text), EINVAL);
  p.len = static_cast<uint8_t>(len);
  return p;
}

Result<ac_policy> encode_policy(const PolicyRule& r) {
  if (r.src.family != r.dst.family && !(r.src.len == 0 || r.dst.len == 0))
    return fail("policy mixes IPv4 and IPv6 prefixes", EINVAL);
  int family = r.dst.len ? r.dst.family : r.src.family;
  if (r.spi == 0 || r.spi > 0xffffff) return fail(format("SPI {} out of range 1..16777215", r.spi), EINVAL);
  if (r.sport_lo > r.sport_hi || r.dport_lo > r.dport_hi) return fail("port range with low > high", EINVAL);
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
  p.flags = (r.symmetric ? AC_POL_SYMMETRIC : 0) | (r.md2 ? AC_POL_MD2 : 0);
  return p;
}

Result<Mac> interface_mac(const std::string& ifname) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  if (ifname.size() >= IFNAMSIZ) return fail(format("bad interface name '{}'", ifname), EINVAL);
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  if (!fd || ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return fail_errno(format("MAC of {}", ifname));
  Mac m{};
  std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
  return m;
}

Result<void> require_root() {
  if (geteuid() != 0)
    return fail("anychain needs root (CAP_BPF and CAP_NET_ADMIN) to load and attach XDP programs; run it with sudo", EPERM);
  return {};
}

Result<void> ensure_bpffs(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string base = "/sys/fs/bpf";
  struct statfs st{};
  if (statfs(base.c_str(), &st) != 0 || static_cast<unsigned long>(st.f_type) != kBpfFsMagic) {
    if (mount("bpf", base.c_str(), "bpf", 0, "mode=0700") != 0)
      return fail_errno(format("bpffs is not mounted at {} and mounting it failed (mount -t bpf bpf {})", base, base));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(format("cannot create pin directory {}: {}", dir, ec.message()), ec.value());
  if (statfs(dir.c_str(), &st) != 0 || static_cast<unsigned long>(st.f_type) != kBpfFsMagic)
    return fail(format("pin directory {} is not on a bpffs", dir), ENOTSUP);
  return {};
}

Dataplane::Dataplane(std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel, Options opts)
    : skel_(std::move(skel)), opts_(std::move(opts)) {}
Dataplane::Dataplane(Dataplane&&) noexcept = default;
Dataplane& Dataplane::operator=(Dataplane&&) noexcept = default;
Dataplane::~Dataplane() = default;

Result<Dataplane> Dataplane::open(const Options& opts) {
  if (auto r = require_root(); !r) return std::unexpected(r.error());
  if (auto r = ensure_bpffs(opts.pin_root); !r) return std::unexpected(r.error());
  if (opts.flow_cache_entries < AC_FLOW_CACHE_MIN || (opts.flow_cache_entries & (opts.flow_cache_entries - 1)) ||
      opts.proxy_entries < 256)
    return fail(format("flow cache needs a power of two >= {} entries (got {}) and the proxy >= 256",
                       AC_FLOW_CACHE_MIN, opts.flow_cache_entries), EINVAL);

  LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = opts.pin_root.c_str());
  ::anychain_bpf* raw = anychain_bpf__open_opts(&oo);
  if (!raw) return fail_errno("open the anychain BPF object");
  std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel(raw, [](::anychain_bpf* s) { anychain_bpf__destroy(s); });
  bpf_map__set_max_entries(skel->maps.ac_flow_cache, opts.flow_cache_entries / AC_FLOW_WAYS);
  bpf_map__set_max_entries(skel->maps.ac_proxy, opts.proxy_entries);
  bpf_map__set_max_entries(skel->maps.ac_affinity, opts.flow_cache_entries);
  if (int err = anychain_bpf__load(skel.get()); err != 0)
    return fail_errno(format("load the anychain BPF object (maps pinned under {} may be from an "
                                  "incompatible build or size: detach and remove them with 'anychain flush')",
                                  opts.pin_root), err);
  Dataplane dp(std::move(skel), opts);
  if (auto r = dp.load_path_slots(); !r) return std::unexpected(r.error());
  if (auto r = dp.init_config(); !r) return std::unexpected(r.error());
  return dp;
}

// The loader owns the flow cache geometry: the program indexes sets with flow_set_mask.
Result<void> Dataplane::init_config() {
  int fd = bpf_map__fd(skel_->maps.ac_config);
  uint32_t zero = 0;
  ac_config v{};
  if (bpf_map_lookup_elem(fd, &zero, &v) != 0) return fail_errno("read config");
  v.flow_set_mask = flow_sets() - 1;
  if (bpf_map_update_elem(fd, &zero, &v, BPF_ANY) != 0) return fail_errno("write config");
  return {};
}

uint32_t Dataplane::flow_sets() const { return bpf_map__max_entries(skel_->maps.ac_flow_cache); }

// Every ac_paths change: flow cache ways holding path data of an older epoch re-read ac_paths.
Result<void> Dataplane::bump_path_epoch() {
  int fd = bpf_map__fd(skel_->maps.ac_config);
  uint32_t zero = 0;
  ac_config v{};
  if (bpf_map_lookup_elem(fd, &zero, &v) != 0) return fail_errno("read config");
  ++v.path_epoch;
  if (bpf_map_update_elem(fd, &zero, &v, BPF_ANY) != 0) return fail_errno("write config (path epoch)");
  return {};
}

Result<void> Dataplane::load_path_slots() {
  path_slot_used_.assign(AC_MAX_PATHS, false);
  int fd = bpf_map__fd(skel_->maps.ac_paths);
  uint32_t key, next;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ac_path p{};
    if (bpf_map_lookup_elem(fd, &next, &p) == 0 && p.stats_idx < AC_MAX_PATHS) path_slot_used_[p.stats_idx] = true;
    key = next;
    prev = &key;
  }
  return {};
}

int Dataplane::prog_fd() const { return bpf_program__fd(skel_->progs.anychain_xdp); }

int Dataplane::map_fd(std::string_view name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
  return m ? bpf_map__fd(m) : -1;
}

Result<void> Dataplane::set_config(const Config& c) {
  if (c.gpe_port == 0) return fail("VXLAN-GPE port must not be 0", EINVAL);
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
  v.gpe_port = c.gpe_port;
  v.default_ttl = c.default_ttl;
  if (c.oam_forward) v.flags |= AC_CFG_OAM_FORWARD;
  v.slow_ifindex = c.slow_ifindex;
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
  return c;
}

// ifindexes below AC_IFACE_DIRECT have a slot in the ac_ifaces array (flags 0: no role), the
// others an entry in the ac_ifaces_hi hash.
Result<void> Dataplane::set_interface(uint32_t ifindex, uint32_t flags, uint32_t instance_id, const Mac& mac) {
  if (ifindex == 0) return fail("interface index 0 is not an interface", EINVAL);
  if (flags & ~(AC_IF_CLASSIFY | AC_IF_VNF | AC_IF_SLOW_PATH | AC_IF_ATTACHED))
    return fail(format("interface {}: unknown role flags {}", ifindex, flags), EINVAL);
  ac_iface v{};
  v.flags = flags | AC_IF_ATTACHED;
  v.instance_id = instance_id;
  std::copy(mac.begin(), mac.end(), v.mac);
  const bool direct = ifindex < AC_IFACE_DIRECT;
  int fd = bpf_map__fd(direct ? skel_->maps.ac_ifaces : skel_->maps.ac_ifaces_hi);
  if (bpf_map_update_elem(fd, &ifindex, &v, BPF_ANY) != 0) {
    if (!direct && errno == E2BIG)
      return fail(format("interface {}: the table of interfaces with an index >= {} is full ({} entries)", ifindex,
                         AC_IFACE_DIRECT, AC_MAX_IFACES), E2BIG);
    return fail_errno(format("write interface {}", ifindex));
  }
  return {};
}

Result<void> Dataplane::del_interface(uint32_t ifindex) {
  if (ifindex < AC_IFACE_DIRECT) {
    ac_iface none{};
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_ifaces), &ifindex, &none, BPF_ANY) != 0)
      return fail_errno(format("clear interface {}", ifindex));
    return {};
  }
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ac_ifaces_hi), &ifindex) != 0 && errno != ENOENT)
    return fail_errno(format("delete interface {}", ifindex));
  return {};
}

Result<void> Dataplane::set_policies(std::span<const PolicyRule> rules) {
  if (rules.size() > AC_MAX_POLICIES)
    return fail(format("{} policies, at most {} are supported", rules.size(), AC_MAX_POLICIES), E2BIG);
  auto enc = std::make_unique<ac_policy_bank>();
  for (size_t i = 0; i < rules.size(); ++i) {
    auto p = encode_policy(rules[i]);
    if (!p) return fail(format("policy {}: {}", i, p.error().message), p.error().code);
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
  if (spi == 0 || spi > 0xffffff) return fail(format("SPI {} out of range 1..16777215", spi), EINVAL);
  if (si == 0) return fail("SI 0 is never forwarded", EINVAL);
  if (!last_hop && (service_id == 0 || service_id >= AC_MAX_SERVICES))
    return fail(format("service id {} out of range 1..{}", service_id, AC_MAX_SERVICES - 1), EINVAL);
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
  if (bpf_map_update_elem(fd, &key, &v, BPF_ANY) != 0) return fail_errno(format("write path {}:{}", spi, si));
  path_slot_used_[v.stats_idx] = true;
  return bump_path_epoch();
}

Result<void> Dataplane::del_path(uint32_t spi, uint8_t si) {
  int fd = bpf_map__fd(skel_->maps.ac_paths);
  uint32_t key = spsi_key(spi, si);
  ac_path old{};
  if (bpf_map_lookup_elem(fd, &key, &old) != 0) return fail(format("no path {}:{}", spi, si), ENOENT);
  if (bpf_map_delete_elem(fd, &key) != 0) return fail_errno(format("delete path {}:{}", spi, si));
  if (old.stats_idx < AC_MAX_PATHS) path_slot_used_[old.stats_idx] = false;
  return bump_path_epoch();
}

Result<uint32_t> Dataplane::set_instance(const Instance& in) {
  if (in.id == 0 || in.id >= AC_MAX_INSTANCES)
    return fail(format("instance id {} out of range 1..{}", in.id, AC_MAX_INSTANCES - 1), EINVAL);
  if (in.local && in.ifindex == 0) return fail(format("local instance {} needs an interface", in.id), EINVAL);
  if (!in.local && in.endpoint.s_addr == 0) return fail(format("remote instance {} needs an NSH endpoint", in.id), EINVAL);
  if (in.vni > 0xffffff) return fail("VNI must fit 24 bits", EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance old{}, v{};
  if (bpf_map_lookup_elem(fd, &in.id, &old) != 0) return fail_errno(format("read instance {}", in.id));
  v.ifindex = in.local ? in.ifindex : 0;
  v.endpoint = in.local ? 0 : in.endpoint.s_addr;
  if (in.local) {
    std::copy(in.mac.begin(), in.mac.end(), v.mac);
    std::copy(in.if_mac.begin(), in.if_mac.end(), v.if_mac);
  }
  v.flags = AC_INST_LIVE | (in.local ? AC_INST_LOCAL : 0) | (in.nsh_aware ? AC_INST_NSH_AWARE : 0);
  v.vni = in.local ? 0 : (in.vni ? in.vni : in.id);
  if (in.service_id >= AC_MAX_SERVICES) return fail(format("service id {} out of range", in.service_id), EINVAL);
  v.service_id = static_cast<uint16_t>(in.service_id);
  v.mtu = in.local ? in.mtu : 0;
  v.generation = old.generation;
  bool same = (old.flags & AC_INST_LIVE) && old.ifindex == v.ifindex && old.endpoint == v.endpoint &&
              old.flags == v.flags && old.vni == v.vni && old.service_id == v.service_id && std::equal(v.mac, v.mac + 6, old.mac) &&
              std::equal(v.if_mac, v.if_mac + 6, old.if_mac);
  if (!same) ++v.generation;
  if (bpf_map_update_elem(fd, &in.id, &v, BPF_ANY) != 0) return fail_errno(format("write instance {}", in.id));
  return v.generation;
}

Result<void> Dataplane::del_instance(uint32_t id) {
  if (id == 0 || id >= AC_MAX_INSTANCES) return fail(format("instance id {} out of range", id), EINVAL);
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  ac_instance v{};
  if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(format("read instance {}", id));
  v.flags &= ~AC_INST_LIVE;
  ++v.generation;
  if (bpf_map_update_elem(fd, &id, &v, BPF_ANY) != 0) return fail_errno(format("withdraw instance {}", id));
  return {};
}

Result<double> Dataplane::set_wcmp_table(uint32_t service_id, std::span<const uint32_t> buckets) {
  if (service_id == 0 || service_id >= AC_MAX_SERVICES)
    return fail(format("service id {} out of range 1..{}", service_id, AC_MAX_SERVICES - 1), EINVAL);
  if (buckets.size() != AC_WCMP_BUCKETS)
    return fail(format("WCMP table has {} buckets, needs {}", buckets.size(), AC_WCMP_BUCKETS), EINVAL);
  std::vector<uint32_t> old(AC_WCMP_BUCKETS, 0);
  if (auto cur = wcmp_table(service_id); cur) old = *cur;

  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ac_wcmp_table", sizeof(uint32_t), sizeof(uint32_t),
                                AC_WCMP_BUCKETS, nullptr));
  if (!inner) return fail_errno("create WCMP table");
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i)
    if (bpf_map_update_elem(inner.get(), &i, &buckets[i], BPF_ANY) != 0) return fail_errno("fill WCMP table");
  int ifd = inner.get();
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id, &ifd, BPF_ANY) != 0)
    return fail_errno(format("swap WCMP table of service {}", service_id));
  size_t moved = 0;
  for (size_t i = 0; i < AC_WCMP_BUCKETS; ++i) moved += old[i] != buckets[i];
  return static_cast<double>(moved) / AC_WCMP_BUCKETS;
}

Result<double> Dataplane::set_wcmp_weights(uint32_t service_id, std::span<const WcmpMember> members) {
  auto current = wcmp_table(service_id);
  auto table = current ? rebalance_wcmp_table(*current, members) : build_wcmp_table(members);
  if (!table) return fail(format("WCMP weights of service {}: {}", service_id, table.error().message), EINVAL);
  return set_wcmp_table(service_id, *table);
}

Result<std::vector<uint32_t>> Dataplane::wcmp_table(uint32_t service_id) const {
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id, &inner_id) != 0)
    return fail_errno(format("service {} has no WCMP table", service_id));
  UniqueFd fd(bpf_map_get_fd_by_id(inner_id));
  if (!fd) return fail_errno("open WCMP table");
  return read_table(fd.get());
}

Result<void> Dataplane::del_wcmp_table(uint32_t service_id) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id) != 0 && errno != ENOENT)
    return fail_errno(format("delete WCMP table of service {}", service_id));
  return {};
}

Result<std::vector<PathEntry>> Dataplane::paths() const {
  int fd = bpf_map__fd(skel_->maps.ac_paths);
  std::vector<PathEntry> out;
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    ac_path p{};
    if (bpf_map_lookup_elem(fd, &key, &p) != 0) continue;
    uint32_t spsi = ntohl(key);
    out.push_back({spsi >> 8, static_cast<uint8_t>(spsi & 0xff), p.service_id, (p.flags & AC_PATH_LAST_HOP) != 0});
  }
  return out;
}

Result<std::vector<uint32_t>> Dataplane::live_instances() const {
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  std::vector<uint32_t> out;
  for (uint32_t id = 1; id < AC_MAX_INSTANCES; ++id) {
    ac_instance v{};
    if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(format("read instance {}", id));
    if (v.flags & AC_INST_LIVE) out.push_back(id);
  }
  return out;
}

Result<std::vector<ac_counter>> Dataplane::stats() const {
  return read_stats(bpf_map__fd(skel_->maps.ac_stats));
}

Result<ac_counter> Dataplane::path_stats(uint32_t spi, uint8_t si) const {
  uint32_t key = spsi_key(spi, si);
  ac_path p{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_paths), &key, &p) != 0)
    return fail(format("no path {}:{}", spi, si), ENOENT);
  return read_percpu_counter(bpf_map__fd(skel_->maps.ac_path_stats), p.stats_idx, "path stats");
}

Result<ac_counter> Dataplane::instance_stats(uint32_t id) const {
  return read_percpu_counter(bpf_map__fd(skel_->maps.ac_inst_stats), id, "instance stats");
}

// Sum a per-CPU ac_counter value.
Result<ac_counter> read_percpu_counter(int fd, uint32_t key, const char* what) {
  std::vector<ac_counter> v(num_cpus());
  if (bpf_map_lookup_elem(fd, &key, v.data()) != 0) return fail_errno(format("read {} [{}]", what, key));
  ac_counter sum{};
  for (const auto& c : v) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

Result<std::vector<ac_counter>> read_stats(int fd) {
  std::vector<ac_counter> out(AC_STAT_SLOTS);
  for (const auto& r : stat_reasons()) {
    auto c = read_percpu_counter(fd, r.slot, "ac_stats");
    if (!c) return std::unexpected(c.error());
    out[r.slot] = *c;
  }
  return out;
}

Result<uint64_t> current_jiffies() {
  std::ifstream f("/proc/timer_list");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("jiffies: ", 0) == 0) return std::stoull(line.substr(9));
  return fail("cannot read jiffies from /proc/timer_list", ENOENT);
}

Result<std::vector<FlowEntry>> read_flow_sets(int fd, uint32_t nsets, size_t limit, std::optional<uint32_t> spi) {
  std::vector<FlowEntry> out;
  std::vector<ac_flow_set> sets(num_cpus());
  auto now = current_jiffies();
  for (uint32_t idx = 0; idx < nsets && out.size() < limit; ++idx) {
    if (bpf_map_lookup_elem(fd, &idx, sets.data()) != 0) return fail_errno(format("read flow cache set {}", idx));
    // the same key can sit in this set on several CPUs: one entry, newest choice
    size_t first = out.size();
    for (const auto& set : sets) {
      for (const auto& w : set.way) {
        if (w.spi_si == 0 || w.instance_id == 0) continue;
        uint32_t spsi = ntohl(w.spi_si);
        if (spi && (spsi >> 8) != *spi) continue;
        auto it = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                               [&](const FlowEntry& e) { return spsi_key(e.spi, e.si) == w.spi_si && e.hash == w.hash; });
        if (it == out.end()) {
          out.push_back(FlowEntry{spsi >> 8, static_cast<uint8_t>(spsi & 0xff), w.hash, 0, 0, 0, 0, idx, -1});
          it = out.end() - 1;
        }
        ++it->cpus;
        if (it->cpus == 1 || w.last_seen >= it->last_seen) {
          it->last_seen = w.last_seen;
          it->instance_id = w.instance_id;
          it->generation = w.generation;
        }
      }
    }
  }
  if (out.size() > limit) out.resize(limit);
  if (now)
    for (auto& e : out)
      e.age_s = *now > e.last_seen ? static_cast<double>(*now - e.last_seen) * static_cast<double>(tick_ns()) / 1e9 : 0.0;
  return out;
}

Result<std::vector<FlowEntry>> Dataplane::flows(size_t limit) const {
  return read_flow_sets(bpf_map__fd(skel_->maps.ac_flow_cache), flow_sets(), limit);
}

Result<void> Dataplane::flush_flows() {
  int fd = bpf_map__fd(skel_->maps.ac_flow_cache);
  std::vector<ac_flow_set> empty(num_cpus());
  const uint32_t n = flow_sets();
  for (uint32_t idx = 0; idx < n; ++idx)
    if (bpf_map_update_elem(fd, &idx, empty.data(), BPF_ANY) != 0) return fail_errno("flush flow cache");
  // and the shared placements, so that flows are placed again by the tables in force
  int afd = bpf_map__fd(skel_->maps.ac_affinity);
  ac_affinity_key key{}, next{};
  while (bpf_map_get_next_key(afd, nullptr, &next) == 0) {
    key = next;
    if (bpf_map_delete_elem(afd, &key) != 0 && errno != ENOENT) return fail_errno("flush flow placements");
  }
  return {};
}

Result<void> Dataplane::flush_nexthops() {
  // one batch update of every slot (the agent flushes on every neighbour or route change)
  int fd = bpf_map__fd(skel_->maps.ac_nexthop);
  static const std::vector<uint32_t> keys = [] {
    std::vector<uint32_t> k(AC_NEXTHOP_SLOTS);
    for (uint32_t i = 0; i < AC_NEXTHOP_SLOTS; ++i) k[i] = i;
    return k;
  }();
  std::vector<ac_nexthop> empty(static_cast<size_t>(num_cpus()) * AC_NEXTHOP_SLOTS);
  uint32_t count = AC_NEXTHOP_SLOTS;
  LIBBPF_OPTS(bpf_map_batch_opts, bo);
  if (bpf_map_update_batch(fd, keys.data(), empty.data(), &count, &bo) != 0 || count != AC_NEXTHOP_SLOTS)
    return fail_errno("flush next-hop cache");
  return {};
}

// ---- XDP attach via libxdp ----

namespace {

enum xdp_attach_mode libxdp_mode(XdpMode m) {
  switch (m) {
    case XdpMode::Native: return XDP_MODE_NATIVE;
    case XdpMode::Generic: return XDP_MODE_SKB;
    case XdpMode::Auto: return XDP_MODE_UNSPEC;
  }
  return XDP_MODE_UNSPEC;
}

XdpMode from_libxdp(enum xdp_attach_mode m) { return m == XDP_MODE_SKB ? XdpMode::Generic : XdpMode::Native; }

Result<int> ifindex_of(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IF_NAMESIZE) return fail(format("bad interface name '{}'", ifname), EINVAL);
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) return fail(format("interface '{}' does not exist", ifname), ENODEV);
  return static_cast<int>(idx);
}

struct MultiprogDeleter {
  void operator()(xdp_multiprog* mp) const { xdp_multiprog__close(mp); }
};
using MultiprogPtr = std::unique_ptr<xdp_multiprog, MultiprogDeleter>;

// Our program on ifindex, if any (in a dispatcher or attached alone).
xdp_program* find_ours(xdp_multiprog* mp) {
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* p = xdp_multiprog__main_prog(mp);
    return p && std::string_view(xdp_program__name(p)) == kProgName ? p : nullptr;
  }
  for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
    if (std::string_view(xdp_program__name(p)) == kProgName) return p;
  return nullptr;
}

Result<MultiprogPtr> multiprog_of(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (long err = libxdp_get_error(mp); err) return fail_errno("query XDP programs", static_cast<int>(err));
  return MultiprogPtr(mp);
}

}  // namespace

Result<Attachment> Dataplane::attach(const std::string& ifname, XdpMode mode) {
  auto idx = ifindex_of(ifname);
  if (!idx) return std::unexpected(idx.error());
  if (auto mp = multiprog_of(*idx); mp && *mp) {
    if (xdp_program* p = find_ours(mp->get())) {
      XdpMode cur = from_libxdp(xdp_multiprog__attach_mode(mp->get()));
      if (mode != XdpMode::Auto && cur != mode)
        return fail(format("anychain is already attached to {} in {} mode; detach it first", ifname, to_string(cur)), EEXIST);
      if (auto r = describe_attached(ifname, *idx); !r) return std::unexpected(r.error());
      return Attachment{ifname, *idx, cur, xdp_program__id(p), !xdp_multiprog__is_legacy(mp->get())};
    }
  }
  // A fresh object from the same ELF whose maps resolve to our pins: every interface runs its
  // own program instance over the one set of maps.
  size_t sz = 0;
  const void* elf = anychain_bpf__elf_bytes(&sz);
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "anychain", .pin_root_path = opts_.pin_root.c_str());
  bpf_object* obj = bpf_object__open_mem(elf, sz, &oo);
  if (!obj) return fail_errno("open the anychain BPF object");
  std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj_guard(obj, bpf_object__close);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_flow_cache"), opts_.flow_cache_entries / AC_FLOW_WAYS);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_proxy"), opts_.proxy_entries);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_affinity"), opts_.flow_cache_entries);
  DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .obj = obj, .prog_name = kProgName);
  xdp_program* prog = xdp_program__create(&xo);
  if (long err = libxdp_get_error(prog); err) return fail_errno("create the XDP program", static_cast<int>(err));
  std::unique_ptr<xdp_program, void (*)(xdp_program*)> prog_guard(prog, xdp_program__close);
  int err = xdp_program__attach(prog, *idx, libxdp_mode(mode), 0);
  if (err) {
    if (err == -EOPNOTSUPP && mode == XdpMode::Native)
      return fail(format("{} does not support native XDP; use --mode generic or --mode auto", ifname), EOPNOTSUPP);
    if (err == -EEXIST || err == -EBUSY)
      return fail(format("{} already has an XDP program that libxdp cannot share (attached in another mode or "
                              "without a dispatcher)", ifname), -err);
    return fail_errno(format("attach XDP to {} in {} mode", ifname, to_string(mode)), err);
  }
  if (auto r = describe_attached(ifname, *idx); !r) return std::unexpected(r.error());
  Attachment a{ifname, *idx, mode, xdp_program__id(prog)};
  if (auto mp = multiprog_of(*idx); mp && *mp) {
    a.mode = from_libxdp(xdp_multiprog__attach_mode(mp->get()));
    a.dispatcher = !xdp_multiprog__is_legacy(mp->get());
  }
  return a;
}

// The program acts on an interface's frames only once ac_ifaces has its MAC: write it, keeping
// the roles the interface already has.
Result<void> Dataplane::describe_attached(const std::string& ifname, int ifindex) {
  auto mac = interface_mac(ifname);
  if (!mac) return std::unexpected(mac.error());
  const auto idx = static_cast<uint32_t>(ifindex);
  const bool direct = idx < AC_IFACE_DIRECT;
  ac_iface cur{};
  int fd = bpf_map__fd(direct ? skel_->maps.ac_ifaces : skel_->maps.ac_ifaces_hi);
  uint32_t roles = bpf_map_lookup_elem(fd, &idx, &cur) == 0 ? cur.flags & ~AC_IF_ATTACHED : 0;
  return set_interface(idx, roles, roles ? cur.instance_id : 0, *mac);
}

Result<void> Dataplane::detach(const std::string& ifname) {
  auto idx = ifindex_of(ifname);
  if (!idx) return std::unexpected(idx.error());
  auto mp = multiprog_of(*idx);
  if (!mp && mp.error().code == ENOENT) return fail(format("anychain is not attached to {} (no XDP program)", ifname), ENOENT);
  if (!mp) return std::unexpected(mp.error());
  xdp_program* p = *mp ? find_ours(mp->get()) : nullptr;
  if (!p) return fail(format("anychain is not attached to {}", ifname), ENOENT);
  int err = xdp_program__detach(p, *idx, xdp_multiprog__attach_mode(mp->get()), 0);
  if (err) return fail_errno(format("detach XDP from {}", ifname), err);
  return {};
}

Result<std::vector<Attachment>> Dataplane::attached(const std::vector<std::string>& ifnames) {
  std::vector<Attachment> out;
  for (const auto& n : ifnames) {
    auto idx = ifindex_of(n);
    if (!idx) continue;
    auto mp = multiprog_of(*idx);
    if (!mp || !*mp) continue;
    if (xdp_program* p = find_ours(mp->get()))
      out.push_back({n, *idx, from_libxdp(xdp_multiprog__attach_mode(mp->get())), xdp_program__id(p),
                     !xdp_multiprog__is_legacy(mp->get())});
  }
  return out;
}

Result<void> Dataplane::unpin_all(const std::string& pin_root) {
  std::error_code ec;
  std::filesystem::remove_all(pin_root, ec);
  if (ec) return fail(format("remove pins under {}: {}", pin_root, ec.message()), ec.value());
  return {};
}

}  // namespace anychain::dataplane
