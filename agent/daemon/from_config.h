// The parsed configuration (agent/config) turned into what the agent core and the fast path
// run. The config is valid here (parsed and validated, every WCMP parameter checked with its
// line), so these are mappings: names resolved to ids, text to addresses and rules.
#pragma once

#include <vector>

#include "config/config.h"
#include "daemon/spec.h"
#include "dataplane/dataplane.h"

namespace anychain::daemon {

Result<AgentSpec> spec_from_config(const config::Config& c);

// Every (SPI, SI) of every chain: SI 255 - k is services[k], SI 255 - n ends the chain.
Result<std::vector<dataplane::PathEntry>> chain_paths(const config::Config& c);

// The ordered classifier rules (policy -> chain's SPI; symmetric defaults to the node's flag).
Result<std::vector<PolicyRule>> to_policy_rules(const config::Config& c);

// node: -> the fast path's config.
Result<dataplane::Config> to_dataplane_config(const config::Config& c);

// The anychain-nf binary to run NFs with: the configured one, else the one next to anychaind,
// else the installed one, else the build tree's.
std::string nf_program(const std::string& configured);

// The WCMP policy as the plane computes it.
plane::WcmpConfig to_wcmp_config(const config::Wcmp& w);

}  // namespace anychain::daemon
