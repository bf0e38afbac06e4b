// The parts of the config parser that read the built-in network functions (docs/nf.md): an
// instance's nf: KIND, restart and its kind's section, and the node's nf: section. Internal to
// agent/config (parse.cc calls them).
#pragma once

#include "config/config.h"
#include "config/yaml_reader.h"

namespace anychain::config::detail {

// The nf keys of an instance entry (nf, restart, nat/monitor/firewall) into in.nf
void read_nf(Ctx& ctx, MapReader& r, Instance& in);
// The node's nf: section
void read_nf_node(Ctx& ctx, const YAML::Node& n, NfNode& out);

}  // namespace anychain::config::detail
