// One AF_XDP socket bound to one queue of one interface, with its own UMEM (libxdp's xsk API).
// The XDP program that owns the interface redirects into an XSKMAP; this socket never loads a
// program of its own (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD) and is put into the map by the caller
// (insert(): a given key, e.g. the fast path's AC_XSK_SLOT; insert_at_queue(): key = queue).
// The UMEM's frames are split once: the first rx_frames circulate through the fill ring (every
// frame read is given back at once, its bytes valid only inside the receive callback), the rest
// are a pool for TX, returned by the completion ring. Owners: state/xsk_transport (replication),
// ftc/egress_port (the FTC egress buffer), nf/hold (anychain-nf's hold queue).
#pragma once

#include <linux/if_xdp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

struct xsk_umem;
struct xsk_socket;

namespace anychain::xsk {

struct Options {
  std::string what = "AF_XDP";   // prefix of every error ("FTC buffer", "hold queue", ...)
  std::string ifname;
  uint32_t queue = 0;
  uint32_t frames = 2048;        // UMEM frames, a power of two >= 64
  uint32_t frame_size = 4096;    // 2048 or 4096 (XSK_UMEM__DEFAULT_FRAME_SIZE)
  uint32_t rx_frames = 0;        // frames in the fill ring; 0: half of them, frames: no TX
  bool zerocopy = true;          // try zero-copy first, then copy mode (a veth has copy only)
  bool need_wakeup = true;       // XDP_USE_NEED_WAKEUP
  // A socket just closed on this queue (a restarted process) is released by the kernel after
  // a grace period: bind fails with EBUSY until then. Retry for this long.
  std::chrono::milliseconds busy_retry{0};
};

// The interface's RX queues (ethtool's channels; 1 when the driver does not say).
uint32_t rx_queue_count(const std::string& ifname);

class Socket {
 public:
  // Call in the interface's network namespace.
  static Result<std::unique_ptr<Socket>> open(const Options& o);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const;
  uint32_t queue() const { return opt_.queue; }
  bool zerocopy() const { return zerocopy_; }
  const Options& options() const { return opt_; }

  // Put the socket into an XSKMAP at key; insert_at_queue: at key = its queue (libxdp's
  // xsk_socket__update_xskmap). The caller removes its key when it closes, if it must.
  Result<void> insert(int xskmap_fd, uint32_t key) const;
  Result<void> insert_at_queue(int xskmap_fd) const;

  // Up to max frames from the RX ring, each passed to fn(bytes) and given back to the fill ring
  // afterwards. Kicks the kernel first when it asks (need_wakeup). Returns the frames read.
  using RxFn = std::function<void(std::span<const uint8_t>)>;
  size_t receive(size_t max, const RxFn& fn);

  // One frame on the TX ring: write(buf, room) fills it in place and returns its length (0:
  // nothing to send). Fails when no TX frame is free, the ring is full or the frame is larger
  // than a UMEM frame; kicks the kernel (copy mode transmits on that syscall).
  using TxFn = std::function<size_t(uint8_t* buf, size_t room)>;
  Result<void> send(const TxFn& write);
  Result<void> send(std::span<const uint8_t> frame);

  // The kernel's drop counters of the socket (XDP_STATISTICS).
  Result<xdp_statistics> statistics() const;

 private:
  Socket() = default;
  Result<void> bind(bool zerocopy);
  void complete();
  uint8_t* at(uint64_t addr) const;

  struct Rings;
  Options opt_;
  void* area_ = nullptr;
  size_t bytes_ = 0;
  xsk_umem* umem_ = nullptr;
  xsk_socket* sock_ = nullptr;
  std::unique_ptr<Rings> r_;
  std::vector<uint64_t> tx_free_;
  bool zerocopy_ = false;
};

}  // namespace anychain::xsk
