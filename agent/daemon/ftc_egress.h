// The node's FTC egress buffer (docs/ftc.md 5.1) in anychaind: one ftc::EgressPort per interface
// an FTC chain can end on (the configured interfaces and the instances' veths), bound when the
// interface exists and retried until it does. Its FEEDBACK (returned logs) and RELEASED (commit
// vectors) go to the ingress node named in the packets' control TLV over the FTC channel
// (docs/ftc.md 5.1-5.2); without a channel (no key configured) they are counted as unsent.
#pragma once

#include <poll.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "daemon/ftc_channel.h"
#include "ftc/egress_port.h"

namespace anychain::daemon {

// The monotonic clock in ns, as the FTC buffer and forwarder count time.
uint64_t ftc_now_ns();

class FtcEgress {
 public:
  FtcEgress(dataplane::Dataplane& dp, ftc::BufferLimits limits) : dp_(dp), limits_(limits) {}

  // Bind a port on each of ifnames not bound yet (those that fail are retried at the next call).
  // A port whose interface was deleted, or made again under its name (a new ifindex: an NF's
  // veth after its namespace went), is closed and bound again on the new one.
  void ensure(const std::vector<std::string>& ifnames);
  std::vector<pollfd> poll_fds() const;
  void on_event(int fd, short events);
  void on_timer();
  // Where FEEDBACK and RELEASED go (null: counted as unsent).
  void set_channel(FtcChannel* ch) { channel_ = ch; }
  size_t held() const;
  nlohmann::json status() const;

 private:
  dataplane::Dataplane& dp_;
  ftc::BufferLimits limits_;
  struct Bound {
    uint32_t ifindex = 0;  // the interface the port's sockets are bound to
    std::unique_ptr<ftc::EgressPort> port;
  };
  std::map<std::string, ftc::EgressPort::Stats> before_;  // counters of an interface's closed ports
  std::map<std::string, Bound> ports_;
  std::map<std::string, std::string> errors_;  // interfaces not bound, and why
  void send_out();
  FtcChannel* channel_ = nullptr;
  uint64_t feedback_sent_ = 0, feedback_unsent_ = 0, released_sent_ = 0, released_unsent_ = 0;
  uint64_t rebound_ = 0;              // ports closed because their interface went or was made again
  uint64_t lost_with_interface_ = 0;  // frames they held, dropped
};

}  // namespace anychain::daemon
