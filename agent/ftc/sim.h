// A deterministic simulation of FTC chains (docs/ftc.md Section 9): instances of several
// services placed per flow by hash (WCMP with flow affinity), every hop running run_hop, the
// egress buffer and ingress forwarder, a network that loses, delays (reorders) and duplicates
// packets, hold queues with re-requests to the head over a reliable channel, and failures
// recovered by instance-id takeover (plan_recovery, fencing). It checks the thesis's invariants:
//  - no packet is released before each of its transactions is held f + 1 times;
//  - every record at every holder equals the sequential reference at its sequence number (the
//    head's transactions applied in order), during the run and after recovery;
//  - after recovery, the recovered head records cover every released packet's transactions;
//  - every packet sent is accounted for (released, or dropped with a reason), nothing stays held.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace anychain::ftc::sim {

enum class Kind {
  Counter,   // a monitor: every packet writes its flow's counter
  Mapping,   // a NAT: the first packet of a flow writes a mapping, the others read it
  Firewall,  // stateless, filters a share of packets (they become propagating packets)
  Replica,   // a replica-only hop
};

struct Service {
  Kind kind = Kind::Counter;
  int instances = 1;
  double filter = 0;     // Firewall: probability that a packet is filtered
  int value_bytes = 4;   // Counter: bytes of the counter's value (4..32; large ones make stubs)
};

struct Failure {
  uint64_t at_ns = 0;
  int service = 0;
  int instance = 0;
};

struct Config {
  uint64_t seed = 1;
  int f = 1;
  std::vector<Service> services;
  int flows = 16;
  int packets = 2000;
  uint64_t gap_ns = 3000;         // between packets at the ingress
  uint64_t delay_ns = 10000;      // per link
  uint64_t jitter_ns = 0;         // uniform extra delay per link (reordering)
  double loss = 0;                // per link
  double dup = 0;                 // per link
  uint64_t channel_ns = 20000;    // one way, agent to agent (reliable)
  uint64_t reorder_wait_ns = 200000;
  uint64_t hold_timeout_ns = 50'000'000;
  uint64_t propagate_after_ns = 500000;
  uint64_t detect_ns = 300000;    // failure to the start of recovery
  std::vector<Failure> failures;
  // Negative control: the buffer releases every packet at once, ignoring commits. The release
  // invariant must then report violations (the checks can fail).
  bool release_early = false;
};

struct Report {
  uint64_t sent = 0, released = 0, filtered = 0;
  uint64_t lost = 0;              // lost on a link
  uint64_t dead = 0;              // reached a failed instance
  uint64_t stale = 0;             // dropped by fencing at a replica
  uint64_t hold_expired = 0, buffer_dropped = 0, buffer_fenced = 0, other_drops = 0;
  uint64_t holds = 0, resyncs = 0, propagating = 0, stubs = 0, recoveries = 0, transfers = 0;
  uint64_t duplicates = 0;        // extra copies the network made (each a packet of its own)
  uint64_t checks = 0;            // invariant checks made
  std::vector<std::string> violations;
  [[nodiscard]] bool ok() const { return violations.empty(); }
  [[nodiscard]] std::string summary() const;
};

Report run(const Config& cfg);

}  // namespace anychain::ftc::sim
