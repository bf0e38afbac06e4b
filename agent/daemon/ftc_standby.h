// The standbys of this node (instance standby_for, docs/ftc.md 7.3): after every plane
// computation, which of them must start the replacement of a failed FTC instance now. The
// decision is plane/standby.h's, the same on every agent with the same LSDB; this adds time (an
// instance withdrawn by a node that is still reachable is given `withdrawn_grace` to come back by
// its own restart) and what `anychain status` shows of it ("ftc_standby").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/ftc_recovery_service.h"
#include "daemon/spec.h"
#include "plane/standby.h"

namespace anychain::daemon {

class FtcStandbyWatch {
 public:
  using Clock = std::chrono::steady_clock;

  struct Start {
    uint32_t id = 0;
    uint8_t new_inc = 0;               // the failed instance's incarnation + 1 (serial)
    uint32_t failed_router = 0;
    Clock::time_point detected{};      // first computation that found it failed
    std::string why;
  };

  explicit FtcStandbyWatch(std::chrono::milliseconds withdrawn_grace) : grace_(withdrawn_grace) {}
  void set_grace(std::chrono::milliseconds g) { grace_ = g; }

  // `standbys`: this node's, not started. Returns the ones to start now (each once: a started one
  // is reported again only after forget()).
  std::vector<Start> update(const plane::PlaneView& v, uint32_t self_router,
                            const std::vector<LocalInstanceSpec>& standbys, Clock::time_point now);
  // The standby of `id` no longer runs as the instance (removed from the config): it may act again.
  void forget(uint32_t id) { started_.erase(id); }
  // When a withdrawn instance's grace ends (recompute then), if one is running.
  [[nodiscard]] std::optional<Clock::time_point> next_due() const;
  [[nodiscard]] nlohmann::json status(Clock::time_point now) const;

 private:
  struct Seen {
    Clock::time_point since{};
    std::string state;                 // what status() shows
    std::optional<uint32_t> acting;    // the router whose standby acts
    uint32_t failed_router = 0;
    bool waiting = false;              // withdrawn by a reachable node: its grace runs
  };
  std::chrono::milliseconds grace_;
  std::map<uint32_t, Seen> seen_;      // by standby id (this node's standbys only)
  std::set<uint32_t> started_;
  uint64_t starts_ = 0;
};

// The roles of a node's entries for FTC instances (docs/ftc.md 7.3), applied to every spec the
// agent runs (its config's and each reload's): a standby acting as its instance (`acting`) moves
// to the instances, so it runs; an instance that stood down because another router runs it live
// (`stood_down`: a node back after its standby took over) moves to the standbys, so its process
// stops and the node announces a standby for it instead. Order within each list is kept.
void apply_standby_roles(AgentSpec& s, const std::set<uint32_t>& acting, const std::set<uint32_t>& stood_down);

// The standbys a node runs as their instance outlive its agent (docs/ftc.md 7.3): the agent
// keeps their ids in <run_dir>/ftc/standby-acting.json ({"acting": [ids]}, written atomically
// whenever the set changes) and a new agent starts with them acting, so that its first start of
// each is a restart to recover (its control file gives the incarnation), not a standby's return to
// standing by while no router runs the instance. A missing file is an empty set.
std::string standby_acting_path(const std::string& run_dir);
Result<std::set<uint32_t>> read_standby_acting(const std::string& path);
Result<void> write_standby_acting(const std::string& path, const std::set<uint32_t>& acting);

// The incarnation a local FTC instance comes back with (restarted, first seen alive by a new
// agent, or a standby acting; docs/ftc.md 7.3): `next` (its last + 1, or the failed one's + 1)
// unless an announcement of its id (any router's, down, held or frozen ones and this node's own
// old LSA included) has that or a newer one in serial arithmetic: then one more than the newest
// of them. So its fence outranks every holder's records and every router's plane keeps its
// announcement over every other copy (plane::keeps_instance).
uint8_t comeback_incarnation(uint8_t next, const std::vector<uint8_t>& announced);

// What a new standby for instance `id` of service (addr, len) is checked against when the LSDB
// is known (`anychain instance add --standby-for`): ENOENT when no router announces the instance,
// EINVAL when it is not an FTC instance or is of another service. The name is the entry's.
Result<void> check_standby_target(const plane::PlaneView& v, const std::string& name, uint32_t id,
                                  uint32_t service_addr, uint8_t service_len);

// The next-hop placements a replacement on another node writes into its node's ac_affinity
// (docs/ftc.md 7.5 step 3): for each head record it recovered, the flow's placement at the next
// hop (SI - 1 on its chain) is the instance of that hop's service on the node that held the
// record (its successor on the flow's path), when the view has exactly one such live instance
// there. Others (the chain's last hop, a holder farther than the next hop, none or several
// instances there) are left to WCMP and counted in `skipped`.
struct AffinityWrite {
  uint32_t spi = 0;
  uint8_t si = 0;
  uint32_t hash = 0;
  uint32_t id = 0;
  bool operator==(const AffinityWrite&) const = default;
};
std::vector<AffinityWrite> replacement_next_hops(const std::vector<FtcRecoveryService::Result::HeadSource>& heads,
                                                 const AgentSpec& spec, const plane::PlaneView& v,
                                                 size_t* skipped = nullptr);

}  // namespace anychain::daemon
