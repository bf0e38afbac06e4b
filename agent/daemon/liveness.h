// Liveness of a local VNF instance, from every source the node has (docs/agent.md, "Liveness"):
//   - its veth: it must exist, be up and have carrier (seen at once through link notifications);
//   - its pid_file, if configured: the process must run;
//   - its cgroup, if configured: the cgroup must hold a process (cgroup.events "populated 1");
//   - the dataplane, always (unless timers.vnf_stall_s is 0): packets the fast path handed to the
//     instance (ac_inst_stats) against chain traffic the fast path got back from it on its veth
//     (ac_inst_returned: a held flow's packet the proxy restores, or a valid NSH frame; never
//     ARP, ND or anything else the VNF's side sends). An instance that was handed at least
//     kStallPackets and returned none of them for vnf_stall_s is dead.
// An instance found dead from the dataplane comes back when chain traffic comes back from it,
// when the pid in its pid_file changes (a new process), or on a retry after a backoff (5 s,
// doubling up to 60 s while it keeps failing): it is then announced again, and if it still
// answers nothing it is found dead again one stall window later.
// Down before up (DownFirst): its up is announced only once its down is in the node's LSDB.
// Pure logic: the agent gathers the probes (netlink, /proc, cgroupfs, BPF counters).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "ospf/lsa.h"

namespace anychain::daemon {

// Counters of one instance against each other: delivered to it, answered by it.
class StallDetector {
 public:
  using Clock = std::chrono::steady_clock;
  StallDetector(std::chrono::milliseconds window, uint64_t min_packets) : window_(window), min_packets_(min_packets) {}

  // Cumulative counters now (any decrease counts as a reset of that counter). True when at least
  // min_packets were delivered since the VNF last answered and it has answered nothing for at
  // least the window (measured from the last observation at which everything was answered).
  bool observe(uint64_t delivered, uint64_t answered, Clock::time_point now);
  // Forget the history: the next observation is a fresh start.
  void restart() { started_ = false; }
  [[nodiscard]] uint64_t unanswered() const { return unanswered_; }
  [[nodiscard]] std::chrono::milliseconds window() const { return window_; }
  // The last observation found the VNF answering (its counter moved).
  [[nodiscard]] bool answering() const { return answering_; }

 private:
  std::chrono::milliseconds window_;
  uint64_t min_packets_;
  bool started_ = false;
  bool answering_ = false;
  uint64_t base_delivered_ = 0;   // delivered when the VNF last answered
  uint64_t last_delivered_ = 0;
  uint64_t last_answered_ = 0;
  uint64_t unanswered_ = 0;
  Clock::time_point last_seen_{};                 // previous observation
  std::optional<Clock::time_point> silent_since_;  // all answered up to here, nothing since
};

struct LivenessProbe {
  std::string link_problem;           // "" if the veth exists, is up and has carrier
  std::optional<bool> process;        // pid_file: its process runs (nullopt: no pid_file)
  long pid = 0;                       // the pid in pid_file (0: none)
  std::optional<bool> cgroup;         // cgroup holds a process (nullopt: no cgroup, or unreadable)
  std::optional<bool> supervised;     // a built-in NF: its supervisor has its process running
  std::optional<uint64_t> delivered;  // ac_inst_stats packets (monitor ticks only)
  std::optional<uint64_t> answered;   // ac_inst_returned packets (nullopt: unreadable)
};

class InstanceLiveness {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr uint64_t kStallPackets = 10;
  static constexpr std::chrono::milliseconds kRetryFirst{5000};
  static constexpr std::chrono::milliseconds kRetryMax{60000};

  // stall_window 0: the dataplane is not a liveness source.
  explicit InstanceLiveness(std::chrono::milliseconds stall_window) : stall_(stall_window, kStallPackets) {}

  // Apply one probe; returns true if alive() changed.
  bool update(const LivenessProbe& p, Clock::time_point now);
  [[nodiscard]] bool alive() const { return alive_; }
  // Why it is dead ("" while alive).
  [[nodiscard]] const std::string& reason() const { return reason_; }
  // Dead from the dataplane: when it is tried again.
  [[nodiscard]] std::optional<Clock::time_point> retry_at() const { return stalled_ ? std::optional(retry_at_) : std::nullopt; }

 private:
  void revive();
  StallDetector stall_;
  bool alive_ = true;
  std::string reason_;
  bool stalled_ = false;               // dead from the dataplane
  bool retrying_ = false;              // alive again by a retry, not by an answer
  std::chrono::milliseconds backoff_ = kRetryFirst;
  Clock::time_point retry_at_{};
  std::optional<uint64_t> answered_at_stall_;
  long pid_at_stall_ = 0;
};

// Down before up. ospfd originates an LSA at most once per MinLSInterval (5 s) and keeps only the
// last update it was handed meanwhile (docs/frr-ospf-api.md): an up handed to it while it still
// holds an instance's down replaces the down, which then never leaves the node, and peers keep
// steering flows to the dead instance until the next verdict. So once the agent hands ospfd a
// down, the instance's up waits until that down is in the node's LSDB: ospfd installs its own
// LSA (and the agent's mirror sees it, is_self) when it originates and floods it. Pure logic:
// the agent reports what it hands ospfd and what its LSDB holds.
class DownFirst {
 public:
  using Clock = std::chrono::steady_clock;
  // Past this, an up waits no longer (ospfd did not originate the down: it was restarted, or
  // refused it); the agent says so.
  static constexpr std::chrono::milliseconds kMaxWait{15000};

  // A down for id was handed to ospfd; lsdb_seq: the sequence number of this node's LSA for id
  // in the LSDB now (nullopt: none there).
  void down_sent(uint32_t id, std::optional<int32_t> lsdb_seq, Clock::time_point now);
  // This node's LSA for id as the LSDB holds it now (seq nullopt: none): an up waiting for it may
  // go once it is newer than at down_sent and not live: flagged down, or a standby LSA (the node
  // stood down for the instance after the down, docs/ftc.md 7.3: ospfd replaced the down with
  // it, and it withdraws the instance from every peer as the down would have).
  void lsdb_has(uint32_t id, std::optional<int32_t> seq, const ospf::VnfInfo& lsa);
  // An up for id must wait (a down sent is not in the LSDB yet, for less than kMaxWait).
  [[nodiscard]] bool holds(uint32_t id, Clock::time_point now) const;
  // Waited kMaxWait without seeing the down.
  [[nodiscard]] bool timed_out(uint32_t id, Clock::time_point now) const;
  // Nothing to wait for (ospfd lost: it flushed this node's LSAs; or the instance is gone).
  void forget(uint32_t id) { pending_.erase(id); }
  void clear() { pending_.clear(); }
  [[nodiscard]] bool waiting(uint32_t id) const { return pending_.contains(id); }

 private:
  struct Pending {
    std::optional<int32_t> seq;  // the LSDB's at down_sent
    Clock::time_point since;
  };
  std::map<uint32_t, Pending> pending_;
};

}  // namespace anychain::daemon
