// FTC wire format in C++ (docs/ftc.md Section 2): piggyback logs, commit entries and the control
// TLV decoded into values and encoded back. Decoding runs the same checks as the BPF programs
// (include/anychain/ftc.h's ac_ftc_walk on a window copy of the NSH), so both refuse the same
// packets; errors name the offset and the rule broken.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "anychain/ftc.h"
#include "common/error.h"

namespace anychain::ftc {

using Bytes = std::vector<uint8_t>;
using Window = std::array<uint8_t, AC_FTC_WIN>;

// The middlebox word: instance id, incarnation, SI at the head.
struct Mbox {
  uint16_t id = 0;
  uint8_t inc = 0;
  uint8_t si = 0;

  [[nodiscard]] uint32_t word() const { return AC_FTC_MBOX(id, inc, si); }
  static Mbox of(uint32_t w) { return {AC_FTC_MBOX_ID(w), AC_FTC_MBOX_INC(w), AC_FTC_MBOX_SI(w)}; }
  // The same logical middlebox (instance and position), whatever the incarnation.
  [[nodiscard]] bool same(const Mbox& o) const { return id == o.id && si == o.si; }
  auto operator<=>(const Mbox&) const = default;
};

struct Write {
  uint8_t table = 0;
  bool del = false;
  Bytes key;    // 1..AC_FTC_KEY_MAX bytes
  Bytes value;  // 0..AC_FTC_VAL_MAX bytes, empty for a delete
  auto operator<=>(const Write&) const = default;
};

struct Log {
  uint8_t flags = 0;  // AC_FTC_LOG_WRAPPED, AC_FTC_LOG_STUB
  uint8_t held = 1;
  uint8_t count = 1;  // 0: no-op
  Mbox mbox;
  uint32_t seq = 0;
  std::vector<Write> writes;

  [[nodiscard]] bool noop() const { return count == 0; }
  [[nodiscard]] bool stub() const { return flags & AC_FTC_LOG_STUB; }
  [[nodiscard]] bool wrapped() const { return flags & AC_FTC_LOG_WRAPPED; }
  // First sequence number covered (seq for a no-op or a stub's requirement).
  [[nodiscard]] uint32_t from() const { return count ? seq - count + 1 : seq; }
  // Value bytes on the wire (without the TLV header and padding).
  [[nodiscard]] size_t value_len() const;
  // The TLV's bytes on the wire (header and padding included).
  [[nodiscard]] size_t tlv_len() const { return 4 + ((value_len() + 3) & ~size_t{3}); }
  auto operator<=>(const Log&) const = default;
};

struct Commit {
  Mbox mbox;
  uint32_t seq = 0;
  auto operator<=>(const Commit&) const = default;
};

struct Ctrl {
  uint8_t flags = 0;  // AC_FTC_CTRL_PROPAGATING
  uint8_t f = 1;
  uint32_t ingress = 0;  // host order
  [[nodiscard]] bool propagating() const { return flags & AC_FTC_CTRL_PROPAGATING; }
  auto operator<=>(const Ctrl&) const = default;
};

// A TLV that is not FTC's (the flow hash, foreign classes): kept byte for byte.
struct Tlv {
  uint16_t md_class = 0;
  uint8_t type = 0;
  uint8_t len = 0;  // the length byte as on the wire (U bit included)
  Bytes value;      // unpadded
  auto operator<=>(const Tlv&) const = default;
};

// A whole MD type 2 NSH with its FTC TLVs decoded.
struct Nsh {
  uint8_t ttl = AC_NSH_DEFAULT_TTL;
  uint8_t flags = 0;  // the O and U bits of the base header (bits 5-4 of byte 0)
  uint8_t next_proto = AC_NSH_NP_IPV4;
  uint32_t spi = 0;
  uint8_t si = 255;
  std::vector<Tlv> other;  // in order (the flow hash first, as the classifier writes it)
  std::optional<Ctrl> ctrl;
  std::vector<Log> logs;   // in order: the newest last
  std::vector<Commit> commits;

  [[nodiscard]] std::optional<uint32_t> hash() const;
  auto operator<=>(const Nsh&) const = default;
};

// What ac_ftc_walk's error codes mean, for messages and counters.
const char* err_str(enum ac_ftc_err e);

// One log value (without the TLV header), checked as the BPF programs check it.
Result<Log> decode_log(std::span<const uint8_t> value);
// The log's value bytes (unpadded); refused if it breaks a limit (docs/ftc.md 2.2).
Result<Bytes> encode_log(const Log& log);
// The log as a whole TLV (header, value, zero padding).
Result<Bytes> encode_log_tlv(const Log& log);

// A whole NSH (MD type 2, at least the 8-byte base) from its first byte; `bytes` may be longer
// (the inner packet follows): the length field says where the NSH ends.
Result<Nsh> decode_nsh(std::span<const uint8_t> bytes);
// Canonical order (docs/ftc.md 2.4): other TLVs, control, logs, commit. Refused over 252 bytes.
Result<Bytes> encode_nsh(const Nsh& nsh);

// The window the ftc.h helpers work on, filled with the NSH at offset 0 (the rest zero).
Result<Window> to_window(std::span<const uint8_t> nsh);

// The flow hash TLV (class AC_MD_CLASS, type AC_TLV_FLOW_HASH).
Tlv flow_hash_tlv(uint32_t hash);

}  // namespace anychain::ftc
