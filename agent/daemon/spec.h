// What the agent core needs to run one node: built from the parsed config by from_config.cc
// (or directly by tests), resolved to ids and addresses so the core never looks names up.
#pragma once

#include "daemon/ftc_channel.h"
#include "ftc/buffer.h"
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "daemon/replication.h"
#include "dataplane/dataplane.h"
#include "nf/supervisor.h"
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
  std::optional<Mac> mac;     // the VNF's MAC; learned from the neighbour table if absent
  uint32_t capacity = 0;      // packets/s the instance can process
  bool nsh_aware = true;
  std::string pid_file;       // optional: the instance is withdrawn when this process dies
                              // (liveness: daemon/liveness.h)
  std::string cgroup;         // optional: cgroup v2 directory whose CPU use counts as load
  // A built-in network function the agent runs for the instance (docs/nf.md): its namespace,
  // veth and anychain-nf process; the instance is alive while that runs.
  std::optional<nf::InstanceSpec> nf;
  bool ftc = false;           // its service is a hop of an FTC chain: announced with the FTC
                              // flag and its incarnation (docs/vnf-lsa.md, docs/ftc.md 7)
};

// An FTC chain as the daemon's FTC side needs it (docs/ftc.md 7): its hops' services in order.
struct FtcChainSpec {
  uint32_t spi = 0;
  uint8_t f = 1;
  std::vector<uint32_t> services;  // service ids, SI 255 first
};

struct InterfaceSpec {
  std::string name;
  XdpMode mode = XdpMode::Auto;
  bool classify = false;
};

struct AgentSpec {
  in_addr nsh_endpoint{};
  dataplane::Options dataplane;
  dataplane::Config fastpath;                    // endpoint copied from nsh_endpoint
  std::vector<InterfaceSpec> interfaces;
  std::vector<ServiceSpec> services;
  std::vector<LocalInstanceSpec> instances;
  // standbys (instance standby_for, docs/ftc.md 7.3): id is the instance they stand by for; not
  // run, only announced as standing by, until one takes over (it then moves to instances)
  std::vector<LocalInstanceSpec> standbys;
  std::vector<dataplane::PathEntry> paths;
  std::vector<PolicyRule> policies;
  ospf::ClientConfig ospf;
  plane::WcmpConfig wcmp;
  plane::CostMode cost_mode = plane::CostMode::RemainingCapacity;
  uint32_t cost_range = 0;                       // 0: each instance's capacity (the paper's unit)
  // keep a vanished remote instance this long: longer than FRR takes to re-originate an LSA
  // after a restart of the originator's ospfd (docs/agent.md, "ospfd restarts")
  std::chrono::milliseconds hold_down{8000};
  std::string ospfd_pid_file;                    // watched: reconnect as soon as ospfd is back
  config::Timers timers;
  nf::SupervisorOptions nf;                      // where and how built-in NFs run
  bool flush_on_exit = false;
  // the FTC egress buffer (docs/ftc.md 5.1): set when a chain uses FTC, from its ftc: values
  // (the largest of the chains': the buffer is the node's)
  std::optional<ftc::BufferLimits> ftc_buffer;
  // the FTC channel and the ingress forwarder (docs/ftc.md 4.4, 5.2): set when a chain uses FTC
  std::optional<FtcChannelSpec> ftc_channel;
  uint64_t ftc_propagate_after_ns = 1'000'000;   // the smallest of the chains'
  std::vector<FtcChainSpec> ftc_chains;          // the FTC chains, for control files and recovery
  std::chrono::milliseconds ftc_recovery_hold{30000};  // ftc.recovery_hold_ms (docs/ftc.md 7.2)
  bool slow_path = true;                         // the agent's slow path (docs/slow-path.md)
  uint16_t inner_mtu = 1500;                     // largest inner packet planned for (warnings)
  std::optional<ReplicationSpec> state;          // shared state replication (docs/state.md)
};

}  // namespace anychain::daemon
