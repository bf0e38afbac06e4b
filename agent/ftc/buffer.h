// The egress buffer and the ingress forwarder (docs/ftc.md Section 5), without their I/O: the
// daemon feeds them frames from an AF_XDP socket and messages from the FTC channel (phase B);
// the simulation feeds them directly.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ftc/store.h"

namespace anychain::ftc {

// Per flow, what tails reported committed: (instance, head SI) -> (incarnation, seq).
using CommitVector = std::map<std::pair<uint16_t, uint8_t>, std::pair<uint8_t, uint32_t>>;

// Merge one commit entry (newer incarnation first, then the higher sequence).
void commit_merge(CommitVector& cv, const Commit& c);
enum class Coverage { Covered, Pending, Fenced };
// Whether cv covers `log` (its seq, under its incarnation); Fenced when a newer incarnation
// committed: the log's transaction may have been lost in a recovery and must never be released.
Coverage covered(const CommitVector& cv, const Mbox& m, uint32_t seq);

// The fast path's ac_ftc_egress value for a partition (docs/ftc.md 5.1): its commit vector cv
// (null: none), slow when the vector has more entries than the value holds or when packets of
// the partition are held (holding). ac_ftc_egress_covers() on it decides as covered() on cv.
ac_ftc_egress egress_entry(const CommitVector* cv, bool holding);

struct BufferLimits {
  size_t packets = 65536;
  size_t bytes = 64u << 20;
  size_t per_flow = 4096;
  uint64_t max_hold_ns = 1'000'000'000;  // then dropped (ftc_buffer_expired)
  uint64_t feedback_every_ns = 10'000'000;  // re-send the feedback of a held packet
};

// Returned logs for one flow, for the forwarder at `ingress`.
struct Feedback {
  Flow flow;
  uint32_t ingress = 0;
  uint8_t f = 1;
  std::vector<Log> logs;  // WRAPPED set
  bool operator==(const Feedback&) const = default;
};

class EgressBuffer {
 public:
  explicit EgressBuffer(BufferLimits lim = {}) : lim_(lim) {}

  enum class Fate { Released, Held, Consumed, Dropped };
  struct Arrival {
    Fate fate = Fate::Dropped;
    std::string reason;                 // Dropped: full, per-flow limit, fenced, not FTC
    std::vector<uint64_t> released;     // tokens to release now, in order (this one included)
    std::vector<uint64_t> dropped;      // held tokens dropped now (fenced)
    std::optional<Feedback> feedback;   // this packet's logs not committed yet, for the forwarder
  };
  // A packet at the end of the chain: its NSH (decoded) and a token naming the frame the caller
  // keeps (bytes: its size, for the bound).
  Arrival receive(const Nsh& nsh, uint64_t token, size_t bytes, uint64_t now);

  // Held packets older than max_hold_ns: dropped, their tokens returned.
  std::vector<uint64_t> expire(uint64_t now);
  // Feedback of held packets not sent for feedback_every_ns (at-least-once to the forwarder).
  std::vector<Feedback> due_feedback(uint64_t now);
  // What RELEASED messages carry to the forwarder (pruning): the commit vector of a flow.
  [[nodiscard]] const CommitVector* commits(const Flow& flow) const;
  // Whether packets of the flow are held.
  [[nodiscard]] bool holding(const Flow& flow) const;

  [[nodiscard]] size_t held() const { return held_packets_; }
  [[nodiscard]] size_t held_bytes() const { return held_bytes_; }
  struct Stats {
    uint64_t released = 0, held = 0, consumed = 0, full = 0, expired = 0, fenced = 0;
  };
  [[nodiscard]] const Stats& stats() const { return stats_; }

 private:
  struct Need {
    Mbox mbox;
    uint32_t seq;
  };
  struct Held {
    uint64_t token;
    size_t bytes;
    uint64_t since;
    uint64_t fed_back;
    std::vector<Need> need;
    Feedback feedback;
  };
  struct PerFlow {
    CommitVector cv;
    std::deque<Held> q;
  };
  // Release or drop from the front of a flow's queue.
  void drain(PerFlow& pf, Arrival& a);

  BufferLimits lim_;
  std::map<Flow, PerFlow> flows_;
  size_t held_packets_ = 0, held_bytes_ = 0;
  Stats stats_;
};

struct ForwarderLimits {
  uint64_t propagate_after_ns = 1'000'000;
  size_t max_logs_per_flow = 64;
};

// The ingress forwarder's pending returned logs (docs/ftc.md 5.2).
class IngressForwarder {
 public:
  explicit IngressForwarder(ForwarderLimits lim = {}) : lim_(lim) {}

  // FEEDBACK from a buffer. Duplicates and covered logs are ignored; neighbours coalesce while
  // the result fits the share.
  void feedback(const Feedback& fb, uint64_t now);
  // RELEASED from a buffer: prune what the commit vector covers.
  void released(const Flow& flow, const CommitVector& cv);
  // What the classifier attaches to the flow's next data packet: whole logs in order, each
  // within share(f), all within the room left by base, flow hash, control and f commit entries.
  [[nodiscard]] std::vector<Log> piggyback(const Flow& flow) const;
  // Flows whose pending logs are older than propagate_after: one or more propagating packets'
  // worth of logs each (every pending log, in order, split by room).
  struct Propagate {
    Flow flow;
    uint32_t ingress = 0;
    uint8_t f = 1;
    std::vector<std::vector<Log>> packets;
  };
  std::vector<Propagate> due(uint64_t now);

  [[nodiscard]] size_t pending(const Flow& flow) const;
  [[nodiscard]] size_t flows() const { return flows_.size(); }
  [[nodiscard]] uint64_t coalesced() const { return coalesced_; }

 private:
  struct PerFlow {
    uint8_t f = 1;
    uint32_t ingress = 0;
    uint64_t since = 0;  // last feedback or propagation
    std::vector<std::pair<uint16_t, uint8_t>> order;  // middleboxes in first-seen order
    std::map<std::pair<uint16_t, uint8_t>, std::vector<Log>> logs;  // per middlebox, by seq
    CommitVector cv;
  };
  void add(PerFlow& pf, Log log);
  void prune(PerFlow& pf);
  static std::vector<std::vector<Log>> pack(const PerFlow& pf, bool data_packet);

  ForwarderLimits lim_;
  std::map<Flow, PerFlow> flows_;
  uint64_t coalesced_ = 0;
};

// Coalesce b into a (b follows a: b.from() == a.seq + 1, same incarnation, both transactions):
// latest value per key, count summed, seq of b. Nothing if the result would break a limit.
std::optional<Log> coalesce(const Log& a, const Log& b, size_t max_tlv);

}  // namespace anychain::ftc
