// The end-to-end benchmark's topologies (bench/e2e_bench.cc): veth pairs between network
// namespaces, and what runs on the routers in each mode (anychain's fast path, a bare XDP
// redirect, Linux IP forwarding, Open vSwitch; see bench/e2e_ovs.h).
//
//   gen --g0|r-in-- R ... R --r-out|s0-- sink          each router side "r-*", each VNF "vK"
//                   |       |
//                  vnf1 .. vnfN
//
// A topology is described by the path a packet takes through the routers, one step per router
// visit: (router, ingress interface, egress interface, the next hop behind it). The bare
// redirect and Linux forwarding follow exactly these steps; anychain is configured per kind.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/netns.h"
#include "common/packet.h"
#include "dataplane/dataplane.h"

struct e2e_bpf;

namespace anychain::bench {

using test::Mac;

enum class Kind {
  GenOnly,  // the generator into a receiver that drops (no router work)
  Push,     // one router: classify + NSH push -> local NSH-aware VNF veth (the VNF counts)
  Proxy,    // one router: classify -> NSH-unaware VNF via the proxy -> back -> pop + route
  Gpe,      // two routers: classify + VXLAN-GPE -> decap -> NSH-aware VNF -> pop + route
  Chain,    // one router: classify -> N NSH-aware VNFs -> pop + route
};

struct TopoSpec {
  Kind kind = Kind::Push;
  int n = 1;  // Chain: number of services
  std::string name() const;
};
std::optional<TopoSpec> parse_topo(const std::string& s);

enum class Mode { Anychain, Redirect, Linux, Ovs, OvsAfxdp, Receiver };
std::string mode_name(Mode m);
std::optional<Mode> parse_mode(const std::string& s);

struct Iface {
  std::string ns;     // namespace name
  std::string node;   // role: "gen", "r1", "vnf3", "sink"
  std::string name;
  Mac mac{};
  std::string ip;     // "" = none
  int ifindex = 0;
};

// One router visit of the packet: in on `in`, out on `out` towards `next` (the far end).
struct Step {
  std::string router;
  Iface in, out, next;
};

// One loaded bench object (bench/e2e.bpf.c) in one namespace.
class BenchObj {
 public:
  BenchObj(const std::string& ns, bool vnf_drop);
  ~BenchObj();
  BenchObj(const BenchObj&) = delete;
  BenchObj& operator=(const BenchObj&) = delete;
  e2e_bpf* skel() const { return skel_; }
  void attach(const std::string& prog, const Iface& i);   // native XDP, in ns
  void detach_all();
  uint64_t packets(uint32_t slot = 0) const;               // summed over CPUs
  uint64_t bytes(uint32_t slot = 0) const;
  std::vector<uint32_t> prog_ids() const;                  // of the attached programs
  const std::string& ns() const { return ns_; }

 private:
  std::string ns_;
  e2e_bpf* skel_ = nullptr;
  std::vector<Iface> attached_;
  std::vector<uint32_t> attached_prog_ids_;
};

struct RouterDp {
  std::string ns;
  std::unique_ptr<dataplane::Dataplane> dp;
  std::vector<std::string> ifaces;                       // attached
  std::vector<uint32_t> prog_ids;                        // parallel to ifaces
};

class Topo {
 public:
  // Builds namespaces, veths, addresses, static neighbours and routes; loads the VNFs and the
  // receiver; enables threaded NAPI on the first router's ingress and pins it to `router_cpu`.
  Topo(const TopoSpec& spec, int router_cpu, uint32_t flow_cache_entries);
  ~Topo();

  const TopoSpec& spec() const { return spec_; }
  const Iface& gen_if() const { return gen_if_; }
  const Iface& router_in() const { return r_in_; }
  const std::vector<Step>& steps() const { return steps_; }
  // every interface whose veth counters take part in the accounting
  std::vector<Iface> all_ifaces() const;
  BenchObj& receiver() { return *receiver_; }
  std::vector<BenchObj*> vnfs();
  bool supports(Mode m) const;

  void set_mode(Mode m);   // tears down the previous mode first
  Mode mode() const { return mode_; }
  // anychain's routers (in Anychain mode), for counters
  const std::vector<RouterDp>& anychain() const { return adp_; }
  std::vector<uint32_t> router_prog_ids() const;
  // "r1/r-in" for a router program id of the current mode
  std::string prog_label(uint32_t id) const;
  // frames the bare redirect had no entry for (passed to the stack), all routers
  uint64_t fwd_passes() const;
  // The router's NAPI thread (pinned); re-found after mode changes.
  int napi_pid() const { return napi_pid_; }
  // the tasks that do the router's work: the NAPI thread, ksoftirqd of the router CPU and, in
  // the OVS modes, ovs-vswitchd (a process: its stat sums its threads)
  std::vector<int> router_tasks() const;
  void repin_napi();
  std::string ovs_flows() const;
  // The (SPI, SI) keys each anychain router looks up in its flow cache for one packet (instance
  // choices and last hops alike), per router in anychain() order.
  std::vector<std::vector<std::pair<uint32_t, uint8_t>>> flow_keys() const;  // dump-flows while OVS runs, else ""
  // OVS state directory, used by e2e_ovs
  void set_ovs_root(const std::string& root, const std::string& work) { ovs_root_ = root, ovs_work_ = work; }

 private:
  void build();
  void link(const std::string& a_node, const std::string& a_if, const std::string& b_node, const std::string& b_if,
            Iface* a_out, Iface* b_out, int subnet);
  void clear_mode();
  void anychain_on();
  void redirect_on();
  void linux_on();
  void linux_off();
  void pass_on();   // e2e_pass on the router interfaces towards VNFs
  void pass_off();
  std::string ns(const std::string& node) const;
  std::vector<std::string> routers() const;
  std::vector<Iface> router_ifaces(const std::string& router) const;

  TopoSpec spec_;
  int router_cpu_;
  uint32_t flow_cache_entries_;
  std::map<std::string, test::Netns> nets_;
  Iface gen_if_, r_in_;
  std::vector<std::pair<Iface, Iface>> links_;  // router side first where there is one
  std::vector<Step> steps_;
  std::unique_ptr<BenchObj> receiver_;
  std::vector<std::unique_ptr<BenchObj>> vnf_objs_;
  std::map<std::string, std::unique_ptr<BenchObj>> fwd_objs_;  // per router, Redirect mode
  std::map<std::string, std::unique_ptr<BenchObj>> pass_objs_; // per router, Linux and Ovs modes
  std::vector<RouterDp> adp_;
  Mode mode_ = Mode::Receiver;
  bool mode_set_ = false;
  int napi_pid_ = -1;
  std::string ovs_root_, ovs_work_;
  std::unique_ptr<class OvsSwitch> ovs_;
};

// "napi/<ifname>-*" kernel threads
std::vector<int> napi_threads(const std::string& ifname);
void pin_thread(int tid, int cpu);

}  // namespace anychain::bench
