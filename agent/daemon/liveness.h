// Liveness of a local VNF instance, from every source the node has (docs/agent.md, "Liveness"):
//   - its veth: it must exist, be up and have carrier (seen at once through link notifications);
//   - its pid_file, if configured: the process must run;
//   - its cgroup, if configured: the cgroup must hold a process (cgroup.events "populated 1");
//   - the dataplane, always (unless timers.vnf_stall_s is 0): packets the fast path handed to the
//     instance (ac_inst_stats) against packets its veth received from the VNF. An instance that
//     was handed at least kStallPackets and answered none of them for vnf_stall_s is dead.
// An instance found dead from the dataplane comes back when its VNF sends anything on the veth,
// when the pid in its pid_file changes (a new process), or on a retry after a backoff (5 s,
// doubling up to 60 s while it keeps failing): it is then announced again, and if it still
// answers nothing it is found dead again one stall window later.
// Pure logic: the agent gathers the probes (netlink, /proc, cgroupfs, BPF counters).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

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
  std::optional<uint64_t> delivered;  // ac_inst_stats packets (monitor ticks only)
  uint64_t answered = 0;              // packets the veth received from the VNF
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
  uint64_t answered_at_stall_ = 0;
  long pid_at_stall_ = 0;
};

}  // namespace anychain::daemon
