// The ingress forwarder in anychaind (docs/ftc.md 5.2): FEEDBACK from egress buffers (over the
// FTC channel, or from this node's own buffer) becomes the partition's pending returned logs
// (ftc::IngressForwarder: per middlebox, coalesced), written as TLVs into the pinned
// ac_ftc_pending map, which the classifier copies into each packet of the partition; RELEASED
// prunes them (the map entry shrinks or goes). Pending logs not committed within
// ftc.propagate_after go in propagating packets (NSH only, SI 255, control PROPAGATING) run
// through the node's fast path as live frames (BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "daemon/ftc_channel.h"
#include "dataplane/dataplane.h"
#include "ftc/buffer.h"

namespace anychain::daemon {

// A propagating packet's frame: Ethernet (to and from mac, NSH), the NSH of flow at SI 255 with
// its flow hash, the control TLV (PROPAGATING, f, ingress) and logs.
Result<std::vector<uint8_t>> propagating_frame(const ftc::Flow& flow, uint8_t f, uint32_t ingress,
                                               const std::vector<ftc::Log>& logs, const Mac& mac);

class FtcForwarder {
 public:
  FtcForwarder(dataplane::Dataplane& dp, uint32_t self, ftc::ForwarderLimits lim) : dp_(dp), self_(self), fw_(lim) {}

  // FEEDBACK and RELEASED handlers on ch.
  void attach(FtcChannel& ch);
  void feedback(const ftc::Feedback& fb);
  void released(const ftc::Flow& flow, const ftc::CommitVector& cv);
  // Propagating packets of partitions whose logs are due, injected on `ifname` (an interface of
  // the fast path; empty: the first that exists is the caller's choice).
  void on_timer(const std::string& ifname);
  nlohmann::json status() const;
  const ftc::IngressForwarder& logic() const { return fw_; }

 private:
  void write(const ftc::Flow& flow);
  dataplane::Dataplane& dp_;
  uint32_t self_;
  ftc::IngressForwarder fw_;
  struct Stats {
    uint64_t feedback = 0, released = 0, pending_writes = 0, pending_write_failed = 0, propagating = 0,
             propagate_failed = 0, foreign_ingress = 0;
  } st_;
  std::string last_error_;
};

}  // namespace anychain::daemon
