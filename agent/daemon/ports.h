// The XDP attachments anychaind owns: the configured interfaces, the veths of its local VNF
// instances (attached by the daemon, also when a veth appears later, forgotten when it goes) and
// the slow path's interface. Each gets the fast path's program and its role in ac_ifaces; an
// instance veth's MTU (and its far end's) is followed and handed to the fast path. Logs changes,
// not state: a reload that changes nothing logs nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/netlink.h"
#include "daemon/spec.h"
#include "dataplane/dataplane.h"

namespace anychain::daemon {

struct PortSpec {
  enum class Kind { Interface, InstanceVeth, SlowPath };
  std::string name;
  Kind kind = Kind::Interface;
  XdpMode mode = XdpMode::Auto;
  uint32_t roles = 0;         // AC_IF_CLASSIFY, AC_IF_VNF, AC_IF_SLOW_PATH
  uint32_t instance_id = 0;   // InstanceVeth
  std::string instance;       // InstanceVeth: the instance's name
  bool nsh_aware = true;      // InstanceVeth: NSH crosses it (else the bare packet)
};

// What the daemon wants attached, from its spec: interfaces, instance veths (a veth that is also
// a configured interface keeps that entry's mode), the slow path's interface (if any).
std::vector<PortSpec> wanted_ports(const AgentSpec& spec, const std::string& slow_if);

class Ports {
 public:
  explicit Ports(dataplane::Dataplane& dp) : dp_(dp) {}

  // Attach what is wanted and exists, detach what the daemon attached and is no longer wanted.
  // A missing interface is not an error (it is attached when it appears); the errors returned
  // are the other refusals of configured interfaces (e.g. no native XDP); an instance veth's
  // are logged and shown by status().
  std::vector<Error> apply(std::vector<PortSpec> want);
  // A link notification: a wanted interface that appeared (or came back with another ifindex) is
  // attached, one that went is forgotten, an instance veth's MTU change reaches the fast path.
  void on_link(const LinkEvent& e);
  // Re-read the MTUs of instance veths and their far ends (the far end lives in the VNF's
  // namespace, whose link notifications do not reach us).
  void refresh_mtus();
  // Detach everything the daemon attached (--flush-on-exit).
  void detach_all();

  // The MTU a local instance's veth carries (the smaller of its two ends; 0: unknown).
  uint16_t instance_mtu(uint32_t instance_id) const;
  // Called when it changes.
  std::function<void(uint32_t instance_id, uint16_t mtu)> on_instance_mtu;

  // Every port with its live attachment (asked from the kernel now), and warnings: an instance
  // veth without the program, an MTU that leaves no room for NSH (inner_mtu: the largest inner
  // packet planned for; nsh_len: the largest NSH the node's chains put on it).
  nlohmann::json status(uint16_t inner_mtu, unsigned nsh_len, nlohmann::json& warnings) const;
  bool attached(const std::string& name) const;

 private:
  struct State {
    PortSpec spec;
    int ifindex = 0;
    bool attached = false;      // by us, as far as we know
    uint32_t prog_id = 0;
    uint32_t entry_id = 0;      // what the kernel runs first there when we last checked (ours
                                // or libxdp's dispatcher running ours)
    XdpMode mode = XdpMode::Auto;
    bool dispatcher = true;
    unsigned mtu = 0, peer_mtu = 0;
    std::string problem;        // why it is not attached (logged once)
  };
  void attach(State& s, std::vector<Error>* errors);
  std::optional<dataplane::Attachment> live_attachment(const std::string& name, const State& s) const;
  void read_mtus(State& s);
  dataplane::Dataplane& dp_;
  std::map<std::string, State> ports_;
};

}  // namespace anychain::daemon
