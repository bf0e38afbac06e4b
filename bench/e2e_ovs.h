// Open vSwitch's userspace datapath as a reference router for the end-to-end benchmark: run
// from its Debian package unpacked into a directory (apt-get download + dpkg-deb -x; never
// installed, never a service), ovsdb-server and ovs-vswitchd in the router's namespace with
// their state in a private directory, every thread pinned to the router's CPU.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "common/proc.h"

namespace anychain::bench {

// Downloads openvswitch-switch and openvswitch-common with `apt-get download` into dir and
// unpacks them there; returns the unpacked root or why it could not.
std::expected<std::string, std::string> ovs_fetch(const std::string& dir);
// True if root holds an unpacked package (ovs-vswitchd and the schema).
bool ovs_root_ok(const std::string& root);

class OvsSwitch {
 public:
  // Bridge br0 (datapath_type=netdev) with `ports` (ofport i+1 for ports[i]); afxdp: AF_XDP
  // ports (type afxdp, native XDP, copy mode on veth) polled by a PMD thread on `cpu`; else
  // the netdev-linux ports (AF_PACKET) polled by the main thread. Throws with the log's tail.
  OvsSwitch(const std::string& root, const std::string& work, const std::string& ns, int cpu, bool afxdp,
            const std::vector<std::string>& ports);
  ~OvsSwitch();
  OvsSwitch(const OvsSwitch&) = delete;
  OvsSwitch& operator=(const OvsSwitch&) = delete;

  // ovs-ofctl add-flow for each (OpenFlow 1.5: packet types, and Nicira extensions)
  void add_flows(const std::vector<std::string>& flows);
  // `ovs-ofctl dump-flows br0` (for errors and the JSON)
  std::string dump_flows();
  int vswitchd_pid() const { return vswitchd_.pid(); }

 private:
  std::string tool(const std::string& name) const;
  std::string ctl(const std::string& args) const;  // ovs-vsctl
  void pin_threads();
  void remove_taps();  // the netdev datapath's tap devices (ovs-netdev, br0)

  std::string root_, work_, ns_;
  int cpu_;
  test::Proc db_, vswitchd_;
};

}  // namespace anychain::bench
