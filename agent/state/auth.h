// Message authentication for state replication (docs/state.md 3.9): HMAC-SHA256 through
// OpenSSL's EVP_MAC, truncated to 16 bytes, compared in constant time. A keyring holds up to four
// keys by id (1..255) and the id used to send; during a rollover two keys are accepted. A
// keyring is immutable: a reload builds a new one and the replicator swaps it in.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace anychain::state {

inline constexpr size_t kTagSize = 16;
inline constexpr size_t kMinKeyBytes = 32;
inline constexpr size_t kMaxKeyBytes = 64;
inline constexpr size_t kMaxKeys = 4;

struct KeySpec {
  uint8_t id = 0;
  std::vector<uint8_t> secret;
};

// "hex" (64 to 128 hex digits, optional "0x"): the form of a key in the config file.
Result<std::vector<uint8_t>> parse_hex_key(std::string_view text);

class Keyring {
 public:
  // 1..4 keys with distinct ids 1..255, 32..64 bytes each; send_id must be one of them.
  static Result<std::shared_ptr<const Keyring>> make(const std::vector<KeySpec>& keys, uint8_t send_id);
  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  uint8_t send_id() const { return send_id_; }
  bool has(uint8_t id) const;
  std::vector<uint8_t> ids() const;
  // The tag of data under key id (false if the key is unknown or the MAC failed).
  bool tag(uint8_t id, std::span<const uint8_t> data, std::array<uint8_t, kTagSize>& out) const;
  bool verify(uint8_t id, std::span<const uint8_t> data, std::span<const uint8_t> tag) const;

 private:
  Keyring() = default;
  struct Entry;
  std::vector<std::unique_ptr<Entry>> keys_;
  uint8_t send_id_ = 0;
  const Entry* find(uint8_t id) const;
};

}  // namespace anychain::state
