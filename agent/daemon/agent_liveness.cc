// Down before up (daemon/liveness.h, DownFirst; docs/agent.md, "Liveness"): an instance's up is
// not handed to ospfd while the down the agent handed it before is not in the node's LSDB, so
// that ospfd, which keeps only the last update of an LSA within MinLSInterval, floods the down.
#include "common/log.h"
#include "daemon/agent.h"
#include "ospf/lsa.h"

namespace anychain::daemon {

// This node's LSA for a local instance in the LSDB: its sequence number and its content.
std::optional<std::pair<int32_t, ospf::VnfInfo>> Agent::self_vnf_lsa(uint32_t id) const {
  auto self = self_router();
  if (!self) return std::nullopt;
  const ospf::LsaKey key{spec_.ospf.area, 10, ospf::opaque_lsid(spec_.ospf.opaque_type, id), *self};
  const ospf::LsdbEntry* e = ospf_->lsdb().find(key);
  if (!e || !e->is_self || e->raw.size() < ospf::kLsaHeaderSize) return std::nullopt;
  auto v = ospf::parse_vnf_payload(ospf::ByteView(e->raw).subspan(ospf::kLsaHeaderSize));
  return std::pair{e->hdr.seq, v ? *v : ospf::VnfInfo{}};  // unreadable: not a down
}

void Agent::down_handed(uint32_t id, Clock::time_point now) {
  if (!ospf_ || !ospf_->ready()) return;  // stored, originated (the last state only) once ready
  auto lsa = self_vnf_lsa(id);
  down_first_.down_sent(id, lsa ? std::optional(lsa->first) : std::nullopt, now);
  held_up_.erase(id);
}

bool Agent::hold_up(const ospf::VnfInfo& v, Clock::time_point now) {
  if (v.down()) return false;
  if (auto lsa = self_vnf_lsa(v.instance_id)) down_first_.lsdb_has(v.instance_id, lsa->first, lsa->second);
  if (!down_first_.holds(v.instance_id, now)) return false;
  if (held_up_.insert(v.instance_id).second)
    log::info("instance {} is up; announced once its down is in this node's LSDB (ospfd keeps only the "
              "last update of an LSA within MinLSInterval)", v.instance_id);
  return true;
}

void Agent::release_ups(Clock::time_point now) {
  if (!ospf_) return;
  if (!ospf_->ready()) down_first_.clear();  // ospfd flushed our LSAs: nothing to flood first
  for (auto it = held_up_.begin(); it != held_up_.end();) {
    const uint32_t id = *it;
    if (auto lsa = self_vnf_lsa(id)) down_first_.lsdb_has(id, lsa->first, lsa->second);
    if (down_first_.holds(id, now)) {
      ++it;
      continue;
    }
    if (down_first_.timed_out(id, now))
      log::warn("instance {}: its down LSA did not reach this node's LSDB in {} s; announcing it up anyway", id,
                std::chrono::duration_cast<std::chrono::seconds>(DownFirst::kMaxWait).count());
    down_first_.forget(id);
    it = held_up_.erase(it);
    if (!monitor_->alive(id)) continue;  // died again meanwhile: its down is what ospfd has
    if (announce_up(monitor_->info(id))) log::info("instance {}: its down is in the LSDB; announced up", id);
  }
  for (const auto& i : spec_.instances)  // a down seen for an instance not waiting to go up
    if (!held_up_.contains(i.id) && down_first_.waiting(i.id))
      if (auto lsa = self_vnf_lsa(i.id)) down_first_.lsdb_has(i.id, lsa->first, lsa->second);
}

}  // namespace anychain::daemon
