// Parsing the built-in network functions' keys (parse_nf.h, docs/nf.md).
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <tuple>

#include "config/parse_nf.h"

namespace anychain::config::detail {
namespace {

// A firewall rule of an nf instance: the policy's match keys plus the action.
std::optional<NfRule> read_nf_rule(Ctx& ctx, const YAML::Node& n, const std::string& what) {
  MapReader r(ctx, n, what, {"action", "src", "dst", "proto", "sport", "dport"});
  if (!r.ok()) return std::nullopt;
  size_t before = ctx.diags.size();
  NfRule rule;
  rule.mark = r.mark();
  if (auto v = r.scalar("action", true, "pass or drop")) {
    if (v->Scalar() == "drop") rule.drop = true;
    else if (v->Scalar() == "pass") rule.drop = false;
    else ctx.err(*v, fmt::format("{}: bad action '{}' (pass or drop)", what, v->Scalar()));
  }
  r.prefix("src", rule.src, false, false);
  r.prefix("dst", rule.dst, false, false);
  if (auto v = r.scalar("proto", false, "a protocol")) {
    if (auto pr = parse_proto(v->Scalar()))
      rule.proto = *pr;
    else
      ctx.err(*v, fmt::format("{}: bad proto '{}' (tcp, udp, icmp, icmpv6, any or 0..255)", what, v->Scalar()));
  }
  for (auto [key, lo, hi] : {std::tuple{"sport", &rule.sport_lo, &rule.sport_hi},
                             std::tuple{"dport", &rule.dport_lo, &rule.dport_hi}}) {
    if (auto v = r.scalar(key, false, "a port or range")) {
      if (!parse_ports(v->Scalar(), *lo, *hi))
        ctx.err(*v, fmt::format("{}: bad {} '{}' (N or N-M, 0..65535, N <= M)", what, key, v->Scalar()));
      else if (rule.proto != 6 && rule.proto != 17)
        ctx.err(*v, fmt::format("{}: {} needs proto tcp or udp", what, key));
    }
  }
  if (ctx.diags.size() == before) {
    auto a = parse_prefix(rule.src), b = parse_prefix(rule.dst);
    if (a && b && rule.src != "any" && rule.dst != "any" && a->family != b->family)
      ctx.err(r.mark(), fmt::format("{}: src {} and dst {} are of different address families", what, rule.src, rule.dst));
  }
  if (ctx.diags.size() != before) return std::nullopt;
  return rule;
}

// The nf keys of an instance entry: nf (the kind), restart, and the kind's own section.
}  // namespace

void read_nf(Ctx& ctx, MapReader& r, Instance& in) {
  auto kind = r.scalar("nf", false, "a network function kind");
  const std::string what = r.what();
  if (!kind) {
    for (const char* k : {"restart", "nat", "monitor", "firewall", "ids", "ratelimit"})
      if (auto v = r.get(k, false)) ctx.err(*v, fmt::format("{}: '{}' is only for a built-in network function (nf:)", what, k));
    return;
  }
  NfConfig nf;
  nf.kind = kind->Scalar();
  auto in_list = [](const auto& list, const std::string& s) {
    return std::any_of(std::begin(list), std::end(list), [&](const char* k) { return s == k; });
  };
  if (!in_list(kNfKinds, nf.kind)) {
    ctx.err(*kind, fmt::format("{}: unknown nf '{}' (nat, monitor, firewall, ids, ratelimit, replica)", what, nf.kind));
    return;
  }
  if (!in_list(kNfKindsBuilt, nf.kind)) {
    ctx.err(*kind, fmt::format("{}: nf '{}' is not available yet (its program comes with the shared-state NFs); "
                               "built: nat, monitor, firewall, replica", what, nf.kind));
    return;
  }
  if (auto v = r.scalar("restart", false, "always or never")) {
    if (v->Scalar() == "always") nf.restart = true;
    else if (v->Scalar() == "never") nf.restart = false;
    else ctx.err(*v, fmt::format("{}: bad restart '{}' (always or never)", what, v->Scalar()));
  }
  for (const char* k : {"nat", "monitor", "firewall", "ids", "ratelimit"})
    if (k != nf.kind)
      if (auto v = r.get(k, false)) ctx.err(*v, fmt::format("{}: a '{}' section in an nf: {} instance", what, k, nf.kind));
  if (in.mac) ctx.err(r.mark(), fmt::format("{}: 'mac' is set by anychaind for an nf instance", what));
  if (!in.nsh_aware) ctx.err(r.mark(), fmt::format("{}: an nf instance is NSH-aware (nsh_aware: false)", what));
  if (!in.pid_file.empty() || !in.cgroup.empty())
    ctx.err(r.mark(), fmt::format("{}: 'pid_file' and 'cgroup' are anychaind's own for an nf instance", what));
  if (nf.kind == "nat") {
    auto sec = r.get("nat", true);
    if (sec) {
      MapReader nr(ctx, *sec, what + " nat", {"address", "ports", "idle_timeout_s"});
      if (nr.ok()) {
        if (auto v = nr.scalar("address", true, "an IPv4 address")) {
          if (!parse_ipv4(v->Scalar()))
            ctx.err(*v, fmt::format("{} nat: address '{}' is not an IPv4 address", what, v->Scalar()));
          else
            nf.nat_address = v->Scalar();
        }
        if (auto v = nr.scalar("ports", false, "a port range")) {
          if (!parse_ports(v->Scalar(), nf.nat_port_lo, nf.nat_port_hi) || nf.nat_port_lo == 0)
            ctx.err(*v, fmt::format("{} nat: bad ports '{}' (LO-HI, 1..65535, LO <= HI)", what, v->Scalar()));
        }
        uint32_t t = 0;
        if (nr.uint("idle_timeout_s", t, 0, 604800)) nf.idle_timeout_s = t;
      }
    }
  } else if (nf.kind == "monitor") {
    if (auto sec = r.get("monitor", false); sec && !sec->IsNull()) {
      MapReader mr(ctx, *sec, what + " monitor", {"idle_timeout_s"});
      uint32_t t = 0;
      if (mr.ok() && mr.uint("idle_timeout_s", t, 0, 604800)) nf.idle_timeout_s = t;
    }
  } else if (nf.kind == "ids") {
    if (auto sec = r.get("ids", false); sec && !sec->IsNull()) {
      MapReader ir(ctx, *sec, what + " ids", {"threshold", "action", "window_s", "filter", "sketch", "flagged", "flag_expire_s"});
      if (ir.ok()) {
        ir.uint("threshold", nf.ids_threshold, 1, 1u << 20);
        ir.uint("window_s", nf.window_s, 1, 86400);
        ir.uint("flagged", nf.ids_flagged, 1, 1u << 20);
        ir.uint("flag_expire_s", nf.ids_flag_expire_s, 0, 604800);
        if (auto v = ir.scalar("action", false, "pass or drop")) {
          if (v->Scalar() == "drop") nf.ids_drop = true;
          else if (v->Scalar() != "pass") ctx.err(*v, fmt::format("{} ids: bad action '{}' (pass or drop)", what, v->Scalar()));
        }
        // "HASHESxCELLS" / "ROWSxWIDTH": up to 8 hashes or rows, cells and width powers of two
        auto geometry = [&](const char* key, uint32_t& a, uint32_t& b, uint32_t lo, uint32_t hi) {
          auto v = ir.scalar(key, false, "NxM");
          if (!v) return;
          unsigned x = 0, y = 0;
          char tail = 0;
          if (std::sscanf(v->Scalar().c_str(), "%ux%u%c", &x, &y, &tail) != 2 || x < 1 || x > 8 || y < lo || y > hi ||
              (y & (y - 1)))
            ctx.err(*v, fmt::format("{} ids: bad {} '{}' (NxM: N 1..8, M a power of two {}..{})", what, key, v->Scalar(), lo, hi));
          else
            a = x, b = y;
        };
        geometry("filter", nf.ids_filter_hashes, nf.ids_filter_cells, 64, 1u << 22);
        geometry("sketch", nf.ids_sketch_rows, nf.ids_sketch_width, 16, 1u << 20);
      }
    }
  } else if (nf.kind == "ratelimit") {
    auto sec = r.get("ratelimit", true);
    if (sec) {
      MapReader lr(ctx, *sec, what + " ratelimit", {"limit", "unit", "window_s"});
      if (lr.ok()) {
        lr.uint("limit", nf.rl_limit, 1, uint64_t{1} << 62, true);
        lr.uint("window_s", nf.window_s, 1, 86400);
        if (auto v = lr.scalar("unit", false, "bytes or packets")) {
          if (v->Scalar() == "packets") nf.rl_packets = true;
          else if (v->Scalar() != "bytes") ctx.err(*v, fmt::format("{} ratelimit: bad unit '{}' (bytes or packets)", what, v->Scalar()));
        }
      }
    }
  } else if (nf.kind == "firewall") {
    if (auto sec = r.get("firewall", false); sec && !sec->IsNull()) {
      MapReader fr(ctx, *sec, what + " firewall", {"default", "rules"});
      if (fr.ok()) {
        if (auto v = fr.scalar("default", false, "pass or drop")) {
          if (v->Scalar() == "drop") nf.fw_default_drop = true;
          else if (v->Scalar() != "pass") ctx.err(*v, fmt::format("{} firewall: bad default '{}' (pass or drop)", what, v->Scalar()));
        }
        if (auto rules = fr.get("rules", false); rules && !rules->IsNull()) {
          if (!rules->IsSequence()) {
            ctx.err(*rules, fmt::format("{} firewall: 'rules' must be a list, got {}", what, kind_of(*rules)));
          } else if (rules->size() > AC_NF_FW_RULES) {
            ctx.err(*rules, fmt::format("{} firewall: {} rules, at most {}", what, rules->size(), AC_NF_FW_RULES));
          } else {
            size_t i = 0;
            for (const auto& e : *rules)
              if (auto rule = read_nf_rule(ctx, e, fmt::format("{} firewall rule {}", what, i++)))
                nf.fw_rules.push_back(std::move(*rule));
          }
        }
      }
    }
  }
  in.nf = std::move(nf);
}

void read_nf_node(Ctx& ctx, const YAML::Node& n, NfNode& out) {
  MapReader r(ctx, n, "nf", {"netns_prefix", "run_dir", "program"});
  if (r.ok()) {
    if (auto v = r.scalar("netns_prefix", false, "a name prefix")) {
      if (!v->Scalar().empty() && !valid_name(v->Scalar()))
        ctx.err(*v, fmt::format("nf: bad netns_prefix '{}' (up to 64 characters of A-Z a-z 0-9 _ . -)", v->Scalar()));
      else
        out.netns_prefix = v->Scalar();
    }
    for (auto [key, field] : {std::pair{"run_dir", &NfNode::run_dir}, std::pair{"program", &NfNode::program}}) {
      if (auto v = r.scalar(key, false, "an absolute path")) {
        if (!v->Scalar().starts_with("/"))
          ctx.err(*v, fmt::format("nf: {} '{}' must be an absolute path", key, v->Scalar()));
        else
          out.*field = v->Scalar();
      }
    }
  }
}

}  // namespace anychain::config::detail
