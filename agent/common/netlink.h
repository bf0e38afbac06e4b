// libnl-route handles every module that talks rtnetlink needs: owned socket and link, a
// connected NETLINK_ROUTE socket, a link by name. Header only: a module that includes it links
// libnl itself (PkgConfig::LIBNL); common links nothing of libnl.
#pragma once

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include <cerrno>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "common/error.h"

namespace anychain {

struct NlSockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct NlLinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using NlSock = std::unique_ptr<nl_sock, NlSockFree>;
using NlLink = std::unique_ptr<rtnl_link, NlLinkPut>;

// A socket connected to NETLINK_ROUTE.
inline Result<NlSock> nl_route_socket() {
  NlSock s(nl_socket_alloc());
  if (!s) return fail("allocate a netlink socket", ENOMEM);
  if (int e = nl_connect(s.get(), NETLINK_ROUTE); e < 0) return fail(fmt::format("netlink connect: {}", nl_geterror(e)), EIO);
  return s;
}

// The link called name in the socket's namespace, or none.
inline NlLink nl_get_link(nl_sock* s, const std::string& name) {
  rtnl_link* l = nullptr;
  if (rtnl_link_get_kernel(s, 0, name.c_str(), &l) < 0) return NlLink();
  return NlLink(l);
}

}  // namespace anychain
