// The node the BPF fixtures and the fast-path benchmark run on: interfaces, addresses,
// neighbours and routes in the current (sandboxed) network namespace.
#pragma once

#include <string>

#include "common/packet.h"

namespace anychain::test {

// Addresses of the fixture node (see FastPathEnv::SetUp)
inline const Mac kVnf0Host = {0x02, 0, 0, 0, 0xa0, 0x01};  // host side of local NSH-aware VNF veth
inline const Mac kVnf0Peer = {0x02, 0, 0, 0, 0xa0, 0x02};  // the VNF
inline const Mac kVnf1Host = {0x02, 0, 0, 0, 0xa1, 0x01};  // host side of proxied VNF veth
inline const Mac kVnf1Peer = {0x02, 0, 0, 0, 0xa1, 0x02};
inline const Mac kCore0 = {0x02, 0, 0, 0, 0xc0, 0x01};     // towards the other nodes
inline const Mac kCore0Peer = {0x02, 0, 0, 0, 0xc0, 0x02}; // next hop 10.0.0.2 / 2001:db8:1::2
inline const Mac kSrc0 = {0x02, 0, 0, 0, 0x50, 0x01};      // classifying interface
inline const Mac kSrcHost = {0x02, 0, 0, 0, 0x50, 0x02};   // the traffic source behind it
inline const char* kLocalEndpoint = "192.0.2.1";
inline const char* kRemoteEndpoint = "192.0.2.2";
inline const char* kUnresolvedEndpoint = "192.0.2.3";      // routed via 10.0.0.3, no neighbour

// Run a setup command; throws naming it if it fails.
void must(const std::string& cmd);
std::string mac_str(const Mac& m);

// Creates the node: veths src0 (classifying), vnf0 (local NSH-aware VNF), vnf1 (proxied VNF) and
// core0 (towards the other nodes; static IPv4/IPv6 neighbours), the local endpoint on lo, routes
// to the remote endpoint, to an unresolved one and to the inner destinations, and forwarding on.
void build_fixture_node();

}  // namespace anychain::test
