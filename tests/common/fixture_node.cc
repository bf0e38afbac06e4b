#include "common/fixture_node.h"

#include <cstdio>
#include <stdexcept>

#include "common/sandbox.h"

namespace anychain::test {

void must(const std::string& cmd) {
  if (sh(cmd) != 0) throw std::runtime_error("setup command failed: " + cmd);
}

std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

void build_fixture_node() {
  auto veth = [](const std::string& a, const Mac& ma, const std::string& b, const Mac& mb) {
    must("ip link add " + a + " address " + mac_str(ma) + " type veth peer name " + b + " address " + mac_str(mb));
    must("ip link set " + a + " up && ip link set " + b + " up");
  };
  veth("src0", kSrc0, "src0p", kSrcHost);
  veth("vnf0", kVnf0Host, "vnf0p", kVnf0Peer);
  veth("vnf1", kVnf1Host, "vnf1p", kVnf1Peer);
  veth("core0", kCore0, "core0p", kCore0Peer);
  must("ip addr add 192.0.2.1/32 dev lo");
  must("ip addr add 10.0.0.1/24 dev core0 && ip -6 addr add 2001:db8:1::1/64 dev core0 nodad");
  must("ip neigh replace 10.0.0.2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip -6 neigh replace 2001:db8:1::2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip route add 192.0.2.2/32 via 10.0.0.2 && ip route add 192.0.2.3/32 via 10.0.0.3");
  must("ip route add 203.0.113.0/24 via 10.0.0.2 && ip route add 198.18.0.0/24 via 10.0.0.3");
  must("ip -6 route add 2001:db8:99::/64 via 2001:db8:1::2");
  must("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
}

}  // namespace anychain::test
