// State replication messages (docs/state.md 3.8): an 80-byte header, a body by type, a 16-byte
// HMAC-SHA256 tag. Big-endian. encode() signs with the keyring's send key; decode() checks the
// tag before it parses anything beyond the fixed header, then the whole structure against the
// schema. Identity, replay and freshness checks are the Gate's (gate.h).
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "state/auth.h"
#include "state/schema.h"

namespace anychain::state {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// Version 2 added the gone section (docs/state.md 3.12); version 1 (no gone section) is still
// decoded and sent to a peer that speaks only 1, so a service upgrades one instance at a time.
inline constexpr uint8_t kWireVersion = 2;
inline constexpr uint8_t kWireVersionMin = 1;
inline bool wire_version_supported(uint8_t v) { return v >= kWireVersionMin && v <= kWireVersion; }
inline constexpr size_t kHeaderSize = 80;
inline constexpr size_t kMaxMessage = 9000;   // largest datagram decode() accepts (jumbo frames)
inline constexpr size_t kDefaultMessage = 1400;
inline constexpr uint8_t kRetiredOrigin = 0xff;

enum class MsgType : uint8_t { Delta = 1, SnapReq = 2, Snap = 3, Leave = 4, LeaveAck = 5 };
const char* to_string(MsgType t);

inline constexpr uint8_t kFlagJoining = 0x01;   // the sender is joining: send it no deltas yet
inline constexpr uint8_t kFlagDraining = 0x02;  // the sender is leaving

// An origin of updates: an instance in one incarnation (a process lifetime).
struct Origin {
  uint32_t id = 0;
  uint64_t incarnation = 0;
  auto operator<=>(const Origin&) const = default;
};

struct AckEntry {
  Origin origin;
  uint64_t version = 0;  // the highest contiguous version of origin's changes received
  bool operator==(const AckEntry&) const = default;
};

// A gone origin as one member sees it (docs/state.md 3.12): its relay version (the member's
// version once it had re-stamped every cell holding the origin's slot; 0: it held none), or
// kGoneFolded once it folded the origin.
inline constexpr uint64_t kGoneFolded = ~uint64_t{0};
struct GoneEntry {
  Origin origin;
  uint64_t relay = 0;
  bool operator==(const GoneEntry&) const = default;
};

struct WireRecord {
  uint8_t object = 0;
  uint8_t origin = 0;   // index into the message's origins, or kRetiredOrigin
  uint16_t epoch = 0;
  Key key;
  CellValue value;
  bool operator==(const WireRecord&) const = default;
};

struct Header {
  uint8_t version = kWireVersion;  // 1: no gone section
  MsgType type = MsgType::Delta;
  uint8_t key_id = 0;        // filled by encode() from the keyring
  uint8_t flags = 0;
  uint16_t service = 0;
  uint32_t schema = 0;       // Schema::digest()
  Origin sender;
  uint32_t receiver = 0;
  uint64_t receiver_incarnation = 0;  // 0: not known yet
  uint64_t seq = 0;          // per sender incarnation, from 1
  uint64_t wall_us = 0;      // sender's wall clock
  uint64_t tx_us = 0;        // sender's monotonic clock at sending
  uint64_t echo_us = 0;      // the receiver's last tx_us the sender saw (0: none)
  uint32_t echo_delay_us = 0;
  bool operator==(const Header&) const = default;
};

struct Message {
  Header h;
  // Delta: the sender's version range (from, to]
  uint64_t from = 0, to = 0;
  // Snap: snapshot id, chunk index of chunks; SnapReq: snapshot id (0: a new one)
  uint32_t snap_id = 0;
  uint16_t chunk = 0, chunks = 0;
  // Delta, Snap
  std::vector<AckEntry> acks;
  std::vector<Origin> origins;
  std::vector<WireRecord> records;
  std::vector<GoneEntry> gone;  // version 2 only
  // SnapReq: chunks first_missing + i for every bit i set in bitmap (LSB first)
  uint32_t first_missing = 0;
  Bytes bitmap;
  // Leave, LeaveAck
  uint64_t final_version = 0;
  bool operator==(const Message&) const = default;
};

// Bytes a record adds to a Delta/Snap message; the fixed sizes of the rest.
size_t record_size(const ObjectSpec& spec);
inline constexpr size_t kTagBytes = kTagSize;
inline constexpr size_t kSectionsHeader = 8;
inline constexpr size_t kRangeBytes = 16;     // Delta from/to, Snap id/chunk/chunks/reserved
inline constexpr size_t kAckBytes = 20;
inline constexpr size_t kOriginBytes = 12;
inline constexpr size_t kGoneBytes = 20;
size_t base_size(const Message& m);            // header + fixed body + acks + origins + gone + tag

// Encode and sign with the keyring's send key. Fails on a record whose object is not in the
// schema or whose key does not fit it, and on a message over kMaxMessage.
Result<Bytes> encode(const Message& m, const Schema& schema, const Keyring& keys);

// Why a datagram was refused (each has a counter).
enum class Reject : uint8_t {
  Truncated,        // shorter than header + tag, or the body length disagrees with the size
  Version,          // a wire version this agent does not speak (another release)
  UnknownKey,       // key id not in the keyring
  BadTag,           // forged or corrupted
  Malformed,        // structure: type, counts, lengths, indexes, ranges, reserved bits
  Service,          // another service
  Receiver,         // addressed to another instance
  ReceiverIncarnation,  // addressed to a previous incarnation of this instance
  Schema,           // the sender's objects differ from ours
  StaleIncarnation, // an incarnation of the sender older than one already seen
  Replay,           // a sequence number already accepted
  TooOld,           // a sequence number below the replay window
  Clock,            // wall clock further from ours than the allowed skew
  Count
};
const char* to_string(Reject r);

template <class T>
using Decoded = expected<T, Reject>;

// Check length, version and tag, then parse everything (records against the schema).
Decoded<Message> decode(ByteView datagram, const Schema& schema, const Keyring& keys);
// The same without the tag check (the fuzz target and tests use it to reach the body parser).
Decoded<Message> decode_unauthenticated(ByteView datagram, const Schema& schema);

}  // namespace anychain::state
