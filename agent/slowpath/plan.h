// What the slow path does with one frame the fast path handed over (docs/slow-path.md), decided
// without sockets: fragments to send (IPv4 without DF) or an ICMP error to send back (IPv4 with
// DF, IPv6), or why nothing can be sent. The runtime (slowpath.h) only sends what this says.
#pragma once

#include <netinet/in.h>

#include <optional>
#include <string>
#include <vector>

#include "slowpath/packet.h"

namespace anychain::slowpath {

struct Plan {
  enum class Kind {
    Fragments,       // frames (local VNF) or UDP payloads (another node), one per fragment
    IcmpError,       // icmp to `source`
    IcmpForbidden,   // no error may be sent about this packet (`why`)
    Unfragmentable,  // IPv4 without DF that cannot be split to fit (`why`)
  };
  Kind kind = Kind::Fragments;
  // Fragments: for a local interface (to_ifindex), complete frames with the packet's Ethernet
  // header (and NSH); for another node, [VXLAN-GPE][NSH][fragment] to remote:remote_port.
  std::vector<Bytes> sends;
  uint32_t to_ifindex = 0;
  in_addr remote{};
  uint16_t remote_port = 0;
  // Fragments to a VNF behind the SFC proxy: the keys whose held NSH the fragments need.
  std::optional<ProxyKeys> proxy;
  // IcmpError: the message (ICMP or ICMPv6, without IP header) and where it goes.
  Bytes icmp;
  Address source;
  std::string why;
};

// Decide for a frame parse_handed_over() accepted. An error: the inner packet is malformed.
Result<Plan> plan_too_big(const HandedOver& h);

}  // namespace anychain::slowpath
