// Frame processing of the lab tools (anychain-vnf, anychain-trafgen, anychain-sink), kept free of
// sockets so that unit tests can feed it crafted frames.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>

#include "anychain/lab_payload.h"
#include "anychain/nsh.h"

namespace anychain::tools {

inline constexpr std::size_t kEthHdrLen = 14;
inline constexpr std::uint16_t kEthPIpv4 = 0x0800;
inline constexpr std::uint16_t kEthPIpv6 = 0x86DD;

// Big-endian loads/stores on unaligned bytes.
std::uint16_t load_be16(const std::uint8_t* p);
std::uint32_t load_be32(const std::uint8_t* p);
std::uint64_t load_be64(const std::uint8_t* p);
void store_be16(std::uint8_t* p, std::uint16_t v);
void store_be32(std::uint8_t* p, std::uint32_t v);
void store_be64(std::uint8_t* p, std::uint64_t v);

// One's complement sum of `data` added to `sum` (not folded, not complemented).
std::uint32_t csum_add(std::uint32_t sum, std::span<const std::uint8_t> data);
// Folds and complements a csum_add() result into the 16-bit Internet checksum.
std::uint16_t csum_fold(std::uint32_t sum);

// The lab payload in host order.
struct LabPayload {
  std::uint32_t magic = AC_LAB_MAGIC;
  std::uint32_t flow_id = 0;
  std::uint32_t seq = 0;
  std::uint64_t send_ts_ns = 0;
  std::array<std::uint32_t, AC_LAB_SLOTS> served_by{};
};

// Reads the lab payload at the start of a UDP payload; nullopt if too short or wrong magic.
std::optional<LabPayload> read_lab_payload(std::span<const std::uint8_t> udp_payload);
// Writes `p` into the first AC_LAB_PAYLOAD_LEN bytes of `out` (which must be that long).
void write_lab_payload(std::span<std::uint8_t> out, const LabPayload& p);

// Where the UDP datagram of an IP packet is, if it is a complete unfragmented UDP datagram.
struct UdpLocation {
  int family = 0;            // 4 or 6
  std::size_t l4_offset = 0; // UDP header offset within the IP packet
  std::size_t udp_len = 0;   // UDP length field (header + payload)
};
enum class IpParse { kUdp, kNotUdp, kMalformed };
// `ip` starts at the IPv4/IPv6 header and may carry trailing link padding.
IpParse locate_udp(std::span<const std::uint8_t> ip, UdpLocation& loc);

// Recomputes the UDP checksum of the IPv6 packet `ip` (UdpLocation from locate_udp).
void fix_udp6_checksum(std::span<std::uint8_t> ip, const UdpLocation& loc);
// True if the UDP checksum of the packet verifies (IPv4 checksum 0 counts as valid).
bool udp_checksum_ok(std::span<const std::uint8_t> ip, const UdpLocation& loc);

// The VNF's work on an inner IP packet: a UDP packet carrying the lab payload gets
// served_by[slot] = instance_id and its UDP checksum fixed (0 for IPv4, recomputed for IPv6).
enum class Stamp { kStamped, kNotLab, kMalformed };
Stamp stamp_lab_payload(std::span<std::uint8_t> ip, std::uint32_t instance_id, unsigned slot);

// Parsed NSH header (RFC 8300), host order.
struct NshHeader {
  unsigned version = 0;
  unsigned ttl = 0;
  std::size_t length = 0;  // header length in bytes (Length field * 4)
  unsigned md_type = 0;
  unsigned next_proto = 0;
  std::uint32_t spi = 0;
  unsigned si = 0;
};
enum class NshError { kTruncated, kVersion, kLength, kMdType, kTlv };
std::string to_string(NshError e);
// Validates the NSH header at the start of `nsh` (which runs to the end of the frame):
// version 0, header length within the buffer, MD type 1 with length 6 words or MD type 2 with
// TLVs that exactly fill the header.
std::expected<NshHeader, NshError> parse_nsh(std::span<const std::uint8_t> nsh);

void swap_macs(std::span<std::uint8_t> frame);

// What the VNF does with one received frame (the frame is modified in place).
enum class Verdict {
  kForward,      // send it back out (MACs swapped)
  kIgnored,      // not for this mode (non-NSH frame in nsh mode, non-IP frame in plain mode)
  kMalformed,    // dropped: bad NSH or a truncated inner IP packet
  kSiZero,       // dropped: NSH service index already 0
};
struct FrameResult {
  Verdict verdict = Verdict::kIgnored;
  bool stamped = false;                  // lab payload written
  std::optional<NshError> nsh_error;     // why, for kMalformed in nsh mode
};
// nsh mode: NSH over Ethernet; validates, does the work on an IPv4/IPv6/Ethernet inner packet,
// decrements SI, swaps MACs.
FrameResult process_nsh_frame(std::span<std::uint8_t> frame, std::uint32_t instance_id,
                              unsigned slot);
// plain mode: bare IPv4/IPv6 over Ethernet; does the work, swaps MACs. IPv6 neighbour
// discovery (ICMPv6 types 133..137) is link control, not traffic: kIgnored.
FrameResult process_plain_frame(std::span<std::uint8_t> frame, std::uint32_t instance_id,
                                unsigned slot);

// What kind of frame this is for a VNF in the given mode, before any work is done (so that
// only service frames consume capacity).
enum class FrameKind {
  kService,      // NSH over Ethernet (nsh mode) / IPv4 or IPv6 (plain mode)
  kOther,        // anything else
  kLinkControl,  // plain mode: IPv6 neighbour discovery between the VNF's host and its peer
};
FrameKind classify_frame(std::span<const std::uint8_t> frame, bool nsh_mode);

// Token bucket for --capacity: `rate` tokens per second, at most `burst` stored (rate 0 =
// unlimited). Time is passed in (nanoseconds, monotonic) so that tests can drive it.
class TokenBucket {
 public:
  TokenBucket(double rate_pps, double burst, std::uint64_t now_ns);
  bool take(std::uint64_t now_ns);
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  double rate_;
  double burst_;
  double tokens_;
  std::uint64_t last_ns_;
};

}  // namespace anychain::tools
