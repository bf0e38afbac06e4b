// An NF instance's maps and programs opened by the ids it published (docs/nf.md, "Reading and
// writing an instance's state"): what `anychain state`, FTC recovery and shared-state snapshots
// use. The fds are this object's; the maps stay the process's (when it dies they are freed, and
// open() fails with ENOENT).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "anychain/ftc.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "nf/published.h"

namespace anychain::nf {

using Bytes = std::vector<uint8_t>;

struct MapInfo {
  uint32_t type = 0;                   // BPF_MAP_TYPE_*
  uint32_t key_size = 0, value_size = 0, max_entries = 0, flags = 0;
};

class InstanceMaps {
 public:
  // Open every map and program of a published instance. Refused (ENOENT) when the process is gone
  // or its program is no longer loaded; a map whose kernel name does not match is refused (EBADF).
  static Result<InstanceMaps> open(const Published& p);
  // read_published(published_path(run_dir, name)), then open()
  static Result<InstanceMaps> open(const std::string& run_dir, const std::string& name);

  const Published& published() const { return pub_; }
  bool has(const std::string& map) const { return maps_.count(map) > 0; }
  int fd(const std::string& map) const;              // -1 if absent
  int prog_fd(const std::string& prog) const;        // -1 if absent
  Result<MapInfo> info(const std::string& map) const;

  // Every entry (key, value); per-CPU maps give one value per possible CPU, concatenated.
  // lock: read values with BPF_F_LOCK (maps whose values hold a bpf_spin_lock).
  Result<std::vector<std::pair<Bytes, Bytes>>> dump(const std::string& map, bool lock = false) const;
  // Write entries (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST, | BPF_F_LOCK).
  Result<void> load(const std::string& map, const std::vector<std::pair<Bytes, Bytes>>& entries,
                    uint64_t flags = BPF_ANY) const;
  // Slot `key` of a per-CPU array of __u64 or of a per-CPU array of n __u64 words, summed over CPUs.
  Result<std::vector<uint64_t>> percpu_sum(const std::string& map, uint32_t key) const;
  // Every slot of a per-CPU array of __u64 counters, summed over CPUs.
  Result<std::vector<uint64_t>> counters(const std::string& map) const;

  // The FTC records (bpf/nf_state.h), read and written under their locks: what recovery and
  // re-requests exchange (docs/ftc.md 4.3, 7).
  Result<std::vector<std::pair<ac_st_pkey, ac_st_rec>>> head_records() const;
  Result<std::vector<std::pair<ac_st_rkey, ac_st_rec>>> replica_records() const;
  // One record (BPF_F_LOCK); nullopt when absent or not VALID.
  Result<std::optional<ac_st_rec>> head_record(const ac_st_pkey& k) const;
  Result<std::optional<ac_st_rec>> replica_record(const ac_st_rkey& k) const;
  Result<void> install_head(const ac_st_pkey& k, const ac_st_rec& r) const;     // BPF_F_LOCK
  Result<void> install_replica(const ac_st_rkey& k, const ac_st_rec& r) const;  // BPF_F_LOCK

 private:
  Published pub_;
  std::map<std::string, UniqueFd> maps_;
  std::map<std::string, UniqueFd> progs_;
};

}  // namespace anychain::nf
