#include "config/config.h"

#include <set>

#include "plane/wcmp_policy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "common/format.h"
#include "common/unique_fd.h"

namespace anychain::config {
namespace {

Mark mark_of(const YAML::Node& n) {
  if (!n.IsDefined()) return {};
  YAML::Mark m = n.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

const char* kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_ipv4(const std::string& s, in_addr* out = nullptr) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  if (out) *out = a;
  return true;
}

std::optional<dataplane::Mac> parse_mac(std::string_view s) {
  dataplane::Mac m{};
  if (s.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i && s[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i * 3, s.data() + i * 3 + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i * 3 + 2) return std::nullopt;
    m[i] = static_cast<uint8_t>(v);
  }
  return m;
}

std::optional<uint8_t> parse_proto(std::string_view s) {
  if (s == "any") return 0;
  if (s == "tcp") return 6;
  if (s == "udp") return 17;
  if (s == "icmp") return 1;
  if (s == "icmpv6" || s == "ipv6-icmp") return 58;
  uint64_t v;
  if (parse_u64(s, v) && v <= 255) return static_cast<uint8_t>(v);
  return std::nullopt;
}

bool parse_ports(std::string_view s, uint16_t& lo, uint16_t& hi) {
  auto dash = s.find('-');
  uint64_t a, b;
  if (dash == std::string_view::npos) {
    if (!parse_u64(s, a) || a > 65535) return false;
    b = a;
  } else if (!parse_u64(s.substr(0, dash), a) || !parse_u64(s.substr(dash + 1), b) || a > 65535 || b > 65535 ||
             a > b) {
    return false;
  }
  lo = static_cast<uint16_t>(a);
  hi = static_cast<uint16_t>(b);
  return true;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Collects diagnostics for one parse.
struct Ctx {
  std::string file;
  Diagnostics diags;
  void err(Mark m, std::string msg) { diags.push_back({file, m, std::move(msg)}); }
  void err(const YAML::Node& n, std::string msg) { err(mark_of(n), std::move(msg)); }
};

// One YAML map with a known set of keys: reports unknown and duplicate keys, then hands out
// typed values, reporting wrong types and ranges at the value's position.
class MapReader {
 public:
  MapReader(Ctx& ctx, const YAML::Node& node, std::string what, std::vector<std::string> allowed)
      : ctx_(ctx), node_(node), what_(std::move(what)) {
    if (!node.IsMap()) {
      ctx.err(node, format("{}: expected a map, got {}", what_, kind_of(node)));
      ok_ = false;
      return;
    }
    for (const auto& kv : node) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) {
        ctx.err(k, format("{}: keys must be scalars", what_));
        continue;
      }
      std::string key = k.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        ctx.err(k, format("{}: unknown key '{}' (expected one of: {})", what_, key, join(allowed)));
        continue;
      }
      if (values_.count(key)) {
        ctx.err(k, format("{}: duplicate key '{}'", what_, key));
        continue;
      }
      values_.emplace(key, kv.second);
    }
  }

  bool ok() const { return ok_; }
  Mark mark() const { return mark_of(node_); }
  const std::string& what() const { return what_; }

  std::optional<YAML::Node> get(const std::string& key, bool required) {
    auto it = values_.find(key);
    if (it == values_.end()) {
      if (required && ok_) ctx_.err(node_, format("{}: missing required key '{}'", what_, key));
      return std::nullopt;
    }
    return it->second;
  }

  std::optional<YAML::Node> scalar(const std::string& key, bool required, const char* expected) {
    auto n = get(key, required);
    if (!n) return std::nullopt;
    if (!n->IsScalar()) {
      ctx_.err(*n, format("{}: '{}' must be {}, got {}", what_, key, expected, kind_of(*n)));
      return std::nullopt;
    }
    return n;
  }

  bool str(const std::string& key, std::string& out, bool required = false) {
    auto n = scalar(key, required, "a string");
    if (!n) return false;
    out = n->Scalar();
    return true;
  }

  bool name(const std::string& key, std::string& out, bool required = true) {
    auto n = scalar(key, required, "a name");
    if (!n) return false;
    if (!valid_name(n->Scalar())) {
      ctx_.err(*n, format("{}: bad {} '{}' (1..64 characters of A-Z a-z 0-9 _ . -)", what_, key, n->Scalar()));
      return false;
    }
    out = n->Scalar();
    return true;
  }

  template <class T>
  bool uint(const std::string& key, T& out, uint64_t lo, uint64_t hi, bool required = false) {
    auto n = scalar(key, required, "an integer");
    if (!n) return false;
    uint64_t v;
    if (!parse_u64(n->Scalar(), v)) {
      ctx_.err(*n, format("{}: '{}' must be an integer, got '{}'", what_, key, n->Scalar()));
      return false;
    }
    if (v < lo || v > hi) {
      ctx_.err(*n, format("{}: '{}' = {} out of range {}..{}", what_, key, v, lo, hi));
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  bool boolean(const std::string& key, bool& out) {
    auto n = scalar(key, false, "true or false");
    if (!n) return false;
    const std::string& s = n->Scalar();
    if (s == "true" || s == "yes" || s == "on") {
      out = true;
    } else if (s == "false" || s == "no" || s == "off") {
      out = false;
    } else {
      ctx_.err(*n, format("{}: '{}' must be true or false, got '{}'", what_, key, s));
      return false;
    }
    return true;
  }

  bool real(const std::string& key, double& out, double lo, double hi) {
    auto n = scalar(key, false, "a number");
    if (!n) return false;
    const std::string& s = n->Scalar();
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      ctx_.err(*n, format("{}: '{}' must be a number, got '{}'", what_, key, s));
      return false;
    }
    if (!(v >= lo && v <= hi)) {
      ctx_.err(*n, format("{}: '{}' = {} out of range {}..{}", what_, key, s, lo, hi));
      return false;
    }
    out = v;
    return true;
  }

  // A prefix ("any", "10.0.0.0/8", "2001:db8::/32"); ipv4_only for anycast addresses.
  bool prefix(const std::string& key, std::string& out, bool required, bool ipv4_only) {
    auto n = scalar(key, required, "a prefix");
    if (!n) return false;
    auto p = dataplane::parse_prefix(n->Scalar());
    if (!p) {
      ctx_.err(*n, format("{}: {}", what_, p.error().message));
      return false;
    }
    if (ipv4_only && (p->family != AF_INET || n->Scalar().starts_with("any"))) {
      ctx_.err(*n, format("{}: '{}' must be an IPv4 prefix, got '{}'", what_, key, n->Scalar()));
      return false;
    }
    out = n->Scalar();
    return true;
  }

  Ctx& ctx() { return ctx_; }

 private:
  Ctx& ctx_;
  YAML::Node node_;
  std::string what_;
  bool ok_ = true;
  std::map<std::string, YAML::Node> values_;
};

std::string entry_what(const char* list, const YAML::Node& n) {
  if (n.IsMap() && n["name"].IsDefined() && n["name"].IsScalar())
    return format("{} '{}'", list, n["name"].Scalar());
  return format("{} entry", list);
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
  MapReader r(ctx, n, entry_what("chain", n), {"name", "spi", "services"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Chain c;
  c.mark = r.mark();
  r.name("name", c.name);
  r.uint("spi", c.spi, 1, 0xffffff, true);
  if (auto s = r.get("services", true)) {
    if (!s->IsSequence()) {
      ctx.err(*s, format("{}: 'services' must be a list of service names, got {}", r.what(), kind_of(*s)));
    } else if (s->size() == 0) {
      ctx.err(*s, format("{}: 'services' is empty; a chain needs at least one service", r.what()));
    } else if (s->size() > 254) {
      ctx.err(*s, format("{}: {} services, at most 254 fit in the service index", r.what(), s->size()));
    } else {
      for (const auto& e : *s) {
        if (!e.IsScalar() || !valid_name(e.Scalar()))
          ctx.err(e, format("{}: services must be service names", r.what()));
        else
          c.services.push_back(e.Scalar());
      }
    }
  }
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
      ctx.err(*v, format("{}: bad proto '{}' (tcp, udp, icmp, icmpv6, any or 0..255)", r.what(), v->Scalar()));
  }
  for (auto [key, lo, hi] : {std::tuple{"sport", &p.sport_lo, &p.sport_hi}, std::tuple{"dport", &p.dport_lo, &p.dport_hi}}) {
    if (auto v = r.scalar(key, false, "a port or range")) {
      if (!parse_ports(v->Scalar(), *lo, *hi))
        ctx.err(*v, format("{}: bad {} '{}' (N or N-M, 0..65535, N <= M)", r.what(), key, v->Scalar()));
      else if (p.proto != 6 && p.proto != 17)
        ctx.err(*v, format("{}: {} needs proto tcp or udp", r.what(), key));
    }
  }
  bool sym = false;
  if (r.boolean("symmetric", sym)) p.symmetric = sym;
  r.uint("md_type", p.md_type, 1, 2);
  if (ctx.diags.size() == before) {
    auto s = dataplane::parse_prefix(p.src), d = dataplane::parse_prefix(p.dst);
    if (s && d && s->len && d->len && s->family != d->family)
      ctx.err(r.mark(), format("{}: src {} and dst {} are of different address families", r.what(), p.src, p.dst));
  }
  if (ctx.diags.size() != before) return std::nullopt;
  return p;
}

std::optional<Instance> read_instance(Ctx& ctx, const YAML::Node& n) {
  MapReader r(ctx, n, entry_what("instance", n),
              {"name", "id", "service", "veth", "mac", "capacity", "nsh_aware", "pid_file", "cgroup"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  Instance in;
  in.mark = r.mark();
  r.name("name", in.name);
  r.uint("id", in.id, 1, AC_MAX_INSTANCES - 1, true);
  r.name("service", in.service);
  if (auto v = r.scalar("veth", true, "an interface name")) {
    if (v->Scalar().empty() || v->Scalar().size() >= IF_NAMESIZE || v->Scalar().find('/') != std::string::npos)
      ctx.err(*v, format("{}: bad interface name '{}'", r.what(), v->Scalar()));
    else
      in.veth = v->Scalar();
  }
  if (auto v = r.scalar("mac", false, "a MAC address")) {
    auto m = parse_mac(v->Scalar());
    if (!m)
      ctx.err(*v, format("{}: bad MAC '{}' (aa:bb:cc:dd:ee:ff)", r.what(), v->Scalar()));
    else if ((*m)[0] & 1)
      ctx.err(*v, format("{}: MAC '{}' is a multicast address", r.what(), v->Scalar()));
    else if (*m == dataplane::Mac{})
      ctx.err(*v, format("{}: MAC '{}' is all zeros", r.what(), v->Scalar()));
    else
      in.mac = *m;
  }
  r.uint("capacity", in.capacity, 1, 1'000'000'000'000ULL, true);
  r.boolean("nsh_aware", in.nsh_aware);
  r.str("pid_file", in.pid_file);
  r.str("cgroup", in.cgroup);
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
      ctx.err(*v, format("{}: bad interface name '{}'", r.what(), v->Scalar()));
    else
      i.name = v->Scalar();
  }
  if (auto v = r.scalar("mode", false, "native, generic or auto")) {
    if (v->Scalar() != "native" && v->Scalar() != "generic" && v->Scalar() != "auto")
      ctx.err(*v, format("{}: bad mode '{}' (native, generic or auto)", r.what(), v->Scalar()));
    else
      i.mode = *dataplane::parse_xdp_mode(v->Scalar());
  }
  r.boolean("classify", i.classify);
  if (ctx.diags.size() != before) return std::nullopt;
  return i;
}

template <class T, class F>
void read_list(Ctx& ctx, const YAML::Node& root, const char* key, std::vector<T>& out, F read) {
  YAML::Node n = root[key];
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    ctx.err(n, format("'{}' must be a list, got {}", key, kind_of(n)));
    return;
  }
  for (const auto& e : n)
    if (auto v = read(ctx, e)) out.push_back(std::move(*v));
}

void sort_diags(Diagnostics& d) {
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.mark.line, a.mark.column) < std::pair(b.mark.line, b.mark.column);
  });
}

template <class T>
Parsed<T> one(const YAML::Node& n, const std::string& file, std::optional<T> (*read)(Ctx&, const YAML::Node&)) {
  Ctx ctx{file, {}};
  auto v = read(ctx, n);
  if (!ctx.diags.empty() || !v) return std::unexpected(std::move(ctx.diags));
  return *v;
}

}  // namespace

std::string Diagnostic::str() const {
  std::string out;
  if (!file.empty()) out += file + ":";
  if (mark.known()) out += format("{}:{}:", mark.line, mark.column);
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
    ctx.err(Mark{e.mark.line + 1, e.mark.column + 1}, format("YAML syntax: {}", e.msg));
    return std::unexpected(std::move(ctx.diags));
  }
  Config c;
  if (!root.IsDefined() || root.IsNull()) {
    ctx.err(Mark{}, "the config is empty (it needs at least node: nsh_endpoint)");
    return std::unexpected(std::move(ctx.diags));
  }
  MapReader top(ctx, root, "config",
                {"node", "interfaces", "ospf", "timers", "wcmp", "services", "chains", "policies", "instances"});
  if (!top.ok()) return std::unexpected(std::move(ctx.diags));

  if (auto n = top.get("node", true)) {
    MapReader r(ctx, *n, "node",
                {"nsh_endpoint", "pin_root", "flow_cache_entries", "flow_timeout_s", "symmetric_hash", "nsh_ttl"});
    if (r.ok()) {
      if (auto v = r.scalar("nsh_endpoint", true, "an IPv4 address")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, format("node: nsh_endpoint '{}' is not an IPv4 address", v->Scalar()));
        else
          c.node.nsh_endpoint = v->Scalar();
      }
      if (auto v = r.scalar("pin_root", false, "a path")) {
        if (!v->Scalar().starts_with("/"))
          ctx.err(*v, format("node: pin_root '{}' must be an absolute path on a bpffs", v->Scalar()));
        else
          c.node.pin_root = v->Scalar();
      }
      r.uint("flow_cache_entries", c.node.flow_cache_entries, 1024, 1u << 24);
      r.uint("flow_timeout_s", c.node.flow_timeout_s, 0, 86400);
      r.boolean("symmetric_hash", c.node.symmetric_hash);
      r.uint("nsh_ttl", c.node.nsh_ttl, 2, 63);
    }
  }
  read_list(ctx, root, "interfaces", c.interfaces, read_interface);
  if (auto n = top.get("ospf", false)) {
    MapReader r(ctx, *n, "ospf", {"address", "port", "local_port", "opaque_type", "area"});
    if (r.ok()) {
      if (auto v = r.scalar("address", false, "an IPv4 address")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, format("ospf: address '{}' is not an IPv4 address", v->Scalar()));
        else
          c.ospf.address = v->Scalar();
      }
      r.uint("port", c.ospf.port, 1, 65535);
      r.uint("local_port", c.ospf.local_port, 1, 65534);
      r.uint("opaque_type", c.ospf.opaque_type, 128, 255);
      if (auto v = r.scalar("area", false, "a dotted area id")) {
        if (!parse_ipv4(v->Scalar()))
          ctx.err(*v, format("ospf: area '{}' must be dotted, like 0.0.0.0", v->Scalar()));
        else
          c.ospf.area = v->Scalar();
      }
    }
  }
  if (auto n = top.get("timers", false)) {
    MapReader r(ctx, *n, "timers",
                {"spf_delay_ms", "spf_hold_ms", "announce_interval_s", "cost_damping", "monitor_interval_s"});
    if (r.ok()) {
      r.uint("spf_delay_ms", c.timers.spf_delay_ms, 0, 60000);
      r.uint("spf_hold_ms", c.timers.spf_hold_ms, 0, 60000);
      r.uint("announce_interval_s", c.timers.announce_interval_s, 1, 3600);
      r.real("cost_damping", c.timers.cost_damping, 0.0, 1.0);
      r.uint("monitor_interval_s", c.timers.monitor_interval_s, 1, 3600);
    }
  }
  if (auto n = top.get("wcmp", false)) {
    MapReader r(ctx, *n, "wcmp", {"policy", "params"});
    if (r.ok()) {
      if (auto v = r.scalar("policy", false, "a policy name")) {
        if (!plane::parse_wcmp_mode(v->Scalar()))
          ctx.err(*v, format("wcmp: unknown policy '{}' (bottleneck, bottleneck-residual, inverse-cost, ecmp)",
                             v->Scalar()));
        else
          c.wcmp.policy = v->Scalar();
      }
      if (auto p = r.get("params", false); p && !p->IsNull()) {
        if (!p->IsMap()) {
          ctx.err(*p, format("wcmp: 'params' must be a map, got {}", kind_of(*p)));
        } else {
          for (const auto& kv : *p) {
            if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
              ctx.err(kv.first, "wcmp: params must map names to scalar values");
              continue;
            }
            static const std::set<std::string> known = {"include_links", "floor", "inverse_scale", "cost_range",
                                                        "hold_down_ms"};
            if (!known.count(kv.first.Scalar())) {
              ctx.err(kv.first, format("wcmp: unknown param '{}' (include_links, floor, inverse_scale, cost_range, "
                                       "hold_down_ms)", kv.first.Scalar()));
              continue;
            }
            if (!c.wcmp.params.emplace(kv.first.Scalar(), kv.second.Scalar()).second)
              ctx.err(kv.first, format("wcmp: duplicate param '{}'", kv.first.Scalar()));
          }
        }
      }
    }
  }
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
  if (!in) return std::unexpected(Diagnostics{{path, {}, format("cannot read: {}", std::strerror(errno))}});
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

Diagnostics validate(const Config& c, const std::string& file) {
  Ctx ctx{file, {}};
  // first definition of each key, to point at it from the duplicate
  auto dup = [&](auto& seen, const auto& key, Mark m, const std::string& msg) {
    auto [it, fresh] = seen.emplace(key, m);
    if (!fresh) {
      std::string where = it->second.known() ? format(" (first at line {})", it->second.line) : "";
      ctx.err(m, msg + where);
    }
  };
  std::map<std::string, Mark> names, anycasts;
  std::map<uint32_t, Mark> ids;
  for (const auto& s : c.services) {
    dup(names, s.name, s.mark, format("duplicate service name '{}'", s.name));
    dup(ids, s.id, s.mark, format("service '{}': duplicate service id {}", s.name, s.id));
    dup(anycasts, s.anycast, s.mark, format("service '{}': anycast {} is already used", s.name, s.anycast));
  }
  names.clear();
  ids.clear();
  for (const auto& ch : c.chains) {
    dup(names, ch.name, ch.mark, format("duplicate chain name '{}'", ch.name));
    dup(ids, ch.spi, ch.mark, format("chain '{}': duplicate SPI {}", ch.name, ch.spi));
    for (const auto& s : ch.services)
      if (!c.find_service(s)) ctx.err(ch.mark, format("chain '{}': unknown service '{}'", ch.name, s));
  }
  names.clear();
  for (const auto& p : c.policies) {
    dup(names, p.name, p.mark, format("duplicate policy name '{}'", p.name));
    if (!c.find_chain(p.chain)) ctx.err(p.mark, format("policy '{}': unknown chain '{}'", p.name, p.chain));
  }
  if (c.policies.size() > AC_MAX_POLICIES)
    ctx.err(c.policies[AC_MAX_POLICIES].mark,
            format("{} policies; the classifier holds at most {}", c.policies.size(), AC_MAX_POLICIES));
  names.clear();
  ids.clear();
  std::map<std::string, Mark> veths;
  for (const auto& in : c.instances) {
    dup(names, in.name, in.mark, format("duplicate instance name '{}'", in.name));
    dup(ids, in.id, in.mark, format("instance '{}': duplicate instance id {}", in.name, in.id));
    dup(veths, in.veth, in.mark, format("instance '{}': veth '{}' already belongs to another instance", in.name, in.veth));
    if (!c.find_service(in.service))
      ctx.err(in.mark, format("instance '{}': unknown service '{}'", in.name, in.service));
  }
  names.clear();
  for (const auto& i : c.interfaces) dup(names, i.name, i.mark, format("duplicate interface '{}'", i.name));
  sort_diags(ctx.diags);
  return ctx.diags;
}

Diagnostics check_interfaces(const Config& c, const std::string& file) {
  Diagnostics out;
  for (const auto& i : c.interfaces)
    if (if_nametoindex(i.name.c_str()) == 0) out.push_back({file, i.mark, format("interface '{}' does not exist", i.name)});
  for (const auto& in : c.instances)
    if (if_nametoindex(in.veth.c_str()) == 0)
      out.push_back({file, in.mark, format("instance '{}': veth '{}' does not exist", in.name, in.veth)});
  return out;
}

Diagnostics check_file(const std::string& path) {
  auto c = load_file(path);
  if (!c) return c.error();
  return check_interfaces(*c, path);
}

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case 0: return "any";
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    default: return std::to_string(proto);
  }
}

std::string port_range(uint16_t lo, uint16_t hi) {
  if (lo == 0 && hi == 65535) return "";
  if (lo == hi) return std::to_string(lo);
  return format("{}-{}", lo, hi);
}

std::string mac_str(const dataplane::Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

std::string to_yaml(const Config& c) {
  auto num = [](double d) {
    std::ostringstream os;
    os.precision(15);
    os << d;
    return os.str();
  };
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "node" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "nsh_endpoint" << YAML::Value << c.node.nsh_endpoint;
  e << YAML::Key << "pin_root" << YAML::Value << c.node.pin_root;
  e << YAML::Key << "flow_cache_entries" << YAML::Value << c.node.flow_cache_entries;
  e << YAML::Key << "flow_timeout_s" << YAML::Value << c.node.flow_timeout_s;
  e << YAML::Key << "symmetric_hash" << YAML::Value << c.node.symmetric_hash;
  e << YAML::Key << "nsh_ttl" << YAML::Value << static_cast<unsigned>(c.node.nsh_ttl);
  e << YAML::EndMap;

  e << YAML::Key << "interfaces" << YAML::Value << YAML::BeginSeq;
  for (const auto& i : c.interfaces) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << i.name;
    e << YAML::Key << "mode" << YAML::Value << std::string(dataplane::to_string(i.mode));
    e << YAML::Key << "classify" << YAML::Value << i.classify << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "ospf" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "address" << YAML::Value << c.ospf.address;
  e << YAML::Key << "port" << YAML::Value << c.ospf.port;
  e << YAML::Key << "local_port" << YAML::Value << c.ospf.local_port;
  e << YAML::Key << "opaque_type" << YAML::Value << static_cast<unsigned>(c.ospf.opaque_type);
  e << YAML::Key << "area" << YAML::Value << c.ospf.area;
  e << YAML::EndMap;

  e << YAML::Key << "timers" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "spf_delay_ms" << YAML::Value << c.timers.spf_delay_ms;
  e << YAML::Key << "spf_hold_ms" << YAML::Value << c.timers.spf_hold_ms;
  e << YAML::Key << "announce_interval_s" << YAML::Value << c.timers.announce_interval_s;
  e << YAML::Key << "cost_damping" << YAML::Value << num(c.timers.cost_damping);
  e << YAML::Key << "monitor_interval_s" << YAML::Value << c.timers.monitor_interval_s;
  e << YAML::EndMap;

  e << YAML::Key << "wcmp" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "policy" << YAML::Value << c.wcmp.policy;
  e << YAML::Key << "params" << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : c.wcmp.params) e << YAML::Key << k << YAML::Value << v;
  e << YAML::EndMap << YAML::EndMap;

  e << YAML::Key << "services" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : c.services) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << s.name;
    e << YAML::Key << "id" << YAML::Value << s.id;
    e << YAML::Key << "anycast" << YAML::Value << s.anycast << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "chains" << YAML::Value << YAML::BeginSeq;
  for (const auto& ch : c.chains) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << ch.name;
    e << YAML::Key << "spi" << YAML::Value << ch.spi;
    e << YAML::Key << "services" << YAML::Value << YAML::Flow << ch.services << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "policies" << YAML::Value << YAML::BeginSeq;
  for (const auto& p : c.policies) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << p.name;
    e << YAML::Key << "chain" << YAML::Value << p.chain;
    e << YAML::Key << "src" << YAML::Value << p.src;
    e << YAML::Key << "dst" << YAML::Value << p.dst;
    e << YAML::Key << "proto" << YAML::Value << proto_name(p.proto);
    if (auto s = port_range(p.sport_lo, p.sport_hi); !s.empty()) e << YAML::Key << "sport" << YAML::Value << s;
    if (auto s = port_range(p.dport_lo, p.dport_hi); !s.empty()) e << YAML::Key << "dport" << YAML::Value << s;
    if (p.symmetric) e << YAML::Key << "symmetric" << YAML::Value << *p.symmetric;
    e << YAML::Key << "md_type" << YAML::Value << static_cast<unsigned>(p.md_type) << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
  for (const auto& in : c.instances) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << in.name;
    e << YAML::Key << "id" << YAML::Value << in.id;
    e << YAML::Key << "service" << YAML::Value << in.service;
    e << YAML::Key << "veth" << YAML::Value << in.veth;
    if (in.mac) e << YAML::Key << "mac" << YAML::Value << mac_str(*in.mac);
    e << YAML::Key << "capacity" << YAML::Value << in.capacity;
    e << YAML::Key << "nsh_aware" << YAML::Value << in.nsh_aware;
    if (!in.pid_file.empty()) e << YAML::Key << "pid_file" << YAML::Value << in.pid_file;
    if (!in.cgroup.empty()) e << YAML::Key << "cgroup" << YAML::Value << in.cgroup;
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Result<void> save_file(const Config& c, const std::string& path) {
  namespace fs = std::filesystem;
  std::string text = to_yaml(c);
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
  UniqueFd fd(mkstemp(tmpl.data()));
  if (!fd) return fail_errno(format("create a temporary file next to {}", path));
  auto cleanup = [&] { ::unlink(tmpl.c_str()); };
  struct stat st{};
  mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
  if (fchmod(fd.get(), mode) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(format("chmod {}", tmpl), e);
  }
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      cleanup();
      return fail_errno(format("write {}", tmpl), e);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(format("fsync {}", tmpl), e);
  }
  fd.reset();
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(format("rename {} to {}", tmpl, path), e);
  }
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) fsync(dfd.get());
  return {};
}

Result<std::vector<PathEntry>> chain_paths(const Config& c) {
  std::vector<PathEntry> out;
  for (const auto& ch : c.chains) {
    if (ch.services.empty() || ch.services.size() > 254)
      return fail(format("chain '{}' has {} services (1..254)", ch.name, ch.services.size()), EINVAL);
    uint8_t si = 255;
    for (const auto& name : ch.services) {
      const Service* s = c.find_service(name);
      if (!s) return fail(format("chain '{}': unknown service '{}'", ch.name, name), ENOENT);
      out.push_back({ch.spi, si, s->id, false});
      --si;
    }
    out.push_back({ch.spi, si, 0, true});
  }
  return out;
}

Result<std::vector<dataplane::PolicyRule>> to_policy_rules(const Config& c) {
  std::vector<dataplane::PolicyRule> out;
  for (const auto& p : c.policies) {
    const Chain* ch = c.find_chain(p.chain);
    if (!ch) return fail(format("policy '{}': unknown chain '{}'", p.name, p.chain), ENOENT);
    dataplane::PolicyRule r;
    auto src = dataplane::parse_prefix(p.src);
    if (!src) return std::unexpected(src.error());
    auto dst = dataplane::parse_prefix(p.dst);
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
    if (auto e = dataplane::encode_policy(r); !e)
      return fail(format("policy '{}': {}", p.name, e.error().message), e.error().code);
    out.push_back(r);
  }
  return out;
}

Result<dataplane::Config> to_dataplane_config(const Config& c) {
  dataplane::Config d;
  if (!parse_ipv4(c.node.nsh_endpoint, &d.local_endpoint))
    return fail(format("node: nsh_endpoint '{}' is not an IPv4 address", c.node.nsh_endpoint), EINVAL);
  d.symmetric_hash = c.node.symmetric_hash;
  d.flow_timeout_ns = static_cast<uint64_t>(c.node.flow_timeout_s) * 1'000'000'000ULL;
  d.default_ttl = c.node.nsh_ttl;
  return d;
}

}  // namespace anychain::config
