// Codec for FRR ospfd's OSPF API ("opaque-LSA API") messages, written from the facts in
// docs/frr-ospf-api (shared design). 8-byte header in network order:
//   version u8 (=1) | msgtype u8 | body length u16 (header excluded) | seq u32
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "ospf/bytes.h"
#include "common/error.h"

namespace anychain::ospf::api {

inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::uint16_t kServerPort = 2607;
// An LSA is at most 1500 bytes; a notification carries 12 bytes before the LSA.
inline constexpr std::size_t kMaxLsaSize = 1500;
inline constexpr std::size_t kLsaNotifyPrefix = 12;
inline constexpr std::size_t kMaxLsaNotifyBody = kLsaNotifyPrefix + kMaxLsaSize;
inline constexpr std::size_t kOriginatePrefix = 8;

enum class MsgType : std::uint8_t {
  RegisterOpaqueType = 1,
  UnregisterOpaqueType = 2,
  RegisterEvent = 3,
  SyncLsdb = 4,
  OriginateRequest = 5,
  DeleteRequest = 6,
  SyncReachable = 7,
  SyncIsm = 8,
  SyncNsm = 9,
  Reply = 10,
  ReadyNotify = 11,
  LsaUpdateNotify = 12,
  LsaDeleteNotify = 13,
  NewIf = 14,
  DelIf = 15,
  IsmChange = 16,
  NsmChange = 17,
  ReachableChange = 18,
  SyncRouterId = 19,
  RouterIdChange = 20,
};

std::string_view to_string(MsgType t);

// Reply error codes (int8 on the wire).
enum class ApiErr : std::int8_t {
  Ok = 0,
  NoSuchInterface = -1,
  NoSuchArea = -2,
  NoSuchLsa = -3,
  IllegalLsaType = -4,
  OpaqueTypeInUse = -5,
  OpaqueTypeNotRegistered = -6,
  NotReady = -7,
  NoMemory = -8,
  Error = -9,
  Undef = -10,
};
std::string_view to_string(ApiErr e);

// LSDB filter origin values.
enum class Origin : std::uint8_t { NonSelf = 0, Self = 1, Any = 2 };

// Typemask bit for LSA type t (1..16) is 1 << (t - 1).
constexpr std::uint16_t typemask_bit(std::uint8_t lsa_type) {
  return static_cast<std::uint16_t>(1u << (lsa_type - 1));
}

struct Header {
  std::uint8_t version = kVersion;
  std::uint8_t type = 0;
  std::uint16_t length = 0;
  std::uint32_t seq = 0;
};

// ---- client -> server -----------------------------------------------------------------
struct RegisterOpaqueType {
  std::uint8_t lsa_type = 10;
  std::uint8_t opaque_type = 0;
  bool operator==(const RegisterOpaqueType&) const = default;
};
struct UnregisterOpaqueType {
  std::uint8_t lsa_type = 10;
  std::uint8_t opaque_type = 0;
  bool operator==(const UnregisterOpaqueType&) const = default;
};
struct LsdbFilter {
  std::uint16_t typemask = 0;
  Origin origin = Origin::Any;
  std::vector<std::uint32_t> areas;  // empty: all areas
  bool operator==(const LsdbFilter&) const = default;
};
struct RegisterEvent {
  LsdbFilter filter;
  bool operator==(const RegisterEvent&) const = default;
};
struct SyncLsdb {
  LsdbFilter filter;
  bool operator==(const SyncLsdb&) const = default;
};
struct OriginateRequest {
  std::uint32_t ifaddr = 0;
  std::uint32_t area = 0;
  Bytes lsa;  // 20-byte header + body
  bool operator==(const OriginateRequest&) const = default;
};
struct DeleteRequest {
  static constexpr std::uint8_t kFlagFlushNoBody = 0x01;
  std::uint32_t addr = 0;  // ifaddr for type 9, area for 10, 0 for 11
  std::uint8_t lsa_type = 10;
  std::uint8_t opaque_type = 0;
  std::uint8_t flags = 0;
  std::uint32_t opaque_id = 0;  // 24 bits used
  bool operator==(const DeleteRequest&) const = default;
};
// The SYNC_REACHABLE / SYNC_ISM / SYNC_NSM / SYNC_ROUTER_ID requests carry 4 zero bytes.
struct SyncReachable {
  bool operator==(const SyncReachable&) const = default;
};
struct SyncIsm {
  bool operator==(const SyncIsm&) const = default;
};
struct SyncNsm {
  bool operator==(const SyncNsm&) const = default;
};
struct SyncRouterId {
  bool operator==(const SyncRouterId&) const = default;
};

// ---- server -> client -----------------------------------------------------------------
struct Reply {
  std::int8_t errcode = 0;
  bool operator==(const Reply&) const = default;
};
struct ReadyNotify {
  std::uint8_t lsa_type = 0;
  std::uint8_t opaque_type = 0;
  std::uint32_t addr = 0;
  bool operator==(const ReadyNotify&) const = default;
};
struct LsaNotifyBody {
  std::uint32_t ifaddr = 0;
  std::uint32_t area = 0;
  bool is_self = false;
  Bytes lsa;  // LSA as stored (header + body), not yet validated
  bool operator==(const LsaNotifyBody&) const = default;
};
struct LsaUpdateNotify : LsaNotifyBody {
  bool operator==(const LsaUpdateNotify&) const = default;
};
struct LsaDeleteNotify : LsaNotifyBody {
  bool operator==(const LsaDeleteNotify&) const = default;
};
struct NewIf {
  std::uint32_t ifaddr = 0;
  std::uint32_t area = 0;
  bool operator==(const NewIf&) const = default;
};
struct DelIf {
  std::uint32_t ifaddr = 0;
  bool operator==(const DelIf&) const = default;
};
struct IsmChange {
  std::uint32_t ifaddr = 0;
  std::uint32_t area = 0;
  std::uint8_t state = 0;
  bool operator==(const IsmChange&) const = default;
};
struct NsmChange {
  std::uint32_t ifaddr = 0;
  std::uint32_t nbraddr = 0;
  std::uint32_t router_id = 0;
  std::uint8_t state = 0;
  bool operator==(const NsmChange&) const = default;
};
struct ReachableChange {
  std::vector<std::uint32_t> added;
  std::vector<std::uint32_t> removed;
  bool operator==(const ReachableChange&) const = default;
};
struct RouterIdChange {
  std::uint32_t router_id = 0;
  bool operator==(const RouterIdChange&) const = default;
};

using Body = std::variant<RegisterOpaqueType, UnregisterOpaqueType, RegisterEvent, SyncLsdb,
                          OriginateRequest, DeleteRequest, SyncReachable, SyncIsm, SyncNsm,
                          SyncRouterId, Reply, ReadyNotify, LsaUpdateNotify, LsaDeleteNotify,
                          NewIf, DelIf, IsmChange, NsmChange, ReachableChange, RouterIdChange>;

struct Message {
  std::uint32_t seq = 0;
  Body body;
  [[nodiscard]] MsgType type() const;
  bool operator==(const Message&) const = default;
};

// Encodes header + body into one contiguous buffer (to be written with one send call).
// Fails if the body would exceed the protocol's limits (e.g. an LSA over 1500 bytes).
Result<Bytes> encode(const Message& m);

// Decodes one complete message (header + exactly `length` body bytes).
Result<Message> decode(ByteView whole);

// Parses the header only; checks version and the per-type body size limit.
Result<Header> decode_header(ByteView first8);

// Incremental decoder for a byte stream: feed() bytes as they arrive, then call next()
// until it yields std::nullopt (needs more bytes). A protocol error is sticky: the stream
// cannot be resynchronised and the connection must be dropped.
class StreamDecoder {
 public:
  void feed(ByteView data);
  Result<std::optional<Message>> next();
  [[nodiscard]] std::size_t buffered() const { return buf_.size() - start_; }
  void reset();

 private:
  Bytes buf_;
  std::size_t start_ = 0;
  std::optional<Error> error_;
};

}  // namespace anychain::ospf::api
