// Replication over AF_XDP (docs/state.md 3.10), through libxdp's xsk API. The XDP program that
// owns the interface (the node's fast path in the daemon; a test program in tests/state) redirects
// IPv4/UDP frames to our address and port into its XSKMAP with bpf_redirect_map(..., XDP_PASS);
// this transport binds one socket per RX queue, each with its own UMEM, inserts it into that map,
// and writes Ethernet/IPv4/UDP frames itself on transmit, to the next hop's MAC from the kernel's
// route and neighbour tables. A UDP socket on the same address and port stays open beside it:
// it receives whatever the redirect passes to the stack (a queue without a socket) and sends the
// messages whose next hop is not resolved yet (the kernel resolves it meanwhile).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "state/neigh.h"
#include "state/transport.h"
#include "state/udp_transport.h"
#include "xsk/socket.h"

namespace anychain::state {

struct XskOptions {
  std::string ifname;
  Endpoint local;                 // our IPv4 address on ifname and the replication port
  int xskmap_fd = -1;             // the XSKMAP the interface's XDP program redirects into
  // 0: a queue's socket is at key = its RX queue (one map per interface, libxdp's
  // xsk_socket__update_xskmap); else at key = ifindex * slot_stride + queue, one map shared by
  // every interface of the node (the fast path's AC_XSK_SLOT), queues >= slot_stride refused.
  uint32_t slot_stride = 0;
  std::vector<uint32_t> queues;   // RX queues to bind (empty: every RX queue of the interface)
  uint32_t frames = 2048;         // UMEM frames per queue (half for RX, half for TX)
  bool zerocopy = true;           // try zero-copy first, then copy mode
};

class XskTransport final : public Transport {
 public:
  // Call in the network namespace of the interface. Fails (with the errno of the call that
  // failed) when AF_XDP cannot be set up; open_transport() then falls back to UDP.
  static Result<std::unique_ptr<XskTransport>> open(const XskOptions& o);
  ~XskTransport() override;

  Result<void> send(const Endpoint& to, ByteView datagram) override;
  size_t receive(const RecvFn& fn, size_t max) override;
  std::vector<int> fds() const override;
  TransportStatus status() const override;


 private:
  XskTransport() = default;
  bool build_frame(uint8_t* frame, size_t& len, const NextHop& hop, const Endpoint& to, ByteView payload) const;
  XskOptions opt_;
  uint32_t ifindex_ = 0;
  std::array<uint8_t, 6> mac_{};
  std::vector<std::unique_ptr<xsk::Socket>> queues_;
  std::unique_ptr<UdpTransport> udp_;
  NeighbourTable neigh_;
  mutable TransportStatus st_;
};

// AF_XDP on ifname if it can be set up (xskmap_fd >= 0), else the UDP socket alone, with the
// reason in its status. Either way a Transport bound to local.
Result<std::unique_ptr<Transport>> open_transport(const XskOptions& o);

}  // namespace anychain::state
