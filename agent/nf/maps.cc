#include "nf/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <signal.h>

#include <cstring>

namespace anychain::nf {

Result<InstanceMaps> InstanceMaps::open(const std::string& run_dir, const std::string& name) {
  auto p = read_published(published_path(run_dir, name));
  if (!p) return unexpected(p.error());
  return open(*p);
}

Result<InstanceMaps> InstanceMaps::open(const Published& p) {
  InstanceMaps m;
  m.pub_ = p;
  if (p.pid <= 0 || (::kill(p.pid, 0) != 0 && errno == ESRCH))
    return fail(fmt::format("instance '{}' is not running (process {} is gone)", p.name, p.pid), ENOENT);
  UniqueFd prog(bpf_prog_get_fd_by_id(p.prog_id));
  if (!prog) return fail(fmt::format("instance '{}': program {} is no longer loaded", p.name, p.prog_id), ENOENT);
  for (const auto& [name, id] : p.maps) {
    UniqueFd fd(bpf_map_get_fd_by_id(id));
    if (!fd) return fail_errno(fmt::format("instance '{}': map {} (id {})", p.name, name, id));
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len)) return fail_errno(fmt::format("map {} (id {})", name, id));
    // the kernel keeps BPF_OBJ_NAME_LEN - 1 characters of the name
    if (name.compare(0, BPF_OBJ_NAME_LEN - 1, info.name) != 0)
      return fail(fmt::format("instance '{}': map id {} is '{}', not {}: the instance restarted?", p.name, id, info.name,
                              name), EBADF);
    m.maps_.emplace(name, std::move(fd));
  }
  for (const auto& [name, id] : p.progs) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (fd) m.progs_.emplace(name, std::move(fd));
  }
  return m;
}

int InstanceMaps::fd(const std::string& map) const {
  auto it = maps_.find(map);
  return it == maps_.end() ? -1 : it->second.get();
}

int InstanceMaps::prog_fd(const std::string& prog) const {
  auto it = progs_.find(prog);
  return it == progs_.end() ? -1 : it->second.get();
}

Result<MapInfo> InstanceMaps::info(const std::string& map) const {
  int f = fd(map);
  if (f < 0) return fail(fmt::format("instance '{}' has no map {}", pub_.name, map), ENOENT);
  bpf_map_info i{};
  uint32_t len = sizeof i;
  if (bpf_obj_get_info_by_fd(f, &i, &len)) return fail_errno(fmt::format("map {}", map));
  return MapInfo{i.type, i.key_size, i.value_size, i.max_entries, i.map_flags};
}

namespace {
bool percpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}
}  // namespace

Result<std::vector<std::pair<Bytes, Bytes>>> InstanceMaps::dump(const std::string& map, bool lock) const {
  auto i = info(map);
  if (!i) return unexpected(i.error());
  const int f = fd(map);
  const size_t vsize = percpu(i->type) ? ((i->value_size + 7) / 8 * 8) * libbpf_num_possible_cpus() : i->value_size;
  std::vector<std::pair<Bytes, Bytes>> out;
  Bytes key(i->key_size), next(i->key_size), val(vsize);
  for (bool first = true; bpf_map_get_next_key(f, first ? nullptr : key.data(), next.data()) == 0; first = false) {
    key = next;
    int r = lock ? bpf_map_lookup_elem_flags(f, key.data(), val.data(), BPF_F_LOCK)
                 : bpf_map_lookup_elem(f, key.data(), val.data());
    if (r == 0) out.emplace_back(key, val);
    else if (errno != ENOENT) return fail_errno(fmt::format("read {}", map));
  }
  return out;
}

Result<void> InstanceMaps::load(const std::string& map, const std::vector<std::pair<Bytes, Bytes>>& entries,
                                uint64_t flags) const {
  auto i = info(map);
  if (!i) return unexpected(i.error());
  for (const auto& [k, v] : entries) {
    if (k.size() != i->key_size) return fail(fmt::format("{}: a key of {} bytes, not {}", map, k.size(), i->key_size), EINVAL);
    if (bpf_map_update_elem(fd(map), k.data(), v.data(), flags)) return fail_errno(fmt::format("write {}", map));
  }
  return {};
}

Result<std::vector<uint64_t>> InstanceMaps::percpu_sum(const std::string& map, uint32_t key) const {
  auto i = info(map);
  if (!i) return unexpected(i.error());
  if (!percpu(i->type) || i->value_size % 8) return fail(fmt::format("{} is not a per-CPU map of u64 words", map), EINVAL);
  const size_t words = i->value_size / 8, cpus = static_cast<size_t>(libbpf_num_possible_cpus());
  std::vector<uint64_t> all(words * cpus), sum(words);
  if (bpf_map_lookup_elem(fd(map), &key, all.data())) return fail_errno(fmt::format("read {}[{}]", map, key));
  for (size_t c = 0; c < cpus; ++c)
    for (size_t w = 0; w < words; ++w) sum[w] += all[c * words + w];
  return sum;
}

Result<std::vector<uint64_t>> InstanceMaps::counters(const std::string& map) const {
  auto i = info(map);
  if (!i) return unexpected(i.error());
  std::vector<uint64_t> out;
  for (uint32_t k = 0; k < i->max_entries; ++k) {
    auto s = percpu_sum(map, k);
    if (!s) return unexpected(s.error());
    out.push_back(s->empty() ? 0 : (*s)[0]);
  }
  return out;
}

namespace {
template <class K>
Result<std::vector<std::pair<K, ac_st_rec>>> records(const InstanceMaps& m, const char* map) {
  std::vector<std::pair<K, ac_st_rec>> out;
  auto d = m.dump(map, true);
  if (!d) return unexpected(d.error());
  for (const auto& [k, v] : *d) {
    if (k.size() != sizeof(K) || v.size() != sizeof(ac_st_rec))
      return fail(fmt::format("{}: entries of {}/{} bytes, not the FTC record layout", map, k.size(), v.size()), EINVAL);
    std::pair<K, ac_st_rec> e;
    std::memcpy(&e.first, k.data(), sizeof(K));
    std::memcpy(&e.second, v.data(), sizeof(ac_st_rec));
    out.push_back(e);
  }
  return out;
}
}  // namespace

Result<std::vector<std::pair<ac_st_pkey, ac_st_rec>>> InstanceMaps::head_records() const {
  return records<ac_st_pkey>(*this, "nf_head");
}
Result<std::vector<std::pair<ac_st_rkey, ac_st_rec>>> InstanceMaps::replica_records() const {
  return records<ac_st_rkey>(*this, "nf_replica");
}

namespace {
template <class K>
Result<std::optional<ac_st_rec>> record(const InstanceMaps& m, const char* map, const K& k) {
  const int fd = m.fd(map);
  if (fd < 0) return fail(fmt::format("{}: no map {}", m.published().name, map), ENOENT);
  ac_st_rec r{};
  if (bpf_map_lookup_elem_flags(fd, &k, &r, BPF_F_LOCK) != 0) {
    if (errno == ENOENT) return std::optional<ac_st_rec>{};
    return fail_errno(fmt::format("{}: read {}", m.published().name, map));
  }
  if (!(r.flags & AC_ST_REC_VALID)) return std::optional<ac_st_rec>{};
  return std::optional<ac_st_rec>{r};
}
}  // namespace

Result<std::optional<ac_st_rec>> InstanceMaps::head_record(const ac_st_pkey& k) const {
  return record(*this, "nf_head", k);
}
Result<std::optional<ac_st_rec>> InstanceMaps::replica_record(const ac_st_rkey& k) const {
  return record(*this, "nf_replica", k);
}

Result<void> InstanceMaps::install_head(const ac_st_pkey& k, const ac_st_rec& r) const {
  if (bpf_map_update_elem(fd("nf_head"), &k, &r, BPF_F_LOCK)) return fail_errno("install a head record");
  return {};
}
Result<void> InstanceMaps::install_replica(const ac_st_rkey& k, const ac_st_rec& r) const {
  if (bpf_map_update_elem(fd("nf_replica"), &k, &r, BPF_F_LOCK)) return fail_errno("install a replica record");
  return {};
}

}  // namespace anychain::nf
