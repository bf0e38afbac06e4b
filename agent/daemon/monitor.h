// VNF monitor: turns each local instance's packet rate (from the fast path's per-instance
// counters) into the cost it announces, with damping, and tracks whether it is alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "daemon/spec.h"

namespace anychain::daemon {

struct InstanceLoad {
  uint32_t id = 0;
  double pps = 0;              // measured over the last period
  double cpu = -1;             // CPU share (1.0 = one core) over the last period; -1 if not watched
  double load = 0;             // what the cost is computed from: max(pps, cpu x capacity)
  uint32_t fresh_cost = 0;     // cost of that load
  uint32_t announced = 0;      // cost in the LSA (after damping)
  bool alive = true;
  bool announced_once = false;
};

class VnfMonitor {
 public:
  using Clock = std::chrono::steady_clock;
  explicit VnfMonitor(const AgentSpec& spec);

  // One monitor period: `packets` is the cumulative packet counter of each local instance.
  // Returns the VNF LSAs to (re-)announce: the first time, and whenever the damped cost moves.
  std::vector<ospf::VnfInfo> tick(const std::map<uint32_t, uint64_t>& packets, Clock::time_point now);

  // Liveness (veth up, process alive). Returns true if it changed.
  bool set_alive(uint32_t id, bool alive);
  bool alive(uint32_t id) const;
  ospf::VnfInfo info(uint32_t id) const;  // the LSA content for an instance now
  const std::map<uint32_t, InstanceLoad>& loads() const { return loads_; }

 private:
  const AgentSpec& spec_;
  std::map<uint32_t, InstanceLoad> loads_;
  std::map<uint32_t, uint64_t> last_packets_;
  std::map<uint32_t, double> last_cpu_;
  std::optional<Clock::time_point> last_tick_;
};

// true if the process whose pid is in pid_file runs (an empty path means "no process to watch")
bool process_alive(const std::string& pid_file);

// CPU time used so far, in seconds: by a cgroup v2 (cpu.stat usage_usec) if cgroup is set, else
// by the process in pid_file (utime + stime); nothing if neither is set or readable.
std::optional<double> cpu_seconds(const std::string& cgroup, const std::string& pid_file);

}  // namespace anychain::daemon
