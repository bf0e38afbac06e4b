#include "slowpath/plan.h"

#include <cstring>

#include "anychain/nsh.h"

namespace anychain::slowpath {

Result<Plan> plan_too_big(const HandedOver& h) {
  const auto inner = h.inner();
  auto facts = inner_facts(inner);
  if (!facts) return unexpected(facts.error());
  Plan p;
  p.to_ifindex = h.to_ifindex;
  p.source = source_of(inner);
  if (facts->df) {
    if (auto why = icmp_forbidden(*facts)) {
      p.kind = Plan::Kind::IcmpForbidden;
      p.why = *why;
      return p;
    }
    p.kind = Plan::Kind::IcmpError;
    p.icmp = facts->family == 4 ? icmp4_frag_needed(inner, h.mtu) : icmp6_packet_too_big(inner, h.mtu);
    return p;
  }
  auto frags = fragment_ipv4(inner.first(facts->length), h.mtu);
  if (!frags) {
    if (frags.error().code != EMSGSIZE) return unexpected(frags.error());
    p.kind = Plan::Kind::Unfragmentable;
    p.why = frags.error().message;
    return p;
  }
  p.kind = Plan::Kind::Fragments;
  std::span<const uint8_t> prefix = h.prefix();
  if (h.to_ifindex == 0) {
    // [eth][IPv4][UDP][VXLAN-GPE][NSH]: the socket writes the IPv4 and UDP headers
    const uint8_t* ip = &h.packet[kEthLen];
    std::memcpy(&p.remote.s_addr, ip + 16, 4);
    p.remote_port = be16(ip + 20 + 2);
    prefix = prefix.subspan(kEthLen + 28);
  } else if (be16(&h.packet[12]) != AC_ETH_P_NSH) {
    p.proxy = proxy_keys(inner);  // bare IP to an NSH-unaware VNF: the proxy holds its NSH
    if (!p.proxy) return fail("inner packet too short for the SFC proxy's key", EBADMSG);
  }
  for (auto& f : *frags) {
    Bytes s(prefix.begin(), prefix.end());
    s.insert(s.end(), f.begin(), f.end());
    p.sends.push_back(std::move(s));
  }
  return p;
}

}  // namespace anychain::slowpath
