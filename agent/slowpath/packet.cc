#include "slowpath/packet.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "anychain/flow_hash.h"
#include "anychain/nsh.h"
#include "anychain/slowpath.h"

namespace anychain::slowpath {

namespace {

constexpr uint16_t kEthPIp = 0x0800, kEthPIpv6 = 0x86DD;
constexpr uint16_t kIpDf = 0x4000, kIpMf = 0x2000, kIpOffset = 0x1fff;
constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kProtoSctp = 132;
constexpr uint8_t kNhHopByHop = 0, kNhRouting = 43, kNhFragment = 44, kNhIcmp6 = 58, kNhDestOpts = 60;

bool has_ports(uint8_t proto) { return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp; }

// A slice of `bytes` as a vector.
Bytes copy_of(std::span<const uint8_t> bytes) { return Bytes(bytes.begin(), bytes.end()); }

// The options of an IPv4 header that later fragments carry (RFC 791: those with the copy flag),
// padded with end-of-list to whole words. Empty when an option is malformed.
std::optional<Bytes> copied_options(std::span<const uint8_t> opts) {
  Bytes out;
  for (size_t i = 0; i < opts.size();) {
    uint8_t type = opts[i];
    if (type == 0) break;  // end of option list
    if (type == 1) {       // no-operation: not copied
      ++i;
      continue;
    }
    if (i + 1 >= opts.size() || opts[i + 1] < 2 || i + opts[i + 1] > opts.size()) return std::nullopt;
    if (type & 0x80) out.insert(out.end(), opts.begin() + static_cast<long>(i), opts.begin() + static_cast<long>(i + opts[i + 1]));
    i += opts[i + 1];
  }
  while (out.size() % 4) out.push_back(0);
  return out;
}

void set_ipv4_checksum(uint8_t* hdr, size_t len) {
  hdr[10] = hdr[11] = 0;
  put_be16(hdr + 10, inet_checksum({hdr, len}));
}

}  // namespace

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
void put_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, static_cast<uint16_t>(v >> 16));
  put_be16(p + 2, static_cast<uint16_t>(v));
}

uint16_t inet_checksum(std::span<const uint8_t> data, uint32_t seed) {
  uint64_t sum = seed;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += be16(&data[i]);
  if (i < data.size()) sum += static_cast<uint32_t>(data[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Result<HandedOver> parse_handed_over(std::span<const uint8_t> frame) {
  if (frame.size() < kEthLen + kSlowHdrLen + kEthLen)
    return fail(fmt::format("frame of {} bytes is shorter than the slow path's headers", frame.size()), EBADMSG);
  if (be16(&frame[12]) != AC_ETH_P_SLOW) return fail(fmt::format("EtherType {:#06x} is not the slow path's", be16(&frame[12])), EBADMSG);
  const uint8_t* h = &frame[kEthLen];
  HandedOver o;
  if (h[0] != AC_SLOW_VERSION) return fail(fmt::format("slow path header version {} (expected {})", h[0], AC_SLOW_VERSION), EBADMSG);
  o.reason = h[1];
  o.mtu = be16(h + 2);
  o.to_ifindex = be32(h + 4);
  o.inner_off = be16(h + 8);
  o.packet = frame.subspan(kEthLen + kSlowHdrLen);
  if (o.reason != AC_SLOW_TOO_BIG) return fail(fmt::format("unknown slow path reason {}", o.reason), EBADMSG);
  if (o.mtu == 0) return fail("next-hop MTU 0", EBADMSG);
  if (o.inner_off < kEthLen || static_cast<size_t>(o.inner_off) + 20 > o.packet.size())
    return fail(fmt::format("inner packet offset {} outside a packet of {} bytes", o.inner_off, o.packet.size()), EBADMSG);
  const uint16_t eth_proto = be16(&o.packet[12]);
  if (o.to_ifindex == 0) {
    // [eth][IPv4][UDP][VXLAN-GPE][NSH][inner] for another node
    const uint8_t* ip = &o.packet[kEthLen];
    if (eth_proto != kEthPIp || o.packet.size() < kEthLen + kGpeOuterLen || ip[0] != 0x45 || ip[9] != kProtoUdp)
      return fail("a packet for another node without its outer IPv4/UDP headers", EBADMSG);
    if (o.inner_off < kEthLen + kGpeOuterLen + AC_NSH_BASE_LEN)
      return fail(fmt::format("inner packet offset {} leaves no room for the outer headers and NSH", o.inner_off), EBADMSG);
  } else if (eth_proto == AC_ETH_P_NSH) {
    if (o.inner_off < kEthLen + AC_NSH_BASE_LEN) return fail("inner packet offset inside the NSH", EBADMSG);
  } else if (eth_proto == kEthPIp || eth_proto == kEthPIpv6) {
    if (o.inner_off != kEthLen) return fail("a bare IP frame whose inner packet does not follow Ethernet", EBADMSG);
  } else {
    return fail(fmt::format("a frame for interface {} with EtherType {:#06x}", o.to_ifindex, eth_proto), EBADMSG);
  }
  const uint8_t version = o.packet[o.inner_off] >> 4;
  if (version != 4 && !(version == 6 && static_cast<size_t>(o.inner_off) + 40 <= o.packet.size()))
    return fail(fmt::format("inner packet of IP version {}", version), EBADMSG);
  return o;
}

Result<InnerFacts> inner_facts(std::span<const uint8_t> ip) {
  InnerFacts f;
  if (ip.empty()) return fail("empty inner packet", EBADMSG);
  if ((ip[0] >> 4) == 4) {
    f.family = 4;
    const size_t ihl = static_cast<size_t>(ip[0] & 0xf) * 4;
    if (ip.size() < 20 || ihl < 20 || ihl > ip.size()) return fail("truncated IPv4 header", EBADMSG);
    f.length = be16(&ip[2]);
    if (f.length < ihl || f.length > ip.size()) return fail(fmt::format("IPv4 total length {} outside the packet", f.length), EBADMSG);
    const uint16_t frag = be16(&ip[6]);
    f.df = frag & kIpDf;
    f.later_fragment = (frag & kIpOffset) != 0;
    if (ip[9] == kProtoIcmp && !f.later_fragment && f.length > ihl) {
      const uint8_t type = ip[ihl];
      f.icmp_error = type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
    }
    const uint8_t s0 = ip[12], d0 = ip[16];
    f.bad_source = s0 == 0 || s0 == 127 || s0 >= 224;  // this network, loopback, multicast, class E
    f.group_destination = d0 >= 224 && d0 < 240;
    f.group_destination |= be32(&ip[16]) == 0xffffffffu;
    return f;
  }
  if ((ip[0] >> 4) != 6 || ip.size() < 40) return fail("neither an IPv4 nor an IPv6 header", EBADMSG);
  f.family = 6;
  f.df = true;
  f.length = 40 + static_cast<size_t>(be16(&ip[4]));
  if (f.length > ip.size()) return fail(fmt::format("IPv6 payload length {} beyond the packet", f.length - 40), EBADMSG);
  uint8_t nh = ip[6];
  size_t off = 40;
  for (int i = 0; i < 8; ++i) {  // bounded walk of the extension headers
    if (nh == kNhHopByHop || nh == kNhRouting || nh == kNhDestOpts) {
      if (off + 2 > f.length) break;
      nh = ip[off];
      off += (static_cast<size_t>(ip[off + 1]) + 1) * 8;
    } else if (nh == kNhFragment) {
      if (off + 8 > f.length) break;
      f.later_fragment = (be16(&ip[off + 2]) & 0xfff8) != 0;
      nh = ip[off];
      off += 8;
      if (f.later_fragment) break;
    } else {
      if (nh == kNhIcmp6 && off < f.length) f.icmp_error = ip[off] < 128;
      break;
    }
  }
  static const uint8_t zero[16] = {};
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  f.bad_source = ip[8] == 0xff || std::memcmp(&ip[8], zero, 16) == 0 || std::memcmp(&ip[8], loopback, 16) == 0;
  // RFC 4443 2.4(e.3): packet too big is sent for a multicast destination too
  return f;
}

std::optional<std::string> icmp_forbidden(const InnerFacts& f) {
  if (f.icmp_error) return "an ICMP error";
  if (f.later_fragment) return "a fragment other than the first";
  if (f.bad_source) return "its source is not a single host";
  if (f.family == 4 && f.group_destination) return "its destination is a multicast or broadcast address";
  return std::nullopt;
}

Result<std::vector<Bytes>> fragment_ipv4(std::span<const uint8_t> ip, size_t mtu) {
  auto facts = inner_facts(ip);
  if (!facts) return unexpected(facts.error());
  if (facts->family != 4) return fail("only IPv4 is fragmented on the way", EINVAL);
  if (facts->df) return fail("DF is set", EINVAL);
  const size_t ihl = static_cast<size_t>(ip[0] & 0xf) * 4;
  const std::span<const uint8_t> data = ip.subspan(ihl, facts->length - ihl);
  auto later_opts = copied_options(ip.subspan(20, ihl - 20));
  if (!later_opts) return fail("malformed IPv4 options", EBADMSG);
  const size_t later_hl = 20 + later_opts->size();
  const uint16_t frag = be16(&ip[6]);
  const size_t base = static_cast<size_t>(frag & kIpOffset) * 8;  // a fragment of a fragment
  const bool last_mf = frag & kIpMf;

  std::vector<Bytes> out;
  if (facts->length <= mtu) {
    out.push_back(copy_of(ip.first(facts->length)));
    return out;
  }
  size_t pos = 0;
  while (pos < data.size()) {
    const bool first = pos == 0;
    const size_t hl = first ? ihl : later_hl;
    if (mtu < hl + 8)
      return fail(fmt::format("an MTU of {} leaves no room for 8 bytes of data after a {}-byte header", mtu, hl), EMSGSIZE);
    size_t take = data.size() - pos;
    const bool last = take <= mtu - hl;
    if (!last) take = (mtu - hl) & ~size_t{7};
    if ((base + pos) / 8 > kIpOffset) return fail("fragment offset beyond 65528", EMSGSIZE);
    Bytes f(hl + take);
    std::copy_n(ip.begin(), 20, f.begin());
    if (first)
      std::copy_n(ip.begin() + 20, ihl - 20, f.begin() + 20);
    else
      std::copy(later_opts->begin(), later_opts->end(), f.begin() + 20);
    f[0] = static_cast<uint8_t>(0x40 | (hl / 4));
    put_be16(&f[2], static_cast<uint16_t>(hl + take));
    const bool mf = last ? last_mf : true;
    put_be16(&f[6], static_cast<uint16_t>((frag & 0x8000) | (mf ? kIpMf : 0) | ((base + pos) / 8)));
    std::copy_n(data.begin() + static_cast<long>(pos), take, f.begin() + static_cast<long>(hl));
    set_ipv4_checksum(f.data(), hl);
    out.push_back(std::move(f));
    pos += take;
  }
  return out;
}

Bytes icmp4_frag_needed(std::span<const uint8_t> ip, uint16_t mtu) {
  const size_t len = std::min(ip.size(), ip.size() >= 4 ? static_cast<size_t>(be16(&ip[2])) : ip.size());
  const size_t quote = std::min(len, kIcmp4QuoteMax);
  Bytes m(8 + quote, 0);
  m[0] = 3;  // destination unreachable
  m[1] = 4;  // fragmentation needed and DF set
  put_be16(&m[6], std::max(mtu, kIpv4MinMtu));
  std::copy_n(ip.begin(), quote, m.begin() + 8);
  put_be16(&m[2], inet_checksum(m));
  return m;
}

Bytes icmp6_packet_too_big(std::span<const uint8_t> ip, uint32_t mtu) {
  const size_t len = std::min(ip.size(), ip.size() >= 6 ? 40 + static_cast<size_t>(be16(&ip[4])) : ip.size());
  const size_t quote = std::min(len, kIcmp6QuoteMax);
  Bytes m(8 + quote, 0);
  m[0] = 2;  // packet too big
  put_be32(&m[4], std::max(mtu, kIpv6MinMtu));
  std::copy_n(ip.begin(), quote, m.begin() + 8);
  return m;
}

Address source_of(std::span<const uint8_t> ip) {
  Address a;
  if (ip.size() >= 20 && (ip[0] >> 4) == 4) {
    a.family = 4;
    std::copy_n(ip.begin() + 12, 4, a.bytes.begin());
  } else if (ip.size() >= 40 && (ip[0] >> 4) == 6) {
    a.family = 6;
    std::copy_n(ip.begin() + 8, 16, a.bytes.begin());
  }
  return a;
}

std::string to_string(const Address& a) {
  char b[INET6_ADDRSTRLEN] = "?";
  if (a.family) inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.bytes.data(), b, sizeof b);
  return b;
}

std::optional<ProxyKeys> proxy_keys(std::span<const uint8_t> ip) {
  // the tuple exactly as bpf/ac_parse.h's ac_parse_tuple_frag() fills it
  ac_tuple t{};
  uint16_t id_lo = 0, id_hi = 0;
  bool frag = false;
  size_t l4 = 0;
  if (ip.size() >= 20 && (ip[0] >> 4) == 4 && (ip[0] & 0xf) >= 5) {
    t.family = 4;
    t.proto = ip[9];
    std::memcpy(&t.src[0], &ip[12], 4);
    std::memcpy(&t.dst[0], &ip[16], 4);
    frag = (be16(&ip[6]) & (kIpMf | kIpOffset)) != 0;
    std::memcpy(&id_lo, &ip[4], 2);  // as the program loads it
    l4 = static_cast<size_t>(ip[0] & 0xf) * 4;
  } else if (ip.size() >= 40 && (ip[0] >> 4) == 6) {
    t.family = 6;
    t.proto = ip[6];
    std::memcpy(t.src, &ip[8], 16);
    std::memcpy(t.dst, &ip[24], 16);
    l4 = 40;
    if (t.proto == kNhFragment) {
      if (ip.size() < 48) return std::nullopt;
      frag = true;
      uint32_t id;
      std::memcpy(&id, &ip[44], 4);
      id_lo = static_cast<uint16_t>(id);
      id_hi = static_cast<uint16_t>(id >> 16);
    }
  } else {
    return std::nullopt;
  }
  ac_tuple d = t;  // the datagram's: addresses, protocol and identification
  d.sport = id_lo;
  d.dport = id_hi;
  if (!frag && has_ports(t.proto)) {
    if (l4 + 4 > ip.size()) return std::nullopt;  // the fast path would not have held it either
    std::memcpy(&t.sport, &ip[l4], 2);
    std::memcpy(&t.dport, &ip[l4 + 2], 2);
  }
  ProxyKeys k;
  k.fragment = frag;
  k.datagram = ac_flow_hash(&d, 0, AC_PROXY_FRAG_SEED);
  k.flow = frag ? k.datagram : ac_flow_hash(&t, 0, AC_PROXY_HASH_SEED);
  return k;
}

Result<void> check_vxlan_gpe(std::span<const uint8_t> p) {
  if (p.size() < 8 + AC_NSH_BASE_LEN) return fail(fmt::format("{} bytes are too short for VXLAN-GPE and NSH", p.size()), EBADMSG);
  if (!(p[0] & AC_GPE_FLAG_P) || (p[0] & AC_GPE_VER_MASK))
    return fail(fmt::format("VXLAN-GPE flags {:#04x}: P bit clear or unknown version", p[0]), EBADMSG);
  if (p[3] != AC_GPE_NP_NSH) return fail(fmt::format("VXLAN-GPE next protocol {} is not NSH", p[3]), EBADMSG);
  const uint8_t* nsh = &p[8];
  const size_t len = static_cast<size_t>(nsh[1] & 0x3f) * 4;
  if ((nsh[0] >> 6) != AC_NSH_VERSION) return fail(fmt::format("NSH version {}", nsh[0] >> 6), EBADMSG);
  if (len < AC_NSH_BASE_LEN || 8 + len > p.size()) return fail(fmt::format("NSH length {} outside the datagram", len), EBADMSG);
  return {};
}

Bytes reinjection_frame(const Mac& dst, const Mac& src, in_addr from, uint16_t sport, in_addr to, uint16_t dport,
                        std::span<const uint8_t> payload) {
  Bytes f(kEthLen + 28 + payload.size());
  std::copy(dst.begin(), dst.end(), f.begin());
  std::copy(src.begin(), src.end(), f.begin() + 6);
  put_be16(&f[12], kEthPIp);
  uint8_t* ip = &f[kEthLen];
  ip[0] = 0x45;
  put_be16(ip + 2, static_cast<uint16_t>(28 + payload.size()));
  ip[8] = 64;
  ip[9] = kProtoUdp;
  std::memcpy(ip + 12, &from.s_addr, 4);
  std::memcpy(ip + 16, &to.s_addr, 4);
  set_ipv4_checksum(ip, 20);
  uint8_t* udp = ip + 20;
  put_be16(udp, sport);
  put_be16(udp + 2, dport);
  put_be16(udp + 4, static_cast<uint16_t>(8 + payload.size()));  // checksum 0: none (RFC 768)
  std::copy(payload.begin(), payload.end(), f.begin() + kEthLen + 28);
  return f;
}

}  // namespace anychain::slowpath
