#include "nf/netns.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000  /* linux/if.h's (it clashes with net/if.h) */
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

#include "common/netlink.h"

namespace anychain::nf {
namespace {

// /run/netns is a shared mount (as iproute2 makes it), so namespaces mounted later propagate to
// every mount namespace that shares it.
Result<void> shared_netns_dir() {
  std::error_code ec;
  std::filesystem::create_directories(kNetnsDir, ec);
  if (ec) return fail(fmt::format("create {}: {}", kNetnsDir, ec.message()), ec.value());
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return {};
  if (errno != EINVAL) return fail_errno(fmt::format("make {} a shared mount", kNetnsDir));
  if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0)
    return fail_errno(fmt::format("bind {} on itself", kNetnsDir));
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0)
    return fail_errno(fmt::format("make {} a shared mount", kNetnsDir));
  return {};
}

void write_sysctl(const char* path, const char* value) {
  std::ofstream f(path);
  f << value;
}

}  // namespace

std::string netns_path(const std::string& name) { return std::string(kNetnsDir) + "/" + name; }

bool netns_exists(const std::string& name) {
  struct statfs fs{};
  return ::statfs(netns_path(name).c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC;
}

uint64_t netns_inode(const std::string& name) {
  struct stat st{};
  if (!netns_exists(name) || ::stat(netns_path(name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

Result<void> in_netns(int nsfd, const std::function<Result<void>()>& fn) {
  Result<void> out;
  std::thread t([&] {
    if (::setns(nsfd, CLONE_NEWNET) != 0) {
      out = fail_errno("enter the network namespace");
      return;
    }
    out = fn();
  });
  t.join();
  return out;
}

Result<void> create_netns(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return fail(fmt::format("bad namespace name '{}'", name), EINVAL);
  if (netns_exists(name)) return {};
  if (auto r = shared_netns_dir(); !r) return r;
  const std::string path = netns_path(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0);
  if (fd < 0) return fail_errno(fmt::format("create {}", path));
  ::close(fd);
  Result<void> out;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      out = fail_errno("unshare a network namespace");
      return;
    }
    write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    const std::string self = fmt::format("/proc/self/task/{}/ns/net", ::gettid());
    if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0)
      out = fail_errno(fmt::format("bind the namespace on {}", path));
  });
  t.join();
  if (!out) ::unlink(path.c_str());
  return out;
}

Result<UniqueFd> open_netns(const std::string& name) {
  if (!netns_exists(name)) return fail(fmt::format("network namespace {} does not exist", name), ENOENT);
  UniqueFd fd(::open(netns_path(name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", netns_path(name)));
  return fd;
}

Result<void> delete_netns(const std::string& name) {
  const std::string path = netns_path(name);
  ::umount2(path.c_str(), MNT_DETACH);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail_errno(fmt::format("remove {}", path));
  return {};
}

Result<void> ensure_veth(const VethSpec& v) {
  auto ns = open_netns(v.netns);
  if (!ns) return unexpected(ns.error());
  auto s = nl_route_socket();
  if (!s) return unexpected(s.error());
  if (NlLink host = nl_get_link(s->get(), v.host)) {
    // ours if it is a veth whose peer is v.peer inside the namespace, pointing back at it
    const int host_index = rtnl_link_get_ifindex(host.get()), peer_index = rtnl_link_get_link(host.get());
    const char* type = rtnl_link_get_type(host.get());
    bool ours = false;
    if (type && std::string_view(type) == "veth") {
      auto r = in_netns(ns->get(), [&]() -> Result<void> {
        auto s2 = nl_route_socket();
        if (!s2) return unexpected(s2.error());
        NlLink peer = nl_get_link(s2->get(), v.peer);
        ours = peer && rtnl_link_get_ifindex(peer.get()) == peer_index && rtnl_link_get_link(peer.get()) == host_index;
        return {};
      });
      if (!r) return r;
    }
    if (!ours)
      return fail(fmt::format("interface {} exists and is not the veth of namespace {}", v.host, v.netns), EEXIST);
  } else {
    NlLink l(rtnl_link_veth_alloc());
    if (!l) return fail("netlink: out of memory", ENOMEM);
    rtnl_link* peer = rtnl_link_veth_get_peer(l.get());
    rtnl_link_set_name(l.get(), v.host.c_str());
    rtnl_link_set_mtu(l.get(), v.mtu);
    rtnl_link_set_name(peer, v.peer.c_str());
    rtnl_link_set_mtu(peer, v.mtu);
    rtnl_link_set_ns_fd(peer, ns->get());
    nl_addr* mac = nl_addr_build(AF_LLC, v.peer_mac.data(), v.peer_mac.size());
    rtnl_link_set_addr(peer, mac);
    nl_addr_put(mac);
    int e = rtnl_link_add(s->get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(peer);
    if (e < 0) return fail(fmt::format("create veth {} (peer {} in {}): {}", v.host, v.peer, v.netns, nl_geterror(e)), EIO);
  }
  // both ends up
  auto up = [](nl_sock* sock, const std::string& name) -> Result<void> {
    NlLink cur = nl_get_link(sock, name);
    if (!cur) return fail(fmt::format("interface {} vanished", name), ENODEV);
    NlLink change(rtnl_link_alloc());
    rtnl_link_set_flags(change.get(), IFF_UP);
    if (int e = rtnl_link_change(sock, cur.get(), change.get(), 0); e < 0)
      return fail(fmt::format("set {} up: {}", name, nl_geterror(e)), EIO);
    return {};
  };
  // The host end carries NSH over Ethernet only: without IPv6 it sends no neighbour or
  // multicast listener discovery, which the NF would count as bad NSH.
  write_sysctl(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", v.host).c_str(), "1");
  if (auto r = up(s->get(), v.host); !r) return r;
  return in_netns(ns->get(), [&]() -> Result<void> {
    auto s2 = nl_route_socket();
    if (!s2) return unexpected(s2.error());
    return up(s2->get(), v.peer);
  });
}

Result<void> delete_link(const std::string& name) {
  auto s = nl_route_socket();
  if (!s) return unexpected(s.error());
  NlLink l = nl_get_link(s->get(), name);
  if (!l) return {};
  if (int e = rtnl_link_delete(s->get(), l.get()); e < 0)
    return fail(fmt::format("delete {}: {}", name, nl_geterror(e)), EIO);
  return {};
}

bool link_up(const std::string& name) {
  auto s = nl_route_socket();
  if (!s) return false;
  NlLink l = nl_get_link(s->get(), name);
  return l && (rtnl_link_get_flags(l.get()) & IFF_UP) && (rtnl_link_get_flags(l.get()) & IFF_LOWER_UP);
}

Mac nf_mac(uint32_t instance_id) {
  return Mac{0x02, 0xac, 0x6e, 0x66, static_cast<uint8_t>(instance_id >> 8), static_cast<uint8_t>(instance_id)};
}

}  // namespace anychain::nf
