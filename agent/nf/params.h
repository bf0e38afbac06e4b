// What one NF instance runs with: its kind, instance id and the kind's parameters, as
// anychain-nf takes them on its command line (the daemon builds that command line from the
// instance's config entry; docs/nf.md). Firewall rules have one text form, used by
// anychain-nf's --rule, the CLI's --fw-rule and `anychain state`:
//
//   ACTION [src PREFIX] [dst PREFIX] [proto P] [sport N[-M]] [dport N[-M]]
//   ACTION: pass | drop;  PREFIX: 10.0.0.0/8, 2001:db8::/32, any, any4, any6;
//   P: tcp | udp | icmp | icmpv6 | any | 0..255;  ports only with proto tcp or udp
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "anychain/nf.h"
#include "common/error.h"
#include "common/net.h"
#include "nf/kind.h"

namespace anychain::nf {

struct FirewallRule {
  bool drop = true;
  Prefix src{AF_UNSPEC, {}, 0};   // AF_UNSPEC: any address of either family
  Prefix dst{AF_UNSPEC, {}, 0};
  uint8_t proto = 0;              // 0 = any
  uint16_t sport_lo = 0, sport_hi = 65535;
  uint16_t dport_lo = 0, dport_hi = 65535;
};
// The same rule (as the program encodes it)
bool operator==(const FirewallRule& a, const FirewallRule& b);

Result<FirewallRule> parse_rule(std::string_view text);
std::string to_text(const FirewallRule& r);
// The program's encoding (masks from the prefix lengths), and back.
ac_nf_fw_rule encode(const FirewallRule& r);
FirewallRule decode(const ac_nf_fw_rule& e);

// "any", "tcp", ... and back (0 = any)
Result<uint8_t> parse_proto(std::string_view s);
std::string proto_text(uint8_t proto);
// "N" or "N-M"
Result<std::pair<uint16_t, uint16_t>> parse_port_range(std::string_view s);

// FTC limits of anychain-nf (--replica-records, --reorder-wait-us; the config's ftc: section).
// The replica store holds, per partition that crosses the instance, one record for each of up to
// f predecessors: by default room for a head store's partitions (LoadOptions::flows, 65,536)
// times the largest f (4). The map is not preallocated: memory follows the records in use
// (docs/ftc.md 3.1).
inline constexpr uint32_t kHeadFlowsDefault = 65536;
inline constexpr uint32_t kReplicaRecordsDefault = 4 * kHeadFlowsDefault, kReplicaRecordsMax = 1u << 22;
inline constexpr uint32_t kReorderWaitUsDefault = 1000, kReorderWaitUsMax = 999'999;  // below the 1 s hold timeout

struct Params {
  Kind kind = Kind::Monitor;
  uint32_t instance_id = 0;       // network-wide: the FTC middlebox id, the CRDT origin
  uint32_t idle_timeout_s = 0;    // per-flow state idle longer is reset; 0 = never
  // nat
  in_addr nat_address{};
  uint16_t nat_port_lo = 1024, nat_port_hi = 65535;
  uint32_t nat_shared_entries = 262144;  // the shared mapping table (docs/state.md 4.3)
  // firewall
  bool fw_default_drop = false;
  std::vector<FirewallRule> fw_rules;
  // ids and ratelimit: their windowed objects' window (docs/state.md 4.1, 4.2)
  uint32_t window_s = 10;
  // ids: distinct (protocol, port) pairs per source in a window that flag it; what to do then
  uint32_t ids_threshold = 64;
  bool ids_drop = false;
  uint32_t ids_pairs_cells = 65536;   // counting Bloom filter: cells (a power of two) ...
  uint32_t ids_pairs_hashes = 3;      // ... and hashes (1..8)
  uint32_t ids_sketch_rows = 4;       // count-min sketch of sources: rows (1..8) ...
  uint32_t ids_sketch_width = 4096;   // ... and width (a power of two)
  uint32_t ids_flagged_max = 4096;    // flagged sources held
  uint32_t ids_flag_expire_s = 600;   // a flag expires this long after its last add (0: never)
  // ratelimit: the limit per window over every instance, in bytes (inner L3) or packets
  uint64_t rl_limit = 0;
  bool rl_packets = false;
  // FTC (docs/ftc.md 3.2, 4.3): the replica store's records (partitions of predecessors held)
  // and how long a gap stays held before it is re-requested from the agent
  uint32_t replica_records = kReplicaRecordsDefault;
  uint32_t reorder_wait_us = kReorderWaitUsDefault;
};

// Whether the kind keeps shared state with windows (ids, ratelimit).
bool windowed(Kind k);

// "NxM" (filter hashes x cells, sketch rows x width)
Result<std::pair<uint32_t, uint32_t>> parse_geometry(std::string_view s);

// Check what the kind needs (a NAT address, a pool inside 1..65535, at most AC_NF_FW_RULES rules).
Result<void> validate(const Params& p);

// The FTC limits alone (replica_records, reorder_wait_us): validate() checks them too.
Result<void> validate_ftc(const Params& p);

// anychain-nf's options for p (after --name/--iface, which the launcher adds).
std::vector<std::string> to_args(const Params& p);

}  // namespace anychain::nf
