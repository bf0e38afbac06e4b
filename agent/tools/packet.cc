#include "tools/packet.h"

#include <algorithm>
#include <cstring>

namespace anychain::tools {
namespace {

constexpr std::uint8_t kIpProtoUdp = 17;
constexpr std::size_t kUdpHdrLen = 8;
constexpr std::size_t kIpv6HdrLen = 40;

}  // namespace

std::uint16_t load_be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
std::uint64_t load_be64(const std::uint8_t* p) {
  return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void store_be32(std::uint8_t* p, std::uint32_t v) {
  store_be16(p, static_cast<std::uint16_t>(v >> 16));
  store_be16(p + 2, static_cast<std::uint16_t>(v));
}
void store_be64(std::uint8_t* p, std::uint64_t v) {
  store_be32(p, static_cast<std::uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<std::uint32_t>(v));
}

std::uint32_t csum_add(std::uint32_t sum, std::span<const std::uint8_t> data) {
  std::uint64_t s = sum;
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) s += load_be16(&data[i]);
  if (i < data.size()) s += std::uint32_t{data[i]} << 8;
  while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
  return static_cast<std::uint32_t>(s);
}

std::uint16_t csum_fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::optional<LabPayload> read_lab_payload(std::span<const std::uint8_t> b) {
  if (b.size() < AC_LAB_PAYLOAD_LEN) return std::nullopt;
  LabPayload p;
  p.magic = load_be32(&b[AC_LAB_OFF_MAGIC]);
  if (p.magic != AC_LAB_MAGIC) return std::nullopt;
  p.flow_id = load_be32(&b[AC_LAB_OFF_FLOW_ID]);
  p.seq = load_be32(&b[AC_LAB_OFF_SEQ]);
  p.send_ts_ns = load_be64(&b[AC_LAB_OFF_SEND_TS]);
  for (unsigned i = 0; i < AC_LAB_SLOTS; ++i) {
    p.served_by[i] = load_be32(&b[AC_LAB_OFF_SERVED_BY + 4 * i]);
  }
  return p;
}

void write_lab_payload(std::span<std::uint8_t> b, const LabPayload& p) {
  store_be32(&b[AC_LAB_OFF_MAGIC], p.magic);
  store_be32(&b[AC_LAB_OFF_FLOW_ID], p.flow_id);
  store_be32(&b[AC_LAB_OFF_SEQ], p.seq);
  store_be64(&b[AC_LAB_OFF_SEND_TS], p.send_ts_ns);
  for (unsigned i = 0; i < AC_LAB_SLOTS; ++i) {
    store_be32(&b[AC_LAB_OFF_SERVED_BY + 4 * i], p.served_by[i]);
  }
}

IpParse locate_udp(std::span<const std::uint8_t> ip, UdpLocation& loc) {
  if (ip.empty()) return IpParse::kMalformed;
  const unsigned version = ip[0] >> 4;
  if (version == 4) {
    if (ip.size() < 20) return IpParse::kMalformed;
    const std::size_t ihl = std::size_t{ip[0] & 0x0fu} * 4;
    const std::size_t total = load_be16(&ip[2]);
    if (ihl < 20 || total < ihl || total > ip.size()) return IpParse::kMalformed;
    const std::uint16_t frag = load_be16(&ip[6]);
    if ((frag & 0x2000) || (frag & 0x1fff)) return IpParse::kNotUdp;  // MF or offset
    if (ip[9] != kIpProtoUdp) return IpParse::kNotUdp;
    if (total - ihl < kUdpHdrLen) return IpParse::kMalformed;
    const std::size_t udp_len = load_be16(&ip[ihl + 4]);
    if (udp_len < kUdpHdrLen || udp_len > total - ihl) return IpParse::kMalformed;
    loc = UdpLocation{4, ihl, udp_len};
    return IpParse::kUdp;
  }
  if (version == 6) {
    if (ip.size() < kIpv6HdrLen) return IpParse::kMalformed;
    const std::size_t end = kIpv6HdrLen + load_be16(&ip[4]);
    if (end > ip.size()) return IpParse::kMalformed;
    unsigned nh = ip[6];
    std::size_t off = kIpv6HdrLen;
    for (int hops = 0; hops < 8; ++hops) {
      if (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
        if (off + 8 > end) return IpParse::kMalformed;
        const std::size_t len = (std::size_t{ip[off + 1]} + 1) * 8;
        if (off + len > end) return IpParse::kMalformed;
        nh = ip[off];
        off += len;
        continue;
      }
      if (nh != kIpProtoUdp) return IpParse::kNotUdp;  // includes fragments (44)
      if (end - off < kUdpHdrLen) return IpParse::kMalformed;
      const std::size_t udp_len = load_be16(&ip[off + 4]);
      if (udp_len < kUdpHdrLen || udp_len > end - off) return IpParse::kMalformed;
      loc = UdpLocation{6, off, udp_len};
      return IpParse::kUdp;
    }
    return IpParse::kNotUdp;
  }
  return IpParse::kMalformed;
}

namespace {

std::uint32_t pseudo_sum(std::span<const std::uint8_t> ip, const UdpLocation& loc) {
  std::uint8_t tail[4] = {0, 0, 0, kIpProtoUdp};
  std::uint32_t s = 0;
  if (loc.family == 4) {
    s = csum_add(s, ip.subspan(12, 8));
    std::uint8_t p[4] = {0, kIpProtoUdp, 0, 0};
    store_be16(&p[2], static_cast<std::uint16_t>(loc.udp_len));
    return csum_add(s, p);
  }
  s = csum_add(s, ip.subspan(8, 32));
  std::uint8_t len[4];
  store_be32(len, static_cast<std::uint32_t>(loc.udp_len));
  s = csum_add(s, len);
  return csum_add(s, tail);
}

}  // namespace

void fix_udp6_checksum(std::span<std::uint8_t> ip, const UdpLocation& loc) {
  std::uint8_t* udp = &ip[loc.l4_offset];
  store_be16(udp + 6, 0);
  std::uint32_t s = pseudo_sum(ip, loc);
  s = csum_add(s, ip.subspan(loc.l4_offset, loc.udp_len));
  std::uint16_t c = csum_fold(s);
  if (c == 0) c = 0xffff;  // 0 means "no checksum", which IPv6 does not allow
  store_be16(udp + 6, c);
}

bool udp_checksum_ok(std::span<const std::uint8_t> ip, const UdpLocation& loc) {
  const std::uint16_t field = load_be16(&ip[loc.l4_offset + 6]);
  if (field == 0) return loc.family == 4;
  std::uint32_t s = pseudo_sum(ip, loc);
  s = csum_add(s, ip.subspan(loc.l4_offset, loc.udp_len));
  return csum_fold(s) == 0;
}

Stamp stamp_lab_payload(std::span<std::uint8_t> ip, std::uint32_t instance_id, unsigned slot) {
  UdpLocation loc;
  switch (locate_udp(ip, loc)) {
    case IpParse::kMalformed:
      return Stamp::kMalformed;
    case IpParse::kNotUdp:
      return Stamp::kNotLab;
    case IpParse::kUdp:
      break;
  }
  auto payload = ip.subspan(loc.l4_offset + kUdpHdrLen, loc.udp_len - kUdpHdrLen);
  if (!read_lab_payload(payload) || slot >= AC_LAB_SLOTS) return Stamp::kNotLab;
  store_be32(&payload[AC_LAB_OFF_SERVED_BY + 4 * slot], instance_id);
  if (loc.family == 4) {
    store_be16(&ip[loc.l4_offset + 6], 0);
  } else {
    fix_udp6_checksum(ip, loc);
  }
  return Stamp::kStamped;
}

std::string to_string(NshError e) {
  switch (e) {
    case NshError::kTruncated:
      return "truncated";
    case NshError::kVersion:
      return "version";
    case NshError::kLength:
      return "length";
    case NshError::kMdType:
      return "md_type";
    case NshError::kTlv:
      return "tlv";
  }
  return "unknown";
}

std::expected<NshHeader, NshError> parse_nsh(std::span<const std::uint8_t> b) {
  if (b.size() < AC_NSH_BASE_LEN) return std::unexpected(NshError::kTruncated);
  NshHeader h;
  const std::uint16_t w0 = load_be16(&b[0]);
  h.version = AC_NSH_W0_VER(w0);
  h.ttl = AC_NSH_W0_TTL(w0);
  h.length = static_cast<std::size_t>(AC_NSH_W0_LEN(w0)) * 4;
  h.md_type = b[2] & 0x0f;
  h.next_proto = b[3];
  const std::uint32_t spi_si = load_be32(&b[4]);
  h.spi = spi_si >> 8;
  h.si = spi_si & 0xff;
  if (h.version != AC_NSH_VERSION) return std::unexpected(NshError::kVersion);
  if (h.length < AC_NSH_BASE_LEN) return std::unexpected(NshError::kLength);
  if (h.length > b.size()) return std::unexpected(NshError::kTruncated);
  if (h.md_type == AC_NSH_MD_TYPE1) {
    if (h.length != AC_NSH_MD1_LEN) return std::unexpected(NshError::kMdType);
  } else if (h.md_type == AC_NSH_MD_TYPE2) {
    std::size_t off = AC_NSH_BASE_LEN;
    while (off < h.length) {
      if (off + sizeof(ac_nsh_tlv) > h.length) return std::unexpected(NshError::kTlv);
      const std::size_t vlen = b[off + 3] & 0x7f;
      const std::size_t padded = (vlen + 3) & ~std::size_t{3};
      if (off + sizeof(ac_nsh_tlv) + padded > h.length) return std::unexpected(NshError::kTlv);
      off += sizeof(ac_nsh_tlv) + padded;
    }
  } else {
    return std::unexpected(NshError::kMdType);
  }
  return h;
}

void swap_macs(std::span<std::uint8_t> frame) {
  std::swap_ranges(frame.begin(), frame.begin() + 6, frame.begin() + 6);
}

namespace {

// Work on an inner IP packet; returns false if it is malformed.
bool do_work(std::span<std::uint8_t> ip, std::uint32_t instance_id, unsigned slot,
             FrameResult& r) {
  switch (stamp_lab_payload(ip, instance_id, slot)) {
    case Stamp::kMalformed:
      return false;
    case Stamp::kStamped:
      r.stamped = true;
      return true;
    case Stamp::kNotLab:
      return true;
  }
  return true;
}

}  // namespace

FrameResult process_nsh_frame(std::span<std::uint8_t> frame, std::uint32_t instance_id,
                              unsigned slot) {
  FrameResult r;
  if (frame.size() < kEthHdrLen || load_be16(&frame[12]) != AC_ETH_P_NSH) {
    r.verdict = Verdict::kIgnored;
    return r;
  }
  auto nsh = frame.subspan(kEthHdrLen);
  auto h = parse_nsh(nsh);
  if (!h) {
    r.verdict = Verdict::kMalformed;
    r.nsh_error = h.error();
    return r;
  }
  if (h->si == 0) {
    r.verdict = Verdict::kSiZero;
    return r;
  }
  auto inner = nsh.subspan(h->length);
  bool ok = true;
  if (h->next_proto == AC_NSH_NP_IPV4 || h->next_proto == AC_NSH_NP_IPV6) {
    // The next protocol must match the inner packet's IP version.
    const unsigned want = h->next_proto == AC_NSH_NP_IPV4 ? 4u : 6u;
    ok = !inner.empty() && (inner[0] >> 4) == want && do_work(inner, instance_id, slot, r);
  } else if (h->next_proto == AC_NSH_NP_ETH && inner.size() >= kEthHdrLen) {
    const std::uint16_t et = load_be16(&inner[12]);
    if (et == kEthPIpv4 || et == kEthPIpv6) {
      ok = do_work(inner.subspan(kEthHdrLen), instance_id, slot, r);
    }
  }
  if (!ok) {
    r.verdict = Verdict::kMalformed;
    r.stamped = false;
    return r;
  }
  nsh[7] = static_cast<std::uint8_t>(h->si - 1);
  swap_macs(frame);
  r.verdict = Verdict::kForward;
  return r;
}

FrameKind classify_frame(std::span<const std::uint8_t> frame, bool nsh_mode) {
  if (frame.size() < kEthHdrLen) return FrameKind::kOther;
  const std::uint16_t et = load_be16(&frame[12]);
  if (nsh_mode) return et == AC_ETH_P_NSH ? FrameKind::kService : FrameKind::kOther;
  if (et == kEthPIpv4) return FrameKind::kService;
  if (et != kEthPIpv6) return FrameKind::kOther;
  constexpr std::size_t kIcmp6 = kEthHdrLen + kIpv6HdrLen;
  if (frame.size() > kIcmp6 && frame[kEthHdrLen + 6] == 58 && frame[kIcmp6] >= 133 &&
      frame[kIcmp6] <= 137) {
    return FrameKind::kLinkControl;  // RS, RA, NS, NA, redirect
  }
  return FrameKind::kService;
}

FrameResult process_plain_frame(std::span<std::uint8_t> frame, std::uint32_t instance_id,
                                unsigned slot) {
  FrameResult r;
  if (classify_frame(frame, false) != FrameKind::kService) return r;
  const std::uint16_t et = load_be16(&frame[12]);
  auto ip = frame.subspan(kEthHdrLen);
  if (ip.empty() || (ip[0] >> 4) != (et == kEthPIpv4 ? 4u : 6u) ||
      !do_work(ip, instance_id, slot, r)) {
    r.verdict = Verdict::kMalformed;
    r.stamped = false;
    return r;
  }
  swap_macs(frame);
  r.verdict = Verdict::kForward;
  return r;
}

TokenBucket::TokenBucket(double rate_pps, double burst, std::uint64_t now_ns)
    : rate_(rate_pps), burst_(std::max(1.0, burst)), tokens_(std::max(1.0, burst)),
      last_ns_(now_ns) {}

bool TokenBucket::take(std::uint64_t now_ns) {
  if (rate_ <= 0) return true;
  if (now_ns > last_ns_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ns - last_ns_) * rate_ / 1e9);
    last_ns_ = now_ns;
  }
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  return false;
}

}  // namespace anychain::tools
