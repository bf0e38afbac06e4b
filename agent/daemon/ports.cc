#include "daemon/ports.h"

#include <fmt/format.h>

#include <algorithm>

#include "anychain/nsh.h"
#include "common/log.h"
#include "daemon/spec.h"

namespace anychain::daemon {

namespace {

constexpr unsigned kOuterLen = 36;  // outer IPv4, UDP, VXLAN-GPE

const char* kind_name(PortSpec::Kind k) {
  switch (k) {
    case PortSpec::Kind::Interface: return "interface";
    case PortSpec::Kind::InstanceVeth: return "instance veth";
    case PortSpec::Kind::SlowPath: return "slow path";
  }
  return "?";
}

std::string what(const PortSpec& p) {
  switch (p.kind) {
    case PortSpec::Kind::InstanceVeth: return fmt::format("{} (veth of instance {})", p.name, p.instance);
    case PortSpec::Kind::SlowPath: return fmt::format("{} (the slow path)", p.name);
    default: return p.name;
  }
}

nlohmann::json role_names(uint32_t roles) {
  nlohmann::json out = nlohmann::json::array();
  if (roles & AC_IF_CLASSIFY) out.push_back("classify");
  if (roles & AC_IF_VNF) out.push_back("vnf");
  if (roles & AC_IF_SLOW_PATH) out.push_back("slow_path");
  return out;
}

}  // namespace

std::vector<PortSpec> wanted_ports(const AgentSpec& spec, const std::string& slow_if) {
  std::vector<PortSpec> out;
  for (const auto& i : spec.interfaces)
    out.push_back({.name = i.name, .kind = PortSpec::Kind::Interface, .mode = i.mode,
                   .roles = i.classify ? AC_IF_CLASSIFY : 0u, .instance_id = 0, .instance = "", .nsh_aware = true});
  for (const auto& in : spec.instances) {
    auto it = std::find_if(out.begin(), out.end(), [&](const PortSpec& p) { return p.name == in.veth; });
    PortSpec p{.name = in.veth, .kind = PortSpec::Kind::InstanceVeth, .mode = XdpMode::Auto, .roles = AC_IF_VNF,
               .instance_id = in.id, .instance = in.name, .nsh_aware = in.nsh_aware};
    if (it == out.end()) {
      out.push_back(p);
    } else {  // also listed under interfaces: its mode, both roles
      p.mode = it->mode;
      p.roles |= it->roles;
      *it = p;
    }
  }
  if (!slow_if.empty())
    out.push_back({.name = slow_if, .kind = PortSpec::Kind::SlowPath, .mode = XdpMode::Generic,
                   .roles = AC_IF_SLOW_PATH, .instance_id = 0, .instance = "", .nsh_aware = true});
  return out;
}

void Ports::read_mtus(State& s) {
  const uint16_t before = s.spec.kind == PortSpec::Kind::InstanceVeth ? instance_mtu(s.spec.instance_id) : 0;
  if (auto l = LinkWatcher::query(s.spec.name)) s.mtu = l->mtu;
  if (s.spec.kind == PortSpec::Kind::InstanceVeth) {
    auto p = veth_peer(s.spec.name);
    s.peer_mtu = p ? p->mtu : 0;
    const uint16_t now = instance_mtu(s.spec.instance_id);
    if (now != before && on_instance_mtu) on_instance_mtu(s.spec.instance_id, now);
  }
}

void Ports::attach(State& s, std::vector<Error>* errors) {
  auto a = dp_.attach(s.spec.name, s.spec.mode);
  if (!a) {
    const bool missing = a.error().code == ENODEV;
    const std::string problem = missing ? "does not exist" : a.error().str();
    if (problem != s.problem) {
      if (missing) log::info("{} does not exist (yet): attached when it appears", what(s.spec));
      else log::warn("{}: {}", what(s.spec), problem);
    }
    s.problem = problem;
    s.attached = false;
    s.ifindex = 0;
    if (!missing && errors && s.spec.kind == PortSpec::Kind::Interface)
      errors->push_back(Error{a.error().code, fmt::format("interface {}: {}", s.spec.name, a.error().message)});
    return;
  }
  const bool changed = !s.attached || s.prog_id != a->prog_id || s.ifindex != a->ifindex;
  s.attached = true;
  s.ifindex = a->ifindex;
  s.prog_id = a->prog_id;
  if (auto e = dataplane::Dataplane::xdp_entry_id(s.ifindex)) s.entry_id = *e;
  s.mode = a->mode;
  s.problem.clear();
  if (changed) {
    log::info("attached to {} ({} mode, program {})", what(s.spec), to_string(a->mode), a->prog_id);
    if (!a->dispatcher && s.dispatcher)
      log::warn("{}: libxdp's dispatcher is not available on this kernel (no freplace programs): anychain is attached "
                "alone and cannot share {} with other XDP programs", s.spec.name, s.spec.name);
  }
  s.dispatcher = a->dispatcher;
  // its role, written every time: a role taken away (classify: false) is cleared too
  auto mac = dataplane::interface_mac(s.spec.name);
  auto r = mac ? dp_.set_interface(static_cast<uint32_t>(s.ifindex), s.spec.roles, s.spec.instance_id, *mac)
               : Result<void>(unexpected(mac.error()));
  if (!r) {
    log::warn("{}: its role in the fast path: {}", what(s.spec), r.error().str());
    if (errors && s.spec.kind == PortSpec::Kind::Interface) errors->push_back(r.error());
  }
  read_mtus(s);
}

std::vector<Error> Ports::apply(std::vector<PortSpec> want) {
  std::vector<Error> errors;
  // no longer wanted: detach what we attached
  for (auto it = ports_.begin(); it != ports_.end();) {
    const bool still = std::any_of(want.begin(), want.end(), [&](const PortSpec& p) { return p.name == it->first; });
    if (still) {
      ++it;
      continue;
    }
    State& s = it->second;
    if (s.attached) {
      auto r = dataplane::Dataplane::detach(s.spec.name);
      if (r || r.error().code == ENOENT) {
        log::info("detached from {}: no longer configured", s.spec.name);
        if (s.ifindex) (void)dp_.del_interface(static_cast<uint32_t>(s.ifindex));
      } else {
        log::warn("detach {}: {}", s.spec.name, r.error().str());
      }
    }
    it = ports_.erase(it);
  }
  for (auto& p : want) {
    State& s = ports_[p.name];
    const bool respec = s.spec.roles != p.roles || s.spec.mode != p.mode || s.spec.instance_id != p.instance_id;
    s.spec = std::move(p);
    if (respec && s.attached) log::debug("{}: role or mode changed", s.spec.name);
    attach(s, &errors);
  }
  return errors;
}

void Ports::on_link(const LinkEvent& e) {
  auto it = ports_.find(e.name);
  if (it == ports_.end()) {
    // a port renamed or deleted is known by its ifindex only
    it = std::find_if(ports_.begin(), ports_.end(), [&](const auto& kv) { return kv.second.ifindex == e.ifindex && e.ifindex; });
    if (it == ports_.end()) return;
  }
  State& s = it->second;
  if (!e.exists || e.name != s.spec.name) {
    if (s.attached) {
      log::info("{} is gone", what(s.spec));
      (void)dp_.del_interface(static_cast<uint32_t>(s.ifindex));
    }
    s.attached = false;
    s.ifindex = 0;
    s.problem = "does not exist";
    if (s.spec.kind == PortSpec::Kind::InstanceVeth && on_instance_mtu) on_instance_mtu(s.spec.instance_id, 0);
    return;
  }
  if (!s.attached || s.ifindex != e.ifindex) {
    attach(s, nullptr);
    return;
  }
  if (e.mtu != s.mtu) {
    // notifications can lag (the MTU at creation, then the one set at once): ask for it now
    const unsigned before = s.mtu;
    read_mtus(s);
    if (s.mtu != before) log::info("{}: MTU {} (was {})", what(s.spec), s.mtu, before);
  }
}

void Ports::refresh_mtus() {
  for (auto& [n, s] : ports_) {
    if (!s.attached) continue;
    // Cheap first: the program the kernel runs there is the one it ran when we last saw ours.
    // Only when it changed ask libxdp whether ours is (still) among them.
    auto entry = dataplane::Dataplane::xdp_entry_id(s.ifindex);
    if (!entry || *entry == 0 || *entry != s.entry_id) {
      auto live = dataplane::Dataplane::attached({n});
      const bool ours = live && std::any_of(live->begin(), live->end(), [&](const dataplane::Attachment& a) { return a.ifname == n; });
      if (live && !ours) {
        log::warn("{}: anychain's program was removed from it by someone else; attaching it again", what(s.spec));
        s.attached = false;
        attach(s, nullptr);
        continue;
      }
      if (ours && entry) s.entry_id = *entry;
    }
    read_mtus(s);
  }
}

void Ports::detach_all() {
  for (auto& [n, s] : ports_) {
    if (!s.attached) continue;
    if (auto r = dataplane::Dataplane::detach(n); !r && r.error().code != ENOENT) log::warn("{}", r.error().str());
    s.attached = false;
  }
}

uint16_t Ports::instance_mtu(uint32_t instance_id) const {
  for (const auto& [n, s] : ports_) {
    if (s.spec.kind != PortSpec::Kind::InstanceVeth || s.spec.instance_id != instance_id || !s.ifindex) continue;
    unsigned m = s.mtu;
    if (s.peer_mtu && (!m || s.peer_mtu < m)) m = s.peer_mtu;
    return static_cast<uint16_t>(std::min(m, 65535u));
  }
  return 0;
}

bool Ports::attached(const std::string& name) const {
  auto it = ports_.find(name);
  return it != ports_.end() && it->second.attached;
}

// The attachment the kernel has now: what we attached while the kernel runs the same entry
// program there (one netlink query), else asked from libxdp.
std::optional<dataplane::Attachment> Ports::live_attachment(const std::string& name, const State& s) const {
  if (s.attached && s.ifindex && s.entry_id)
    if (auto e = dataplane::Dataplane::xdp_entry_id(s.ifindex); e && *e == s.entry_id)
      return dataplane::Attachment{name, s.ifindex, s.mode, s.prog_id, s.dispatcher};
  if (auto live = dataplane::Dataplane::attached({name}))
    for (const auto& x : *live)
      if (x.ifname == name) return x;
  return std::nullopt;
}

nlohmann::json Ports::status(uint16_t inner_mtu, unsigned nsh_len, nlohmann::json& warnings) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [n, s] : ports_) {
    const std::optional<dataplane::Attachment> live = live_attachment(n, s);
    const dataplane::Attachment* a = live ? &*live : nullptr;
    nlohmann::json j = {{"name", n}, {"kind", kind_name(s.spec.kind)}, {"roles", role_names(s.spec.roles)},
                        {"attached", a != nullptr}};
    if (s.spec.kind == PortSpec::Kind::InstanceVeth) j["instance"] = s.spec.instance;
    if (a) {
      j["ifindex"] = a->ifindex;
      j["mode"] = std::string(to_string(a->mode));
      j["prog_id"] = a->prog_id;
      j["dispatcher"] = a->dispatcher;
    }
    if (s.ifindex) j["mtu"] = s.mtu;
    if (s.spec.kind == PortSpec::Kind::InstanceVeth && s.peer_mtu) j["peer_mtu"] = s.peer_mtu;
    const std::string who = s.spec.kind == PortSpec::Kind::InstanceVeth
                                ? fmt::format("instance {}: veth {}", s.spec.instance, n)
                                : fmt::format("{} {}", kind_name(s.spec.kind), n);
    if (!s.ifindex) {
      j["problem"] = "does not exist";
      warnings.push_back(fmt::format("{} does not exist: it is attached when it appears", who));
      out.push_back(j);
      continue;
    }
    if (!a) {
      j["problem"] = s.problem.empty() ? "no anychain program" : s.problem;
      warnings.push_back(s.spec.kind == PortSpec::Kind::InstanceVeth
                             ? fmt::format("{} has no anychain XDP program ({}): frames its VNF sends back are "
                                           "dropped by the kernel",
                                           who, j["problem"].get<std::string>())
                             : fmt::format("{} has no anychain XDP program ({})", who, j["problem"].get<std::string>()));
    }
    // room for NSH (nsh_len: MD type 1's 24 bytes, or the largest NSH where FTC logs ride in it):
    // a VNF veth carries the inner packet plus the NSH (or the bare packet through the SFC proxy),
    // a link to other nodes the inner packet plus NSH plus 36 bytes
    unsigned carries = s.mtu;
    if (s.peer_mtu && s.peer_mtu < carries) carries = s.peer_mtu;
    unsigned overhead = 0;
    bool check = false;
    if (s.spec.kind == PortSpec::Kind::InstanceVeth) {
      overhead = s.spec.nsh_aware ? nsh_len : 0;
      check = true;
    } else if (s.spec.kind == PortSpec::Kind::Interface && !(s.spec.roles & AC_IF_CLASSIFY)) {
      overhead = nsh_len + kOuterLen;
      check = true;
    }
    if (check && carries && carries < inner_mtu + overhead) {
      const unsigned room = carries > overhead ? carries - overhead : 0;
      j["inner_room"] = room;
      warnings.push_back(fmt::format(
          "{}: MTU {} leaves room for inner packets of {} bytes at most ({} needed for {}-byte inner packets{}): "
          "larger ones go through the slow path, fragmented or refused with ICMP (docs/slow-path.md)",
          who, carries, room, inner_mtu + overhead, inner_mtu,
          overhead ? fmt::format(" with {} bytes of NSH{}", nsh_len, overhead > nsh_len ? " and 36 of outer headers" : "")
                   : ""));
    }
    out.push_back(j);
  }
  return out;
}

}  // namespace anychain::daemon
