// What the agent core needs to run one node: built from the YAML config by the daemon (or
// directly by tests), so the core does not depend on the config file format.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "ospf/client.h"
#include "plane/service_plane.h"
#include "plane/vnf_cost.h"

namespace anychain::daemon {

struct ServiceSpec {
  std::string name;
  uint32_t id = 0;            // service id in the fast path's maps (1..AC_MAX_SERVICES-1)
  uint32_t anycast_addr = 0;  // host order
  uint8_t anycast_len = 32;
};

struct LocalInstanceSpec {
  std::string name;
  uint32_t id = 0;            // network-wide instance id
  uint32_t service_id = 0;
  std::string veth;           // host side of the VNF's veth
  std::optional<dataplane::Mac> mac;  // the VNF's MAC; learned from the neighbour table if absent
  uint32_t capacity = 0;      // packets/s the instance can process
  bool nsh_aware = true;
  std::string pid_file;       // optional: the instance is withdrawn when this process dies
  std::string cgroup;         // optional: cgroup v2 directory whose CPU use counts as load
};

struct InterfaceSpec {
  std::string name;
  dataplane::XdpMode mode = dataplane::XdpMode::Auto;
  bool classify = false;
};

struct PathSpec {
  uint32_t spi = 0;
  uint8_t si = 0;
  uint32_t service_id = 0;
  bool last_hop = false;
};

struct Timers {
  std::chrono::milliseconds spf_delay{50};       // first recomputation after a change
  std::chrono::milliseconds spf_hold{200};       // minimum gap between two recomputations
  std::chrono::milliseconds announce_interval{2000};  // VNF monitor period (paper: 2 s)
  std::chrono::milliseconds hold_down{3000};     // keep a vanished remote instance this long
  double cost_damping = 0.05;                    // re-announce when the cost moves >= this * capacity
};

struct AgentSpec {
  in_addr nsh_endpoint{};
  dataplane::Options dataplane;
  dataplane::Config fastpath;                    // endpoint copied from nsh_endpoint
  std::vector<InterfaceSpec> interfaces;
  std::vector<ServiceSpec> services;
  std::vector<LocalInstanceSpec> instances;
  std::vector<PathSpec> paths;
  std::vector<dataplane::PolicyRule> policies;
  ospf::ClientConfig ospf;
  plane::WcmpConfig wcmp;
  plane::CostMode cost_mode = plane::CostMode::RemainingCapacity;
  uint32_t cost_range = 0;                       // 0: each instance's capacity (the paper's unit)
  Timers timers;
  bool flush_on_exit = false;
};

}  // namespace anychain::daemon
