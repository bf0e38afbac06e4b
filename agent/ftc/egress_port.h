// The egress buffer on AF_XDP (docs/ftc.md 5.1): the I/O around ftc::EgressBuffer. The fast
// path's chain end redirects every packet that carries the FTC control TLV, NSH kept, into the
// XSKMAP ac_ftc_xsk at AC_XSK_SLOT(ifindex, queue); this port binds one socket per queue of
// one interface there (libxdp's xsk API, copy mode unless zero-copy works), decodes each frame's
// NSH (ftc/wire.h), and lets the buffer decide. A held frame is copied out of the UMEM (the
// buffer's bounds are its memory bound) and its UMEM frame goes back to the fill ring at once.
// Release: the FTC TLVs (control, logs, commits) are removed from the NSH, its TTL given back
// the decrement of the first pass, and the frame is run once more through the node's fast path
// with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES (ingress = this interface), where the
// chain's end pops the NSH and routes the packet as any other.
// After every frame it reads, the port writes what its buffer knows of the frame's partition
// into the fast path's ac_ftc_egress (egress_fd): the commit vector and whether packets of it
// are held. With it the chain's end releases the partition's next packets whose logs are
// committed itself, without this round trip (bpf/ac_ftc.h ac_ftc_committed).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "ftc/buffer.h"
#include "ftc/wire.h"
#include "xsk/socket.h"

namespace anychain::ftc {

struct EgressOptions {
  std::string ifname;
  int xskmap_fd = -1;             // the fast path's ac_ftc_xsk
  int prog_fd = -1;               // the fast path's program, for releases
  int egress_fd = -1;             // the fast path's ac_ftc_egress (-1: not written)
  int end_stats_fd = -1;          // the fast path's ac_ftc_end_stats (-1: not read)
  std::vector<uint32_t> queues{0};
  uint32_t frames = 4096;         // UMEM frames per queue, a power of two >= 64 (all for RX)
  BufferLimits limits;
};

// A released frame: the FTC TLVs removed from the NSH after the Ethernet header, TTL + 1 (the
// first pass decremented it; capped at 63). Fails on a frame that is not [Ethernet][NSH MD2].
Result<Bytes> strip_ftc(std::span<const uint8_t> frame);

// Run frame once through prog as if it arrived on ifindex, as a live frame
// (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): its verdict's redirect or TX happens.
Result<void> run_live_frame(int prog_fd, uint32_t ifindex, Bytes& frame);

class EgressPort {
 public:
  // Call in the interface's network namespace.
  static Result<std::unique_ptr<EgressPort>> open(const EgressOptions& o);
  ~EgressPort();

  // Read up to max frames from every queue and act on them; returns the frames read.
  size_t poll(uint64_t now_ns, size_t max = 256);
  // Held frames older than the hold timeout are dropped (counted); the feedback of frames still
  // held is queued again every feedback interval (at-least-once to the forwarder).
  void expire(uint64_t now_ns);
  // Feedback the buffer produced (the forwarder's part: to the chain's ingress node).
  std::vector<Feedback> take_feedback();
  // Partitions whose commit vector grew since the last call, with the ingress node their packets
  // named and the whole vector: the RELEASED messages for the forwarder (pruning, 5.2).
  struct Released {
    uint32_t ingress = 0;
    Flow flow;
    CommitVector cv;
  };
  std::vector<Released> take_released();
  std::vector<int> fds() const;

  struct Stats {
    uint64_t rx = 0;             // frames read from the sockets
    uint64_t bad_nsh = 0;        // not a decodable MD2 NSH: dropped
    uint64_t not_ftc = 0;        // no control or flow hash TLV: dropped
    uint64_t released = 0;       // re-run through the fast path
    uint64_t released_at_end = 0;  // released by the chain's end itself on this interface since
                                   // the port opened (ac_ftc_end_stats), never read by the port
    uint64_t release_failed = 0; // the re-run or the strip failed: dropped
    uint64_t consumed = 0;       // propagating packets: commits and feedback only
    uint64_t full = 0;           // buffer or partition full: dropped
    uint64_t expired = 0;        // held past the timeout: dropped
    uint64_t fenced = 0;         // a newer incarnation committed: dropped
    uint64_t held_now = 0;       // frames held
    uint64_t held_bytes = 0;
    uint64_t egress_writes = 0;      // ac_ftc_egress entries written
    uint64_t egress_write_failed = 0;
  };
  Stats stats() const;


 private:
  EgressPort() = default;
  void handle(const uint8_t* data, size_t len, uint64_t now);
  void release(uint64_t token);
  void write_egress(const Flow& flow);
  uint64_t end_released() const;  // ac_ftc_end_stats at ifindex_, summed over CPUs
  EgressOptions opt_;
  uint32_t ifindex_ = 0;
  uint64_t end_base_ = 0;  // end_released() when the port opened
  std::vector<std::unique_ptr<xsk::Socket>> queues_;
  EgressBuffer buffer_;
  std::map<uint64_t, Bytes> frames_;  // held frames by token
  uint64_t next_token_ = 1;
  std::vector<Feedback> feedback_;
  std::map<Flow, uint32_t> commits_changed_;  // flow -> ingress
  Stats st_;
};

}  // namespace anychain::ftc
