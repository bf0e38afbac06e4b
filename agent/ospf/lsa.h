// LSA codec: the 20-byte LSA header, router-LSA, network-LSA, opaque LSAs and the payload of
// anychain's VNF opaque LSA (format: docs/vnf-lsa.md). Parsing is bounds-checked; anything
// malformed is rejected with a reason (Error.message) and never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ospf/bytes.h"
#include "common/error.h"

namespace anychain::ospf {

inline constexpr std::size_t kLsaHeaderSize = 20;
inline constexpr std::size_t kMaxLsaSize = 1500;
inline constexpr std::size_t kMaxOpaqueData = kMaxLsaSize - kLsaHeaderSize;  // 1480
inline constexpr std::uint16_t kMaxAge = 3600;
inline constexpr std::uint8_t kDefaultVnfOpaqueType = 200;

enum class LsaType : std::uint8_t {
  Router = 1,
  Network = 2,
  Summary = 3,
  AsbrSummary = 4,
  External = 5,
  Nssa = 7,
  OpaqueLink = 9,
  OpaqueArea = 10,
  OpaqueAs = 11,
};

struct LsaHeader {
  std::uint16_t age = 0;
  std::uint8_t options = 0;
  std::uint8_t type = 0;
  std::uint32_t id = 0;  // link state id
  std::uint32_t adv_router = 0;
  std::int32_t seq = 0;
  std::uint16_t checksum = 0;
  std::uint16_t length = 0;  // header included
  bool operator==(const LsaHeader&) const = default;
};

constexpr std::uint32_t opaque_lsid(std::uint8_t opaque_type, std::uint32_t opaque_id) {
  return (std::uint32_t{opaque_type} << 24) | (opaque_id & 0xFFFFFFu);
}
constexpr std::uint8_t opaque_type_of(std::uint32_t lsid) { return static_cast<std::uint8_t>(lsid >> 24); }
constexpr std::uint32_t opaque_id_of(std::uint32_t lsid) { return lsid & 0xFFFFFFu; }

// Parses the header of a whole LSA and checks that its length field equals lsa.size().
Result<LsaHeader> parse_lsa_header(ByteView lsa);
void put_lsa_header(Writer& w, const LsaHeader& h);

// ---- router-LSA (RFC 2328 A.4.2) --------------------------------------------------------
enum class LinkType : std::uint8_t { PointToPoint = 1, Transit = 2, Stub = 3, Virtual = 4 };

struct RouterLink {
  std::uint32_t link_id = 0;
  std::uint32_t link_data = 0;
  LinkType type = LinkType::PointToPoint;
  std::uint16_t metric = 0;                // TOS 0 metric
  std::vector<std::uint32_t> tos_entries;  // raw 4-byte TOS entries (parsed then ignored)
  bool operator==(const RouterLink&) const = default;
};

struct RouterLsa {
  std::uint8_t flags = 0;  // V/E/B bits
  std::vector<RouterLink> links;
  bool operator==(const RouterLsa&) const = default;
};

// Body = bytes after the 20-byte header.
Result<RouterLsa> parse_router_lsa(ByteView body);
// ---- network-LSA (RFC 2328 A.4.3) -------------------------------------------------------
struct NetworkLsa {
  std::uint32_t mask = 0;
  std::vector<std::uint32_t> routers;
  bool operator==(const NetworkLsa&) const = default;
};
Result<NetworkLsa> parse_network_lsa(ByteView body);

// Builders: produce a whole LSA (header with length filled in; checksum left as given).
Result<Bytes> build_router_lsa(LsaHeader h, const RouterLsa& body);
Result<Bytes> build_network_lsa(LsaHeader h, const NetworkLsa& body);
Result<Bytes> build_opaque_lsa(LsaHeader h, ByteView opaque_data);

// ---- VNF opaque LSA payload -------------------------------------------------------------
inline constexpr std::uint8_t kVnfPayloadVersion = 1;

enum class VnfTlv : std::uint16_t {
  ServicePrefix = 1,  // IPv4 addr (4) + prefix length (1)
  InstanceId = 2,     // u32
  Cost = 3,           // u32
  Capacity = 4,       // u32
  NshEndpoint = 5,    // IPv4 (4)
  Flags = 6,          // u32, bit 0: NSH-aware (clear: behind the SFC proxy); bit 1: down; bit 2: FTC;
                      // bit 3: standby
  Incarnation = 7,    // u32, 0..255: the FTC incarnation (required with the FTC flag, else absent)
};

inline constexpr std::uint32_t kVnfFlagNshAware = 0x1;
// The instance died and its own node says so: every router drops it at once, without the
// hold-down that keeps instances whose LSA merely vanished (docs/vnf-lsa.md).
inline constexpr std::uint32_t kVnfFlagDown = 0x2;
// The instance runs FTC (its service is a hop of an FTC chain, docs/ftc.md): its withdrawal
// freezes its flows for recovery instead of moving them (docs/ftc.md 7.2), and the Incarnation
// TLV says which incarnation of it is announced (fencing, 7.5).
inline constexpr std::uint32_t kVnfFlagFtc = 0x4;
inline constexpr std::uint32_t kVnfMaxIncarnation = 255;  // nf_ftc_cfg.inc is 8 bits
// Not an instance: the advertising router stands by to replace the FTC instance of this id when
// it fails on another node (`instance add B --standby-for A`, docs/ftc.md 7.3). Receivers never
// make it a candidate; with several, the reachable one with the lowest router id acts.
inline constexpr std::uint32_t kVnfFlagStandby = 0x8;

struct VnfInfo {
  std::uint32_t service_addr = 0;  // anycast prefix, host order
  std::uint8_t service_len = 32;
  std::uint32_t instance_id = 0;
  std::uint32_t cost = 0;
  std::uint32_t capacity = 0;
  std::uint32_t nsh_endpoint = 0;  // host order
  std::uint32_t flags = 0;
  std::uint32_t incarnation = 0;   // FTC incarnation, 0..255; encoded only with kVnfFlagFtc
  [[nodiscard]] bool nsh_aware() const { return (flags & kVnfFlagNshAware) != 0; }
  [[nodiscard]] bool down() const { return (flags & kVnfFlagDown) != 0; }
  [[nodiscard]] bool ftc() const { return (flags & kVnfFlagFtc) != 0; }
  [[nodiscard]] bool standby() const { return (flags & kVnfFlagStandby) != 0; }
  bool operator==(const VnfInfo&) const = default;
};

// Encodes the opaque data (version + TLVs; the Incarnation TLV only with kVnfFlagFtc). Refuses
// > kMaxOpaqueData, a bad prefix length, an incarnation over 255 or one without the FTC flag.
Result<Bytes> encode_vnf_payload(const VnfInfo& v);
// Parses the opaque data. Unknown TLVs are skipped; wrong version, truncation, bad lengths,
// duplicates and missing mandatory TLVs are errors (EBADMSG, or EPROTONOSUPPORT for version).
Result<VnfInfo> parse_vnf_payload(ByteView opaque_data);

// A whole VNF LSA (type 10, LSID = opaque_type << 24 | instance_id). Age/seq/checksum zero:
// ospfd fills them in on origination.
Result<Bytes> build_vnf_lsa(const VnfInfo& v, std::uint8_t opaque_type, std::uint32_t adv_router = 0);

}  // namespace anychain::ospf
