// anychain-nf's hold queue and overflow sender (docs/ftc.md 4.2 and 2.6, docs/nf.md "The hold
// queue"), on one AF_XDP socket (libxdp's xsk API, copy mode on the veth) bound to queue 0 of the
// NF's eth0 and inserted into the program's XSKMAP nf_hold:
// - RX: the frames the program held for a gap (a log ahead of the replica record). Each is copied
//   out of the UMEM at once into its partition's FIFO (SPI/SI and flow hash), bounded in all and
//   per partition; a frame that does not fit is dropped and counted (hold_full), which to FTC is a
//   lost packet: the next packet's gap is closed by re-request (docs/ftc.md 4.3) or by the frame's
//   retransmission, never by releasing something uncopied.
// - release: every 100 us while frames are held, each partition's first frame is checked against
//   the replica records it waits for (BPF_F_LOCK lookups, ac_ftc_order: the program's own rule);
//   when none is a gap any more it is re-run through the NF's program as a live frame
//   (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, ingress eth0): the program applies its
//   logs, runs the NF and transmits it with XDP_TX as if it had just arrived. Frames of one
//   partition are re-run in the order they were held. A frame held longer than the hold timeout
//   is dropped (hold_expired).
// - re-request (docs/ftc.md 4.3): a partition's first frame still waiting `reorder_wait` after it
//   was held asks the node's agent for the newer record of the log it waits for (nf/resync.h:
//   a datagram on the agent's socket, rate-limited); the agent installs it into nf_replica and
//   the next check finds the gap closed.
// - TX: the whole logs the program stubbed (ring buffer nf_overflow), each sent at once out of
//   eth0 in a propagating packet of its partition (flow hash, control PROPAGATING, the log).
// Counters in the object's nf_proc_stats (enum ac_nf_proc_stat), read by `anychain state`.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "anychain/nf.h"
#include "common/error.h"
#include "nf/resync.h"
#include "xsk/socket.h"

struct ring_buffer;

namespace anychain::nf {

class Nf;

struct HoldOptions {
  uint32_t frames = 4096;                    // held frames in all
  uint32_t per_partition = 256;              // held frames per partition
  std::chrono::milliseconds timeout{1000};   // a frame held longer is dropped
  uint32_t umem_frames = 1024;               // UMEM frames: half RX (fill ring), half TX
  std::chrono::microseconds reorder_wait{1000};  // a gap still open this long is re-requested
  std::string resync_socket;                 // the agent's socket (nf/resync.h); empty: never re-request
  std::chrono::milliseconds resync_retry{10};  // the same record asked again only after this
  uint32_t resync_per_second = 1000;         // re-requests in all
};

class HoldQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using Bytes = std::vector<uint8_t>;

  // Call in the NF's namespace, after the program is attached to the Nf's interface.
  static Result<std::unique_ptr<HoldQueue>> open(Nf& nf, const HoldOptions& o);
  ~HoldQueue();
  HoldQueue(const HoldQueue&) = delete;
  HoldQueue& operator=(const HoldQueue&) = delete;

  std::vector<int> fds() const;              // the socket and the ring buffer: poll for input
  // Take what arrived: held frames into the queue, stubbed logs out as propagating packets.
  void receive(Clock::time_point now);
  // Re-run the frames whose gaps closed, drop the expired ones. Returns frames re-run.
  size_t release(Clock::time_point now);
  bool holding() const { return depth_ > 0; }
  size_t depth() const { return depth_; }

  // A propagating packet carrying one overflow record (exported for the fixtures).
  static Bytes propagating_frame(const ac_nf_overflow& r);

 private:
  HoldQueue() = default;
  struct Held {
    Bytes frame;
    Clock::time_point at;
  };
  using Part = std::pair<uint32_t, uint32_t>;  // SPI << 8 | SI, flow hash
  void resync(const Gap& g, Clock::time_point now);
  bool rerun(const Bytes& frame);
  void send(const Bytes& frame);
  void count(uint32_t stat, uint64_t n = 1);
  void gauge(uint32_t stat, uint64_t v);
  void poll_stats();
  static int on_overflow(void* ctx, void* data, size_t size);

  Nf* nf_ = nullptr;
  HoldOptions opt_;
  int ifindex_ = 0, prog_fd_ = -1, replica_fd_ = -1, stats_fd_ = -1;
  uint32_t own_id_ = 0;
  std::unique_ptr<xsk::Socket> xsk_;
  std::unique_ptr<ResyncAsker> asker_;  // null: no re-requests
  ring_buffer* ring_ = nullptr;
  std::map<Part, std::deque<Held>> q_;
  size_t depth_ = 0;
  uint64_t ring_dropped_seen_ = 0;
};

}  // namespace anychain::nf
