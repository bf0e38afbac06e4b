// The admission of a datagram (docs/state.md 3.9): decode and authenticate (wire.h), then this
// instance's identity, the sender's incarnation and sequence number (a sliding replay window per
// sender) and the wall clock. Every refusal is counted by reason; only a message that passed
// every check enters the replay window.
#pragma once

#include <array>
#include <bitset>
#include <map>
#include <optional>

#include "state/wire.h"

namespace anychain::state {

// Sequence numbers of one sender: its incarnation, the highest accepted and the 1024 below it.
class ReplayWindow {
 public:
  static constexpr uint64_t kSize = 1024;
  std::optional<Reject> check(uint64_t incarnation, uint64_t seq) const;
  void commit(uint64_t incarnation, uint64_t seq);
  uint64_t incarnation() const { return inc_; }

 private:
  uint64_t inc_ = 0;
  uint64_t top_ = 0;
  std::bitset<kSize> seen_;
};

struct Identity {
  uint16_t service = 0;
  uint32_t id = 0;
  uint64_t incarnation = 0;
};

struct GateOptions {
  uint64_t max_skew_us = 60'000'000;  // wall-clock freshness; 0 = not checked
};

// Where a datagram is going, read from its fixed header before anything is verified: the
// node's dispatcher uses it to pick the replicator (service, receiver instance).
struct Destination {
  uint16_t service = 0;
  uint32_t receiver = 0;
};
std::optional<Destination> peek_destination(ByteView datagram);

class Gate {
 public:
  explicit Gate(Identity me, GateOptions o = {}) : me_(me), opt_(o) {}

  Decoded<Message> admit(ByteView datagram, const Schema& schema, const Keyring& keys, uint64_t now_wall_us);

  uint64_t accepted() const { return accepted_; }
  uint64_t rejected(Reject r) const { return rejected_[static_cast<size_t>(r)]; }
  uint64_t rejected_total() const;
  // Messages accepted per key id: an operator sees when the old key of a rollover stops.
  const std::map<uint8_t, uint64_t>& by_key() const { return by_key_; }
  const Identity& identity() const { return me_; }

 private:
  Decoded<Message> refuse(Reject r) {
    ++rejected_[static_cast<size_t>(r)];
    return unexpected(r);
  }
  Identity me_;
  GateOptions opt_;
  std::map<uint32_t, ReplayWindow> windows_;
  uint64_t accepted_ = 0;
  std::array<uint64_t, static_cast<size_t>(Reject::Count)> rejected_{};
  std::map<uint8_t, uint64_t> by_key_;
};

}  // namespace anychain::state
