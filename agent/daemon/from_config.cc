#include "daemon/from_config.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <set>

#include "common/format.h"

namespace anychain::daemon {

namespace {

Result<uint32_t> dotted(const std::string& s, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return fail(format("{}: bad IPv4 address '{}'", what, s), EINVAL);
  return ntohl(a.s_addr);
}

template <class T>
Result<T> number(const std::map<std::string, std::string>& m, const std::string& key, T def) {
  auto it = m.find(key);
  if (it == m.end()) return def;
  T v{};
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size())
    return fail(format("wcmp.params.{}: '{}' is not a number", key, it->second), EINVAL);
  return v;
}

}  // namespace

Result<AgentSpec> spec_from_config(const config::Config& c) {
  AgentSpec s;
  auto ep = dotted(c.node.nsh_endpoint, "node.nsh_endpoint");
  if (!ep) return unexpected(ep.error());
  s.nsh_endpoint.s_addr = htonl(*ep);
  s.dataplane.pin_root = c.node.pin_root;
  s.dataplane.flow_cache_entries = c.node.flow_cache_entries;
  auto fc = config::to_dataplane_config(c);
  if (!fc) return unexpected(fc.error());
  s.fastpath = *fc;
  for (const auto& i : c.interfaces) s.interfaces.push_back({i.name, i.mode, i.classify});
  for (const auto& sv : c.services) {
    auto pf = dataplane::parse_prefix(sv.anycast);
    if (!pf || pf->family != AF_INET) return fail(format("service {}: bad anycast prefix '{}'", sv.name, sv.anycast), EINVAL);
    uint32_t a;
    std::memcpy(&a, &pf->addr, 4);
    s.services.push_back({sv.name, sv.id, ntohl(a), pf->len});
  }
  for (const auto& in : c.instances) {
    LocalInstanceSpec l{.name = in.name, .id = in.id, .veth = in.veth, .mac = in.mac,
                        .capacity = static_cast<uint32_t>(in.capacity), .nsh_aware = in.nsh_aware,
                        .pid_file = in.pid_file, .cgroup = in.cgroup};
    for (const auto& sv : s.services)
      if (sv.name == in.service) l.service_id = sv.id;
    if (!l.service_id) return fail(format("instance {}: unknown service '{}'", in.name, in.service), EINVAL);
    s.instances.push_back(l);
  }
  auto paths = config::chain_paths(c);
  if (!paths) return unexpected(paths.error());
  for (const auto& p : *paths) s.paths.push_back({p.spi, p.si, p.service_id, p.last_hop});
  auto rules = config::to_policy_rules(c);
  if (!rules) return unexpected(rules.error());
  s.policies = *rules;

  s.ospf.server_addr = c.ospf.address;
  s.ospf.server_port = c.ospf.port;
  s.ospf.local_port = c.ospf.local_port;
  s.ospf.opaque_type = c.ospf.opaque_type;
  auto area = dotted(c.ospf.area, "ospf.area");
  if (!area) return unexpected(area.error());
  s.ospf.area = *area;

  static const std::set<std::string> kParams = {"include_links", "floor", "inverse_scale", "cost_range",
                                                "hold_down_ms"};
  for (const auto& [k, v] : c.wcmp.params)
    if (!kParams.count(k))
      return fail(format("wcmp.params.{}: unknown parameter (known: include_links, floor, inverse_scale, "
                         "cost_range, hold_down_ms)", k), EINVAL);
  auto mode = plane::parse_wcmp_mode(c.wcmp.policy);
  if (!mode) return unexpected(mode.error());
  s.wcmp.mode = *mode;
  if (auto it = c.wcmp.params.find("include_links"); it != c.wcmp.params.end()) {
    if (it->second != "true" && it->second != "false")
      return fail(format("wcmp.params.include_links: '{}' is not true or false", it->second), EINVAL);
    s.wcmp.include_links = it->second == "true";
  }
  auto floor = number<uint32_t>(c.wcmp.params, "floor", s.wcmp.floor);
  if (!floor) return unexpected(floor.error());
  s.wcmp.floor = *floor;
  auto scale = number<uint32_t>(c.wcmp.params, "inverse_scale", s.wcmp.inverse_scale);
  if (!scale) return unexpected(scale.error());
  s.wcmp.inverse_scale = *scale;
  auto range = number<uint32_t>(c.wcmp.params, "cost_range", 0);
  if (!range) return unexpected(range.error());
  s.cost_range = *range;
  auto hold = number<uint32_t>(c.wcmp.params, "hold_down_ms", 3000);
  if (!hold) return unexpected(hold.error());
  s.timers.hold_down = std::chrono::milliseconds(*hold);

  s.timers.spf_delay = std::chrono::milliseconds(c.timers.spf_delay_ms);
  s.timers.spf_hold = std::chrono::milliseconds(c.timers.spf_hold_ms);
  s.timers.announce_interval = std::chrono::milliseconds(1000ull * c.timers.announce_interval_s);
  s.timers.cost_damping = c.timers.cost_damping;
  return s;
}

}  // namespace anychain::daemon
