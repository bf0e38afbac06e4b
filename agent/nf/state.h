// `anychain state NAME`: an NF instance's state decoded from its maps (docs/nf.md, "Reading the
// state"): its counters and FTC counters, and per kind the NAT's mappings and port pool, the
// monitor's flows and totals, the firewall's rules with their counters. Read-only.
#pragma once

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "nf/maps.h"

namespace anychain::nf {

// The names of the NF counters (enum ac_nf_stat) and of the FTC counters (enum ac_ftc_stat),
// by slot ("" for an unused slot).
std::string_view nf_counter_name(uint32_t slot);
std::string_view ftc_counter_name(uint32_t slot);
// The names of the shared-state counters (enum ac_crdt_stat).
std::string_view crdt_counter_name(uint32_t slot);

Result<nlohmann::json> decode_state(const InstanceMaps& m);

}  // namespace anychain::nf
