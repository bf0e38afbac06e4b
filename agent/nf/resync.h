// Re-requests of FTC gaps between anychain-nf and its node's anychaind (docs/ftc.md 4.3, docs/nf.md
// "Re-requests"). A held frame whose gap is still open `reorder_wait` after it was held makes the
// process ask the agent for the newer record of the log's middlebox: one datagram (ResyncAsk, 24
// bytes) on the agent's unix socket <run_dir>/ftc/resync.sock (a path, so it reaches the agent
// from the instance's network namespace). The agent fetches the record from the head's agent over
// the FTC channel and installs it into this process's nf_replica under the record's lock; the hold
// queue sees the gap closed at its next check (every 100 us) and re-runs the frames. Nothing comes
// back on the socket: the record is the answer.
//
// Datagram: "ACRS", version 1, 0, the asking instance id (2), SPI, flow hash, the log's middlebox
// word (id, incarnation, head SI), the asker's sequence for it (4 each), big-endian.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>

#include "anychain/ftc.h"
#include "common/error.h"
#include "common/unique_fd.h"

namespace anychain::nf {

inline constexpr size_t kResyncAskSize = 24;
inline constexpr uint8_t kResyncAskVersion = 1;

struct ResyncAsk {
  uint16_t from = 0;   // the asking instance (whose replica record has the gap)
  uint32_t spi = 0;
  uint32_t hash = 0;
  uint32_t mbox = 0;   // the waiting log's middlebox word: AC_FTC_MBOX_ID/INC/SI
  uint32_t have = 0;   // the asker's record's sequence (0: no record)
  bool operator==(const ResyncAsk&) const = default;
};

std::array<uint8_t, kResyncAskSize> encode_resync_ask(const ResyncAsk& a);
// Strict: the size, the magic, the version, the reserved byte, ids in 1..AC_MAX_INSTANCES - 1.
Result<ResyncAsk> decode_resync_ask(std::span<const uint8_t> b);
// <run_dir>/ftc/resync.sock
std::string resync_socket_path(const std::string& run_dir);

// The first gap a held frame waits for: the log of a predecessor that the replica record (read
// with BPF_F_LOCK from nf_replica, ordered by ac_ftc_order as the program does) cannot take yet.
// nullopt: no gap (the frame can be re-run; a frame the program refuses counts as no gap, the
// re-run drops and counts it).
struct Gap {
  ac_st_rkey key{};    // the replica record (middlebox id, SPI << 8 | head SI, hash)
  uint32_t mbox = 0;   // the log's middlebox word
  uint32_t have = 0;   // the record's sequence (0: none)
};
std::optional<Gap> first_gap(int replica_fd, uint32_t own_id, std::span<const uint8_t> frame);

// The process's side: asks, at most one per record every `retry`, at most `per_second` in all
// (a token bucket with a burst of a tenth of a second's worth, at least 8).
class ResyncAsker {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string path;                        // the agent's socket
    std::chrono::milliseconds retry{10};     // a record asked again only after this
    uint32_t per_second = 1000;
  };
  enum class Outcome { Asked, Waiting, Limited, Unsent };
  explicit ResyncAsker(Options o);
  Outcome ask(const ResyncAsk& a, Clock::time_point now);
  [[nodiscard]] const std::string& last_error() const { return last_error_; }

 private:
  Options opt_;
  UniqueFd fd_;
  double tokens_ = 0;
  Clock::time_point refilled_{};
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, Clock::time_point> asked_;  // (id, spi_si, hash) -> when
  std::string last_error_;
};

// The agent's side: the bound socket (a stale one from a previous agent replaced), read when
// readable. Datagrams that do not decode are counted, never passed on.
class ResyncListener {
 public:
  static Result<std::unique_ptr<ResyncListener>> open(const std::string& path);
  ~ResyncListener();
  ResyncListener(const ResyncListener&) = delete;
  ResyncListener& operator=(const ResyncListener&) = delete;
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  // Every datagram waiting: fn for each that decodes.
  void receive(const std::function<void(const ResyncAsk&)>& fn);
  uint64_t received = 0, malformed = 0;
  std::string last_error;

 private:
  ResyncListener() = default;
  UniqueFd fd_;
  std::string path_;
};

}  // namespace anychain::nf
