#include "daemon/from_config.h"

#include "nf/ftc_control.h"
#include "nf/netns.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace anychain::daemon {

namespace {

Result<uint32_t> dotted(const std::string& s, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return fail(fmt::format("{}: bad IPv4 address '{}'", what, s), EINVAL);
  return ntohl(a.s_addr);
}

plane::WcmpMode to_wcmp_mode(config::WcmpPolicy p) {
  switch (p) {
    case config::WcmpPolicy::Bottleneck: return plane::WcmpMode::BottleneckResidual;
    case config::WcmpPolicy::InverseCost: return plane::WcmpMode::InverseCost;
    case config::WcmpPolicy::Ecmp: return plane::WcmpMode::EqualCostMultipath;
  }
  return plane::WcmpMode::BottleneckResidual;
}

// the config's bound on an FTC NF's idle timeout is what other nodes' replicas assume (6.2)
static_assert(config::kFtcNfIdleMax == nf::kFtcDefaultPeerIdle);

// An instance's nf: entry as anychain-nf runs it
Result<nf::InstanceSpec> to_nf_spec(const config::Instance& in, const config::FtcNode& ftc) {
  const config::NfConfig& c = *in.nf;
  auto kind = nf::parse_kind(c.kind);
  if (!kind) return fail(fmt::format("instance {}: unknown nf '{}'", in.name, c.kind), EINVAL);
  nf::InstanceSpec s;
  s.name = in.name;
  s.veth = in.veth;
  s.restart = c.restart ? nf::Restart::Always : nf::Restart::Never;
  s.params.kind = *kind;
  s.params.instance_id = in.id;
  s.params.idle_timeout_s = c.idle_timeout_s.value_or(nf::info(*kind).idle_timeout_s);
  if (*kind == nf::Kind::Nat && inet_pton(AF_INET, c.nat_address.c_str(), &s.params.nat_address) != 1)
    return fail(fmt::format("instance {}: nat address '{}' is not an IPv4 address", in.name, c.nat_address), EINVAL);
  s.params.nat_port_lo = c.nat_port_lo;
  s.params.nat_port_hi = c.nat_port_hi;
  s.params.fw_default_drop = c.fw_default_drop;
  s.params.window_s = c.window_s;
  s.params.ids_threshold = c.ids_threshold;
  s.params.ids_drop = c.ids_drop;
  s.params.ids_pairs_hashes = c.ids_filter_hashes;
  s.params.ids_pairs_cells = c.ids_filter_cells;
  s.params.ids_sketch_rows = c.ids_sketch_rows;
  s.params.ids_sketch_width = c.ids_sketch_width;
  s.params.ids_flagged_max = c.ids_flagged;
  s.params.ids_flag_expire_s = c.ids_flag_expire_s;
  s.params.rl_limit = c.rl_limit;
  s.params.rl_packets = c.rl_packets;
  s.params.replica_records = c.replica_records.value_or(ftc.replica_records);  // the instance's, else the node's
  s.params.reorder_wait_us = c.reorder_wait_us.value_or(ftc.reorder_wait_us);
  for (const auto& r : c.fw_rules) {
    std::string text = fmt::format("{} src {} dst {} proto {}", r.drop ? "drop" : "pass", r.src, r.dst,
                                   config::proto_name(r.proto));
    if (auto p = config::port_range(r.sport_lo, r.sport_hi); !p.empty()) text += " sport " + p;
    if (auto p = config::port_range(r.dport_lo, r.dport_hi); !p.empty()) text += " dport " + p;
    auto rule = nf::parse_rule(text);
    if (!rule) return fail(fmt::format("instance {}: {}", in.name, rule.error().message), EINVAL);
    s.params.fw_rules.push_back(*rule);
  }
  if (auto v = nf::validate(s.params); !v) return fail(fmt::format("instance {}: {}", in.name, v.error().message), EINVAL);
  return s;
}

}  // namespace

std::string nf_program(const std::string& configured) {
  if (!configured.empty()) return configured;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back(self.parent_path() / "anychain-nf");
  candidates.push_back(ANYCHAIN_NF_INSTALLED);
  candidates.push_back(ANYCHAIN_NF_BUILT);
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c.string();
  return ANYCHAIN_NF_INSTALLED;
}

plane::WcmpConfig to_wcmp_config(const config::Wcmp& w) {
  plane::WcmpConfig out;
  out.mode = to_wcmp_mode(w.policy);
  out.include_links = w.include_links.value_or(out.include_links);
  out.floor = w.floor.value_or(out.floor);
  out.inverse_scale = w.inverse_scale.value_or(out.inverse_scale);
  return out;
}

Result<std::vector<dataplane::PathEntry>> chain_paths(const config::Config& c) {
  std::vector<dataplane::PathEntry> out;
  for (const auto& ch : c.chains) {
    if (ch.services.empty() || ch.services.size() > 254)
      return fail(fmt::format("chain '{}' has {} services (1..254)", ch.name, ch.services.size()), EINVAL);
    uint8_t si = 255;
    for (const auto& name : ch.services) {
      const config::Service* s = c.find_service(name);
      if (!s) return fail(fmt::format("chain '{}': unknown service '{}'", ch.name, name), ENOENT);
      out.push_back({ch.spi, si, s->id, false});
      --si;
    }
    out.push_back({ch.spi, si, 0, true});
  }
  return out;
}

Result<std::vector<PolicyRule>> to_policy_rules(const config::Config& c) {
  std::vector<PolicyRule> out;
  for (const auto& p : c.policies) {
    const config::Chain* ch = c.find_chain(p.chain);
    if (!ch) return fail(fmt::format("policy '{}': unknown chain '{}'", p.name, p.chain), ENOENT);
    PolicyRule r;
    auto src = parse_prefix(p.src);
    if (!src) return std::unexpected(src.error());
    auto dst = parse_prefix(p.dst);
    if (!dst) return std::unexpected(dst.error());
    r.src = *src;
    r.dst = *dst;
    // "any" on one side takes the family of the other side
    if (r.src.len == 0 && r.dst.len != 0 && p.src == "any") r.src.family = r.dst.family;
    if (r.dst.len == 0 && r.src.len != 0 && p.dst == "any") r.dst.family = r.src.family;
    r.proto = p.proto;
    r.sport_lo = p.sport_lo;
    r.sport_hi = p.sport_hi;
    r.dport_lo = p.dport_lo;
    r.dport_hi = p.dport_hi;
    r.spi = ch->spi;
    r.symmetric = p.symmetric.value_or(c.node.symmetric_hash);
    r.md2 = p.md_type == 2;
    if (auto f = c.ftc_of(*ch)) r.ftc_f = static_cast<uint8_t>(f->f);  // validated: 1..4, MD2
    if (auto e = dataplane::encode_policy(r); !e)
      return fail(fmt::format("policy '{}': {}", p.name, e.error().message), e.error().code);
    out.push_back(r);
  }
  return out;
}

Result<dataplane::Config> to_dataplane_config(const config::Config& c) {
  dataplane::Config d;
  if (inet_pton(AF_INET, c.node.nsh_endpoint.c_str(), &d.local_endpoint) != 1)
    return fail(fmt::format("node: nsh_endpoint '{}' is not an IPv4 address", c.node.nsh_endpoint), EINVAL);
  d.symmetric_hash = c.node.symmetric_hash;
  d.flow_timeout_ns = static_cast<uint64_t>(c.node.flow_timeout_s) * 1'000'000'000ULL;
  d.default_ttl = c.node.nsh_ttl;
  d.oam_forward = c.node.oam_forward;
  return d;
}

Result<AgentSpec> spec_from_config(const config::Config& c) {
  AgentSpec s;
  for (const auto& ch : c.chains) {
    auto f = c.ftc_of(ch);
    if (!f) continue;
    if (!s.ftc_buffer) s.ftc_buffer = ftc::BufferLimits{.packets = 0, .bytes = 64u << 20, .per_flow = 0, .max_hold_ns = 0};
    auto& b = *s.ftc_buffer;
    b.packets = std::max<size_t>(b.packets, f->buffer_frames);
    b.per_flow = std::max<size_t>(b.per_flow, f->buffer_per_partition);
    b.max_hold_ns = std::max<uint64_t>(b.max_hold_ns, uint64_t{f->hold_timeout_ms} * 1'000'000);
  }
  auto ep = dotted(c.node.nsh_endpoint, "node.nsh_endpoint");
  if (!ep) return unexpected(ep.error());
  s.nsh_endpoint.s_addr = htonl(*ep);
  if (s.ftc_buffer) {
    FtcChannelSpec ch;
    ch.self = *ep;
    ch.port = c.ftc.port;
    ch.interval = std::chrono::milliseconds(c.ftc.detect_interval_ms);
    ch.misses = c.ftc.detect_misses;
    ch.key_file = c.ftc.key_file;
    if (ch.key_file.empty() && c.state) {
      for (const auto& k : c.state->keys) {
        auto secret = state::parse_hex_key(k.hex);
        if (!secret) return unexpected(wrap(secret.error(), fmt::format("state: key {}", k.id)));
        ch.keys.push_back({k.id, std::move(*secret)});
      }
      ch.send_key = c.state->send_id();
    }
    s.ftc_channel = std::move(ch);
    s.ftc_propagate_after_ns = UINT64_MAX;
    for (const auto& chn : c.chains)
      if (auto f = c.ftc_of(chn))
        s.ftc_propagate_after_ns = std::min<uint64_t>(s.ftc_propagate_after_ns, uint64_t{f->propagate_after_ms} * 1'000'000);
  }
  s.dataplane.pin_root = c.node.pin_root;
  s.dataplane.flow_cache_entries = c.node.flow_cache_entries;
  s.dataplane.affinity_entries = c.node.affinity_entries;
  auto fc = to_dataplane_config(c);
  if (!fc) return unexpected(fc.error());
  s.fastpath = *fc;
  s.slow_path = c.node.slow_path;
  s.inner_mtu = c.node.inner_mtu;
  for (const auto& i : c.interfaces) s.interfaces.push_back({i.name, i.mode, i.classify});
  for (const auto& sv : c.services) {
    auto pf = parse_prefix(sv.anycast);
    if (!pf || pf->family != AF_INET) return fail(fmt::format("service {}: bad anycast prefix '{}'", sv.name, sv.anycast), EINVAL);
    uint32_t a;
    std::memcpy(&a, &pf->addr, 4);
    s.services.push_back({sv.name, sv.id, ntohl(a), pf->len});
  }
  for (const auto& in : c.instances) {
    LocalInstanceSpec l{.name = in.name, .id = in.id, .veth = in.veth, .mac = in.mac,
                        .capacity = static_cast<uint32_t>(in.capacity), .nsh_aware = in.nsh_aware,
                        .pid_file = in.pid_file, .cgroup = in.cgroup, .nf = std::nullopt};
    for (const auto& sv : s.services)
      if (sv.name == in.service) l.service_id = sv.id;
    if (!l.service_id) return fail(fmt::format("instance {}: unknown service '{}'", in.name, in.service), EINVAL);
    if (in.nf) {
      auto n = to_nf_spec(in, c.ftc);
      if (!n) return unexpected(n.error());
      l.nf = std::move(*n);
      l.mac = nf::nf_mac(in.id);  // the NF side of the veth the agent creates
    }
    (in.standby_for ? s.standbys : s.instances).push_back(l);
  }
  for (const auto& ch : c.chains) {
    auto f = c.ftc_of(ch);
    if (!f) continue;
    FtcChainSpec fc{.spi = ch.spi, .f = static_cast<uint8_t>(f->f), .services = {}};
    for (const auto& name : ch.services)
      for (const auto& sv : s.services)
        if (sv.name == name) fc.services.push_back(sv.id);
    s.ftc_chains.push_back(std::move(fc));
  }
  for (auto* list : {&s.instances, &s.standbys})
    for (auto& l : *list)
      for (const auto& fc : s.ftc_chains)
        if (std::find(fc.services.begin(), fc.services.end(), l.service_id) != fc.services.end()) l.ftc = true;
  s.ftc_recovery_hold = std::chrono::milliseconds(c.ftc.recovery_hold_ms);
  auto paths = chain_paths(c);
  if (!paths) return unexpected(paths.error());
  s.paths = std::move(*paths);
  auto rules = to_policy_rules(c);
  if (!rules) return unexpected(rules.error());
  s.policies = std::move(*rules);

  s.ospf.server_addr = c.ospf.address;
  s.ospf.server_port = c.ospf.port;
  s.ospf.local_port = c.ospf.local_port;
  s.ospf.opaque_type = c.ospf.opaque_type;
  auto area = dotted(c.ospf.area, "ospf.area");
  if (!area) return unexpected(area.error());
  s.ospf.area = *area;

  s.wcmp = to_wcmp_config(c.wcmp);
  s.cost_range = c.wcmp.cost_range.value_or(s.cost_range);
  if (c.wcmp.hold_down_ms) s.hold_down = std::chrono::milliseconds(*c.wcmp.hold_down_ms);
  // The rule that makes the reconnect backoff and the peers' hold-down agree: while ospfd is
  // away the agent tries at least every hold_down / 3, so it re-originates its LSAs within a
  // third of the hold after ospfd is back (at once when ospfd's pid file is watched).
  s.ospf.backoff_max = std::clamp(s.hold_down / 3, std::chrono::milliseconds(s.ospf.backoff_initial),
                                  std::chrono::milliseconds(8000));
  s.ospfd_pid_file = c.ospf.pid_file;
  s.timers = c.timers;
  s.nf.program = nf_program(c.nf.program);
  s.nf.run_dir = c.nf.run_dir;
  s.nf.netns_prefix = c.nf.netns_prefix;
  if (c.state) {
    ReplicationSpec r;
    r.port = c.state->port;
    r.interfaces = c.state->interfaces;
    if (r.interfaces.empty())
      for (const auto& i : c.interfaces) r.interfaces.push_back(i.name);
    for (const auto& k : c.state->keys) {
      auto secret = state::parse_hex_key(k.hex);
      if (!secret) return unexpected(wrap(secret.error(), fmt::format("state: key {}", k.id)));
      r.keys.push_back({k.id, std::move(*secret)});
    }
    r.send_key = c.state->send_id();
    r.max_skew_us = uint64_t{c.state->max_skew_s} * 1'000'000;
    r.scan_interval_us = uint64_t{c.state->scan_interval_ms} * 1'000;
    r.keepalive_us = uint64_t{c.state->keepalive_ms} * 1'000;
    r.window_bytes = uint64_t{c.state->peer_window_kb} * 1024;
    r.node_gone_grace_us = uint64_t{c.state->node_gone_grace_s} * 1'000'000;
    s.fastpath.state_port = r.port;  // the fast path hands this port to the agent's AF_XDP sockets
    s.state = std::move(r);
  }
  return s;
}

}  // namespace anychain::daemon
