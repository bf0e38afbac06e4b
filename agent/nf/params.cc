#include "nf/params.h"

#include "anychain/crdt.h"
#include "anychain/maps.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <sstream>

namespace anychain::nf {
namespace {

bool parse_u(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

std::string prefix_text(const Prefix& p) {
  if (p.family == AF_UNSPEC) return "any";
  if (p.len == 0) return p.family == AF_INET ? "any4" : "any6";
  char b[INET6_ADDRSTRLEN];
  inet_ntop(p.family, &p.addr, b, sizeof b);
  return fmt::format("{}/{}", b, p.len);
}

// The prefix as the rule keeps it: "any" (either family) is AF_UNSPEC; "any4"/"any6" stay
// family-bound.
Result<Prefix> rule_prefix(std::string_view s) {
  if (s == "any") return Prefix{AF_UNSPEC, {}, 0};
  return parse_prefix(s);
}

void masks(const Prefix& p, __be32* addr, __be32* mask) {
  const auto* a = reinterpret_cast<const uint8_t*>(&p.addr);
  int bits = p.len;
  for (int w = 0; w < 4; ++w) {
    uint32_t m = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0 : ~((1u << (32 - bits)) - 1);
    bits -= 32;
    uint32_t v = (uint32_t(a[4 * w]) << 24) | (uint32_t(a[4 * w + 1]) << 16) | (uint32_t(a[4 * w + 2]) << 8) |
                 a[4 * w + 3];
    mask[w] = htonl(m);
    addr[w] = htonl(v & m);
  }
}

}  // namespace

Result<uint8_t> parse_proto(std::string_view s) {
  if (s == "any") return uint8_t{0};
  if (s == "tcp") return uint8_t{IPPROTO_TCP};
  if (s == "udp") return uint8_t{IPPROTO_UDP};
  if (s == "icmp") return uint8_t{IPPROTO_ICMP};
  if (s == "icmpv6" || s == "ipv6-icmp") return uint8_t{IPPROTO_ICMPV6};
  uint64_t v;
  if (parse_u(s, 255, v)) return static_cast<uint8_t>(v);
  return fail(fmt::format("bad protocol '{}' (tcp, udp, icmp, icmpv6, any or 0..255)", s), EINVAL);
}

std::string proto_text(uint8_t proto) {
  switch (proto) {
    case 0: return "any";
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    default: return std::to_string(proto);
  }
}

Result<std::pair<uint16_t, uint16_t>> parse_port_range(std::string_view s) {
  auto dash = s.find('-');
  uint64_t a = 0, b = 0;
  bool ok = dash == std::string_view::npos ? parse_u(s, 65535, a) && (b = a, true)
                                           : parse_u(s.substr(0, dash), 65535, a) && parse_u(s.substr(dash + 1), 65535, b);
  if (!ok || a > b) return fail(fmt::format("bad port range '{}' (N or N-M, 0..65535, N <= M)", s), EINVAL);
  return std::pair{static_cast<uint16_t>(a), static_cast<uint16_t>(b)};
}

Result<FirewallRule> parse_rule(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  auto bad = [&](const std::string& why) { return fail(fmt::format("rule '{}': {}", text, why), EINVAL); };
  if (w.empty()) return bad("empty (ACTION [src PREFIX] [dst PREFIX] [proto P] [sport N[-M]] [dport N[-M]])");
  FirewallRule r;
  if (w[0] == "drop") r.drop = true;
  else if (w[0] == "pass" || w[0] == "accept") r.drop = false;
  else return bad(fmt::format("the action must be pass or drop, not '{}'", w[0]));
  bool ports = false;
  std::vector<std::string> seen;
  for (size_t i = 1; i < w.size(); i += 2) {
    const std::string& k = w[i];
    if (i + 1 >= w.size()) return bad(fmt::format("'{}' needs a value", k));
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) return bad(fmt::format("'{}' given twice", k));
    seen.push_back(k);
    const std::string& v = w[i + 1];
    if (k == "src" || k == "dst") {
      auto p = rule_prefix(v);
      if (!p) return bad(p.error().message);
      (k == "src" ? r.src : r.dst) = *p;
    } else if (k == "proto") {
      auto p = parse_proto(v);
      if (!p) return bad(p.error().message);
      r.proto = *p;
    } else if (k == "sport" || k == "dport") {
      auto p = parse_port_range(v);
      if (!p) return bad(p.error().message);
      (k == "sport" ? r.sport_lo : r.dport_lo) = p->first;
      (k == "sport" ? r.sport_hi : r.dport_hi) = p->second;
      ports = true;
    } else {
      return bad(fmt::format("unknown word '{}' (src, dst, proto, sport, dport)", k));
    }
  }
  if (ports && r.proto != IPPROTO_TCP && r.proto != IPPROTO_UDP) return bad("sport and dport need proto tcp or udp");
  if (r.src.family != AF_UNSPEC && r.dst.family != AF_UNSPEC && r.src.family != r.dst.family)
    return bad("src and dst are of different address families");
  return r;
}

std::string to_text(const FirewallRule& r) {
  std::string out = r.drop ? "drop" : "pass";
  if (r.src.family != AF_UNSPEC) out += " src " + prefix_text(r.src);
  if (r.dst.family != AF_UNSPEC) out += " dst " + prefix_text(r.dst);
  if (r.proto) out += " proto " + proto_text(r.proto);
  auto range = [](uint16_t lo, uint16_t hi) { return lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi); };
  if (r.sport_lo != 0 || r.sport_hi != 65535) out += " sport " + range(r.sport_lo, r.sport_hi);
  if (r.dport_lo != 0 || r.dport_hi != 65535) out += " dport " + range(r.dport_lo, r.dport_hi);
  return out;
}

ac_nf_fw_rule encode(const FirewallRule& r) {
  ac_nf_fw_rule e{};
  int family = r.src.family != AF_UNSPEC ? r.src.family : r.dst.family;
  e.family = family == AF_INET ? 4 : family == AF_INET6 ? 6 : 0;
  masks(r.src, e.src, e.src_mask);
  masks(r.dst, e.dst, e.dst_mask);
  e.proto = r.proto;
  e.action = r.drop ? AC_NF_FW_DROP : AC_NF_FW_PASS;
  e.sport_lo = r.sport_lo;
  e.sport_hi = r.sport_hi;
  e.dport_lo = r.dport_lo;
  e.dport_hi = r.dport_hi;
  return e;
}

bool operator==(const FirewallRule& a, const FirewallRule& b) {
  ac_nf_fw_rule x = encode(a), y = encode(b);
  return std::memcmp(&x, &y, sizeof x) == 0;
}

FirewallRule decode(const ac_nf_fw_rule& e) {
  FirewallRule r;
  auto prefix = [&](const __be32* addr, const __be32* mask) {
    int bits = 0;
    for (int w = 0; w < 4; ++w) bits += __builtin_popcount(ntohl(mask[w]));
    if (e.family == 0) return Prefix{AF_UNSPEC, {}, 0};
    Prefix p{e.family == 4 ? AF_INET : AF_INET6, {}, static_cast<uint8_t>(bits)};
    std::memcpy(&p.addr, addr, e.family == 4 ? 4 : 16);
    return p;
  };
  r.src = prefix(e.src, e.src_mask);
  r.dst = prefix(e.dst, e.dst_mask);
  // a /0 side is "any" when the other side carries the family; both /0: src says any4/any6
  if (r.dst.family != AF_UNSPEC && r.dst.len == 0) r.dst.family = AF_UNSPEC;
  if (r.src.family != AF_UNSPEC && r.src.len == 0 && r.dst.family != AF_UNSPEC) r.src.family = AF_UNSPEC;
  r.drop = e.action == AC_NF_FW_DROP;
  r.proto = e.proto;
  r.sport_lo = e.sport_lo;
  r.sport_hi = e.sport_hi;
  r.dport_lo = e.dport_lo;
  r.dport_hi = e.dport_hi;
  return r;
}

bool windowed(Kind k) { return k == Kind::Ids || k == Kind::Ratelimit; }

Result<std::pair<uint32_t, uint32_t>> parse_geometry(std::string_view s) {
  auto x = s.find('x');
  uint64_t a = 0, b = 0;
  if (x == std::string_view::npos || !parse_u(s.substr(0, x), 0xffffffffu, a) || !parse_u(s.substr(x + 1), 0xffffffffu, b))
    return fail(fmt::format("bad geometry '{}' (NxM: hashes or rows x cells or width, e.g. 4x4096)", s), EINVAL);
  return std::pair{static_cast<uint32_t>(a), static_cast<uint32_t>(b)};
}

Result<void> validate(const Params& p) {
  const KindInfo& k = info(p.kind);
  if (k.program.empty())
    return fail(fmt::format("nf '{}' has no program yet ({})", k.name, k.what), EOPNOTSUPP);
  if (p.instance_id == 0 || p.instance_id >= AC_MAX_INSTANCES)
    return fail(fmt::format("instance id {} out of range 1..{}", p.instance_id, AC_MAX_INSTANCES - 1), EINVAL);
  if (p.kind == Kind::Nat) {
    if (p.nat_address.s_addr == 0) return fail("nat: the external address is missing", EINVAL);
    if (p.nat_port_lo == 0 || p.nat_port_lo > p.nat_port_hi)
      return fail(fmt::format("nat: bad port pool {}-{} (1..65535, lo <= hi)", p.nat_port_lo, p.nat_port_hi), EINVAL);
  }
  auto pow2 = [](uint64_t v) { return v && (v & (v - 1)) == 0; };
  if (windowed(p.kind) && (p.window_s == 0 || p.window_s > 86400))
    return fail(fmt::format("{}: window {} s out of range 1..86400", k.name, p.window_s), EINVAL);
  if (p.kind == Kind::Ids) {
    if (p.ids_threshold == 0) return fail("ids: the threshold must be at least 1 port", EINVAL);
    if (!pow2(p.ids_pairs_cells) || p.ids_pairs_cells < 64 || p.ids_pairs_cells > (1u << 22))
      return fail(fmt::format("ids: {} filter cells: a power of two, 64..4194304", p.ids_pairs_cells), EINVAL);
    if (p.ids_pairs_hashes < 1 || p.ids_pairs_hashes > AC_CRDT_MAX_ROWS)
      return fail(fmt::format("ids: {} filter hashes, 1..{}", p.ids_pairs_hashes, AC_CRDT_MAX_ROWS), EINVAL);
    if (p.ids_sketch_rows < 1 || p.ids_sketch_rows > AC_CRDT_MAX_ROWS)
      return fail(fmt::format("ids: {} sketch rows, 1..{}", p.ids_sketch_rows, AC_CRDT_MAX_ROWS), EINVAL);
    if (!pow2(p.ids_sketch_width) || p.ids_sketch_width < 16 || p.ids_sketch_width > (1u << 20))
      return fail(fmt::format("ids: sketch width {}: a power of two, 16..1048576", p.ids_sketch_width), EINVAL);
    if (p.ids_flagged_max < 1 || p.ids_flagged_max > (1u << 20))
      return fail(fmt::format("ids: {} flagged sources, 1..1048576", p.ids_flagged_max), EINVAL);
    if (p.ids_flag_expire_s > 7 * 86400)
      return fail(fmt::format("ids: flag expiry {} s, 0 (never) ..604800", p.ids_flag_expire_s), EINVAL);
  }
  if (p.kind == Kind::Ratelimit && p.rl_limit == 0)
    return fail("ratelimit: the limit is missing (bytes or packets per window, at least 1)", EINVAL);
  if (auto f = validate_ftc(p); !f) return f;
  if (p.fw_rules.size() > AC_NF_FW_RULES)
    return fail(fmt::format("firewall: {} rules, at most {}", p.fw_rules.size(), AC_NF_FW_RULES), EINVAL);
  if (p.kind != Kind::Firewall && (!p.fw_rules.empty() || p.fw_default_drop))
    return fail(fmt::format("firewall rules given to a {}", k.name), EINVAL);
  return {};
}

Result<void> validate_ftc(const Params& p) {
  if (p.replica_records < 1 || p.replica_records > kReplicaRecordsMax)
    return fail(fmt::format("replica records {}: out of range 1..{}", p.replica_records, kReplicaRecordsMax), EINVAL);
  if (p.reorder_wait_us < 1 || p.reorder_wait_us > kReorderWaitUsMax)
    return fail(fmt::format("reorder wait {} us: out of range 1..{} (a gap must be re-requested before its held "
                            "frames time out after 1 s)",
                            p.reorder_wait_us, kReorderWaitUsMax),
                EINVAL);
  return {};
}

std::vector<std::string> to_args(const Params& p) {
  std::vector<std::string> a{"--kind", std::string(to_string(p.kind)), "--instance-id", std::to_string(p.instance_id),
                             "--idle-timeout", std::to_string(p.idle_timeout_s)};
  if (p.kind == Kind::Nat) {
    char b[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &p.nat_address, b, sizeof b);
    a.insert(a.end(), {"--nat-address", b, "--nat-ports", fmt::format("{}-{}", p.nat_port_lo, p.nat_port_hi)});
  }
  if (windowed(p.kind)) a.insert(a.end(), {"--window", std::to_string(p.window_s)});
  if (p.kind == Kind::Ids)
    a.insert(a.end(), {"--ids-threshold", std::to_string(p.ids_threshold), "--ids-action", p.ids_drop ? "drop" : "pass",
                       "--ids-filter", fmt::format("{}x{}", p.ids_pairs_hashes, p.ids_pairs_cells), "--ids-sketch",
                       fmt::format("{}x{}", p.ids_sketch_rows, p.ids_sketch_width), "--ids-flagged",
                       std::to_string(p.ids_flagged_max), "--ids-flag-expire", std::to_string(p.ids_flag_expire_s)});
  if (p.kind == Kind::Ratelimit)
    a.insert(a.end(), {"--rl-limit", std::to_string(p.rl_limit), "--rl-unit", p.rl_packets ? "packets" : "bytes"});
  if (p.kind == Kind::Firewall) {
    a.insert(a.end(), {"--default", p.fw_default_drop ? "drop" : "pass"});
    for (const auto& r : p.fw_rules) a.insert(a.end(), {"--rule", to_text(r)});
  }
  a.insert(a.end(), {"--replica-records", std::to_string(p.replica_records), "--reorder-wait-us",
                     std::to_string(p.reorder_wait_us)});
  return a;
}

}  // namespace anychain::nf
