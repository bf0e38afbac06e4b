// VNF monitor: turns each local instance's packet rate (from the fast path's per-instance
// counters) into the cost it announces, with damping, and tracks whether it is alive. The load is
// measured every monitor interval (status); costs are computed over the announce interval and
// announced with damping (docs/agent.md, "The VNF monitor").
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
  double pps = 0;              // measured over the last monitor period
  double cpu = -1;             // CPU share (1.0 = one core) over the last monitor period; -1 if not watched
  double load = 0;             // what the cost is computed from: max(pps, cpu x capacity) over the
                               // last announce period
  uint32_t fresh_cost = 0;     // cost of that load
  uint32_t announced = 0;      // cost in the LSA (after damping)
  bool alive = true;
  bool joining = false;        // its shared state is not in yet (docs/state.md 3.4): not announced
  bool announced_once = false;
  uint8_t incarnation = 0;     // FTC instances: the incarnation announced (docs/ftc.md 7.3)
};

class VnfMonitor {
 public:
  using Clock = std::chrono::steady_clock;
  explicit VnfMonitor(const AgentSpec& spec);

  // One monitor period: `packets` is the cumulative packet counter of each local instance; pps
  // and cpu are measured over the period since the previous tick. With `announce` (every
  // announce interval) the load over the period since the previous announce tick becomes the
  // cost, and the LSAs whose damped cost moved are returned. Live instances not announced yet
  // (the first time, or back from dead) are returned at any tick, with the cost of no load.
  std::vector<ospf::VnfInfo> tick(const std::map<uint32_t, uint64_t>& packets, Clock::time_point now,
                                  bool announce = true);

  // Liveness (veth up, process alive). Returns true if it changed.
  bool set_alive(uint32_t id, bool alive);
  bool alive(uint32_t id) const;
  // An instance joining its service's shared state is not announced until the snapshot is in;
  // it is announced at the first tick after. Returns true if it changed.
  bool set_joining(uint32_t id, bool joining);
  // An FTC instance's incarnation (a restart or a recovery made a new one): announced at the next
  // tick. Returns true if it changed.
  bool set_incarnation(uint32_t id, uint8_t incarnation);
  ospf::VnfInfo info(uint32_t id) const;  // the LSA content for an instance now
  // The LSA of an instance that died: flagged down (peers drop it without a hold-down), cost 0.
  ospf::VnfInfo down_info(uint32_t id) const;
  const std::map<uint32_t, InstanceLoad>& loads() const { return loads_; }

 private:
  const AgentSpec& spec_;
  std::map<uint32_t, InstanceLoad> loads_;
  struct Mark {  // counters at the start of a period
    std::map<uint32_t, uint64_t> packets;
    std::map<uint32_t, double> cpu;
    std::optional<Clock::time_point> at;
  };
  Mark tick_, announce_;
};

// true if the process whose pid is in pid_file runs (an empty path means "no process to watch")
bool process_alive(const std::string& pid_file);
// The pid in pid_file (0 if none or unreadable).
long read_pid_file(const std::string& pid_file);
// Whether a cgroup v2 directory holds a process (cgroup.events "populated"); nothing if unreadable.
std::optional<bool> cgroup_populated(const std::string& cgroup);

// CPU time used so far, in seconds: by a cgroup v2 (cpu.stat usage_usec) if cgroup is set, else
// by the process in pid_file (utime + stime); nothing if neither is set or readable.
std::optional<double> cpu_seconds(const std::string& cgroup, const std::string& pid_file);

}  // namespace anychain::daemon
