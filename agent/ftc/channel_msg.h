// The FTC channel's messages and their authentication (docs/ftc.md 4.4): a 24-byte header, a
// body by type, a 16-byte truncated HMAC-SHA256 tag (state/auth.h's Keyring, the same keys and
// rotation as issue 14). Big-endian. A Session is one TCP connection's state: it sends a HELLO
// with a fresh 16-byte nonce, learns the peer's, and from then on every tag covers both nonces
// (sender's first), so a message replayed from another connection or reflected back fails its
// tag; a per-direction sequence number that must grow by one catches replays and reordering
// within the connection. The tag is checked before anything beyond the fixed header is parsed.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "ftc/buffer.h"
#include "ftc/store.h"
#include "state/auth.h"

namespace anychain::ftc::chan {

using ByteView = std::span<const uint8_t>;

inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderSize = 24;
inline constexpr size_t kNonceSize = 16;
inline constexpr size_t kTagSize = state::kTagSize;
inline constexpr size_t kMaxBatch = 64 * 1024;         // a RECOVER batch's records
inline constexpr size_t kMaxBody = kMaxBatch + 1024;   // largest body decode accepts
inline constexpr size_t kMaxFeedbackLogs = 64;
inline constexpr size_t kMaxCommits = 256;
using Nonce = std::array<uint8_t, kNonceSize>;

enum class Type : uint8_t {
  Hello = 1,
  Heartbeat = 2,
  ResyncReq = 3,
  Resync = 4,
  Feedback = 5,
  Released = 6,
  RecoverReq = 7,
  Recover = 8,
  RecoverDone = 9,
};
inline constexpr size_t kTypeSlots = 10;  // indexes by the type's value
const char* to_string(Type t);

// Sent first on a connection, seq 0: the sender's nonce and its heartbeat interval.
struct Hello {
  Nonce nonce{};
  uint32_t interval_ms = 0;
  bool operator==(const Hello&) const = default;
};
struct Heartbeat {
  uint64_t tx_us = 0;  // the sender's monotonic clock
  bool operator==(const Heartbeat&) const = default;
};
// 4.3: the record of (middlebox, partition) newer than `have`, asked from the head's node.
struct ResyncReq {
  uint32_t req = 0;
  Flow flow;
  Mbox mbox;          // the log's middlebox (its id and head SI name the record)
  uint32_t have = 0;  // the requester's sequence
  bool operator==(const ResyncReq&) const = default;
};
struct Resync {
  uint32_t req = 0;
  Flow flow;
  Mbox mbox;
  std::optional<Record> record;  // nullopt: NONE (no such record at the head)
  bool operator==(const Resync&) const = default;
};
// 5.1: commit vectors of a partition, buffer to forwarder (pruning).
struct Released {
  Flow flow;
  CommitVector cv;
  bool operator==(const Released&) const = default;
};
// 7.4: round 1 asks for every record of middlebox `instance`; round 2 for the records of
// `flows` of the middleboxes in `mboxes` (id, head SI).
struct RecoverReq {
  uint32_t req = 0;
  uint16_t instance = 0;
  uint8_t new_inc = 0;  // the replacement's incarnation: holders fence the old one (7.5)
  uint8_t round = 1;    // 1 or 2
  std::vector<std::pair<uint16_t, uint8_t>> mboxes;
  std::vector<Flow> flows;
  bool operator==(const RecoverReq&) const = default;
};
enum class Role : uint8_t { Head = 0, Replica = 1 };
struct RecordEntry {
  RecordKey key;
  Role role = Role::Head;
  Record rec;
  bool operator==(const RecordEntry&) const = default;
};
struct Recover {
  uint32_t req = 0;
  uint32_t batch = 0;  // 0, 1, ... per request
  std::vector<RecordEntry> records;
  bool operator==(const Recover&) const = default;
};
enum class RecoverStatus : uint8_t { Ok = 0, Conflict = 1, Failed = 2 };
struct RecoverDone {
  uint32_t req = 0;
  uint32_t batches = 0;
  uint32_t records = 0;
  RecoverStatus status = RecoverStatus::Ok;
  bool operator==(const RecoverDone&) const = default;
};

// ftc::Feedback (buffer.h) is FEEDBACK's body.
using Body = std::variant<Hello, Heartbeat, ResyncReq, Resync, Feedback, Released, RecoverReq, Recover, RecoverDone>;
Type type_of(const Body& b);

struct Header {
  uint8_t version = kVersion;
  Type type = Type::Hello;
  uint8_t key_id = 0;
  uint32_t sender = 0;    // node (NSH endpoint, host order)
  uint32_t receiver = 0;
  uint64_t seq = 0;       // HELLO 0, then 1, 2, ... per direction
  uint32_t body_len = 0;
};
// The fixed header of a frame (nothing verified); nullopt if fewer than kHeaderSize bytes.
std::optional<Header> peek_header(ByteView b);

// Why a frame was refused (each has a counter; the connection is closed).
enum class Reject : uint8_t {
  Truncated,    // the stream ended inside a frame
  Version,
  Oversize,     // body length over kMaxBody
  UnknownType,
  UnknownKey,   // key id not in the keyring
  BadTag,       // forged, corrupted, or from another connection
  Sequence,     // replayed, reordered or skipped within the connection
  Malformed,    // the body's structure, lengths, limits, reserved bytes
  Protocol,     // HELLO missing, repeated, from or to the wrong node, own nonce reflected
  Count
};
const char* to_string(Reject r);

// Body codec alone (the fuzz target and tests reach the parser through it). encode_body fails on
// a body that breaks a limit (the same limits decode_body enforces).
Result<std::vector<uint8_t>> encode_body(const Body& b);
expected<Body, Reject> decode_body(Type t, ByteView body);
// Bytes a record entry takes in a RECOVER body (for batching under kMaxBatch).
size_t entry_size(const RecordEntry& e);

class Session {
 public:
  // self: this node; peer: the node expected (0: any, an accepted connection learns it).
  Session(std::shared_ptr<const state::Keyring> keys, uint32_t self, uint32_t peer, const Nonce& nonce);

  // The HELLO frame this side sends first.
  Result<std::vector<uint8_t>> hello(uint32_t interval_ms);
  // A frame for b (not a HELLO); only once established().
  Result<std::vector<uint8_t>> seal(const Body& b);
  // Takes one frame off the front of buf: nullopt while it is incomplete, a Reject when it must
  // not be accepted (the caller closes the connection). The peer's HELLO is returned too.
  expected<std::optional<Body>, Reject> next(std::vector<uint8_t>& buf);

  [[nodiscard]] bool established() const { return have_peer_nonce_; }
  [[nodiscard]] uint32_t peer() const { return peer_; }
  [[nodiscard]] uint32_t peer_interval_ms() const { return peer_interval_ms_; }
  [[nodiscard]] uint8_t last_key_id() const { return last_key_id_; }
  // Key rotation: later frames are signed with the new send key and verified against the new ring.
  void set_keys(std::shared_ptr<const state::Keyring> keys) { keys_ = std::move(keys); }

 private:
  Result<std::vector<uint8_t>> frame(Type t, uint64_t seq, const std::vector<uint8_t>& body);
  void mac_input(std::vector<uint8_t>& out, bool outgoing, Type t, ByteView header_and_body) const;

  std::shared_ptr<const state::Keyring> keys_;
  uint32_t self_ = 0, peer_ = 0;
  Nonce nonce_{}, peer_nonce_{};
  bool have_peer_nonce_ = false;
  bool sent_hello_ = false;
  uint64_t tx_seq_ = 0, rx_seq_ = 0;
  uint32_t peer_interval_ms_ = 0;
  uint8_t last_key_id_ = 0;
};

}  // namespace anychain::ftc::chan
