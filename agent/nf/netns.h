// An NF instance's network namespace and veth (docs/nf.md, "Lifecycle"): named namespaces as
// `ip netns add` makes them (a bind mount of the namespace on /run/netns/<name>), and the veth
// pair whose host side is the instance's veth and whose other side is eth0 inside the
// namespace. Netlink through libnl; a namespace is entered by a short-lived thread (setns of the
// network namespace is per thread), so the caller's own namespace never changes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/error.h"
#include "common/net.h"
#include "common/unique_fd.h"

namespace anychain::nf {

inline constexpr const char* kNetnsDir = "/run/netns";

std::string netns_path(const std::string& name);
// The namespace file exists and holds a namespace (an nsfs bind mount in this mount namespace).
bool netns_exists(const std::string& name);
// Its inode (the namespace's identity), 0 if it does not exist.
uint64_t netns_inode(const std::string& name);
// Create it (with IPv6 off: no router solicitations or MLD reports on the NF's side); an
// existing one is kept.
Result<void> create_netns(const std::string& name);
Result<UniqueFd> open_netns(const std::string& name);
// Unmount and remove it (what `ip netns del` does); a missing one is not an error.
Result<void> delete_netns(const std::string& name);
// fn() on a thread inside the namespace whose fd is nsfd; its result.
Result<void> in_netns(int nsfd, const std::function<Result<void>()>& fn);

struct VethSpec {
  std::string host;          // the instance's veth, in the caller's namespace
  std::string netns;         // the instance's namespace
  std::string peer = "eth0"; // inside it
  Mac peer_mac{};
  uint32_t mtu = 1500;
};
// Create the pair, both ends up. A host interface of that name is kept when it is this pair
// already (its peer is `peer` inside `netns`); any other interface of that name is an error.
Result<void> ensure_veth(const VethSpec& v);
// Delete an interface of the caller's namespace (a veth takes its peer along); a missing one is
// not an error.
Result<void> delete_link(const std::string& name);
// Up (administratively and carrier) in the caller's namespace.
bool link_up(const std::string& name);

// The NF side's MAC: locally administered, from the instance id (02:ac:6e:66:<id>)
Mac nf_mac(uint32_t instance_id);

}  // namespace anychain::nf
