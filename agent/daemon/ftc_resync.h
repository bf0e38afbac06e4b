// Re-requests of FTC gaps between agents (docs/ftc.md 4.3) over the FTC channel's RESYNC_REQ /
// RESYNC. An NF of this node asks (nf/resync.h: a datagram on the agent's socket) for the record
// of (middlebox, partition) that one of its held frames waits for; this node's service sends
// RESYNC_REQ to the node of the middlebox (the head: its NSH endpoint from the LSDB). The head's
// service reads the head record from its NF's maps under the record's lock and answers RESYNC
// with it, or without one (NONE) when it has none. The asking service installs the record into
// the asking NF's nf_replica under the lock, only when it is newer than the record there (a newer
// incarnation, or the same one and a later sequence: never backwards), and the NF's hold queue
// re-runs the held frames at its next check. Every refusal is counted by reason: an answer that
// matches no request (an unknown middlebox or partition, a late or forged request id), an answer
// from another node than the one asked, a record the NF cannot hold, a stale record.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/ftc_recovery.h"
#include "daemon/ftc_recovery_service.h"
#include "nf/resync.h"

namespace anychain::daemon {

class FtcResyncService {
 public:
  using Clock = std::chrono::steady_clock;
  using LocalsFn = std::function<std::vector<LocalHolder>()>;
  // The node (NSH endpoint, host order) hosting an instance; nullopt: unknown.
  using NodeOfFn = std::function<std::optional<uint32_t>(uint16_t id)>;

  // Registers the RESYNC_REQ and RESYNC handlers on the link (the recovery service's kind).
  FtcResyncService(FtcRecoveryService::Link link, LocalsFn locals, NodeOfFn node_of,
                   std::chrono::milliseconds timeout = std::chrono::seconds(1));

  // An NF's ask: RESYNC_REQ to the head's node. Refused (counted) when the asking instance is not
  // an FTC NF of this node or the head's node is unknown; not sent again while the same record's
  // request is outstanding.
  Result<void> ask(const nf::ResyncAsk& a, Clock::time_point now);
  // Requests older than the timeout are given up (counted); their records may be asked again.
  void on_timer(Clock::time_point now);

  struct Stats {
    uint64_t asks = 0, asks_refused = 0, asks_pending = 0;       // from this node's NFs
    uint64_t requests_sent = 0, send_failed = 0, timeouts = 0;  // RESYNC_REQ sent by this node
    uint64_t answered = 0, answered_none = 0, answer_errors = 0; // RESYNC_REQ answered (as the head)
    uint64_t answers = 0, installed = 0, none = 0, stale = 0;   // RESYNC received
    uint64_t refused_unknown = 0, refused_mismatch = 0, refused_record = 0, install_failed = 0;
  };
  [[nodiscard]] const Stats& stats() const { return stats_; }
  [[nodiscard]] size_t pending() const { return pending_.size(); }
  [[nodiscard]] nlohmann::json status() const;

 private:
  struct Pending {
    uint16_t from = 0;  // the asking local instance
    uint32_t node = 0;  // asked
    ftc::chan::ResyncReq req;
    Clock::time_point at;
  };
  void answer(uint32_t node, const ftc::chan::ResyncReq& r);
  void install(uint32_t node, const ftc::chan::Resync& m);

  FtcRecoveryService::Link ch_;
  LocalsFn locals_;
  NodeOfFn node_of_;
  std::chrono::milliseconds timeout_;
  std::map<uint32_t, Pending> pending_;  // request id ->
  uint32_t next_req_ = 1;
  Stats stats_;
  std::string last_error_;
};

// Whether a record `a` may replace `b` (a re-request never moves a record backwards): a newer
// incarnation, or the same one and a later sequence (RFC 1982 serial arithmetic, as ac_ftc_order).
bool resync_newer(const ac_st_rec& a, const ac_st_rec& b);

}  // namespace anychain::daemon
