#include "daemon/ftc_standby.h"

#include "ftc/channel.h"
#include "nf/published.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>

namespace anychain::daemon {

std::vector<FtcStandbyWatch::Start> FtcStandbyWatch::update(const plane::PlaneView& v, uint32_t self_router,
                                                            const std::vector<LocalInstanceSpec>& standbys,
                                                            Clock::time_point now) {
  const auto failed = plane::failed_ftc_instances(v);
  std::vector<Start> out;
  std::map<uint32_t, Seen> next;
  for (const auto& s : standbys) {
    Seen& n = next[s.id];
    auto f = std::find_if(failed.begin(), failed.end(), [&](const plane::FailedInstance& x) { return x.id == s.id; });
    if (f == failed.end()) {
      n.state = started_.contains(s.id) ? "started" : "standing by";
      continue;  // alive, never seen, or back (its node restarted it): nothing to do
    }
    auto prev = seen_.find(s.id);
    n.since = prev != seen_.end() && prev->second.failed_router ? prev->second.since : now;
    n.failed_router = f->router;
    n.acting = plane::acting_standby(v, *f);
    if (started_.contains(s.id)) {
      n.state = "started";
      continue;
    }
    if (f->router == self_router) {
      n.state = "standing by (the instance's own node is this one)";
      continue;
    }
    if (!f->node_lost && now - n.since < grace_) {
      n.waiting = true;
      n.state = "failed (withdrawn by a reachable node): waiting for its restart there";
      continue;
    }
    if (n.acting != self_router) {
      n.state = n.acting ? fmt::format("failed: the standby of router {} acts", ftc::node_str(*n.acting))
                         : std::string("failed: no standby reachable");
      continue;
    }
    n.state = "started";
    started_.insert(s.id);
    ++starts_;
    out.push_back({s.id, static_cast<uint8_t>(f->last.incarnation + 1), f->router, n.since,
                   f->node_lost ? "its node is lost" : "withdrawn and not restarted"});
  }
  seen_ = std::move(next);
  return out;
}

std::optional<FtcStandbyWatch::Clock::time_point> FtcStandbyWatch::next_due() const {
  std::optional<Clock::time_point> t;
  for (const auto& [id, s] : seen_)
    if (s.waiting && (!t || s.since + grace_ < *t)) t = s.since + grace_;
  return t;
}

nlohmann::json FtcStandbyWatch::status(Clock::time_point now) const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, s] : seen_) {
    nlohmann::json e{{"id", id}, {"state", s.state}};
    if (s.failed_router) {
      e["failed_router"] = ftc::node_str(s.failed_router);
      e["failed_for_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(now - s.since).count();
    }
    if (s.acting) e["acting_router"] = ftc::node_str(*s.acting);
    list.push_back(std::move(e));
  }
  return {{"standbys", list}, {"started", starts_}, {"withdrawn_grace_ms", grace_.count()}};
}

uint8_t comeback_incarnation(uint8_t next, const std::vector<uint8_t>& announced) {
  uint8_t inc = next;
  // each pass raises it above what it met; more passes than values only when they spread over
  // more than half the circle (no newest one): then the last pass's answer stands
  for (size_t pass = 0; pass <= announced.size(); ++pass) {
    bool raised = false;
    for (uint8_t a : announced)
      if (static_cast<int8_t>(static_cast<uint8_t>(inc - a)) <= 0) {
        inc = static_cast<uint8_t>(a + 1);
        raised = true;
      }
    if (!raised) break;
  }
  return inc;
}

void apply_standby_roles(AgentSpec& s, const std::set<uint32_t>& acting, const std::set<uint32_t>& stood_down) {
  auto move = [](std::vector<LocalInstanceSpec>& from, std::vector<LocalInstanceSpec>& to, const std::set<uint32_t>& ids) {
    for (auto it = from.begin(); it != from.end();) {
      if (!ids.contains(it->id)) {
        ++it;
        continue;
      }
      to.push_back(std::move(*it));
      it = from.erase(it);
    }
  };
  move(s.instances, s.standbys, stood_down);
  move(s.standbys, s.instances, acting);
}

std::string standby_acting_path(const std::string& run_dir) { return run_dir + "/ftc/standby-acting.json"; }

Result<std::set<uint32_t>> read_standby_acting(const std::string& path) {
  auto j = nf::read_json_file(path);
  if (!j) {
    if (j.error().code == ENOENT) return std::set<uint32_t>{};
    return unexpected(j.error());
  }
  if (!j->is_object() || !j->contains("acting") || !(*j)["acting"].is_array())
    return fail(fmt::format("{}: not {{\"acting\": [instance ids]}}", path), EINVAL);
  std::set<uint32_t> out;
  for (const auto& v : (*j)["acting"]) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
      return fail(fmt::format("{}: '{}' is not an instance id", path, v.dump()), EINVAL);
    out.insert(v.get<uint32_t>());
  }
  return out;
}

Result<void> write_standby_acting(const std::string& path, const std::set<uint32_t>& acting) {
  return nf::write_file_atomic(path, nlohmann::json{{"acting", acting}}.dump() + "\n");
}

Result<void> check_standby_target(const plane::PlaneView& v, const std::string& name, uint32_t id,
                                  uint32_t service_addr, uint8_t service_len) {
  for (const auto& r : v.services)
    for (const auto& c : r.candidates) {
      if (c.info.instance_id != id) continue;
      if (!c.info.ftc())
        return fail(fmt::format("instance '{}': standby for instance {}, which is not an FTC instance (router {} "
                                "announces it without the FTC flag: its service is on no chain with ftc:); only an "
                                "FTC instance's state survives its node",
                                name, id, ftc::node_str(c.router)),
                    EINVAL);
      if (r.key.addr != service_addr || r.key.len != service_len)
        return fail(fmt::format("instance '{}': standby for instance {} of another service (router {} announces it "
                                "for {}/{}): give the standby the instance's service",
                                name, id, ftc::node_str(c.router), ftc::node_str(r.key.addr), r.key.len),
                    EINVAL);
      return {};
    }
  return fail(fmt::format("instance '{}': standby for unknown instance {}: no router announces it (`anychain topology` "
                          "lists the network's instances)",
                          name, id),
              ENOENT);
}

std::vector<AffinityWrite> replacement_next_hops(const std::vector<FtcRecoveryService::Result::HeadSource>& heads,
                                                 const AgentSpec& spec, const plane::PlaneView& v, size_t* skipped) {
  std::vector<AffinityWrite> out;
  size_t skip = 0;
  for (const auto& h : heads) {
    const uint8_t next = static_cast<uint8_t>(h.si - 1);
    auto path = std::find_if(spec.paths.begin(), spec.paths.end(), [&](const dataplane::PathEntry& p) {
      return p.spi == h.spi && p.si == next && !p.last_hop && p.service_id;
    });
    const ServiceSpec* svc = nullptr;
    if (path != spec.paths.end())
      for (const auto& s : spec.services)
        if (s.id == path->service_id) svc = &s;
    std::optional<uint32_t> id;
    size_t found = 0;
    if (svc)
      for (const auto& r : v.services)
        if (r.key.addr == svc->anycast_addr && r.key.len == svc->anycast_len)
          for (const auto& c : r.candidates)
            if (!c.recovering && c.info.nsh_endpoint == h.node) {
              id = c.info.instance_id;
              ++found;
            }
    if (found != 1) {
      ++skip;
      continue;
    }
    out.push_back({h.spi, next, h.hash, *id});
  }
  if (skipped) *skipped = skip;
  return out;
}

}  // namespace anychain::daemon
