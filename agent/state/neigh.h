// The next hop towards a peer, as the kernel knows it (route, then neighbour), for frames the
// AF_XDP transport writes itself. Plain rtnetlink requests (RTM_GETROUTE, RTM_GETNEIGH): this
// module depends on nothing beyond agent/common, libbpf/libxdp and libcrypto. Answers are cached
// for a second; a missing neighbour for 10 ms (the message goes through the UDP socket, whose
// send makes the kernel resolve it).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace anychain::state {

struct NextHop {
  uint32_t ifindex = 0;
  std::array<uint8_t, 6> mac{};
};

class NeighbourTable {
 public:
  // A rtnetlink socket in the calling thread's network namespace.
  static Result<NeighbourTable> open();

  // The interface and MAC of the next hop to dst (IPv4, network order), when the kernel has a
  // route and a resolved neighbour for it.
  std::optional<NextHop> lookup(uint32_t dst, uint64_t now_us);
  void flush() { cache_.clear(); }

 private:
  struct Entry {
    uint64_t expires_us = 0;
    std::optional<NextHop> hop;
  };
  Result<std::pair<uint32_t, uint32_t>> route(uint32_t dst);                 // (oif, next-hop address)
  Result<std::optional<std::array<uint8_t, 6>>> neighbour(uint32_t ifindex, uint32_t addr);
  Result<std::vector<uint8_t>> request(const std::vector<uint8_t>& msg);
  UniqueFd fd_;
  uint32_t seq_ = 1;
  std::map<uint32_t, Entry> cache_;
};

}  // namespace anychain::state
