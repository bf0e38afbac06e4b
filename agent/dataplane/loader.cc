// Loading the fast path's object: maps pinned under the pin root are reused (a restarted agent
// adopts the running state), missing ones are created and pinned. Also the privilege and bpffs
// checks, and removing the pins.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>

#include "anychain.skel.h"
#include "dataplane/dataplane.h"
#include "dataplane/internal.h"

namespace anychain::dataplane {
namespace {

constexpr unsigned long kBpfFsMagic = 0xcafe4a11;
// a flow cache way keeps the service id and the path counter slot in 16 bits each
static_assert(AC_MAX_SERVICES <= 65536 && AC_MAX_PATHS <= 65536);

}  // namespace

namespace internal {
int num_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n;
}
const void* elf_bytes(size_t* size) { return anychain_bpf__elf_bytes(size); }
}  // namespace internal

Result<void> require_root() {
  if (geteuid() != 0)
    return fail("anychain needs root (CAP_BPF and CAP_NET_ADMIN) to load and attach XDP programs; run it with sudo", EPERM);
  return {};
}

Result<void> ensure_bpffs(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string base = "/sys/fs/bpf";
  struct statfs st{};
  if (statfs(base.c_str(), &st) != 0 || static_cast<unsigned long>(st.f_type) != kBpfFsMagic) {
    if (mount("bpf", base.c_str(), "bpf", 0, "mode=0700") != 0)
      return fail_errno(fmt::format("bpffs is not mounted at {} and mounting it failed (mount -t bpf bpf {})", base, base));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(fmt::format("cannot create pin directory {}: {}", dir, ec.message()), ec.value());
  if (statfs(dir.c_str(), &st) != 0 || static_cast<unsigned long>(st.f_type) != kBpfFsMagic)
    return fail(fmt::format("pin directory {} is not on a bpffs", dir), ENOTSUP);
  return {};
}

Dataplane::Dataplane(std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel, Options opts)
    : skel_(std::move(skel)), opts_(std::move(opts)) {}
Dataplane::Dataplane(Dataplane&&) noexcept = default;
Dataplane& Dataplane::operator=(Dataplane&&) noexcept = default;
Dataplane::~Dataplane() = default;

Result<Dataplane> Dataplane::open(const Options& opts) {
  if (auto r = require_root(); !r) return std::unexpected(r.error());
  // sizes first: a refused option leaves nothing behind (no pin directory)
  if (opts.flow_cache_entries < AC_FLOW_CACHE_MIN || (opts.flow_cache_entries & (opts.flow_cache_entries - 1)) ||
      opts.proxy_entries < 256)
    return fail(fmt::format("flow cache needs a power of two >= {} entries (got {}) and the proxy >= 256",
                       AC_FLOW_CACHE_MIN, opts.flow_cache_entries), EINVAL);
  if (opts.affinity_entries < AC_AFFINITY_MIN)
    return fail(fmt::format("ac_affinity needs >= {} placements (got {})", AC_AFFINITY_MIN, opts.affinity_entries),
                EINVAL);
  if (auto r = ensure_bpffs(opts.pin_root); !r) return std::unexpected(r.error());

  const uint32_t flow_elements = internal::flow_cache_elements(opts.flow_cache_entries / AC_FLOW_WAYS);
  if (!flow_elements)
    return fail(fmt::format("a flow cache of {} entries on each of {} CPUs is too large", opts.flow_cache_entries,
                            internal::num_cpus()), EINVAL);

  LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = opts.pin_root.c_str());
  ::anychain_bpf* raw = anychain_bpf__open_opts(&oo);
  if (!raw) return fail_errno("open the anychain BPF object");
  std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel(raw, [](::anychain_bpf* s) { anychain_bpf__destroy(s); });
  bpf_map__set_max_entries(skel->maps.ac_flow_cache, flow_elements);
  bpf_map__set_max_entries(skel->maps.ac_proxy, opts.proxy_entries);
  bpf_map__set_max_entries(skel->maps.ac_affinity, opts.affinity_entries);
  if (int err = anychain_bpf__load(skel.get()); err != 0)
    return fail_errno(fmt::format("load the anychain BPF object (maps pinned under {} may be from an "
                                  "incompatible build or size: detach and remove them with 'anychain flush')",
                                  opts.pin_root), err);
  Dataplane dp(std::move(skel), opts);
  if (auto r = dp.load_path_slots(); !r) return std::unexpected(r.error());
  if (auto r = dp.init_config(); !r) return std::unexpected(r.error());
  return dp;
}

// The loader owns the flow cache geometry: the program indexes sets with flow_set_mask.
Result<void> Dataplane::init_config() {
  return modify_config([&](ac_config& v) { v.flow_set_mask = flow_sets() - 1; }, "write config");
}

uint32_t Dataplane::flow_sets() const {
  return internal::flow_cache_sets(bpf_map__max_entries(skel_->maps.ac_flow_cache));
}

// Counter slots of the paths already pinned (a restarted agent keeps their counters).
Result<void> Dataplane::load_path_slots() {
  path_slot_used_.assign(AC_MAX_PATHS, false);
  internal::for_each_path(bpf_map__fd(skel_->maps.ac_paths), [&](uint32_t, uint8_t, const ac_path& p) {
    if (p.stats_idx < AC_MAX_PATHS) path_slot_used_[p.stats_idx] = true;
  });
  return {};
}

int Dataplane::prog_fd() const { return bpf_program__fd(skel_->progs.anychain_xdp); }

int Dataplane::map_fd(std::string_view name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
  return m ? bpf_map__fd(m) : -1;
}

uint32_t Dataplane::map_id(std::string_view name) const {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  int fd = map_fd(name);
  return fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

Result<void> Dataplane::unpin_all(const std::string& pin_root) {
  std::error_code ec;
  std::filesystem::remove_all(pin_root, ec);
  if (ec) return fail(fmt::format("remove pins under {}: {}", pin_root, ec.message()), ec.value());
  return {};
}

}  // namespace anychain::dataplane
