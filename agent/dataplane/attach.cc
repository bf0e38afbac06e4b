// XDP attach and detach through libxdp: our program joins libxdp's dispatcher, so it shares
// an interface with other XDP programs (or is attached alone where the kernel refuses freplace).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "anychain.skel.h"
#include "common/unique_fd.h"
#include "dataplane/dataplane.h"
#include "dataplane/internal.h"

namespace anychain::dataplane {

using internal::kProgName;

Result<Mac> interface_mac(const std::string& ifname) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  if (ifname.size() >= IFNAMSIZ) return fail(fmt::format("bad interface name '{}'", ifname), EINVAL);
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  if (!fd || ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return fail_errno(fmt::format("MAC of {}", ifname));
  Mac m{};
  std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
  return m;
}


namespace {

enum xdp_attach_mode libxdp_mode(XdpMode m) {
  switch (m) {
    case XdpMode::Native: return XDP_MODE_NATIVE;
    case XdpMode::Generic: return XDP_MODE_SKB;
    case XdpMode::Auto: return XDP_MODE_UNSPEC;
  }
  return XDP_MODE_UNSPEC;
}

XdpMode from_libxdp(enum xdp_attach_mode m) { return m == XDP_MODE_SKB ? XdpMode::Generic : XdpMode::Native; }

Result<int> ifindex_of(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IF_NAMESIZE) return fail(fmt::format("bad interface name '{}'", ifname), EINVAL);
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) return fail(fmt::format("interface '{}' does not exist", ifname), ENODEV);
  return static_cast<int>(idx);
}

struct MultiprogDeleter {
  void operator()(xdp_multiprog* mp) const { xdp_multiprog__close(mp); }
};
using MultiprogPtr = std::unique_ptr<xdp_multiprog, MultiprogDeleter>;

// Our program on ifindex, if any (in a dispatcher or attached alone).
xdp_program* find_ours(xdp_multiprog* mp) {
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* p = xdp_multiprog__main_prog(mp);
    return p && std::string_view(xdp_program__name(p)) == kProgName ? p : nullptr;
  }
  for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
    if (std::string_view(xdp_program__name(p)) == kProgName) return p;
  return nullptr;
}

Result<MultiprogPtr> multiprog_of(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (long err = libxdp_get_error(mp); err) return fail_errno("query XDP programs", static_cast<int>(err));
  return MultiprogPtr(mp);
}

}  // namespace

namespace {
// Set once libxdp attached our program without its dispatcher (this kernel refuses freplace
// programs): from then on a further interface gets the program this Dataplane loaded, attached
// as is. Loading a fresh copy for each interface is what a dispatcher needs (a component program
// is attached to one dispatcher) and costs the whole program's verification, a second or more
// under load: in the agent's loop when an NF's veth is made again (docs/ftc.md 7.7).
std::atomic<bool> g_no_dispatcher{false};

uint32_t prog_id_of(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}
}  // namespace

Result<Attachment> Dataplane::attach(const std::string& ifname, XdpMode mode) {
  auto idx = ifindex_of(ifname);
  if (!idx) return std::unexpected(idx.error());
  if (auto mp = multiprog_of(*idx); mp && *mp) {
    if (xdp_program* p = find_ours(mp->get())) {
      XdpMode cur = from_libxdp(xdp_multiprog__attach_mode(mp->get()));
      if (mode != XdpMode::Auto && cur != mode)
        return fail(fmt::format("anychain is already attached to {} in {} mode; detach it first", ifname, to_string(cur)), EEXIST);
      if (auto r = describe_attached(ifname, *idx); !r) return std::unexpected(r.error());
      return Attachment{ifname, *idx, cur, xdp_program__id(p), !xdp_multiprog__is_legacy(mp->get())};
    }
  }
  if (g_no_dispatcher.load()) {
    const uint32_t flags = XDP_FLAGS_UPDATE_IF_NOEXIST | (mode == XdpMode::Native    ? XDP_FLAGS_DRV_MODE
                                                         : mode == XdpMode::Generic ? XDP_FLAGS_SKB_MODE
                                                                                    : 0u);
    if (bpf_xdp_attach(*idx, prog_fd(), flags, nullptr) == 0) {
      if (auto r = describe_attached(ifname, *idx); !r) return std::unexpected(r.error());
      Attachment a{ifname, *idx, mode, prog_id_of(prog_fd()), false};
      if (auto mp = multiprog_of(*idx); mp && *mp) a.mode = from_libxdp(xdp_multiprog__attach_mode(mp->get()));
      return a;
    }
    // refused (another program there, a mode the driver lacks): libxdp's path says why
  }
  // A fresh object from the same ELF whose maps resolve to our pins: every interface runs its
  // own program instance over the one set of maps.
  size_t sz = 0;
  const void* elf = internal::elf_bytes(&sz);
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "anychain", .pin_root_path = opts_.pin_root.c_str());
  bpf_object* obj = bpf_object__open_mem(elf, sz, &oo);
  if (!obj) return fail_errno("open the anychain BPF object");
  std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj_guard(obj, bpf_object__close);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_flow_cache"),
                           internal::flow_cache_elements(opts_.flow_cache_entries / AC_FLOW_WAYS));
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_proxy"), opts_.proxy_entries);
  bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "ac_affinity"), opts_.affinity_entries);
  DECLARE_LIBXDP_OPTS(xdp_program_opts, xo, .obj = obj, .prog_name = kProgName);
  xdp_program* prog = xdp_program__create(&xo);
  if (long err = libxdp_get_error(prog); err) return fail_errno("create the XDP program", static_cast<int>(err));
  std::unique_ptr<xdp_program, void (*)(xdp_program*)> prog_guard(prog, xdp_program__close);
  int err = xdp_program__attach(prog, *idx, libxdp_mode(mode), 0);
  if (err) {
    if (err == -EOPNOTSUPP && mode == XdpMode::Native)
      return fail(fmt::format("{} does not support native XDP; use --mode generic or --mode auto", ifname), EOPNOTSUPP);
    if (err == -EEXIST || err == -EBUSY)
      return fail(fmt::format("{} already has an XDP program that libxdp cannot share (attached in another mode or "
                              "without a dispatcher)", ifname), -err);
    return fail_errno(fmt::format("attach XDP to {} in {} mode", ifname, to_string(mode)), err);
  }
  if (auto r = describe_attached(ifname, *idx); !r) return std::unexpected(r.error());
  Attachment a{ifname, *idx, mode, xdp_program__id(prog)};
  if (auto mp = multiprog_of(*idx); mp && *mp) {
    a.mode = from_libxdp(xdp_multiprog__attach_mode(mp->get()));
    a.dispatcher = !xdp_multiprog__is_legacy(mp->get());
  }
  if (!a.dispatcher) g_no_dispatcher.store(true);
  return a;
}

// The program acts on an interface's frames only once ac_ifaces has its MAC: write it, keeping
// the roles the interface already has.
Result<void> Dataplane::describe_attached(const std::string& ifname, int ifindex) {
  auto mac = interface_mac(ifname);
  if (!mac) return std::unexpected(mac.error());
  const auto idx = static_cast<uint32_t>(ifindex);
  const bool direct = idx < AC_IFACE_DIRECT;
  ac_iface cur{};
  int fd = bpf_map__fd(direct ? skel_->maps.ac_ifaces : skel_->maps.ac_ifaces_hi);
  uint32_t roles = bpf_map_lookup_elem(fd, &idx, &cur) == 0 ? cur.flags & ~AC_IF_ATTACHED : 0;
  return set_interface(idx, roles, roles ? cur.instance_id : 0, *mac);
}

Result<void> Dataplane::detach(const std::string& ifname) {
  auto idx = ifindex_of(ifname);
  if (!idx) return std::unexpected(idx.error());
  auto mp = multiprog_of(*idx);
  if (!mp && mp.error().code == ENOENT) return fail(fmt::format("anychain is not attached to {} (no XDP program)", ifname), ENOENT);
  if (!mp) return std::unexpected(mp.error());
  xdp_program* p = *mp ? find_ours(mp->get()) : nullptr;
  if (!p) return fail(fmt::format("anychain is not attached to {}", ifname), ENOENT);
  int err = xdp_program__detach(p, *idx, xdp_multiprog__attach_mode(mp->get()), 0);
  if (err) return fail_errno(fmt::format("detach XDP from {}", ifname), err);
  return {};
}

Result<std::vector<Attachment>> Dataplane::attached(const std::vector<std::string>& ifnames) {
  std::vector<Attachment> out;
  for (const auto& n : ifnames) {
    auto idx = ifindex_of(n);
    if (!idx) continue;
    auto mp = multiprog_of(*idx);
    if (!mp || !*mp) continue;
    if (xdp_program* p = find_ours(mp->get()))
      out.push_back({n, *idx, from_libxdp(xdp_multiprog__attach_mode(mp->get())), xdp_program__id(p),
                     !xdp_multiprog__is_legacy(mp->get())});
  }
  return out;
}

Result<uint32_t> Dataplane::xdp_entry_id(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (int e = bpf_xdp_query(ifindex, 0, &q); e < 0) return fail_errno("query the XDP program", -e);
  if (q.prog_id) return q.prog_id;
  return q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
}

Result<Attachment> attach_interface(Dataplane& dp, const std::string& ifname, XdpMode mode, bool classify) {
  auto a = dp.attach(ifname, mode);
  if (!a) return a;
  if (classify) {
    auto mac = interface_mac(ifname);
    if (!mac) return std::unexpected(mac.error());
    if (auto r = dp.set_interface(static_cast<uint32_t>(a->ifindex), AC_IF_CLASSIFY, 0, *mac); !r)
      return std::unexpected(r.error());
  }
  return a;
}

}  // namespace anychain::dataplane
