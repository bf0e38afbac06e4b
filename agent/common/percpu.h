// A per-CPU array's 64-bit counter summed over every possible CPU (libbpf's count, the value
// layout the kernel copies out for BPF_MAP_TYPE_PERCPU_ARRAY of __u64). Header-only: its users
// link libbpf already, anychain_common does not.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace anychain {

// nullopt when the CPUs cannot be counted or the key cannot be read (errno from the lookup).
inline std::optional<uint64_t> percpu_u64_sum(int fd, uint32_t key) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return std::nullopt;
  std::vector<uint64_t> v(static_cast<size_t>(ncpu));
  if (bpf_map_lookup_elem(fd, &key, v.data()) != 0) return std::nullopt;
  uint64_t n = 0;
  for (uint64_t x : v) n += x;
  return n;
}

}  // namespace anychain
