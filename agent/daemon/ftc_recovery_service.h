// FTC recovery on a node's FTC channel (docs/ftc.md 7.3-7.5): answers the RECOVER_REQs of other
// agents from this node's NFs (fence, then snapshot) and runs this node's recoveries (one
// RecoverySession per failed instance it replaces) to their end: plan, install into the
// replacement's maps, the NAT's derived state, then `on_recovered` (the caller sets the
// incarnation and announces). What the daemon plugs into its ftc::Channel.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "daemon/ftc_recovery.h"
#include "ftc/channel.h"

namespace anychain::daemon {

class FtcRecoveryService {
 public:
  using Clock = std::chrono::steady_clock;
  // The local NF instances that may hold records (their maps opened by the caller, kept open for
  // the duration of the call).
  using LocalsFn = std::function<std::vector<LocalHolder>()>;

  struct Result {
    uint16_t failed = 0;
    uint8_t new_inc = 0;
    bool conflict = false;          // another replacement won: do not announce
    size_t heads = 0, replicas = 0, lost = 0, nat_rebuilt = 0, holders_gone = 0;
    std::vector<std::string> errors;
    RecoveryTimes times;            // rerouting filled by rerouted()
    // The same moments on the wall clock (Unix time, s), so that what an observer timed outside
    // the agent (a sender's packets) can be compared with them: the failure's first sign as this
    // agent noticed it (the process exit, later than the death itself by the agent's reaction
    // time, which detection_ms does not include), and the replacement live in this node's maps
    // (rerouted(); 0 until then). Packets of the instance's flows that reach this node after
    // live_at are forwarded to the replacement.
    double detected_at = 0, live_at = 0;
    // where each head record of the failed instance came from: the node of the successor that
    // held it (a replacement on another node writes its flows' next hops from these, 7.5)
    struct HeadSource {
      uint32_t spi = 0, hash = 0;
      uint8_t si = 0;               // the failed instance's hop
      uint32_t node = 0;            // NSH endpoint of the holder
    };
    std::vector<HeadSource> head_sources;
  };

  // What the service needs of a channel: registering a handler by type, sending to a node. The
  // daemon's FtcChannel gives both (its handlers survive a reopen; a message to this node is
  // handed to its handler at once), as does a bare ftc::Channel (the tests).
  struct Link {
    std::function<void(ftc::chan::Type, ftc::Channel::Handler)> on;
    std::function<::anychain::Result<void>(uint32_t node, const ftc::chan::Body&)> send;
  };
  // Registers the RECOVER_REQ, RECOVER and RECOVER_DONE handlers on the link.
  FtcRecoveryService(Link link, LocalsFn locals, std::chrono::milliseconds timeout = std::chrono::seconds(2));
  FtcRecoveryService(ftc::Channel& channel, LocalsFn locals, std::chrono::milliseconds timeout = std::chrono::seconds(2));

  // Recover `failed` into `replacement` (the new process's maps, which must stay open until
  // on_recovered ran). holders: the nodes to ask. Refused while a recovery of the same id runs.
  ::anychain::Result<void> begin(uint16_t failed, uint8_t new_inc, ftc::Geometry geo, std::set<uint32_t> holders,
                                 const nf::InstanceMaps* replacement, bool nat, Clock::time_point detected);
  // Holders that went down are not waited for; sessions past the timeout forget their pending
  // holders (their records are then not sources: the plan takes the next best). Call from the
  // loop's timer.
  void on_timer(Clock::time_point now);
  // The channel's connection to `node` went down / is up again. A holder whose connection went
  // down while its answer was pending may have lost the request or part of its answer: it is
  // still waited for (until the timeout), and asked again when its connection is back.
  void on_peer_down(uint32_t node);
  void on_peer_up(uint32_t node);
  // The replacement is live in this node's maps: its rerouting time and live_at.
  void rerouted(uint16_t failed, Clock::time_point now, double plane_ms = 0);
  // A steady-clock moment on the wall clock (Unix time, s).
  static double unix_time_of(Clock::time_point t);

  std::function<void(const Result&)> on_recovered;

  struct Stats {
    uint64_t requests_answered = 0, records_sent = 0, records_fenced = 0, answer_errors = 0;
    uint64_t recoveries = 0, recoveries_conflict = 0, records_installed = 0, records_lost = 0;
    uint64_t requests_repeated = 0;  // RECOVER_REQs sent again to a holder whose connection came back
  };
  [[nodiscard]] const Stats& stats() const { return stats_; }
  [[nodiscard]] const std::map<uint16_t, Result>& last() const { return last_; }
  [[nodiscard]] bool running(uint16_t failed) const { return sessions_.contains(failed); }

 private:
  struct Running {
    std::unique_ptr<RecoverySession> s;
    const nf::InstanceMaps* replacement = nullptr;
    bool nat = false;
    Clock::time_point deadline;
    size_t gone = 0;
    double detected_at = 0;  // Unix time
    std::set<uint32_t> interrupted{};  // pending holders whose connection went down
  };
  void send_reqs(const std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>>& reqs);
  void finish_if_complete(uint16_t failed);
  Running* session_of_req(uint32_t req);

  Link ch_;
  LocalsFn locals_;
  std::chrono::milliseconds timeout_;
  std::map<uint16_t, Running> sessions_;
  std::map<uint32_t, uint16_t> req_owner_;  // request id -> failed instance
  uint32_t next_req_ = 1;
  std::map<uint16_t, Result> last_;
  std::map<uint16_t, Clock::time_point> installed_at_;  // recoveries waiting for rerouted()
  Stats stats_;
};

}  // namespace anychain::daemon
