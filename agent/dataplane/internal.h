// Private to the dataplane library's .cc files: small helpers several of them need.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstddef>
#include <cstdint>

#include "anychain/maps.h"
#include "anychain/nsh.h"

namespace anychain::dataplane::internal {

// The program's name in the object (libxdp finds our program on an interface by it).
inline constexpr const char* kProgName = "anychain_xdp";

// Key of ac_paths and the flow cache ways: the NSH SPI/SI word, network order.
inline uint32_t spsi_key(uint32_t spi, uint8_t si) { return htonl(AC_SPI_SI(spi, si)); }

// Possible CPUs: the value count of every per-CPU map lookup.
int num_cpus();

// ac_flow_cache holds every CPU's sets in one array (CPU c's set i is element c * sets + i):
// its max_entries for sets per CPU, 0 if that does not fit in 32 bits.
inline uint32_t flow_cache_elements(uint32_t sets) {
  uint64_t n = static_cast<uint64_t>(sets) * static_cast<uint64_t>(num_cpus());
  return n > UINT32_MAX ? 0 : static_cast<uint32_t>(n);
}
// Sets per CPU of an ac_flow_cache of max_entries elements.
inline uint32_t flow_cache_sets(uint32_t max_entries) { return max_entries / static_cast<uint32_t>(num_cpus()); }

// The embedded ELF of the fast path (from the skeleton; one copy in the binary).
const void* elf_bytes(size_t* size);

// Call fn(spi, si, value) for every ac_paths entry (entries deleted meanwhile are skipped).
template <class F>
void for_each_path(int fd, F&& fn) {
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    ac_path p{};
    if (bpf_map_lookup_elem(fd, &key, &p) != 0) continue;
    uint32_t spsi = ntohl(key);
    fn(spsi >> 8, static_cast<uint8_t>(spsi & 0xff), p);
  }
}

}  // namespace anychain::dataplane::internal
