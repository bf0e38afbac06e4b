// The slow path's packet work (docs/slow-path.md), free of sockets so that unit tests feed it
// crafted bytes: decoding what the fast path hands over, RFC 791 fragmentation, the ICMP errors
// a router sends about a packet too big (RFC 1191, RFC 4443/8201) and when it must not, the SFC
// proxy's keys of a packet (the fast path's, include/anychain/flow_hash.h), and the frame that
// re-injects a reassembled VXLAN-GPE datagram into the fast path.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/net.h"

namespace anychain::slowpath {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t kEthLen = 14;
inline constexpr size_t kSlowHdrLen = 16;       // struct ac_slow_hdr
inline constexpr size_t kGpeOuterLen = 36;      // IPv4 + UDP + VXLAN-GPE
inline constexpr size_t kIcmp4QuoteMax = 576 - 20 - 8;   // RFC 1812 4.3.2.3: the error fits 576 bytes
inline constexpr size_t kIcmp6QuoteMax = 1280 - 40 - 8;  // RFC 4443 2.4(c): it fits the minimum MTU
inline constexpr uint32_t kIpv6MinMtu = 1280;
inline constexpr uint16_t kIpv4MinMtu = 68;              // RFC 791: every module forwards 68 bytes

uint16_t be16(const uint8_t* p);
uint32_t be32(const uint8_t* p);
void put_be16(uint8_t* p, uint16_t v);
void put_be32(uint8_t* p, uint32_t v);
// The Internet checksum (RFC 1071) of data, seeded with a partial sum.
uint16_t inet_checksum(std::span<const uint8_t> data, uint32_t seed = 0);

// A frame the fast path handed over: [eth][ac_slow_hdr][packet], include/anychain/slowpath.h.
struct HandedOver {
  uint8_t reason = 0;
  uint16_t mtu = 0;                 // the largest inner packet that fits the next hop
  uint32_t to_ifindex = 0;          // local interface it was for; 0: another node
  uint16_t inner_off = 0;           // inner IP header's offset in packet
  std::span<const uint8_t> packet;  // as the fast path would have sent it, from its Ethernet header
  std::span<const uint8_t> inner() const { return packet.subspan(inner_off); }
  std::span<const uint8_t> prefix() const { return packet.first(inner_off); }  // headers before it
};
// Checks everything the slow path relies on (EtherType, version, reason, offsets, an IPv4 or
// IPv6 header at inner_off, the outer headers of a packet for another node); the error says
// what is wrong.
Result<HandedOver> parse_handed_over(std::span<const uint8_t> frame);

// What a router may say about an inner packet that is too big, as decided from its headers.
struct InnerFacts {
  int family = 0;              // 4 or 6
  bool df = false;             // IPv4 DF (IPv6: always true, routers never fragment it)
  bool later_fragment = false; // a fragment other than the first
  bool icmp_error = false;     // itself an ICMP/ICMPv6 error message
  bool bad_source = false;     // source unspecified, loopback, multicast, broadcast or class E
  bool group_destination = false;  // IPv4 destination multicast or limited broadcast
  size_t length = 0;           // IP total length (IPv4) or 40 + payload length (IPv6)
};
Result<InnerFacts> inner_facts(std::span<const uint8_t> ip);
// Whether an ICMP error about this packet is allowed (RFC 1812 4.3.2.7, RFC 4443 2.4(e)); when
// not, why ("an ICMP error", "a fragment other than the first", ...).
std::optional<std::string> icmp_forbidden(const InnerFacts& f);

// RFC 791 fragmentation of an IPv4 packet without DF into packets of at most mtu bytes: every
// fragment but the last carries a multiple of 8 bytes of data, the identification is kept, MF
// and offsets are set (a fragment's own MF and offset are honoured), the first fragment keeps
// every option and the others only those with the copy flag. Fails when mtu leaves no room for
// 8 bytes of data after a header, or the packet is not fragmentable IPv4.
Result<std::vector<Bytes>> fragment_ipv4(std::span<const uint8_t> ip, size_t mtu);

// The ICMP "fragmentation needed and DF set" message (type 3, code 4, next-hop MTU, RFC 1191)
// about ip, quoting as much of it as fits 576 bytes; without the IP header (a raw socket adds it).
Bytes icmp4_frag_needed(std::span<const uint8_t> ip, uint16_t mtu);
// The ICMPv6 "packet too big" message (type 2, MTU never below 1280, RFC 8201), quoting as much
// as fits the minimum MTU. The checksum is left 0: the kernel fills it for ICMPv6 raw sockets.
Bytes icmp6_packet_too_big(std::span<const uint8_t> ip, uint32_t mtu);
// The IPv4 or IPv6 source address of ip (16 bytes, IPv4 in the first 4) and its family.
struct Address {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  bool operator==(const Address&) const = default;
};
Address source_of(std::span<const uint8_t> ip);
std::string to_string(const Address& a);

// The SFC proxy's keys (bpf/ac_proxy.h) of a bare IP packet: the flow's (5-tuple, proxy seed)
// and the datagram's (addresses, protocol, identification, fragment seed) the fast path uses
// for fragments. `fragment` says which one the fast path used for this packet itself.
struct ProxyKeys {
  uint32_t flow = 0;
  uint32_t datagram = 0;
  bool fragment = false;
};
std::optional<ProxyKeys> proxy_keys(std::span<const uint8_t> ip);

// A UDP datagram to the VXLAN-GPE port is VXLAN-GPE carrying NSH (flags P set, version 0, next
// protocol NSH, an NSH base header whose length fits); the error says what it is not.
Result<void> check_vxlan_gpe(std::span<const uint8_t> udp_payload);

// The frame that re-injects a VXLAN-GPE datagram into the fast path:
// [eth dst, src, IPv4][IPv4 from -> to, UDP][sport -> dport][payload].
Bytes reinjection_frame(const Mac& dst, const Mac& src, in_addr from, uint16_t sport, in_addr to, uint16_t dport,
                        std::span<const uint8_t> payload);

}  // namespace anychain::slowpath
