#include "dataplane/pinned.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>

#include "dataplane/internal.h"

namespace anychain::dataplane {
namespace {

Result<UniqueFd> get_pinned(const std::string& root, const char* name, uint32_t* max_entries = nullptr) {
  std::string path = root + "/" + name;
  LIBBPF_OPTS(bpf_obj_get_opts, o, .file_flags = BPF_F_RDONLY);
  int fd = bpf_obj_get_opts(path.c_str(), &o);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return fail(fmt::format("no anychain map pinned at {} (the fast path is not loaded under this pin root: "
                         "start anychaind or run 'anychain attach')", path), ENOENT);
    if (err == EPERM || err == EACCES)
      return fail(fmt::format("cannot open {}: reading anychain's maps needs root", path), err);
    return fail_errno(fmt::format("open pinned map {}", path), err);
  }
  if (max_entries) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      int err = errno;
      ::close(fd);
      return fail_errno(fmt::format("query pinned map {}", path), err);
    }
    *max_entries = info.max_entries;
  }
  return UniqueFd(fd);
}

}  // namespace

Result<PinnedMaps> PinnedMaps::open(const std::string& pin_root) {
  PinnedMaps m;
  m.pin_root_ = pin_root;
  struct Want {
    const char* name;
    UniqueFd* fd;
    uint32_t* max;
  } want[] = {{"ac_stats", &m.stats_, nullptr},
              {"ac_paths", &m.paths_, nullptr},
              {"ac_path_stats", &m.path_stats_, nullptr},
              {"ac_flow_cache", &m.flows_, &m.flow_sets_},
              {"ac_affinity", &m.affinity_, &m.affinity_entries_},
              {"ac_instances", &m.instances_, nullptr},
              {"ac_proxy", &m.proxy_, &m.proxy_entries_}};
  for (auto& w : want) {
    auto fd = get_pinned(pin_root, w.name, w.max);
    if (!fd) return std::unexpected(fd.error());
    *w.fd = std::move(*fd);
  }
  m.flow_sets_ = internal::flow_cache_sets(m.flow_sets_);  // every CPU's sets in one array
  return m;
}

uint32_t PinnedMaps::stats_map_id() const {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(stats_.get(), &info, &len) == 0 ? info.id : 0;
}

Result<bool> PinnedMaps::used_by(uint32_t prog_id) const {
  UniqueFd prog(bpf_prog_get_fd_by_id(prog_id));
  if (!prog) return fail_errno(fmt::format("open XDP program {}", prog_id));
  bpf_map_info mine{};
  uint32_t len = sizeof mine;
  if (bpf_obj_get_info_by_fd(stats_.get(), &mine, &len) != 0) return fail_errno("query the pinned ac_stats");
  std::vector<uint32_t> ids(64);
  bpf_prog_info info{};
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog.get(), &info, &len) != 0) return fail_errno(fmt::format("query XDP program {}", prog_id));
  ids.resize(std::min<size_t>(info.nr_map_ids, ids.size()));
  return std::find(ids.begin(), ids.end(), mine.id) != ids.end();
}

Result<std::vector<ac_counter>> PinnedMaps::stats() const { return read_stats(stats_.get()); }

Result<std::vector<PathCounter>> PinnedMaps::path_stats() const {
  return read_path_counters(paths_.get(), path_stats_.get());
}

Result<std::vector<FlowEntry>> PinnedMaps::flows(size_t limit, std::optional<uint32_t> spi) const {
  auto out = read_flow_sets(flows_.get(), flow_sets_, limit, spi);
  if (!out) return out;
  if (auto r = annotate_placements(*out, affinity_.get(), instances_.get()); !r) return std::unexpected(r.error());
  return out;
}

}  // namespace anychain::dataplane
