// anychain-bench-ftc --bench path (bench/ftc_path.cc): the per-packet cost of FTC where a packet
// really goes, the same chain of built-in NFs with and without FTC behind anychain's fast path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace anychain::bench {

struct FtcPathOptions {
  std::vector<size_t> sizes{64, 1514};  // generated frames, Ethernet header included
  int reps = 5;                         // interleaved sample pairs per size
  double seconds = 1.0;                 // measured per sample
  int gen_cpu = 0, router_cpu = 1;
  uint32_t flows = 1;
  std::vector<int> chains{3};           // chain lengths, each of 2..5 NFs: the first n of fw -> monitor ->
                                        // NAT -> monitor -> NAT
  bool end_replica = false;             // each chain ends in a replica hop (nf: replica, docs/ftc.md 5.4)
  bool xdp_time = false;                // also the XDP programs' own run time (BPF_STATS_RUN_TIME)
  uint32_t pps = 0;                     // offered load, both builds (0: as fast as the generator goes)
  bool fast_release = true;             // the buffer writes ac_ftc_egress, as anychaind does (false:
                                        // every FTC packet goes through the buffer, as before)
};

// Needs root; call inside test::enter_sandbox().
nlohmann::json run_ftc_path(const FtcPathOptions& o);

}  // namespace anychain::bench
