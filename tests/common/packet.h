// Packet builders for fixtures: build frames byte by byte so expected outputs are explicit.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "anychain/flow_hash.h"
#include "anychain/lab_payload.h"
#include "anychain/nsh.h"

namespace anychain::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline void put8(Bytes& b, uint8_t v) { b.push_back(v); }
inline void put16(Bytes& b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
inline void append(Bytes& b, const Bytes& x) { b.insert(b.end(), x.begin(), x.end()); }
// Overwrite 2 or 4 bytes at offset o (big endian).
inline void set16(Bytes& b, size_t o, uint16_t v) {
  b.at(o) = static_cast<uint8_t>(v >> 8);
  b.at(o + 1) = static_cast<uint8_t>(v);
}
inline void set32(Bytes& b, size_t o, uint32_t v) {
  set16(b, o, static_cast<uint16_t>(v >> 16));
  set16(b, o + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const Bytes& b, size_t o) { return static_cast<uint16_t>(b.at(o) << 8 | b.at(o + 1)); }
inline uint32_t get32(const Bytes& b, size_t o) { return static_cast<uint32_t>(get16(b, o)) << 16 | get16(b, o + 2); }

uint16_t inet_csum(const uint8_t* p, size_t n, uint32_t sum = 0);

Bytes eth(const Mac& dst, const Mac& src, uint16_t type);
// A whole frame: the Ethernet header, then the parts in order.
Bytes eth(const Mac& dst, const Mac& src, uint16_t type, std::initializer_list<Bytes> parts);

struct L4 {
  uint8_t proto = IPPROTO_UDP;
  uint16_t sport = 1000, dport = 2000;
  Bytes payload = Bytes(32, 0xab);
};

// IPv4 packet (no Ethernet) with UDP/TCP/other and correct checksums.
Bytes ipv4(const std::string& src, const std::string& dst, const L4& l4, uint8_t ttl = 64, uint16_t frag_off = 0);
Bytes ipv6(const std::string& src, const std::string& dst, const L4& l4, uint8_t hop_limit = 64);

// True if the UDP checksum of the IP packet at frame[ip_off] verifies (0 in IPv4: none, valid).
bool udp_csum_ok(const Bytes& frame, size_t ip_off);

// The lab payload (anychain/lab_payload.h) of flow/seq, served_by all 0, then `extra` zero bytes.
Bytes lab_payload(uint32_t flow, uint32_t seq, size_t extra = 0);
// UDP from 10.1.0.1 to 10.2.0.2 (family 4, DF set) or from fd00:1::1 to fd00:2::2 (family 6),
// carrying `payload`, with valid checksums: the lab tools' traffic.
Bytes udp_packet(int family, const Bytes& payload, uint16_t sport = 40000, uint16_t dport = 9000);

// Tuple as the fast path sees it, and its flow hash.
ac_tuple tuple_of(const std::string& src, const std::string& dst, const L4& l4);
uint32_t flow_hash(const std::string& src, const std::string& dst, const L4& l4, bool symmetric = false);

struct Nsh {
  uint8_t ver = 0;
  uint8_t ttl = AC_NSH_DEFAULT_TTL;
  uint8_t md_type = AC_NSH_MD_TYPE1;
  uint8_t next_proto = AC_NSH_NP_IPV4;
  uint32_t spi = 0;
  uint8_t si = 255;
  std::array<uint32_t, 4> ctx{};        // MD1
  Bytes tlvs;                            // MD2: raw TLV bytes (already padded)
  int len_words = -1;                    // override the length field (malformed cases)
};
Bytes nsh(const Nsh& n);
// NSH with the default TTL: MD1 (context word 0 = 0xdeadbeef) or MD2 carrying `tlvs`.
Bytes nsh(uint8_t md_type, uint32_t spi, uint8_t si, uint8_t next_proto, const Bytes& tlvs = {});
// One MD2 TLV: class, type, value (padded to 4 bytes on the wire, length field = value size).
Bytes tlv(uint16_t md_class, uint8_t type, const Bytes& value, int len_override = -1);
Bytes flow_hash_tlv(uint32_t hash);

// [IPv4][UDP 4790][VXLAN-GPE] header stack in front of an NSH packet of inner_len bytes.
Bytes gpe_outer(const std::string& src, const std::string& dst, uint16_t sport, size_t inner_len,
                uint8_t next_proto = AC_GPE_NP_NSH, uint8_t flags = AC_GPE_FLAG_I | AC_GPE_FLAG_P,
                uint32_t vni = 0);

Mac mac(const std::string& text);
std::string mac_str(const Mac& m);  // "02:00:00:00:a0:01"
std::string hex(const Bytes& b);

}  // namespace anychain::test
