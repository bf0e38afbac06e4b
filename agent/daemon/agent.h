// The agent core of anychaind: one poll() loop over the OSPF API client, link notifications,
// timers and (through add_fd) the control socket. It programs the fast path from the
// configuration (statically) and from the LSDB (the service plane, throttled like FRR's SPF),
// and announces this node's VNF instances with costs from their measured load.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <poll.h>
#include <set>
#include <vector>
#include <string>

#include "common/unique_fd.h"
#include "daemon/liveness.h"
#include "daemon/monitor.h"
#include "daemon/netlink.h"
#include "daemon/plane_sync.h"
#include "daemon/ftc_egress.h"
#include "daemon/ftc_forwarder.h"
#include "daemon/ftc_peers.h"
#include "daemon/ftc_recovery_service.h"
#include "daemon/ftc_standby.h"
#include "daemon/ftc_resync.h"
#include "daemon/ports.h"
#include "daemon/spec.h"
#include "daemon/throttle.h"
#include "nf/supervisor.h"
#include "plane/hold_down.h"
#include "slowpath/slowpath.h"

namespace anychain::daemon {

class Agent {
 public:
  using Clock = std::chrono::steady_clock;

  // Opens (or adopts) the fast path, attaches interfaces, writes the static state.
  static Result<std::unique_ptr<Agent>> create(AgentSpec spec);
  ~Agent();

  // Runs until stop() (from a signal handler flag via should_stop) ; returns the exit code.
  int run(const std::function<bool()>& should_stop);

  // Replace the configuration (SIGHUP, or a change through the control socket).
  Result<void> reload(AgentSpec spec);

  // Another poll() source for the loop (the control server): fds() is asked before every
  // poll, on_event() gets each fd with its revents.
  struct PollSource {
    std::function<std::vector<pollfd>()> fds;
    std::function<void(int, short)> on_event;
  };
  void add_source(PollSource s) { sources_.push_back(std::move(s)); }

  nlohmann::json status() const;
  // The FTC channel (for the parts that add handlers: recovery); null when it is not open.
  FtcChannel* ftc_channel() { return ftc_channel_.get(); }
  nlohmann::json topology() const;
  nlohmann::json selection(uint32_t service_id) const;  // where this service is chosen (topology)
  const AgentSpec& spec() const { return spec_; }
  dataplane::Dataplane& dataplane() { return dp_; }
  // A standby about to be added (`instance add --standby-for`), against the LSDB once it is
  // trusted (docs/ftc.md 7.3); accepted before (nothing to check against yet).
  Result<void> check_standby(const std::string& name, uint32_t id, const std::string& service) const;

 private:
  Agent(AgentSpec spec, dataplane::Dataplane dp, LinkWatcher links);
  Result<void> apply_static();
  void recompute(Clock::time_point now);
  void monitor_tick(Clock::time_point now, bool announce);
  // Announces a local instance; one going up is written into the maps first (PlaneSync::program_local).
  bool announce_up(const ospf::VnfInfo& v);
  // Every liveness source of every local instance; with `delivered` (monitor ticks: the fast
  // path's per-instance packet counters) the dataplane's too.
  void check_liveness(Clock::time_point now, const std::map<uint32_t, uint64_t>* delivered = nullptr);
  // A built-in NF's frames it did not return but accounted for itself (its own drops and FTC
  // holds in nf_stats); nullopt when its maps cannot be read.
  std::optional<uint64_t> nf_consumed(const LocalInstanceSpec& i) const;
  void set_dead(const LocalInstanceSpec& i, const std::string& why);
  // Down before up (daemon/agent_liveness.cc): a down handed to ospfd; an up to hold back until
  // it is in the LSDB (true: held); the held ups whose down is there now, announced.
  void down_handed(uint32_t id, Clock::time_point now);
  bool hold_up(const ospf::VnfInfo& v, Clock::time_point now);
  void release_ups(Clock::time_point now);
  std::optional<std::pair<int32_t, ospf::VnfInfo>> self_vnf_lsa(uint32_t id) const;
  void nf_down_due(Clock::time_point now);
  void warn_liveness_sources() const;
  void watch_ospfd_pid_file();
  void on_ospfd_pid_file();
  void withdraw_due(Clock::time_point now);
  void on_link(const LinkEvent& e);
  void check_endpoint();
  void open_slow_path();
  // The built-in NFs of the config to the supervisor (created with the first one).
  void sync_nf();
  void on_nf_veth(const std::string& name, const std::string& veth);
  // Shared state (docs/state.md): opened, reconfigured (keys: rotation without restart) or
  // closed after the spec; the local instances and the members from the LSDB handed to it.
  void sync_state();
  void state_local();
  void state_members();
  void state_tick(Clock::time_point now);
  std::optional<uint32_t> self_router() const;
  void shutdown();
  // FTC (daemon/agent_ftc.cc): the NFs' control files from the config and the last plane, written
  // when they change; the incarnations of the local FTC instances (kept across agent restarts by
  // those files, announced by the monitor).
  void sync_ftc_controls();
  void load_ftc_incarnations();
  // A local instance found dead: withdrawn from this node's fast path, or for an FTC instance
  // frozen (RECOVERING: its flows wait for the replacement, docs/ftc.md 7.2).
  void withdraw_local(const LocalInstanceSpec& i);
  // A local FTC instance alive again after it died: its process is new, so is its incarnation
  // (docs/ftc.md 7.3), written to its control file. Returns true when a recovery of its state
  // began: the instance is announced when it ends (ftc_recovered), not now.
  bool ftc_restarted(const LocalInstanceSpec& i, Clock::time_point now);
  // Recovery (docs/ftc.md 7.3-7.5, daemon/agent_ftc_control.cc): the service on the channel, the
  // local NFs' maps it answers from, the end of a local instance's recovery.
  void sync_ftc_recovery();
  bool ftc_begin_recovery(const LocalInstanceSpec& i, uint8_t inc, Clock::time_point detected);
  // recoveries that wait for the first service plane (their holders come from it): started on
  // the next computation, or given up (announced without state) after kFtcPlaneWait
  void ftc_start_deferred(Clock::time_point now);
  // a local instance found alive: announced (and frozen flows resume on it)
  void instance_up(const LocalInstanceSpec& i, Clock::time_point now);
  void ftc_recovered(const FtcRecoveryService::Result& r);
  void ftc_lsdb_kick(Clock::time_point now);  // the LSDB changed: throttled, or at once for a recovery
  std::vector<LocalHolder> ftc_local_holders();
  // Standbys (daemon/agent_ftc_standby.cc, docs/ftc.md 7.3) and the heartbeat detector's verdicts
  void ftc_standby_apply(AgentSpec& s) const;
  void load_ftc_standby_acting();        // at start: the standbys the previous agent ran as their instance
  void save_ftc_standby_acting() const;  // whenever ftc_standby_active_ changes
  std::vector<uint32_t> ftc_failed_endpoints() const;
  void ftc_standby_announce();
  void ftc_standby_tick(Clock::time_point now);
  bool ftc_standby_waiting(const LocalInstanceSpec& i, bool alive, Clock::time_point now);
  void ftc_standby_channel_peers();
  nlohmann::json ftc_standby_status() const;
  void ftc_standby_affinity(const FtcRecoveryService::Result& r);
  std::optional<uint32_t> ftc_superseded(const LocalInstanceSpec& i) const;
  std::vector<uint8_t> ftc_announced(uint32_t id, bool* ran = nullptr) const;
  bool ftc_come_back(const LocalInstanceSpec& i, uint8_t next, Clock::time_point detected);
  void ftc_stand_down(Clock::time_point now);
  // Re-requests of the NFs' gaps (docs/ftc.md 4.3, daemon/agent_ftc_resync.cc)
  void sync_ftc_resync();
  void ftc_resync_receive();
  nlohmann::json ftc_resync_status() const;

  AgentSpec spec_;
  dataplane::Dataplane dp_;
  LinkWatcher links_;
  std::unique_ptr<ospf::Client> ospf_;
  std::unique_ptr<PlaneSync> sync_;
  std::unique_ptr<Ports> ports_;                  // XDP attachments: interfaces, instance veths
  std::unique_ptr<slowpath::SlowPath> slow_;      // null: off, or it could not be set up
  std::string slow_error_;
  std::unique_ptr<VnfMonitor> monitor_;
  Throttle throttle_;
  plane::VnfHoldDown hold_;
  std::vector<PollSource> sources_;
  std::unique_ptr<nf::Supervisor> nf_;
  state::SystemClock state_clock_;
  std::unique_ptr<Replication> state_;            // null: no state: section, or it failed
  std::string state_error_;
  Clock::time_point next_state_tick_{};
  std::unique_ptr<FtcEgress> ftc_;                // the FTC egress buffer; null: no FTC chain
  // FTC channel and forwarder (agent_ftc.cc): opened, re-keyed or closed after the spec
  void sync_ftc();
  void ftc_tick();
  std::optional<Clock::time_point> ftc_wake() const;
  std::unique_ptr<FtcChannel> ftc_channel_;       // null: no FTC chain, or it could not open
  std::string ftc_channel_error_;
  Clock::time_point ftc_retry_at_{};              // the channel failed to open: try again then
  std::unique_ptr<FtcForwarder> ftc_fwd_;
  std::map<uint32_t, uint8_t> ftc_inc_;           // local FTC instance id -> its incarnation
  std::map<std::string, nf::FtcControl> ftc_written_;  // control files as last written, by NF name
  std::vector<std::string> ftc_control_problems_;
  uint64_t ftc_control_writes_ = 0, ftc_control_errors_ = 0;
  std::map<uint32_t, Clock::time_point> ftc_died_at_;  // local FTC instances found dead, since
  uint64_t ftc_restarts_ = 0;
  double ftc_last_restart_ms_ = 0;                      // death noticed .. new process alive
  std::map<uint32_t, FtcRecoveryTarget> ftc_targets_;   // recovery targets of the local FTC instances
  FtcHolderMemory ftc_holders_;                          // their holders of the last minutes
  std::unique_ptr<FtcRecoveryService> ftc_recovery_;    // null: no channel
  const FtcChannel* ftc_recovery_on_ = nullptr;         // the channel it registered on
  // messages to this node: delivered from the loop, never inside the send (a session's request
  // to this node would otherwise be answered inside its own begin())
  std::vector<ftc::chan::Body> ftc_local_q_;
  std::map<uint32_t, std::unique_ptr<nf::InstanceMaps>> ftc_replacements_;  // recovering locally
  std::set<uint32_t> ftc_rerouting_;                    // recovered, waiting to be live in the maps
  // Until then an LSDB change (the recovered instance's own LSA back from ospfd) recomputes at
  // once instead of after the throttle's delay and hold (agent_ftc_control.cc, ftc_recovered).
  Clock::time_point ftc_reroute_until_{};
  std::set<uint32_t> ftc_was_alive_;                    // local instances alive once since the start, or
                                                        // under the previous agent (a control file)
  struct FtcDeferred {
    uint8_t inc;
    Clock::time_point detected, since;
  };
  std::map<uint32_t, FtcDeferred> ftc_deferred_;        // recoveries waiting for the first plane
  uint64_t ftc_recoveries_started_ = 0, ftc_recoveries_unrecovered_ = 0, ftc_recoveries_conflict_ = 0;
  // an instance withdrawn by a node still reachable is given this long to come back there
  // (ospfd lets its up LSA out at most every 5 s after its down one) before a standby acts
  static constexpr std::chrono::milliseconds kStandbyWithdrawnGrace{6000};
  FtcStandbyWatch ftc_standby_{kStandbyWithdrawnGrace};
  std::set<uint32_t> ftc_standby_active_;               // standbys running as their instance
  std::map<uint32_t, Clock::time_point> ftc_standby_pending_;  // started, NF not up yet: detected at
  uint64_t ftc_standby_starts_ = 0;
  uint64_t ftc_standby_affinity_written_ = 0, ftc_standby_affinity_skipped_ = 0;
  std::map<uint32_t, uint32_t> ftc_stood_down_;         // local instances run live elsewhere: id -> that router
  uint64_t ftc_stand_downs_ = 0;
  std::vector<uint32_t> ftc_channel_peers_;             // as last given to the channel
  std::unique_ptr<FtcResyncService> ftc_resync_;        // null: no channel or no NFs
  const FtcChannel* ftc_resync_on_ = nullptr;
  std::unique_ptr<nf::ResyncListener> ftc_resync_sock_; // the NFs' asks
  std::map<std::string, nf::InstanceMaps> ftc_local_maps_;   // local FTC NFs' maps, by name (ftc_local_holders)

  // The LSDB is only trusted once the dump after a (re)connection has settled, so that a
  // restart never withdraws instances that merely have not been mirrored yet.
  std::optional<Clock::time_point> trust_lsdb_at_;
  bool lsdb_trusted_ = false;
  Clock::time_point next_monitor_;    // liveness and load (timers.monitor_interval)
  Clock::time_point next_announce_;   // costs into the LSAs (timers.announce_interval)
  std::map<uint32_t, InstanceLiveness> liveness_;  // by local instance id
  DownFirst down_first_;           // downs handed to ospfd, not in the LSDB yet
  std::set<uint32_t> held_up_;     // ups waiting for them
  // Instances removed from the configuration: announced down at once, their LSA deleted at
  // this time (after every peer has seen them down, so none holds them).
  std::map<uint32_t, Clock::time_point> withdraw_at_;
  // Built-in NFs that died and restart on their own (restart: always): withdrawn from this
  // node's fast path at once, announced down at this time unless they are back by then, so that
  // a restart of a fraction of a second does not make every peer drop the instance for ospfd's
  // MinLSInterval (5 s) before it may announce it up again.
  std::map<uint32_t, Clock::time_point> nf_down_at_;
  static constexpr std::chrono::milliseconds kNfRestartGrace{2000};
  // how long a restarted FTC instance waits for the first service plane to recover from
  static constexpr std::chrono::seconds kFtcPlaneWait{10};
  static constexpr std::chrono::seconds kFtcRerouteWindow{1};  // see ftc_reroute_until_
  UniqueFd ospfd_watch_;              // inotify on the directory of ospfd's pid file
  std::string ospfd_pid_name_;        // its file name there
  // last recomputation, for status/topology
  std::optional<std::chrono::system_clock::time_point> last_recompute_;
  std::optional<plane::PlaneView> last_view_;
  SyncReport last_report_;
  uint64_t recomputations_ = 0;
  double last_compute_ms_ = 0, last_apply_ms_ = 0;  // the last recomputation: plane, then the maps
  bool nexthops_dirty_ = false;      // a neighbour or route changed since the last flush
  Clock::time_point last_nexthop_flush_{};
  bool endpoint_present_ = true;     // the NSH endpoint is an address of this node
  std::string last_plane_error_;
};

}  // namespace anychain::daemon
