// The YAML configuration (agent/config) turned into what the agent core runs (AgentSpec).
#pragma once

#include "config/config.h"
#include "daemon/spec.h"

namespace anychain::daemon {

Result<AgentSpec> spec_from_config(const config::Config& c);

}  // namespace anychain::daemon
