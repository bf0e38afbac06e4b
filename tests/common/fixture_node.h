// The node the BPF fixtures and the fast-path benchmark run on: interfaces, addresses,
// neighbours and routes in the current (sandboxed) network namespace, and the fast path's
// configuration on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/packet.h"
#include "dataplane/dataplane.h"

namespace anychain::test {

// Addresses of the fixture node (see build_fixture_node)
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

// service ids and instance ids of the fixture node's configuration
enum : uint32_t { kSvcLocal = 1, kSvcRemote = 2, kSvcProxy = 3, kSvcNoNeigh = 4 };
enum : uint32_t { kInstLocal = 1, kInstRemote = 2, kInstProxy = 3, kInstLocalB = 4, kInstNoNeigh = 5 };


// Creates the node: veths src0 (classifying), vnf0 (local NSH-aware VNF), vnf1 (proxied VNF) and
// core0 (towards the other nodes; static IPv4/IPv6 neighbours), the local endpoint on lo, routes
// to the remote endpoint, to an unresolved one and to the inner destinations, and forwarding on.
void build_fixture_node();

// A WCMP table with every bucket on `instance`.
std::vector<uint32_t> table_of(uint32_t instance);

// Configures the fast path for that node, policies aside (each user installs its own): the
// local endpoint; src0 classifying and vnf1 as the proxied VNF's interface; instances
// kInstLocal (NSH-aware behind vnf0), kInstRemote (endpoint 192.0.2.2, VNI 7), kInstProxy
// (behind vnf1) and kInstNoNeigh (an endpoint without a neighbour), one service each; chain 100
// (local VNF, remote instance, end), chain 200 (proxied VNF, end) and chain 300 (the instance
// without a neighbour). Throws naming the step that failed.
void program_fixture_node(dataplane::Dataplane& dp);

}  // namespace anychain::test
