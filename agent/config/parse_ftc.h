// The parts of the config parser that read FTC (docs/ftc.md, docs/config.md "ftc"): the
// top-level ftc: section and a chain's ftc:. Internal to agent/config (parse.cc calls them).
#pragma once

#include "config/config.h"
#include "config/yaml_reader.h"

namespace anychain::config::detail {

// A chain's ftc: (true, false or a map of FtcParams) into c.ftc
void read_chain_ftc(Ctx& ctx, MapReader& r, Chain& c);
// The top-level ftc: section
void read_ftc_node(Ctx& ctx, const YAML::Node& n, FtcNode& out);
// An instance's ftc: {replica_records, reorder_wait_us} into in.nf (after read_nf: only for a
// built-in network function)
void read_instance_ftc(Ctx& ctx, MapReader& r, Instance& in);
// The whole-config checks of FTC chains and the policies that use them
void validate_ftc(Ctx& ctx, const Config& c);
// Standbys (instance standby_for, docs/ftc.md 7.3): of an FTC service, with a built-in NF, for an
// instance of another node, at most one per instance on a node
void validate_standbys(Ctx& ctx, const Config& c);

}  // namespace anychain::config::detail
