// The node's fast path loaded into a network namespace and attached to one interface there (native
// XDP), with its local endpoint and replication port set: what the state transport test and the
// state benchmark put behind their AF_XDP sockets. Pinned under its own root, detached and unpinned
// when it goes. Throws std::runtime_error naming the step that failed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "anychain/maps.h"
#include "dataplane/dataplane.h"

namespace anychain::test {

class NetnsFastPath {
 public:
  // pin_prefix + ns is the pin root (e.g. "/sys/fs/bpf/anychain-test-state-").
  NetnsFastPath(const std::string& ns, const std::string& ifname, uint32_t addr, uint16_t state_port,
                const std::string& pin_prefix);
  ~NetnsFastPath();
  NetnsFastPath(const NetnsFastPath&) = delete;
  NetnsFastPath& operator=(const NetnsFastPath&) = delete;

  dataplane::Dataplane& dp() { return *dp_; }
  int map_fd(const char* name) const { return dp_->map_fd(name); }
  // packets the fast path counted for reason k (0 when the stats cannot be read)
  uint64_t stat(ac_verdict_reason k) const;

 private:
  std::unique_ptr<dataplane::Dataplane> dp_;
  std::string netns_, ifname_, pin_root_;
};

}  // namespace anychain::test
