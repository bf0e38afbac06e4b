// The config parser's `state:` section (shared state replication, docs/state.md): internal to
// agent/config (parse.cc calls it, validate.cc checks it against the rest of the file).
#pragma once

#include "config/config.h"
#include "config/yaml_reader.h"

namespace anychain::config::detail {

void read_state(Ctx& ctx, const YAML::Node& n, State& out);
// References: state.interfaces must be under interfaces:, the port must not be one the node
// already uses (VXLAN-GPE 4790, ospfd's API ports).
void validate_state(Ctx& ctx, const Config& c);

}  // namespace anychain::config::detail
