// Parsing: every section and list entry, each through MapReader (yaml_reader.h). Structural
// errors of one entry leave that entry out, so validate() does not cascade from a typo.
#include <net/if.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "config/config.h"
#include "config/parse_ftc.h"
#include "config/parse_nf.h"
#include "config/parse_state.h"
#include "config/yaml_reader.h"

namespace anychain::config {
namespace {

using namespace detail;

// Policy names as written in the file; the first of each policy is its canonical name.
constexpr std::pair<std::string_view, WcmpPolicy> kWcmpPolicies[] = {
    {"bottleneck", WcmpPolicy::Bottleneck},
    {"bottleneck-residual", WcmpPolicy::Bottleneck},
    {"inverse-cost", WcmpPolicy::InverseCost},
    {"ecmp", WcmpPolicy::Ecmp},
};



std::string entry_what(const char* list, const YAML::Node& n) {
  if (n.IsMap() && n["name"].IsDefined() && n["name"].IsScalar())
    return fmt::format("{} '{}'", list, n["name"].Scalar());
  return fmt::format("{} entry", list);
}

std::optional<Service> read_service(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("service", n), {"name", "id", "anycast"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Service s;
  s.mark = r.mark();
  r.name("name", s.name);
  r.uint("id", s.id, 1, AC_MAX_SERVICES - 1, true);
  if (r.prefix("anycast", s.anycast, true, true) && s.anycast.find('/') == std::string::npos) s.anycast += "/32";
  if (ctx.diags.size() != before) return std::nullopt;
  return s;
}

std::optional<Chain> read_chain(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("chain", n), {"name", "spi", "services", "ftc"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Chain c;
  c.mark = r.mark();
  r.name("name", c.name);
  r.uint("spi", c.spi, 1, 0xffffff, true);
  if (auto s = r.get("services", true)) {
    if (!s->IsSequence()) {
      ctx.err(*s, fmt::format("{}: 'services' must be a list of service names, got {}", r.what(), kind_of(*s)));
    } else if (s->size() == 0) {
      ctx.err(*s, fmt::format("{}: 'services' is empty; a chain needs at least one service", r.what()));
    } else if (s->size() > 254) {
      ctx.err(*s, fmt::format("{}: {} services, at most 254 fit in the service index", r.what(), s->size()));
    } else {
      for (const auto& e : *s) {
        if (!e.IsScalar() || !valid_name(e.Scalar()))
          ctx.err(e, fmt::format("{}: services must be service names", r.what()));
        else
          c.services.push_back(e.Scalar());
      }
    }
  }
  read_chain_ftc(ctx, r, c);
  if (ctx.diags.size() != before) return std::nullopt;
  return c;
}

std::optional<Policy> read_policy(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("policy", n),
              {"name", "chain", "src", "dst", "proto", "sport", "dport", "symmetric", "md_type"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Policy p;
  p.mark = r.mark();
  r.name("name", p.name);
  r.name("chain", p.chain);
  r.prefix("src", p.src, false, false);
  r.prefix("dst", p.dst, false, false);
  if (auto v = r.scalar("proto", false, "a protocol")) {
    if (auto pr = parse_proto(v->Scalar()))
      p.proto = *pr;
    else
      ctx.err(*v, fmt::format("{}: bad proto '{}' (tcp, udp, icmp, icmpv6, any or 0..255)", r.what(), v->Scalar()));
  }
  for (auto [key, lo, hi] : {std::tuple{"sport", &p.sport_lo, &p.sport_hi}, std::tuple{"dport", &p.dport_lo, &p.dport_hi}}) {
    if (auto v = r.scalar(key, false, "a port or range")) {
      if (!parse_ports(v->Scalar(), *lo, *hi))
        ctx.err(*v, fmt::format("{}: bad {} '{}' (N or N-M, 0..65535, N <= M)", r.what(), key, v->Scalar()));
      else if (p.proto != 6 && p.proto != 17)
        ctx.err(*v, fmt::format("{}: {} needs proto tcp or udp", r.what(), key));
    }
  }
  bool sym = false;
  if (r.boolean("symmetric", sym)) p.symmetric = sym;
  r.uint("md_type", p.md_type, 1, 2);
  if (ctx.diags.size() == before) {
    auto s = parse_prefix(p.src), d = parse_prefix(p.dst);
    if (s && d && s->len && d->len && s->family != d->family)
      ctx.err(r.mark(), fmt::format("{}: src {} and dst {} are of different address families", r.what(), p.src, p.dst));
  }
  if (ctx.diags.size() != before) return std::nullopt;
  return p;
}

std::optional<Instance> read_instance(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("instance", n),
              {"name", "id", "service", "veth", "mac", "capacity", "nsh_aware", "pid_file", "cgroup", "nf", "restart",
               "nat", "monitor", "firewall", "ids", "ratelimit", "standby_for", "ftc"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Instance in;
  in.mark = r.mark();
  r.name("name", in.name);
  uint32_t standby_for = 0;
  if (r.uint("standby_for", standby_for, 1, AC_MAX_INSTANCES - 1)) in.standby_for = standby_for;
  const bool standby_key = n.IsMap() && n["standby_for"];  // also when its value was refused
  const bool id_given = r.uint("id", in.id, 1, AC_MAX_INSTANCES - 1, !standby_key);
  if (in.standby_for && id_given && in.id != *in.standby_for)
    ctx.err(r.mark(), fmt::format("{}: a standby runs as the instance it stands by for: id {} is not standby_for {} "
                                  "(leave id out)", r.what(), in.id, *in.standby_for));
  else if (in.standby_for)
    in.id = *in.standby_for;
  r.name("service", in.service);
  if (auto v = r.scalar("veth", true, "an interface name")) {
    if (v->Scalar().empty() || v->Scalar().size() >= IF_NAMESIZE || v->Scalar().find('/') != std::string::npos)
      ctx.err(*v, fmt::format("{}: bad interface name '{}'", r.what(), v->Scalar()));
    else
      in.veth = v->Scalar();
  }
  if (auto v = r.scalar("mac", false, "a MAC address")) {
    auto m = parse_mac(v->Scalar());
    if (!m)
      ctx.err(*v, fmt::format("{}: bad MAC '{}' (aa:bb:cc:dd:ee:ff)", r.what(), v->Scalar()));
    else if ((*m)[0] & 1)
      ctx.err(*v, fmt::format("{}: MAC '{}' is a multicast address", r.what(), v->Scalar()));
    else if (*m == Mac{})
      ctx.err(*v, fmt::format("{}: MAC '{}' is all zeros", r.what(), v->Scalar()));
    else
      in.mac = *m;
  }
  r.uint("capacity", in.capacity, 1, 1'000'000'000'000ULL, true);
  r.boolean("nsh_aware", in.nsh_aware);
  r.str("pid_file", in.pid_file);
  r.str("cgroup", in.cgroup);
  read_nf(ctx, r, in);
  read_instance_ftc(ctx, r, in);
  if (ctx.diags.size() != before) return std::nullopt;
  return in;
}

std::optional<Interface> read_interface(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("interface", n), {"name", "mode", "classify"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Interface i;
  i.mark = r.mark();
  if (auto v = r.scalar("name", true, "an interface name")) {
    if (v->Scalar().empty() || v->Scalar().size() >= IF_NAMESIZE || v->Scalar().find('/') != std::string::npos)
      ctx.err(*v, fmt::format("{}: bad interface name '{}'", r.what(), v->Scalar()));
    else
      i.name = v->Scalar();
  }
  if (auto v = r.scalar("mode", false, "native, generic or auto")) {
    if (v->Scalar() != "native" && v->Scalar() != "generic" && v->Scalar() != "auto")
      ctx.err(*v, fmt::format("{}: bad mode '{}' (native, generic or auto)", r.what(), v->Scalar()));
    else
      i.mode = *parse_xdp_mode(v->Scalar());
  }
  r.boolean("classify", i.classify);
  if (ctx.diags.size() != before) return std::nullopt;
  return i;
}

// wcmp: the policy by name and its parameters, each with its type and range: the only place
// they are checked (the daemon maps them without checking again).
void read_wcmp(Ctx& ctx, const YAML::Node& n, Wcmp& out) {
  MapReader r(ctx, n, "wcmp", {"policy", "params"});
  if (!r.ok()) return;
  if (auto v = r.scalar("policy", false, "a policy name")) {
    if (auto p = parse_wcmp_policy(v->Scalar())) {
      out.policy = *p;
    } else {
      std::vector<std::string> names;
      for (const auto& [name, _] : kWcmpPolicies) names.emplace_back(name);
      ctx.err(*v, fmt::format("wcmp: unknown policy '{}' ({})", v->Scalar(), join(names)));
    }
  }
  auto params = r.get("params", false);
  if (!params || params->IsNull()) return;
  MapReader p(ctx, *params, "wcmp.params", {"include_links", "floor", "inverse_scale", "cost_range", "hold_down_ms"});
  if (!p.ok()) return;
  constexpr uint64_t kU32 = UINT32_MAX;
  bool b = false;
  if (p.boolean("include_links", b)) out.include_links = b;
  for (auto [key, field] : {std::pair{"floor", &Wcmp::floor}, std::pair{"inverse_scale", &Wcmp::inverse_scale},
                            std::pair{"cost_range", &Wcmp::cost_range}, std::pair{"hold_down_ms", &Wcmp::hold_down_ms}}) {
    uint32_t v = 0;
    if (p.uint(key, v, 0, kU32)) out.*field = v;
  }
}

template <class T, class F>
void read_list(Ctx& ctx, const YAML::Node& root, const char* key, std::vector<T>& out, F read) {
  YAML::Node n = root[key];
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    ctx.err(n, fmt::format("'{}' must be a list, got {}", key, kind_of(n)));
    return;
  }
  for (const auto& e : n)
    if (auto v = read(ctx, e)) out.push_back(std::move(*v));
}


template <class T>
Parsed<T> one(const YAML::Node& n, const std::string& file, std::optional<T> (*read)(Ctx&, const YAML::Node&)) {
  Ctx ctx{file, {}};
  auto v = read(ctx, n);
  if (!ctx.diags.empty() || !v) return std::unexpected(std::move(ctx.diags));
  return *v;
}


}  // namespace

std::string_view to_string(WcmpPolicy p) {
  for (const auto& [name, policy] : kWcmpPolicies)
    if (policy == p) return name;
  return "?";
}

std::optional<WcmpPolicy> parse_wcmp_policy(std::string_view s) {
  for (const auto& [name, policy] : kWcmpPolicies)
    if (name == s) return policy;
  return std::nullopt;
}

std::string Diagnostic::str() const {
  std::string out;
  if (!file.empty()) out += file + ":";
  if (mark.known()) out += fmt::format("{}:{}:", mark.line, mark.column);
  if (!out.empty()) out += " ";
  return out + "error: " + message;
}

void print(std::ostream& os, const Diagnostics& d) {
  for (const auto& e : d) os << e.str() << '\n';
}

const Service* Config::find_service(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}
const Chain* Config::find_chain(std::string_view name) const {
  for (const auto& c : chains)
    if (c.name == name) return &c;
  return nullptr;
}

Parsed<Service> parse_service(const YAML::Node& n, const std::string& file) { return one<Service>(n, file, read_service); }
Parsed<Chain> parse_chain(const YAML::Node& n, const std::string& file) { return one<Chain>(n, file, read_chain); }
Parsed<Policy> parse_policy(const YAML::Node& n, const std::string& file) { return one<Policy>(n, file, read_policy); }
Parsed<Instance> parse_instance(const YAML::Node& n, const std::string& file) {
  return one<Instance>(n, file, read_instance);
}

Parsed<Config> parse(std::string_view yaml, const std::string& file) {
  Ctx ctx{file, {}};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    ctx.err(Mark{e.mark.line + 1, e.mark.column + 1}, fmt::format("YAML syntax: {}", e.msg));
    return std::unexpected(std::move(ctx.diags));
  }
  Config c;
  if (!root.IsDefined() || root.IsNull()) {
    ctx.err(Mark{}, "the config is empty (it needs at least node: nsh_endpoint)");
    return std::unexpected(std::move(ctx.diags));
  }
  MapReader top(ctx, root, "config",
                {"node", "interfaces", "ospf", "timers", "wcmp", "nf", "ftc", "state", "services", "chains", "policies",
                 "instances"});
  if (!top.ok()) return std::unexpected(std::move(ctx.diags));

  if (auto n = top.get("node", true)) {
    MapReader r(ctx, *n, "node",
                {"nsh_endpoint", "pin_root", "flow_cache_entries", "affinity_entries", "flow_timeout_s", "symmetric_hash", "nsh_ttl",
                 "oam", "slow_path", "inner_mtu"});
    if (r.ok()) {
      if (auto v = r.scalar("nsh_endpoint", true, "an IPv4 address")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, fmt::format("node: nsh_endpoint '{}' is not an IPv4 address", v->Scalar()));
        else
          c.node.nsh_endpoint = v->Scalar();
      }
      if (auto v = r.scalar("pin_root", false, "a path")) {
        if (!v->Scalar().starts_with("/"))
          ctx.err(*v, fmt::format("node: pin_root '{}' must be an absolute path on a bpffs", v->Scalar()));
        else
          c.node.pin_root = v->Scalar();
      }
      r.uint("flow_cache_entries", c.node.flow_cache_entries, 1024, 1u << 24);
      r.uint("affinity_entries", c.node.affinity_entries, AC_AFFINITY_MIN, 1u << 24);
      r.uint("flow_timeout_s", c.node.flow_timeout_s, 0, 86400);
      r.boolean("symmetric_hash", c.node.symmetric_hash);
      r.uint("nsh_ttl", c.node.nsh_ttl, 2, 63);
      if (auto v = r.scalar("oam", false, "drop or forward")) {
        if (v->Scalar() != "drop" && v->Scalar() != "forward")
          ctx.err(*v, fmt::format("node: oam '{}' must be drop or forward", v->Scalar()));
        else
          c.node.oam_forward = v->Scalar() == "forward";
      }
      r.boolean("slow_path", c.node.slow_path);
      r.uint("inner_mtu", c.node.inner_mtu, 68, 65535);
    }
  }
  read_list(ctx, root, "interfaces", c.interfaces, read_interface);
  if (auto n = top.get("ospf", false)) {
    MapReader r(ctx, *n, "ospf", {"address", "port", "local_port", "opaque_type", "area", "pid_file"});
    if (r.ok()) {
      if (auto v = r.scalar("address", false, "an IPv4 address")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, fmt::format("ospf: address '{}' is not an IPv4 address", v->Scalar()));
        else
          c.ospf.address = v->Scalar();
      }
      r.uint("port", c.ospf.port, 1, 65535);
      r.uint("local_port", c.ospf.local_port, 1, 65534);
      r.uint("opaque_type", c.ospf.opaque_type, 128, 255);
      if (auto v = r.scalar("area", false, "a dotted area id")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, fmt::format("ospf: area '{}' must be dotted, like 0.0.0.0", v->Scalar()));
        else
          c.ospf.area = v->Scalar();
      }
      if (auto v = r.scalar("pid_file", false, "a path")) {
        if (v->Scalar().empty() || v->Scalar()[0] != '/')
          ctx.err(*v, fmt::format("ospf: pid_file '{}' must be an absolute path", v->Scalar()));
        else
          c.ospf.pid_file = v->Scalar();
      }
    }
  }
  if (auto n = top.get("timers", false)) {
    MapReader r(ctx, *n, "timers",
                {"spf_delay_ms", "spf_hold_ms", "announce_interval_s", "cost_damping", "monitor_interval_s",
                 "vnf_stall_s"});
    if (r.ok()) {
      r.duration("spf_delay_ms", c.timers.spf_delay, 0, 60000);
      r.duration("spf_hold_ms", c.timers.spf_hold, 0, 60000);
      r.duration("announce_interval_s", c.timers.announce_interval, 1, 3600);
      r.real("cost_damping", c.timers.cost_damping, 0.0, 1.0);
      r.duration("monitor_interval_s", c.timers.monitor_interval, 1, 3600);
      r.duration("vnf_stall_s", c.timers.vnf_stall, 0, 3600);
    }
  }
  if (auto n = top.get("wcmp", false)) read_wcmp(ctx, *n, c.wcmp);
  if (auto n = top.get("nf", false); n && !n->IsNull()) read_nf_node(ctx, *n, c.nf);
  if (auto n = top.get("ftc", false); n && !n->IsNull()) read_ftc_node(ctx, *n, c.ftc);
  if (auto n = top.get("state", false); n && !n->IsNull()) read_state(ctx, *n, c.state.emplace());
  read_list(ctx, root, "services", c.services, read_service);
  read_list(ctx, root, "chains", c.chains, read_chain);
  read_list(ctx, root, "policies", c.policies, read_policy);
  read_list(ctx, root, "instances", c.instances, read_instance);

  Diagnostics more = validate(c, file);
  ctx.diags.insert(ctx.diags.end(), more.begin(), more.end());
  if (!ctx.diags.empty()) {
    sort_diags(ctx.diags);
    return std::unexpected(std::move(ctx.diags));
  }
  return c;
}


Parsed<Config> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected(Diagnostics{{path, {}, fmt::format("cannot read: {}", std::strerror(errno))}});
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}


}  // namespace anychain::config
