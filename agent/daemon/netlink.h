// libnl-based watching: links (NICs, VNF veths going down or away), addresses (this node's NSH
// endpoint) and neighbours and routes (next hops of the fast path's VXLAN-GPE encapsulation) are
// noticed at once through rtnetlink notifications. poll()-driven.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/net.h"

struct nl_sock;

namespace anychain::daemon {

struct LinkEvent {
  int ifindex = 0;
  std::string name;
  bool exists = true;   // false: the interface was deleted
  bool up = false;      // administratively up and carrier (IFF_UP and IFF_LOWER_UP)
  unsigned mtu = 0;
  bool admin_up = false;     // IFF_UP
  uint64_t rx_packets = 0;   // packets received (on a VNF's veth: what the VNF sent back)
};

// The far end of a veth (which may live in another network namespace): its MAC and MTU.
struct VethPeer {
  Mac mac{};
  unsigned mtu = 0;
};
Result<VethPeer> veth_peer(const std::string& veth);

class LinkWatcher {
 public:
  static Result<LinkWatcher> open();
  LinkWatcher(LinkWatcher&&) noexcept;
  LinkWatcher& operator=(LinkWatcher&&) noexcept;
  ~LinkWatcher();

  int fd() const;
  // Read every pending notification; calls on_event for each link change, on_address for each
  // IPv4 address added or removed, on_route for each neighbour, route (IPv4, IPv6) or rule change.
  void on_readable();
  std::function<void(const LinkEvent&)> on_event;
  std::function<void()> on_address;
  std::function<void()> on_route;

  // Current state of one interface (ENODEV if it does not exist).
  static Result<LinkEvent> query(const std::string& ifname);

  struct SockDeleter {
    void operator()(nl_sock* s) const;
  };

 private:
  LinkWatcher() = default;
  std::unique_ptr<nl_sock, SockDeleter> sock_;
};

}  // namespace anychain::daemon
