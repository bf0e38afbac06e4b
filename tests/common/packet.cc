#include "common/packet.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace anychain::test {

uint16_t inet_csum(const uint8_t* p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Mac mac(const std::string& text) {
  Mac m{};
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    throw std::invalid_argument("bad MAC " + text);
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

std::string hex(const Bytes& b) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < b.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    s += buf;
    if (i % 16 == 15) s += '\n';
    else if (i % 2 == 1) s += ' ';
  }
  return s;
}

Bytes eth(const Mac& dst, const Mac& src, uint16_t type) {
  Bytes b(dst.begin(), dst.end());
  b.insert(b.end(), src.begin(), src.end());
  put16(b, type);
  return b;
}

Bytes eth(const Mac& dst, const Mac& src, uint16_t type, std::initializer_list<Bytes> parts) {
  Bytes b = eth(dst, src, type);
  for (const Bytes& p : parts) append(b, p);
  return b;
}

static Bytes l4_bytes(const L4& l4, const uint8_t* pseudo, size_t pseudo_len) {
  Bytes b;
  if (l4.proto == IPPROTO_UDP) {
    put16(b, l4.sport);
    put16(b, l4.dport);
    put16(b, static_cast<uint16_t>(8 + l4.payload.size()));
    put16(b, 0);
  } else if (l4.proto == IPPROTO_TCP) {
    put16(b, l4.sport);
    put16(b, l4.dport);
    put32(b, 1);       // seq
    put32(b, 0);       // ack
    put16(b, 0x5002);  // data offset 5, SYN
    put16(b, 65535);
    put16(b, 0);
    put16(b, 0);
  }
  append(b, l4.payload);
  if (l4.proto == IPPROTO_UDP || l4.proto == IPPROTO_TCP) {
    Bytes ps(pseudo, pseudo + pseudo_len);
    put8(ps, 0);
    put8(ps, l4.proto);
    put16(ps, static_cast<uint16_t>(b.size()));
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < ps.size(); i += 2) sum += static_cast<uint32_t>(ps[i] << 8 | ps[i + 1]);
    uint16_t c = inet_csum(b.data(), b.size(), sum);
    if (l4.proto == IPPROTO_UDP && c == 0) c = 0xffff;
    size_t off = l4.proto == IPPROTO_UDP ? 6 : 16;
    b[off] = c >> 8;
    b[off + 1] = c & 0xff;
  }
  return b;
}

Bytes ipv4(const std::string& src, const std::string& dst, const L4& l4, uint8_t ttl, uint16_t frag_off) {
  in_addr s{}, d{};
  if (inet_pton(AF_INET, src.c_str(), &s) != 1 || inet_pton(AF_INET, dst.c_str(), &d) != 1)
    throw std::invalid_argument("bad IPv4 address");
  uint8_t pseudo[8];
  std::memcpy(pseudo, &s, 4);
  std::memcpy(pseudo + 4, &d, 4);
  Bytes body = l4_bytes(l4, pseudo, 8);
  Bytes h;
  put8(h, 0x45);
  put8(h, 0);
  put16(h, static_cast<uint16_t>(20 + body.size()));
  put16(h, 0x1234);
  put16(h, frag_off);
  put8(h, ttl);
  put8(h, l4.proto);
  put16(h, 0);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&s), reinterpret_cast<uint8_t*>(&s) + 4);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&d), reinterpret_cast<uint8_t*>(&d) + 4);
  uint16_t c = inet_csum(h.data(), h.size());
  h[10] = c >> 8;
  h[11] = c & 0xff;
  append(h, body);
  return h;
}

Bytes ipv6(const std::string& src, const std::string& dst, const L4& l4, uint8_t hop_limit) {
  in6_addr s{}, d{};
  if (inet_pton(AF_INET6, src.c_str(), &s) != 1 || inet_pton(AF_INET6, dst.c_str(), &d) != 1)
    throw std::invalid_argument("bad IPv6 address");
  uint8_t pseudo[32];
  std::memcpy(pseudo, &s, 16);
  std::memcpy(pseudo + 16, &d, 16);
  Bytes body = l4_bytes(l4, pseudo, 32);
  Bytes h;
  put32(h, 0x60000000);
  put16(h, static_cast<uint16_t>(body.size()));
  put8(h, l4.proto);
  put8(h, hop_limit);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&s), reinterpret_cast<uint8_t*>(&s) + 16);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&d), reinterpret_cast<uint8_t*>(&d) + 16);
  append(h, body);
  return h;
}

bool udp_csum_ok(const Bytes& frame, size_t ip_off) {
  const bool v4 = (frame.at(ip_off) >> 4) == 4;
  const size_t l4 = ip_off + (v4 ? (frame[ip_off] & 0xfu) * 4 : 40u);
  const uint16_t udp_len = get16(frame, l4 + 4);
  if (v4 && get16(frame, l4 + 6) == 0) return true;
  // pseudo header: addresses, then protocol and length (order differs, the sum does not)
  uint32_t sum = IPPROTO_UDP + udp_len;
  const size_t addr = ip_off + (v4 ? 12 : 8), addr_len = v4 ? 8 : 32;
  for (size_t i = 0; i < addr_len; i += 2) sum += get16(frame, addr + i);
  if (l4 + udp_len > frame.size()) return false;
  return inet_csum(frame.data() + l4, udp_len, sum) == 0;
}

Bytes lab_payload(uint32_t flow, uint32_t seq, size_t extra) {
  Bytes p;
  put32(p, AC_LAB_MAGIC);
  put32(p, flow);
  put32(p, seq);
  put32(p, 0x01020304);  // send_ts_ns
  put32(p, 0x05060708);
  for (unsigned i = 0; i < AC_LAB_SLOTS; ++i) put32(p, 0);  // served_by
  p.resize(p.size() + extra, 0);
  return p;
}

Bytes udp_packet(int family, const Bytes& payload, uint16_t sport, uint16_t dport) {
  L4 l4;
  l4.sport = sport;
  l4.dport = dport;
  l4.payload = payload;
  return family == 4 ? ipv4("10.1.0.1", "10.2.0.2", l4, 64, 0x4000) : ipv6("fd00:1::1", "fd00:2::2", l4);
}

ac_tuple tuple_of(const std::string& src, const std::string& dst, const L4& l4) {
  ac_tuple t{};
  bool v6 = src.find(':') != std::string::npos;
  t.family = v6 ? 6 : 4;
  inet_pton(v6 ? AF_INET6 : AF_INET, src.c_str(), t.src);
  inet_pton(v6 ? AF_INET6 : AF_INET, dst.c_str(), t.dst);
  t.proto = l4.proto;
  if (l4.proto == IPPROTO_UDP || l4.proto == IPPROTO_TCP) {
    t.sport = htons(l4.sport);
    t.dport = htons(l4.dport);
  }
  return t;
}

uint32_t flow_hash(const std::string& src, const std::string& dst, const L4& l4, bool symmetric) {
  ac_tuple t = tuple_of(src, dst, l4);
  return ac_flow_hash(&t, symmetric, AC_HASH_SEED);
}

Bytes tlv(uint16_t md_class, uint8_t type, const Bytes& value, int len_override) {
  Bytes b;
  put16(b, md_class);
  put8(b, type);
  put8(b, static_cast<uint8_t>(len_override >= 0 ? len_override : static_cast<int>(value.size())));
  append(b, value);
  while (b.size() % 4) b.push_back(0);
  return b;
}

Bytes flow_hash_tlv(uint32_t hash) {
  Bytes v;
  put32(v, hash);
  return tlv(AC_MD_CLASS, AC_TLV_FLOW_HASH, v);
}

Bytes nsh(const Nsh& n) {
  Bytes b;
  size_t len = 8 + (n.md_type == AC_NSH_MD_TYPE1 ? 16 : n.tlvs.size());
  int words = n.len_words >= 0 ? n.len_words : static_cast<int>(len / 4);
  put16(b, AC_NSH_W0(n.ver, n.ttl, words));
  put8(b, n.md_type);
  put8(b, n.next_proto);
  put32(b, AC_SPI_SI(n.spi, n.si));
  if (n.md_type == AC_NSH_MD_TYPE1) {
    for (uint32_t w : n.ctx) put32(b, w);
  } else {
    append(b, n.tlvs);
  }
  return b;
}

Bytes nsh(uint8_t md_type, uint32_t spi, uint8_t si, uint8_t next_proto, const Bytes& tlvs) {
  Nsh n;
  n.md_type = md_type;
  n.next_proto = next_proto;
  n.spi = spi;
  n.si = si;
  if (md_type == AC_NSH_MD_TYPE1) n.ctx[0] = 0xdeadbeef;
  else n.tlvs = tlvs;
  return nsh(n);
}

Bytes gpe_outer(const std::string& src, const std::string& dst, uint16_t sport, size_t inner_len,
                uint8_t next_proto, uint8_t flags, uint32_t vni) {
  in_addr s{}, d{};
  inet_pton(AF_INET, src.c_str(), &s);
  inet_pton(AF_INET, dst.c_str(), &d);
  Bytes h;
  uint16_t tot = static_cast<uint16_t>(20 + 8 + 8 + inner_len);
  put8(h, 0x45);
  put8(h, 0);
  put16(h, tot);
  put16(h, 0);       // ID 0 ...
  put16(h, 0x4000);  // ... and DF: an atomic datagram (RFC 6864), as the fast path sends it
  put8(h, 64);
  put8(h, IPPROTO_UDP);
  put16(h, 0);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&s), reinterpret_cast<uint8_t*>(&s) + 4);
  h.insert(h.end(), reinterpret_cast<uint8_t*>(&d), reinterpret_cast<uint8_t*>(&d) + 4);
  uint16_t c = inet_csum(h.data(), h.size());
  h[10] = c >> 8;
  h[11] = c & 0xff;
  put16(h, sport);
  put16(h, AC_VXLAN_GPE_PORT);
  put16(h, static_cast<uint16_t>(tot - 20));
  put16(h, 0);
  put8(h, flags);
  put8(h, 0);
  put8(h, 0);
  put8(h, next_proto);
  put32(h, vni << 8);
  return h;
}

}  // namespace anychain::test
