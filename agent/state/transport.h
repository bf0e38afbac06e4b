// Where replication datagrams go: AF_XDP (xsk_transport.h) or a UDP socket (udp_transport.h)
// behind one interface (docs/state.md 3.10), or an in-memory network in tests. And the clock
// the replicator reads, so tests can drive time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "state/wire.h"

namespace anychain::state {

// An IPv4 address (network order) and a UDP port (host order).
struct Endpoint {
  uint32_t addr = 0;
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
  std::string str() const;
};
Result<Endpoint> parse_endpoint(const std::string& ip, uint16_t port);

// What `anychain status` shows about one interface's transport.
struct TransportStatus {
  std::string ifname;      // "" for a plain socket not tied to an interface
  std::string mode;        // "afxdp-zerocopy", "afxdp-copy" or "udp"
  std::string reason;      // why AF_XDP is not in use (mode "udp"), else ""
  uint32_t queues = 0;     // AF_XDP sockets (one per RX queue)
  uint64_t tx_frames = 0, tx_bytes = 0, rx_frames = 0, rx_bytes = 0;
  uint64_t tx_fallback = 0;    // AF_XDP mode: datagrams sent through the UDP socket instead
  uint64_t rx_fallback = 0;    // AF_XDP mode: datagrams that reached the UDP socket
  uint64_t tx_errors = 0, rx_errors = 0;  // send failures; frames that were not our datagrams
};

using RecvFn = std::function<void(ByteView datagram, const Endpoint& from)>;

class Transport {
 public:
  virtual ~Transport() = default;
  // Send one datagram (the UDP payload). A failure is counted and returned; the replicator
  // retransmits what is not acknowledged.
  virtual Result<void> send(const Endpoint& to, ByteView datagram) = 0;
  // Hand up to `max` datagrams received so far to fn, without blocking; returns how many.
  virtual size_t receive(const RecvFn& fn, size_t max) = 0;
  // File descriptors to poll for input.
  virtual std::vector<int> fds() const = 0;
  virtual TransportStatus status() const = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t mono_us() const = 0;  // CLOCK_MONOTONIC
  virtual uint64_t wall_us() const = 0;  // CLOCK_REALTIME
};

class SystemClock final : public Clock {
 public:
  uint64_t mono_us() const override;
  uint64_t wall_us() const override;
};

}  // namespace anychain::state
