#include "daemon/ftc_peers.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "anychain/ftc.h"
#include "anychain/maps.h"
#include "nf/kind.h"

namespace anychain::daemon {

namespace {

// The instances the plane knows for a service (live, held or recovering), by id.
std::vector<const plane::Candidate*> instances_of(const AgentSpec& spec, const plane::PlaneView& view, uint32_t svc) {
  std::vector<const plane::Candidate*> out;
  for (const auto& s : spec.services) {
    if (s.id != svc) continue;
    for (const auto& r : view.services)
      if (r.key.addr == s.anycast_addr && r.key.len == s.anycast_len)
        for (const auto& c : r.candidates) out.push_back(&c);
  }
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->info.instance_id < b->info.instance_id; });
  return out;
}

}  // namespace

FtcControls compute_ftc_controls(const AgentSpec& spec, const plane::PlaneView& view,
                                 const std::map<uint32_t, uint8_t>& incarnations) {
  FtcControls out;
  std::map<uint32_t, uint32_t> local_idle;  // instance id -> its NF's idle timeout (this node's)
  for (const auto& i : spec.instances)
    if (i.nf && i.nf->params.idle_timeout_s) local_idle[i.id] = i.nf->params.idle_timeout_s;
  for (const auto& x : spec.instances) {
    if (!x.ftc || !x.nf) continue;
    nf::FtcControl c;
    c.f = 0;
    if (auto it = incarnations.find(x.id); it != incarnations.end()) c.incarnation = it->second;
    std::map<uint16_t, nf::FtcPeer> peers;
    std::vector<uint16_t> successors;
    std::set<uint16_t> succ_seen;
    FtcRecoveryTarget target;
    auto add = [&](uint32_t svc, bool successor) {
      auto insts = instances_of(spec, view, svc);
      if (insts.empty()) out.problems.push_back(fmt::format("{}: no instance of service {} announced yet", x.name, svc));
      for (const auto* p : insts) {
        const uint32_t id = p->info.instance_id;
        if (id == x.id) continue;
        if (id == 0 || id >= AC_MAX_INSTANCES) {
          out.problems.push_back(fmt::format("{}: peer instance {} does not fit an FTC middlebox id (1..{})", x.name, id,
                                             AC_MAX_INSTANCES - 1));
          continue;
        }
        nf::FtcPeer peer{.id = static_cast<uint16_t>(id), .incarnation = static_cast<uint8_t>(p->info.incarnation),
                         .idle_timeout_s = nf::kFtcDefaultPeerIdle};
        if (auto li = local_idle.find(id); li != local_idle.end()) peer.idle_timeout_s = li->second;
        peers[peer.id] = peer;
        if (p->info.nsh_endpoint) {
          target.holders.insert(p->info.nsh_endpoint);
          target.holder_router[p->info.nsh_endpoint] = p->router;
        } else
          out.problems.push_back(fmt::format("{}: peer instance {} announces no NSH endpoint (not asked in recovery)",
                                             x.name, id));
        if (successor && succ_seen.insert(peer.id).second) successors.push_back(peer.id);
      }
    };
    for (const auto& ch : spec.ftc_chains) {
      const size_t n = ch.services.size();
      for (size_t h = 0; h < n; ++h) {
        if (ch.services[h] != x.service_id) continue;
        c.f = std::max(c.f, ch.f);
        for (size_t d = 1; d <= ch.f && d < n; ++d) add(ch.services[(h + d) % n], true);
        for (size_t d = 1; d <= ch.f && d < n; ++d) {
          const size_t before = (h + n - d) % n;
          add(ch.services[before], false);
          auto& sis = target.geo.replicated_sis[ch.spi];
          const auto si = static_cast<uint8_t>(255 - before);  // SI 255 is the chain's first hop
          if (std::find(sis.begin(), sis.end(), si) == sis.end()) sis.push_back(si);
        }
      }
    }
    if (c.f == 0) continue;  // ftc set but on no FTC chain (cannot happen from a config)
    for (const auto& [id, p] : peers) c.peers.push_back(p);
    c.successors = std::move(successors);
    out.by_name[x.nf->name] = std::move(c);
    out.recovery[x.id] = std::move(target);
  }
  return out;
}

void FtcHolderMemory::apply(std::map<uint32_t, FtcRecoveryTarget>& targets, const plane::PlaneView& view,
                            Clock::time_point now, std::chrono::seconds keep) {
  std::erase_if(seen_, [&](const auto& kv) { return !targets.contains(kv.first); });
  for (auto& [id, t] : targets) {
    auto& mem = seen_[id];
    for (uint32_t h : t.holders) {
      auto r = t.holder_router.find(h);
      mem[h] = Seen{r != t.holder_router.end() ? r->second : 0, now};
    }
    std::erase_if(mem, [&](const auto& kv) { return now - kv.second.at > keep; });
    for (const auto& [h, s] : mem)
      if (!t.holders.contains(h) && s.router && view.router_usable(s.router)) {
        t.holders.insert(h);
        t.holder_router[h] = s.router;
      }
  }
}

std::vector<uint32_t> ftc_channel_peers(const AgentSpec& spec, const plane::PlaneView& view,
                                        const std::map<uint32_t, FtcRecoveryTarget>& targets, uint32_t self) {
  std::set<uint32_t> peers;
  std::set<uint32_t> ids;
  for (const auto& sb : spec.standbys) ids.insert(sb.id);
  for (const auto& s : view.services)
    for (const auto& c : s.candidates)
      if (ids.contains(c.info.instance_id) && !c.local && c.info.nsh_endpoint) peers.insert(c.info.nsh_endpoint);
  for (const auto& [id, t] : targets) peers.insert(t.holders.begin(), t.holders.end());
  peers.erase(self);
  peers.erase(0);
  return {peers.begin(), peers.end()};
}

std::vector<std::string> ftc_share_warnings(const AgentSpec& spec) {
  std::vector<std::string> out;
  auto check = [&](const LocalInstanceSpec& i) {
    if (!i.nf) return;
    uint8_t f = 0;
    uint32_t spi = 0;
    for (const auto& ch : spec.ftc_chains)
      if (std::find(ch.services.begin(), ch.services.end(), i.service_id) != ch.services.end() && ch.f > f) {
        f = ch.f;
        spi = ch.spi;
      }
    if (!f) return;
    const uint32_t need = nf::ftc_log_tlv_max(i.nf->params.kind), share = ac_ftc_share(f);
    if (need <= share) return;
    out.push_back(fmt::format(
        "instance '{}' ({}): its logs take up to {} bytes, over the {}-byte share that f = {} (chain SPI {}) leaves "
        "each hop: each goes as a {}-byte stub on the packet and whole in a propagating packet (ftc_stub; "
        "docs/ftc.md 2.6); a smaller f avoids it",
        i.name, nf::to_string(i.nf->params.kind), need, share, f, spi, 4 + AC_FTC_LOG_HDR));
  };
  for (const auto& i : spec.instances) check(i);
  for (const auto& i : spec.standbys) check(i);
  return out;
}

}  // namespace anychain::daemon
