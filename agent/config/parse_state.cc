// `state:`: the replication port and interfaces, the HMAC keyring and the protocol's timers
// (docs/config.md, docs/state.md 3.9). Every error names the key and the bad value.
#include "config/parse_state.h"

#include <net/if.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>

namespace anychain::config::detail {
namespace {

constexpr size_t kMinKeyBytes = 32, kMaxKeyBytes = 64, kMaxKeys = 4;

// "0x..." or bare hex, 64..128 digits; lower-cased
std::optional<std::string> key_hex(std::string_view s, std::string& why) {
  if (s.starts_with("0x") || s.starts_with("0X")) s.remove_prefix(2);
  std::string out;
  for (char ch : s) {
    if (!std::isxdigit(static_cast<unsigned char>(ch))) {
      why = fmt::format("'{}' is not a hex digit", ch);
      return std::nullopt;
    }
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  }
  if (out.size() % 2) {
    why = fmt::format("{} hex digits, an odd number", out.size());
    return std::nullopt;
  }
  if (out.size() < 2 * kMinKeyBytes || out.size() > 2 * kMaxKeyBytes) {
    why = fmt::format("{} bytes, must be {}..{} (64..128 hex digits)", out.size() / 2, kMinKeyBytes, kMaxKeyBytes);
    return std::nullopt;
  }
  return out;
}

}  // namespace

void read_state(Ctx& ctx, const YAML::Node& n, State& out) {
  MapReader r(ctx, n, "state",
              {"port", "interfaces", "keys", "send_key", "max_skew_s", "scan_interval_ms", "keepalive_ms",
               "peer_window_kb", "window_s", "node_gone_grace_s"});
  out.mark = r.mark();
  if (!r.ok()) return;
  r.uint("port", out.port, 1, 65535);
  if (auto v = r.get("interfaces", false); v && !v->IsNull()) {
    if (!v->IsSequence()) {
      ctx.err(*v, fmt::format("state: 'interfaces' must be a list of interface names, got {}", kind_of(*v)));
    } else {
      for (const auto& e : *v) {
        if (!e.IsScalar() || e.Scalar().empty() || e.Scalar().size() >= IF_NAMESIZE ||
            e.Scalar().find('/') != std::string::npos) {
          ctx.err(e, fmt::format("state: bad interface name '{}'", e.IsScalar() ? e.Scalar() : kind_of(e)));
          continue;
        }
        if (std::find(out.interfaces.begin(), out.interfaces.end(), e.Scalar()) != out.interfaces.end())
          ctx.err(e, fmt::format("state: interface '{}' is listed twice", e.Scalar()));
        else
          out.interfaces.push_back(e.Scalar());
      }
    }
  }
  if (auto v = r.get("keys", true)) {
    if (!v->IsSequence() || v->size() == 0) {
      ctx.err(*v, "state: 'keys' must be a list of 1..4 keys, each {id: 1..255, key: HEX}");
    } else {
      if (v->size() > kMaxKeys)
        ctx.err(*v, fmt::format("state: {} keys, at most {} (two during a rollover are enough)", v->size(), kMaxKeys));
      std::map<unsigned, Mark> ids;
      for (const auto& e : *v) {
        MapReader k(ctx, e, "state: key", {"id", "key"});
        if (!k.ok()) continue;
        StateKey sk;
        sk.mark = k.mark();
        bool id_ok = k.uint("id", sk.id, 1, 255, true);
        if (auto h = k.scalar("key", true, "hex digits")) {
          std::string why;
          if (auto hex = key_hex(h->Scalar(), why))
            sk.hex = *hex;
          else
            ctx.err(*h, fmt::format("state: key {}: {}", id_ok ? std::to_string(sk.id) : "?", why));
        }
        if (!id_ok || sk.hex.empty()) continue;
        if (auto [it, fresh] = ids.emplace(sk.id, sk.mark); !fresh) {
          ctx.err(sk.mark, fmt::format("state: duplicate key id {} (first at line {})", sk.id, it->second.line));
          continue;
        }
        out.keys.push_back(std::move(sk));
      }
    }
  }
  if (auto v = r.scalar("send_key", false, "a key id")) {
    if (r.uint("send_key", out.send_key, 1, 255) && !out.keys.empty() &&
        std::none_of(out.keys.begin(), out.keys.end(), [&](const StateKey& k) { return k.id == out.send_key; }))
      ctx.err(*v, fmt::format("state: send_key {} is not one of the keys' ids", out.send_key));
  } else if (out.keys.size() > 1) {
    ctx.err(out.mark, fmt::format("state: {} keys and no send_key: say which id to send with", out.keys.size()));
  }
  r.uint("max_skew_s", out.max_skew_s, 0, 86400);
  r.uint("scan_interval_ms", out.scan_interval_ms, 1, 1000);
  r.uint("keepalive_ms", out.keepalive_ms, 10, 10000);
  r.uint("peer_window_kb", out.peer_window_kb, 16, 65536);
  r.uint("window_s", out.window_s, 1, 86400);
  r.uint("node_gone_grace_s", out.node_gone_grace_s, 1, 86400);
}

// Two NAT instances of this node with the same external address must allocate from disjoint
// blocks of ports (docs/state.md 4.3): with overlapping blocks both may give the same external
// port to different flows and the shared tables then keep one winner for both, delivering one
// flow's replies to the other's client. Instances on other nodes are not in this file: the agent
// checks their mappings in the replicated table (agent/state/nat_pool.h).
void validate_nat_pools(Ctx& ctx, const Config& c) {
  std::vector<const Instance*> nats;
  for (const auto& in : c.instances)
    if (in.nf && in.nf->kind == "nat" && !in.nf->nat_address.empty()) nats.push_back(&in);
  for (size_t i = 0; i < nats.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const NfConfig &a = *nats[j]->nf, &b = *nats[i]->nf;
      // a standby runs as the instance it stands by for (the same id): the same block, by design
      if (nats[i]->id && nats[i]->id == nats[j]->id) continue;
      if (a.nat_address != b.nat_address || b.nat_port_hi < a.nat_port_lo || a.nat_port_hi < b.nat_port_lo) continue;
      ctx.err(nats[i]->mark,
              fmt::format("instance '{}': nat ports {}-{} of {} overlap instance '{}''s {}-{} (line {}); each NAT "
                          "instance needs its own block of the pool, or both may give one external port to two "
                          "flows", nats[i]->name, b.nat_port_lo, b.nat_port_hi, b.nat_address, nats[j]->name,
                          a.nat_port_lo, a.nat_port_hi, nats[j]->mark.line));
    }
}

void validate_state(Ctx& ctx, const Config& c) {
  validate_nat_pools(ctx, c);
  if (!c.state) return;
  const State& s = *c.state;
  for (const auto& name : s.interfaces)
    if (std::none_of(c.interfaces.begin(), c.interfaces.end(), [&](const Interface& i) { return i.name == name; }))
      ctx.err(s.mark, fmt::format("state: interface '{}' is not under interfaces: (the fast path must own it to "
                                  "redirect the replication port)", name));
  if (s.port == AC_VXLAN_GPE_PORT)
    ctx.err(s.mark, fmt::format("state: port {} is VXLAN-GPE's (the NSH tunnel); pick another", s.port));
  if (s.port == c.ospf.local_port || s.port == c.ospf.local_port + 1)
    ctx.err(s.mark, fmt::format("state: port {} is one of ospf.local_port's ({} and {})", s.port, c.ospf.local_port,
                                c.ospf.local_port + 1));
}

}  // namespace anychain::config::detail
