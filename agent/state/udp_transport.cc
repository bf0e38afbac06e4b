#include "state/udp_transport.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>

namespace anychain::state {

Result<std::unique_ptr<UdpTransport>> UdpTransport::open(const Endpoint& local, std::string reason) {
  std::unique_ptr<UdpTransport> t(new UdpTransport());
  t->fd_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!t->fd_) return fail_errno("state transport: UDP socket");
  // Every interface's transport of a node binds the same address and port (docs/state.md 3.10):
  // the datagrams land on any of them and one dispatcher reads them all.
  int one = 1;
  (void)setsockopt(t->fd_.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  int buf = 4 << 20;
  (void)setsockopt(t->fd_.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  (void)setsockopt(t->fd_.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = local.addr;
  sa.sin_port = htons(local.port);
  if (::bind(t->fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return fail_errno("state transport: bind UDP " + local.str());
  t->st_.mode = "udp";
  t->st_.reason = std::move(reason);
  return t;
}

Result<void> UdpTransport::send(const Endpoint& to, ByteView d) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = to.addr;
  sa.sin_port = htons(to.port);
  ssize_t n = ::sendto(fd_.get(), d.data(), d.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (n != static_cast<ssize_t>(d.size())) {
    ++st_.tx_errors;
    return fail_errno("state transport: send to " + to.str());
  }
  ++st_.tx_frames;
  st_.tx_bytes += d.size();
  return {};
}

size_t UdpTransport::receive(const RecvFn& fn, size_t max) {
  std::array<uint8_t, kMaxMessage + 1> buf;
  size_t n = 0;
  for (; n < max; ++n) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ssize_t r = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa), &len);
    if (r < 0) break;
    ++st_.rx_frames;
    st_.rx_bytes += static_cast<size_t>(r);
    fn(ByteView(buf.data(), static_cast<size_t>(r)), Endpoint{sa.sin_addr.s_addr, ntohs(sa.sin_port)});
  }
  return n;
}

}  // namespace anychain::state
