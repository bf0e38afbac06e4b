// Replication over a plain UDP socket (docs/state.md 3.10): the fallback when AF_XDP cannot be
// set up, and inside the AF_XDP transport the path for what the XDP redirect passes to the stack
// and for messages to a next hop whose MAC is not resolved yet.
#pragma once

#include <memory>
#include <string>

#include "common/unique_fd.h"
#include "state/transport.h"

namespace anychain::state {

class UdpTransport final : public Transport {
 public:
  // Bind to local (address 0: any) in the calling thread's network namespace. `reason` is what
  // status() reports as the reason AF_XDP is not used ("" when UDP was asked for).
  static Result<std::unique_ptr<UdpTransport>> open(const Endpoint& local, std::string reason = "");

  Result<void> send(const Endpoint& to, ByteView datagram) override;
  size_t receive(const RecvFn& fn, size_t max) override;
  std::vector<int> fds() const override { return {fd_.get()}; }
  TransportStatus status() const override { return st_; }

 private:
  UdpTransport() = default;
  UniqueFd fd_;
  TransportStatus st_;
};

}  // namespace anychain::state
