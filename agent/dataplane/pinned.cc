#include "dataplane/pinned.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>

#include "common/format.h"

namespace anychain::dataplane {
namespace {

Result<UniqueFd> get_pinned(const std::string& root, const char* name, uint32_t* max_entries = nullptr) {
  std::string path = root + "/" + name;
  LIBBPF_OPTS(bpf_obj_get_opts, o, .file_flags = BPF_F_RDONLY);
  int fd = bpf_obj_get_opts(path.c_str(), &o);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return fail(format("no anychain map pinned at {} (the fast path is not loaded under this pin root: "
                         "start anychaind or run 'anychain attach')", path), ENOENT);
    if (err == EPERM || err == EACCES)
      return fail(format("cannot open {}: reading anychain's maps needs root", path), err);
    return fail_errno(format("open pinned map {}", path), err);
  }
  if (max_entries) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      int err = errno;
      ::close(fd);
      return fail_errno(format("query pinned map {}", path), err);
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
              {"ac_proxy", &m.proxy_, &m.proxy_entries_}};
  for (auto& w : want) {
    auto fd = get_pinned(pin_root, w.name, w.max);
    if (!fd) return std::unexpected(fd.error());
    *w.fd = std::move(*fd);
  }
  return m;
}

Result<std::vector<ac_counter>> PinnedMaps::stats() const {
  return read_stats(stats_.get());
}

Result<std::vector<PathCounter>> PinnedMaps::path_stats() const {
  std::vector<PathCounter> out;
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(paths_.get(), prev, &next) == 0) {
    key = next;
    prev = &key;
    ac_path p{};
    if (bpf_map_lookup_elem(paths_.get(), &key, &p) != 0) continue;  // deleted meanwhile
    uint32_t spsi = ntohl(key);
    PathCounter pc{spsi >> 8, static_cast<uint8_t>(spsi & 0xff), p.service_id, (p.flags & AC_PATH_LAST_HOP) != 0, {}};
    if (p.stats_idx < AC_MAX_PATHS) {
      auto c = read_percpu_counter(path_stats_.get(), p.stats_idx, "ac_path_stats");
      if (!c) return std::unexpected(c.error());
      pc.counter = *c;
    }
    out.push_back(pc);
  }
  std::sort(out.begin(), out.end(), [](const PathCounter& a, const PathCounter& b) {
    return a.spi != b.spi ? a.spi < b.spi : a.si > b.si;
  });
  return out;
}

Result<std::vector<FlowEntry>> PinnedMaps::flows(size_t limit, std::optional<uint32_t> spi) const {
  return read_flow_sets(flows_.get(), flow_sets_, limit, spi);
}

}  // namespace anychain::dataplane
