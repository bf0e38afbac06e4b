// Shared fixture: a sandboxed node with interfaces, routes, neighbours and a loaded fast path.
#pragma once

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <map>
#include <memory>
#include <string>

#include "common/fixture_node.h"
#include "common/netns.h"
#include "common/packet.h"
#include "dataplane/dataplane.h"

namespace anychain::test {

namespace dp = anychain::dataplane;

struct RunResult {
  int verdict = -1;
  Bytes out;
};

class FastPathEnv : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;
  static dp::Dataplane& dataplane() { return *dp_; }
  static int ifindex(const std::string& name) { return static_cast<int>(if_nametoindex(name.c_str())); }

 private:
  static inline std::unique_ptr<dp::Dataplane> dp_;
};

// Run one frame through the program as if received on ifname.
RunResult run_prog(int prog_fd, const std::string& ifname, const Bytes& frame);

// Counter snapshot to check deltas by reason.
class Counters {
 public:
  Counters();
  uint64_t delta(uint32_t reason) const;  // packets counted under reason since construction
  uint64_t bytes(uint32_t reason) const;  // bytes counted under reason since construction

 private:
  std::vector<ac_counter> before_;
};

std::vector<dp::PolicyRule> fixture_rules();  // the rule set FastPathEnv installs

}  // namespace anychain::test
