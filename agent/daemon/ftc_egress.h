// The node's FTC egress buffer (docs/ftc.md 5.1) in anychaind: one ftc::EgressPort per interface
// an FTC chain can end on (the configured interfaces and the instances' veths), bound when the
// interface exists and retried until it does. Feedback for the forwarder is counted and dropped
// until the FTC channel exists (docs/ftc.md Section 9): held packets are then released only by
// commits that reach the buffer on later packets of their partition.
#pragma once

#include <poll.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "ftc/egress_port.h"

namespace anychain::daemon {

class FtcEgress {
 public:
  FtcEgress(dataplane::Dataplane& dp, ftc::BufferLimits limits) : dp_(dp), limits_(limits) {}

  // Bind a port on each of ifnames not bound yet (those that fail are retried at the next call).
  void ensure(const std::vector<std::string>& ifnames);
  std::vector<pollfd> poll_fds() const;
  void on_event(int fd, short events);
  void on_timer();
  nlohmann::json status() const;

 private:
  dataplane::Dataplane& dp_;
  ftc::BufferLimits limits_;
  std::map<std::string, std::unique_ptr<ftc::EgressPort>> ports_;
  std::map<std::string, std::string> errors_;  // interfaces not bound, and why
  uint64_t feedback_unsent_ = 0;
};

}  // namespace anychain::daemon
