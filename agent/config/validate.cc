// Whole-config checks (duplicates, references, limits) and the interface check that only
// --check-config makes.
#include <net/if.h>

#include <map>

#include "config/config.h"
#include "config/parse_ftc.h"
#include "config/parse_state.h"
#include "config/yaml_reader.h"

namespace anychain::config {

using detail::Ctx;
using detail::sort_diags;

Diagnostics validate(const Config& c, const std::string& file) {
  Ctx ctx{file, {}};
  // first definition of each key, to point at it from the duplicate
  auto dup = [&](auto& seen, const auto& key, Mark m, const std::string& msg) {
    auto [it, fresh] = seen.emplace(key, m);
    if (!fresh) {
      std::string where = it->second.known() ? fmt::format(" (first at line {})", it->second.line) : "";
      ctx.err(m, msg + where);
    }
  };
  std::map<std::string, Mark> names, anycasts;
  std::map<uint32_t, Mark> ids;
  for (const auto& s : c.services) {
    dup(names, s.name, s.mark, fmt::format("duplicate service name '{}'", s.name));
    dup(ids, s.id, s.mark, fmt::format("service '{}': duplicate service id {}", s.name, s.id));
    dup(anycasts, s.anycast, s.mark, fmt::format("service '{}': anycast {} is already used", s.name, s.anycast));
  }
  names.clear();
  ids.clear();
  for (const auto& ch : c.chains) {
    dup(names, ch.name, ch.mark, fmt::format("duplicate chain name '{}'", ch.name));
    dup(ids, ch.spi, ch.mark, fmt::format("chain '{}': duplicate SPI {}", ch.name, ch.spi));
    for (const auto& s : ch.services)
      if (!c.find_service(s)) ctx.err(ch.mark, fmt::format("chain '{}': unknown service '{}'", ch.name, s));
  }
  names.clear();
  for (const auto& p : c.policies) {
    dup(names, p.name, p.mark, fmt::format("duplicate policy name '{}'", p.name));
    if (!c.find_chain(p.chain)) ctx.err(p.mark, fmt::format("policy '{}': unknown chain '{}'", p.name, p.chain));
  }
  if (c.policies.size() > AC_MAX_POLICIES)
    ctx.err(c.policies[AC_MAX_POLICIES].mark,
            fmt::format("{} policies; the classifier holds at most {}", c.policies.size(), AC_MAX_POLICIES));
  names.clear();
  ids.clear();
  std::map<std::string, Mark> veths;
  for (const auto& in : c.instances) {
    dup(names, in.name, in.mark, fmt::format("duplicate instance name '{}'", in.name));
    if (!in.standby_for) dup(ids, in.id, in.mark, fmt::format("instance '{}': duplicate instance id {}", in.name, in.id));
    dup(veths, in.veth, in.mark, fmt::format("instance '{}': veth '{}' already belongs to another instance", in.name, in.veth));
    if (!c.find_service(in.service))
      ctx.err(in.mark, fmt::format("instance '{}': unknown service '{}'", in.name, in.service));
  }
  names.clear();
  for (const auto& i : c.interfaces) dup(names, i.name, i.mark, fmt::format("duplicate interface '{}'", i.name));
  for (const auto& in : c.instances)
    if (in.nf && names.count(in.veth))
      ctx.err(in.mark, fmt::format("instance '{}': veth '{}' is created by anychaind for its nf; it cannot also be "
                                   "under interfaces:", in.name, in.veth));
  detail::validate_ftc(ctx, c);
  detail::validate_standbys(ctx, c);
  detail::validate_state(ctx, c);
  sort_diags(ctx.diags);
  return ctx.diags;
}

Diagnostics check_interfaces(const Config& c, const std::string& file) {
  Diagnostics out;
  for (const auto& i : c.interfaces)
    if (if_nametoindex(i.name.c_str()) == 0) out.push_back({file, i.mark, fmt::format("interface '{}' does not exist", i.name)});
  for (const auto& in : c.instances)
    if (!in.nf && if_nametoindex(in.veth.c_str()) == 0)  // an nf instance's veth is the daemon's to create
      out.push_back({file, in.mark, fmt::format("instance '{}': veth '{}' does not exist", in.name, in.veth)});
  return out;
}

Diagnostics check_file(const std::string& path) {
  auto c = load_file(path);
  if (!c) return c.error();
  return check_interfaces(*c, path);
}

}  // namespace anychain::config
