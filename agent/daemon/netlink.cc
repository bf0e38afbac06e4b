#include "daemon/netlink.h"

#include <linux/if.h>
#include <netlink/netlink.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>

#include "common/unique_fd.h"
#include "daemon/plane_sync.h"

namespace anychain::daemon {

void LinkWatcher::SockDeleter::operator()(nl_sock* s) const { nl_socket_free(s); }

LinkWatcher::LinkWatcher(LinkWatcher&&) noexcept = default;
LinkWatcher& LinkWatcher::operator=(LinkWatcher&&) noexcept = default;
LinkWatcher::~LinkWatcher() = default;

namespace {

LinkEvent event_of(rtnl_link* l, bool deleted) {
  LinkEvent e;
  e.ifindex = rtnl_link_get_ifindex(l);
  if (const char* n = rtnl_link_get_name(l)) e.name = n;
  e.exists = !deleted;
  unsigned flags = rtnl_link_get_flags(l);
  e.up = !deleted && (flags & IFF_UP) && (flags & IFF_LOWER_UP);
  e.mtu = rtnl_link_get_mtu(l);
  e.admin_up = !deleted && (flags & IFF_UP);
  e.rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
  return e;
}

int on_msg(nl_msg* msg, void* arg) {
  auto* w = static_cast<LinkWatcher*>(arg);
  int type = nlmsg_hdr(msg)->nlmsg_type;
  if (type == RTM_NEWADDR || type == RTM_DELADDR) {
    if (w->on_address) w->on_address();
    return NL_OK;
  }
  if (type == RTM_NEWNEIGH || type == RTM_DELNEIGH || type == RTM_NEWROUTE || type == RTM_DELROUTE ||
      type == RTM_NEWRULE || type == RTM_DELRULE) {
    if (w->on_route) w->on_route();
    return NL_OK;
  }
  if (type != RTM_NEWLINK && type != RTM_DELLINK) return NL_OK;
  std::pair<LinkWatcher*, bool> ctx(w, type == RTM_DELLINK);
  nl_msg_parse(
      msg,
      [](nl_object* obj, void* a) {
        auto* c = static_cast<std::pair<LinkWatcher*, bool>*>(a);
        LinkEvent e = event_of(reinterpret_cast<rtnl_link*>(obj), c->second);
        if (c->first->on_event) c->first->on_event(e);
      },
      &ctx);
  return NL_OK;
}

}  // namespace

Result<LinkWatcher> LinkWatcher::open() {
  LinkWatcher w;
  w.sock_.reset(nl_socket_alloc());
  if (!w.sock_) return fail("allocate a netlink socket", ENOMEM);
  nl_socket_disable_seq_check(w.sock_.get());
  if (int e = nl_connect(w.sock_.get(), NETLINK_ROUTE); e < 0) return fail(fmt::format("netlink connect: {}", nl_geterror(e)), EIO);
  if (int e = nl_socket_add_memberships(w.sock_.get(), RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_NEIGH,
                                       RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_RULE,
                                       RTNLGRP_IPV6_RULE, 0);
      e < 0)
    return fail(fmt::format("netlink subscribe to link, address, neighbour, route and rule events: {}", nl_geterror(e)),
                EIO);
  nl_socket_set_nonblocking(w.sock_.get());
  return w;
}

int LinkWatcher::fd() const { return nl_socket_get_fd(sock_.get()); }

void LinkWatcher::on_readable() {
  nl_socket_modify_cb(sock_.get(), NL_CB_VALID, NL_CB_CUSTOM, on_msg, this);
  while (nl_recvmsgs_default(sock_.get()) >= 0) {
  }
}

Result<LinkEvent> LinkWatcher::query(const std::string& ifname) {
  std::unique_ptr<nl_sock, SockDeleter> s(nl_socket_alloc());
  if (!s || nl_connect(s.get(), NETLINK_ROUTE) < 0) return fail("netlink connect", EIO);
  rtnl_link* l = nullptr;
  if (rtnl_link_get_kernel(s.get(), 0, ifname.c_str(), &l) < 0 || !l)
    return fail(fmt::format("interface '{}' does not exist", ifname), ENODEV);
  LinkEvent e = event_of(l, false);
  rtnl_link_put(l);
  return e;
}

// The veth's peer (IFLA_LINK) may sit in another namespace (IFLA_LINK_NETNSID): ask the kernel
// for it there with IFLA_TARGET_NETNSID.
Result<VethPeer> veth_peer(const std::string& veth) {
  std::unique_ptr<nl_sock, LinkWatcher::SockDeleter> s(nl_socket_alloc());
  if (!s || nl_connect(s.get(), NETLINK_ROUTE) < 0) return fail("netlink connect", EIO);
  rtnl_link* l = nullptr;
  if (rtnl_link_get_kernel(s.get(), 0, veth.c_str(), &l) < 0 || !l)
    return fail(fmt::format("interface '{}' does not exist", veth), ENODEV);
  int peer = rtnl_link_get_link(l);
  int32_t nsid = -1;
  bool has_nsid = rtnl_link_get_link_netnsid(l, &nsid) == 0;
  rtnl_link_put(l);
  if (peer <= 0) return fail(fmt::format("{} has no peer link (not a veth?)", veth), ENOENT);

  nl_msg* msg = nlmsg_alloc_simple(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_index = peer;
  if (!msg || nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0) return fail("build netlink request", ENOMEM);
  if (has_nsid) nla_put_s32(msg, IFLA_TARGET_NETNSID, nsid);
  int e = nl_send_auto(s.get(), msg);
  nlmsg_free(msg);
  if (e < 0) return fail(fmt::format("netlink request: {}", nl_geterror(e)), EIO);
  struct Ctx {
    VethPeer peer;
    bool found = false;
  } ctx;
  nl_socket_modify_cb(
      s.get(), NL_CB_VALID, NL_CB_CUSTOM,
      [](nl_msg* m, void* arg) {
        auto* c = static_cast<Ctx*>(arg);
        nlattr* tb[IFLA_MAX + 1];
        if (nlmsg_parse(nlmsg_hdr(m), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) == 0 && tb[IFLA_ADDRESS] &&
            nla_len(tb[IFLA_ADDRESS]) == 6) {
          std::memcpy(c->peer.mac.data(), nla_data(tb[IFLA_ADDRESS]), 6);
          c->found = true;
          if (tb[IFLA_MTU]) c->peer.mtu = nla_get_u32(tb[IFLA_MTU]);
        }
        return static_cast<int>(NL_OK);
      },
      &ctx);
  if (int r = nl_recvmsgs_default(s.get()); r < 0 || !ctx.found)
    return fail(fmt::format("MAC of the peer of {}: {}", veth, r < 0 ? nl_geterror(r) : "no address"), ENOENT);
  return ctx.peer;
}

Result<Mac> veth_peer_mac(const std::string& veth) {
  auto p = veth_peer(veth);
  if (!p) return unexpected(p.error());
  return p->mac;
}

}  // namespace anychain::daemon
