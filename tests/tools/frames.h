// Test frame builders: Ethernet, NSH (MD1/MD2), IPv4/IPv6 + UDP with the lab payload, and an
// independent reference checksum for verification (deliberately not the code under test).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "anychain/lab_payload.h"
#include "anychain/nsh.h"

namespace anychain::testing {

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;

inline void put16(Bytes& b, std::size_t off, std::uint16_t v) {
  b[off] = static_cast<std::uint8_t>(v >> 8);
  b[off + 1] = static_cast<std::uint8_t>(v);
}
inline void put32(Bytes& b, std::size_t off, std::uint32_t v) {
  put16(b, off, static_cast<std::uint16_t>(v >> 16));
  put16(b, off + 2, static_cast<std::uint16_t>(v));
}
inline std::uint16_t get16(const Bytes& b, std::size_t off) {
  return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]);
}
inline std::uint32_t get32(const Bytes& b, std::size_t off) {
  return (std::uint32_t{get16(b, off)} << 16) | get16(b, off + 2);
}

// Reference Internet checksum: plain sum of 16-bit big-endian words, folded, complemented.
inline std::uint16_t ref_checksum(const Bytes& data) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < data.size(); i += 2) {
    s += (std::uint32_t{data[i]} << 8) | (i + 1 < data.size() ? data[i + 1] : 0);
  }
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

// The lab payload (host values) followed by `extra` zero bytes.
inline Bytes lab_payload(std::uint32_t flow, std::uint32_t seq, std::size_t extra = 0,
                         std::array<std::uint32_t, AC_LAB_SLOTS> served = {}) {
  Bytes p(AC_LAB_PAYLOAD_LEN + extra, 0);
  put32(p, 0, AC_LAB_MAGIC);
  put32(p, 4, flow);
  put32(p, 8, seq);
  put32(p, 12, 0x01020304);
  put32(p, 16, 0x05060708);
  for (unsigned i = 0; i < AC_LAB_SLOTS; ++i) put32(p, 20 + 4 * i, served[i]);
  return p;
}

// True if the UDP checksum of an IP packet (starting at ip[off]) verifies; IPv4 0 is valid.
inline bool ref_udp_ok(const Bytes& frame, std::size_t ip_off) {
  const bool v4 = (frame[ip_off] >> 4) == 4;
  const std::size_t l4 = ip_off + (v4 ? (frame[ip_off] & 0xf) * 4u : 40u);
  const std::uint16_t udp_len = get16(frame, l4 + 4);
  if (v4 && get16(frame, l4 + 6) == 0) return true;
  Bytes pseudo;
  if (v4) {
    pseudo.assign(frame.begin() + ip_off + 12, frame.begin() + ip_off + 20);
    pseudo.insert(pseudo.end(), {0, 17, static_cast<std::uint8_t>(udp_len >> 8),
                                 static_cast<std::uint8_t>(udp_len)});
  } else {
    pseudo.assign(frame.begin() + ip_off + 8, frame.begin() + ip_off + 40);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<std::uint8_t>(udp_len >> 8),
                                 static_cast<std::uint8_t>(udp_len), 0, 0, 0, 17});
  }
  pseudo.insert(pseudo.end(), frame.begin() + l4, frame.begin() + l4 + udp_len);
  return ref_checksum(pseudo) == 0;
}

// IPv4 (10.1.0.1 -> 10.2.0.2) or IPv6 (fd00:1::1 -> fd00:2::2) packet with a UDP datagram
// carrying `payload`, with valid IP header and UDP checksums.
inline Bytes ip_udp(int family, const Bytes& payload, std::uint16_t sport = 40000,
                    std::uint16_t dport = 9000) {
  const std::size_t udp_len = 8 + payload.size();
  Bytes udp(udp_len, 0);
  put16(udp, 0, sport);
  put16(udp, 2, dport);
  put16(udp, 4, static_cast<std::uint16_t>(udp_len));
  std::copy(payload.begin(), payload.end(), udp.begin() + 8);
  Bytes ip;
  if (family == 4) {
    ip.assign(20, 0);
    ip[0] = 0x45;
    put16(ip, 2, static_cast<std::uint16_t>(20 + udp_len));
    put16(ip, 4, 0x1234);
    put16(ip, 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = 17;
    put32(ip, 12, 0x0a010001);
    put32(ip, 16, 0x0a020002);
    put16(ip, 10, ref_checksum(ip));
  } else {
    ip.assign(40, 0);
    ip[0] = 0x60;
    put16(ip, 4, static_cast<std::uint16_t>(udp_len));
    ip[6] = 17;
    ip[7] = 64;
    put32(ip, 8, 0xfd000001);
    put32(ip, 20, 1);
    put32(ip, 24, 0xfd000002);
    put32(ip, 36, 2);
  }
  const std::size_t l4 = ip.size();
  ip.insert(ip.end(), udp.begin(), udp.end());
  // UDP checksum over the pseudo header.
  Bytes pseudo;
  if (family == 4) {
    pseudo.assign(ip.begin() + 12, ip.begin() + 20);
    pseudo.insert(pseudo.end(), {0, 17, static_cast<std::uint8_t>(udp_len >> 8),
                                 static_cast<std::uint8_t>(udp_len)});
  } else {
    pseudo.assign(ip.begin() + 8, ip.begin() + 40);
    pseudo.insert(pseudo.end(), {0, 0, static_cast<std::uint8_t>(udp_len >> 8),
                                 static_cast<std::uint8_t>(udp_len), 0, 0, 0, 17});
  }
  pseudo.insert(pseudo.end(), udp.begin(), udp.end());
  std::uint16_t c = ref_checksum(pseudo);
  if (c == 0) c = 0xffff;
  put16(ip, l4 + 6, c);
  return ip;
}

// NSH header: MD1 (24 bytes, ctx[0] = flow hash) or MD2 with the given raw TLV bytes.
inline Bytes nsh(unsigned md_type, std::uint32_t spi, std::uint8_t si, std::uint8_t next_proto,
                 const Bytes& md2_tlvs = {}) {
  Bytes h(AC_NSH_BASE_LEN, 0);
  Bytes ctx;
  if (md_type == AC_NSH_MD_TYPE1) {
    ctx.assign(16, 0);
    put32(ctx, 0, 0xdeadbeef);
  } else {
    ctx = md2_tlvs;
  }
  const std::size_t words = (AC_NSH_BASE_LEN + ctx.size()) / 4;
  put16(h, 0, AC_NSH_W0(AC_NSH_VERSION, AC_NSH_DEFAULT_TTL, words));
  h[2] = static_cast<std::uint8_t>(md_type);
  h[3] = next_proto;
  put32(h, 4, AC_SPI_SI(spi, si));
  h.insert(h.end(), ctx.begin(), ctx.end());
  return h;
}

// One MD2 TLV of anychain's class carrying a 4-byte value.
inline Bytes flow_hash_tlv(std::uint32_t hash) {
  Bytes t(8, 0);
  put16(t, 0, AC_MD_CLASS);
  t[2] = AC_TLV_FLOW_HASH;
  t[3] = 4;
  put32(t, 4, hash);
  return t;
}

inline Bytes ether(const Mac& dst, const Mac& src, std::uint16_t type,
                   std::initializer_list<const Bytes*> parts) {
  Bytes f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  f.push_back(static_cast<std::uint8_t>(type >> 8));
  f.push_back(static_cast<std::uint8_t>(type));
  for (const Bytes* p : parts) f.insert(f.end(), p->begin(), p->end());
  return f;
}

}  // namespace anychain::testing
