// Shared by the whole-path benches (bench/nf_state_bench.cc --path, bench/ftc_path.cc): the
// generator of live frames into a Topo's router, and the CPU time of the router's tasks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "common/packet.h"
#include "e2e_topo.h"

namespace anychain::bench {

// bench/e2e.bpf.c's e2e_gen in BPF_PROG_TEST_RUN with live frames (BPF_F_TEST_XDP_LIVE_FRAMES),
// redirecting UDP/IPv4 frames of `frame_bytes` (Ethernet header included, 64..1514) into the
// router's ingress, on its own CPU until stopped; `flows` flows (UDP source ports base_port +
// 0..flows-1, round robin). pps > 0: paced, one frame per 1/pps s at most (e2e_gen drops the
// frames that come before their time) instead of as fast as the generator's CPU goes.
class LiveFrames {
 public:
  LiveFrames(const Topo& t, int cpu, size_t frame_bytes = 64, uint32_t flows = 1, uint16_t base_port = 10000,
             uint32_t pps = 0);
  ~LiveFrames();
  LiveFrames(const LiveFrames&) = delete;
  LiveFrames& operator=(const LiveFrames&) = delete;
  // Stops the generator; throws what stopped it early, if anything did.
  void stop();
  uint64_t generated() const { return gen_.packets(); }  // summed over CPUs

 private:
  BenchObj gen_;
  test::Bytes frame_;
  std::atomic<bool> stop_{false};
  std::string err_;
  std::thread thread_;
};

// CPU time (ns) the tasks ran, from the scheduler's own accounting (/proc/<tid>/schedstat);
// tids <= 0 are skipped.
uint64_t cpu_ns(const std::vector<int>& tids);

}  // namespace anychain::bench
