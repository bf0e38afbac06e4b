// FTC recovery between agents (docs/ftc.md 7.3-7.5) over the FTC channel's RECOVER_REQ /
// RECOVER / RECOVER_DONE: the holders' side (fence, then snapshot, from the NFs' maps under
// their locks) and the replacement's side (fan-out in two rounds, plan_recovery, install into the
// replacement's maps), with the duration of each phase. No I/O of its own: the caller sends what
// it returns over ftc::Channel and feeds what arrives.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "anychain/ftc.h"
#include "common/error.h"
#include "ftc/channel_msg.h"
#include "ftc/recovery.h"
#include "nf/maps.h"

namespace anychain::daemon {

// An NF record (bpf/nf_state.h) as the FTC library's value and back. to_nf refuses what the NF
// cannot hold (more than AC_ST_SLOTS keys, a key or value over its limit).
ftc::Record record_from_nf(const ac_st_rec& r);
Result<ac_st_rec> record_to_nf(const ftc::Record& r);
inline uint32_t spi_si_of(uint32_t spi, uint8_t si) { return (spi << 8) | si; }

// One local NF instance that may hold records of others (or head records of its own).
struct LocalHolder {
  uint16_t id = 0;
  const nf::InstanceMaps* maps = nullptr;
  // maps null: why a running instance's maps could not be opened (its answer is then Failed, not
  // an empty Ok: the replacement must not take "no record" for "nothing held")
  std::string error{};
};

struct HolderAnswer {
  std::vector<ftc::chan::Recover> batches;  // at most chan::kMaxBatch bytes of records each
  ftc::chan::RecoverDone done;
  uint64_t fenced = 0;                      // replica records of the failed instance fenced
  std::vector<std::string> errors;
};

// A holder's answer to RECOVER_REQ (docs/ftc.md 7.4, 7.5).
// Round 1 ("your records of middlebox X"): every replica record of X at every local instance is
// first fenced (its incarnation set to new_inc under the record's lock, unless it already holds
// a newer one: then the answer is Conflict, another replacement won), then sent.
// Round 2 ("your records of these flows for these middleboxes"): the replica records of those
// (middlebox, flow) pairs, and the head records of those flows of a local instance that is one of
// the middleboxes.
HolderAnswer answer_recover_req(const std::vector<LocalHolder>& locals, const ftc::chan::RecoverReq& req);

// The NAT's derived state rebuilt from its head records (docs/ftc.md 6.1, 7.5): the port of each
// mapping taken in the bitmap (nf_nat_ports) and its reply entry (nf_nat_rev) written. Run on a
// replacement after install() and before it is live. Returns the mappings rebuilt; an instance
// without the NAT's maps is refused (EINVAL).
Result<size_t> rebuild_nat_derived(const nf::InstanceMaps& nat);

// Durations of one recovery (docs/ftc.md 7.6), milliseconds; detection is from the failure's
// first sign (the process exit, the down LSA, the detector) to the start of the recovery.
struct RecoveryTimes {
  double detection_ms = 0;
  double transfer_ms = 0;    // first RECOVER_REQ sent .. last record installed
  double rerouting_ms = 0;   // installed .. the replacement live in this node's maps
  double plane_ms = 0;       // of which: the recomputation that made it live (plane and maps)
};

// The replacement's side of one recovery.
class RecoverySession {
 public:
  using Clock = std::chrono::steady_clock;
  // holders: the nodes (NSH endpoints) of every instance that may hold records of `failed` or of
  // the middleboxes it replicated (docs/ftc.md 7.4: within f hops on every chain it serves).
  RecoverySession(uint16_t failed, uint8_t new_inc, ftc::Geometry geo, std::set<uint32_t> holders, uint32_t first_req,
                  Clock::time_point detected, Clock::time_point now);

  // Round 1's requests, one per holder node.
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> start(Clock::time_point now);
  // A holder's answer; returns round 2's requests when round 1 just completed (every holder done
  // or given up by forget()), and nothing otherwise.
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> on_recover(uint32_t node, const ftc::chan::Recover& m);
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> on_done(uint32_t node, const ftc::chan::RecoverDone& d);
  // A holder given up (no answer within the timeout): not waited for (its records are not sources).
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> forget(uint32_t node);
  // Ask a pending holder again (its connection went down and came back: the request or part of
  // the answer may have been lost with it): the current round's request under a new id; what the
  // holder sent for the old one is dropped and a late answer to it ignored. Nothing for a holder
  // that is not pending.
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> reask(uint32_t node);
  [[nodiscard]] bool complete() const { return round_ == 2 && pending_.empty(); }
  [[nodiscard]] int round() const { return round_; }
  [[nodiscard]] const std::set<uint32_t>& pending() const { return pending_; }

  // The plan over every holding received (every agent computes the same one from the same reports).
  [[nodiscard]] ftc::RecoveryPlan plan() const;
  // Install the plan into the replacement's maps (head records under the new incarnation,
  // replica records as the source held them), under the records' locks; the records it cannot
  // hold are reported.
  struct Installed {
    size_t heads = 0, replicas = 0, lost = 0;
    std::vector<std::string> errors;
  };
  Installed install(const nf::InstanceMaps& replacement, const ftc::RecoveryPlan& plan, Clock::time_point now);
  // The replacement became live in this node's maps (rerouting done).
  void rerouted(Clock::time_point now);
  [[nodiscard]] const RecoveryTimes& times() const { return times_; }
  // The holder node behind a plan's source (Transfer::source), if it is one of this session's.
  [[nodiscard]] std::optional<uint32_t> node_of(uint16_t holder) const;
  [[nodiscard]] uint16_t failed() const { return failed_; }
  [[nodiscard]] uint8_t new_inc() const { return new_inc_; }
  [[nodiscard]] bool conflict() const { return conflict_; }
  [[nodiscard]] size_t records_received() const { return holdings_.size(); }
  // Holders that answered Failed (a store they run could not be read), one line each.
  [[nodiscard]] const std::vector<std::string>& holder_errors() const { return holder_errors_; }

 private:
  std::vector<std::pair<uint32_t, ftc::chan::RecoverReq>> next_round();
  uint16_t holder_of(uint32_t node);

  uint16_t failed_;
  uint8_t new_inc_;
  ftc::Geometry geo_;
  std::set<uint32_t> holders_;
  std::set<uint32_t> pending_;  // holders whose RECOVER_DONE of this round has not come
  uint32_t next_req_;
  std::map<uint32_t, uint32_t> req_of_;  // request id -> holder node
  ftc::chan::RecoverReq round_req_{};    // the current round's request (its id aside)
  std::map<uint32_t, uint32_t> round_req_of_;  // holder node -> its request id in the current round
  std::map<uint32_t, uint16_t> holder_ids_;
  int round_ = 0;
  bool conflict_ = false;
  std::vector<ftc::Holding> holdings_;
  std::vector<uint32_t> holding_req_;  // the request each of holdings_ answered
  std::vector<std::string> holder_errors_;
  Clock::time_point detected_, started_{}, installed_{};
  RecoveryTimes times_;
};

}  // namespace anychain::daemon
