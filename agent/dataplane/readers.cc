// Readers of the fast path's maps: counters summed over CPUs, paths, WCMP tables, and the
// flow cache decoded into one entry per flow. read_percpu_counter() and read_flow_sets() work
// on plain fds, so the read-only PinnedMaps (pinned.cc) decodes exactly as Dataplane does.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>

#include "anychain.skel.h"
#include "common/unique_fd.h"
#include "dataplane/dataplane.h"
#include "dataplane/internal.h"

namespace anychain::dataplane {
namespace {

// Every bucket in one syscall (a lookup per bucket was 4093 syscalls, several ms per service on
// every recomputation: docs/performance.md "Control plane").
Result<std::vector<uint32_t>> read_table(int fd) {
  std::vector<uint32_t> out(AC_WCMP_BUCKETS), keys(AC_WCMP_BUCKETS);
  uint32_t count = AC_WCMP_BUCKETS, next = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, bo);
  // an array's batch ends with ENOENT once its last element was read
  if (bpf_map_lookup_batch(fd, nullptr, &next, keys.data(), out.data(), &count, &bo) != 0 && errno != ENOENT)
    return fail_errno("read WCMP table");
  if (count != AC_WCMP_BUCKETS)
    return fail(fmt::format("read WCMP table: {} of {} buckets", count, AC_WCMP_BUCKETS), EIO);
  for (uint32_t i = 0; i < AC_WCMP_BUCKETS; ++i)
    if (keys[i] != i) return fail(fmt::format("read WCMP table: bucket {} came as {}", i, keys[i]), EIO);
  return out;
}

PathEntry path_entry(uint32_t spi, uint8_t si, const ac_path& p) {
  return {spi, si, p.service_id, (p.flags & AC_PATH_LAST_HOP) != 0};
}

}  // namespace

using internal::num_cpus;
using internal::spsi_key;

Result<std::vector<uint32_t>> Dataplane::wcmp_table(uint32_t service_id) const {
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_wcmp), &service_id, &inner_id) != 0)
    return fail_errno(fmt::format("service {} has no WCMP table", service_id));
  UniqueFd fd(bpf_map_get_fd_by_id(inner_id));
  if (!fd) return fail_errno("open WCMP table");
  return read_table(fd.get());
}

Result<std::vector<PathEntry>> Dataplane::paths() const {
  std::vector<PathEntry> out;
  internal::for_each_path(bpf_map__fd(skel_->maps.ac_paths), [&](uint32_t spi, uint8_t si, const ac_path& p) {
    out.push_back(path_entry(spi, si, p));
  });
  return out;
}

Result<std::vector<uint32_t>> Dataplane::live_instances() const {
  int fd = bpf_map__fd(skel_->maps.ac_instances);
  std::vector<uint32_t> out;
  for (uint32_t id = 1; id < AC_MAX_INSTANCES; ++id) {
    ac_instance v{};
    if (bpf_map_lookup_elem(fd, &id, &v) != 0) return fail_errno(fmt::format("read instance {}", id));
    if (v.flags & AC_INST_LIVE) out.push_back(id);
  }
  return out;
}

Result<std::vector<ac_counter>> Dataplane::stats() const {
  return read_stats(bpf_map__fd(skel_->maps.ac_stats));
}

Result<ac_counter> Dataplane::path_stats(uint32_t spi, uint8_t si) const {
  uint32_t key = spsi_key(spi, si);
  ac_path p{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ac_paths), &key, &p) != 0)
    return fail(fmt::format("no path {}:{}", spi, si), ENOENT);
  return read_percpu_counter(bpf_map__fd(skel_->maps.ac_path_stats), p.stats_idx, "path stats");
}

Result<ac_counter> Dataplane::instance_stats(uint32_t id) const {
  return read_percpu_counter(bpf_map__fd(skel_->maps.ac_inst_stats), id, "instance stats");
}

Result<ac_counter> Dataplane::instance_returned(uint32_t id) const {
  return read_percpu_counter(bpf_map__fd(skel_->maps.ac_inst_returned), id, "instance returned");
}

// Sum a per-CPU ac_counter value.
Result<ac_counter> read_percpu_counter(int fd, uint32_t key, const char* what) {
  std::vector<ac_counter> v(num_cpus());
  if (bpf_map_lookup_elem(fd, &key, v.data()) != 0) return fail_errno(fmt::format("read {} [{}]", what, key));
  ac_counter sum{};
  for (const auto& c : v) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

Result<std::vector<ac_counter>> read_stats(int fd) {
  std::vector<ac_counter> out(AC_STAT_SLOTS);
  for (const auto& r : stat_reasons()) {
    auto c = read_percpu_counter(fd, r.slot, "ac_stats");
    if (!c) return std::unexpected(c.error());
    out[r.slot] = *c;
  }
  return out;
}

Result<std::vector<PathCounter>> read_path_counters(int paths_fd, int path_stats_fd) {
  std::vector<PathCounter> out;
  Result<void> err;
  internal::for_each_path(paths_fd, [&](uint32_t spi, uint8_t si, const ac_path& p) {
    PathCounter pc{path_entry(spi, si, p), {}};
    if (err && p.stats_idx < AC_MAX_PATHS) {
      auto c = read_percpu_counter(path_stats_fd, p.stats_idx, "ac_path_stats");
      if (!c) err = std::unexpected(c.error());
      else pc.counter = *c;
    }
    out.push_back(pc);
  });
  if (!err) return std::unexpected(err.error());
  std::sort(out.begin(), out.end(), [](const PathCounter& a, const PathCounter& b) {
    return a.path.spi != b.path.spi ? a.path.spi < b.path.spi : a.path.si > b.path.si;
  });
  return out;
}

Result<std::vector<FlowEntry>> read_flow_sets(int fd, uint32_t nsets, size_t limit, std::optional<uint32_t> spi) {
  std::vector<FlowEntry> out;
  std::vector<ac_flow_set> sets(num_cpus());
  auto now = current_jiffies();
  for (uint32_t idx = 0; idx < nsets && out.size() < limit; ++idx) {
    // CPU c's set idx is element c * nsets + idx
    for (size_t cpu = 0; cpu < sets.size(); ++cpu) {
      uint32_t key = static_cast<uint32_t>(cpu) * nsets + idx;
      if (bpf_map_lookup_elem(fd, &key, &sets[cpu]) != 0)
        return fail_errno(fmt::format("read flow cache set {} of CPU {}", idx, cpu));
    }
    // the same key can sit in this set on several CPUs: one entry, newest choice
    size_t first = out.size();
    for (size_t cpu = 0; cpu < sets.size(); ++cpu) {
      const auto& set = sets[cpu];
      for (const auto& w : set.way) {
        if (w.spi_si == 0 || w.instance_id == 0) continue;
        uint32_t spsi = ntohl(w.spi_si);
        if (spi && (spsi >> 8) != *spi) continue;
        auto it = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                               [&](const FlowEntry& e) { return spsi_key(e.spi, e.si) == w.spi_si && e.hash == w.hash; });
        if (it == out.end()) {
          out.push_back(FlowEntry{spsi >> 8, static_cast<uint8_t>(spsi & 0xff), w.hash, 0, 0, 0, 0, idx, -1});
          it = out.end() - 1;
        }
        ++it->cpus;
        it->per_cpu.push_back({static_cast<int>(cpu), w.instance_id, w.generation, w.last_seen, true});
        if (it->cpus == 1 || w.last_seen >= it->last_seen) {
          it->last_seen = w.last_seen;
          it->instance_id = w.instance_id;
          it->generation = w.generation;
        }
      }
    }
  }
  if (out.size() > limit) out.resize(limit);
  if (now)
    for (auto& e : out)
      e.age_s = *now > e.last_seen ? static_cast<double>(*now - e.last_seen) * static_cast<double>(tick_ns()) / 1e9 : 0.0;
  return out;
}

Result<void> annotate_placements(std::vector<FlowEntry>& flows, int affinity_fd, int instances_fd) {
  auto usable = [&](uint32_t id, uint32_t gen) -> Result<bool> {
    ac_instance v{};
    if (bpf_map_lookup_elem(instances_fd, &id, &v) != 0) {
      if (errno == ENOENT) return false;
      return fail_errno(fmt::format("read instance {}", id));
    }
    return (v.flags & AC_INST_LIVE) && v.generation == gen;
  };
  for (auto& f : flows) {
    for (auto& c : f.per_cpu) {
      auto u = usable(c.instance_id, c.generation);
      if (!u) return std::unexpected(u.error());
      c.valid = *u;
    }
    ac_affinity_key key{spsi_key(f.spi, f.si), f.hash};
    ac_affinity a{};
    f.placement.reset();
    if (bpf_map_lookup_elem(affinity_fd, &key, &a) == 0) {
      FlowCpuEntry p{-1, AC_AFFINITY_ID(a.pick), AC_AFFINITY_GEN(a.pick), 0, true};
      auto u = usable(p.instance_id, p.generation);
      if (!u) return std::unexpected(u.error());
      p.valid = *u;
      f.placement = p;
    } else if (errno != ENOENT) {
      return fail_errno("read flow placement");
    }
    std::vector<FlowCpuEntry> all = f.per_cpu;
    if (f.placement) all.push_back(*f.placement);
    f.disagree = f.split = false;
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j) {
        bool differ = all[i].instance_id != all[j].instance_id || all[i].generation != all[j].generation;
        f.disagree |= differ;
        f.split |= differ && all[i].valid && all[j].valid;
      }
  }
  return {};
}

Result<std::vector<FlowEntry>> Dataplane::flows(size_t limit) const {
  auto out = read_flow_sets(bpf_map__fd(skel_->maps.ac_flow_cache), flow_sets(), limit);
  if (!out) return out;
  if (auto r = annotate_placements(*out, bpf_map__fd(skel_->maps.ac_affinity), bpf_map__fd(skel_->maps.ac_instances)); !r)
    return std::unexpected(r.error());
  return out;
}

}  // namespace anychain::dataplane
