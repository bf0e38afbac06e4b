// anychaind's configuration: the model, a YAML parser that reports every error with its
// line:column, serialisation back to YAML (atomic file writes). The file format is documented
// in docs/config.md. A leaf module: it depends on agent/common only (daemon/from_config turns
// the model into what the agent and the fast path run).
//
//   parse.cc       the sections and list entries (read through yaml_reader.h)
//   validate.cc    whole-config checks, interface existence, check_file()
//   emit.cc        to_yaml(), save_file() and the text forms
//
// Parsing is in two stages, both of which collect every error instead of stopping at the first:
//   1. structure: unknown keys, wrong types, out-of-range values, bad prefixes/MACs/ports
//      (parse_service(), parse_chain(), ... do this for one list entry, so the control socket
//      validates a CLI-added entry with exactly the same rules as the file);
//   2. validate(): duplicates (names, ids, SPIs), references (chain -> service,
//      policy -> chain, instance -> service), limits over the whole config.
// Interface existence is not checked by the parser: check_interfaces() does that separately.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "anychain/maps.h"
#include "anychain/nf.h"
#include "anychain/nsh.h"
#include "common/error.h"
#include "common/net.h"

namespace YAML {
class Node;
}

namespace anychain::config {

// Where something was written: 1-based line and column; 0 when not from a file (CLI-added).
struct Mark {
  int line = 0;
  int column = 0;
  bool known() const { return line > 0; }
};

struct Diagnostic {
  std::string file;     // may be empty
  Mark mark;
  std::string message;
  // "file:line:col: error: message" (the parts that are unknown are left out)
  std::string str() const;
};
using Diagnostics = std::vector<Diagnostic>;
void print(std::ostream& os, const Diagnostics& d);  // one str() per line

struct Node {
  std::string nsh_endpoint;                 // IPv4, required
  std::string pin_root = AC_PIN_ROOT;
  uint32_t flow_cache_entries = AC_FLOW_CACHE_DEFAULT;  // per CPU, >= 1024
  uint32_t affinity_entries = AC_AFFINITY_DEFAULT;      // shared placements: flows x chain positions
  uint32_t flow_timeout_s = 60;             // 0 = entries never idle out
  bool symmetric_hash = false;              // default of policies without their own flag
  uint8_t nsh_ttl = AC_NSH_DEFAULT_TTL;     // 2..63
  bool oam_forward = false;                 // "oam: forward"; default "drop" (RFC 8300 sec. 2.2)
  bool slow_path = true;                    // the agent's slow path (docs/slow-path.md)
  uint16_t inner_mtu = 1500;                // largest inner packet planned for (status warnings)
};

struct Interface {
  std::string name;
  XdpMode mode = XdpMode::Auto;
  bool classify = false;                    // plain IP arriving here is classified
  Mark mark;
};

struct Ospf {
  std::string address = "127.0.0.1";        // ospfd's API server
  uint16_t port = 2607;
  uint16_t local_port = 4000;               // our sync port P; P + 1 is the async listener
  uint8_t opaque_type = 200;                // 128..255 (experimental/private opaque types)
  std::string area = "0.0.0.0";             // dotted
  std::string pid_file;                     // optional: ospfd's pid file, watched to reconnect at once
};

// The agent's timers (one struct: the agent core runs on it as parsed). The file's keys carry
// the unit: spf_delay_ms, spf_hold_ms, announce_interval_s, monitor_interval_s, vnf_stall_s.
struct Timers {
  std::chrono::milliseconds spf_delay{50};         // first recomputation after an LSDB change
  std::chrono::milliseconds spf_hold{200};         // minimum gap between two recomputations
  std::chrono::seconds announce_interval{2};       // VNF cost announcements (the paper: 2 s)
  double cost_damping = 0.05;                      // re-announce when the cost moves >= this * capacity
  std::chrono::seconds monitor_interval{1};        // liveness and load of the local instances
  std::chrono::seconds vnf_stall{2};               // dead when it answers none of its packets this long (0: off)
  bool operator==(const Timers&) const = default;
};

// How path costs become WCMP weights (docs/wcmp-policy.md). The names, the parameters and
// their ranges are defined here and checked at parse time; the daemon maps them onto the
// plane's WcmpConfig and the agent's hold-down without checking anything again.
enum class WcmpPolicy { Bottleneck, InverseCost, Ecmp };
std::string_view to_string(WcmpPolicy p);                     // "bottleneck", "inverse-cost", "ecmp"
std::optional<WcmpPolicy> parse_wcmp_policy(std::string_view s);  // also "bottleneck-residual"

struct Wcmp {
  WcmpPolicy policy = WcmpPolicy::Bottleneck;
  // wcmp.params; unset: the agent's default (docs/config.md)
  std::optional<bool> include_links{};
  std::optional<uint32_t> floor{};
  std::optional<uint32_t> inverse_scale{};
  std::optional<uint32_t> cost_range{};
  std::optional<uint32_t> hold_down_ms{};
  bool operator==(const Wcmp&) const = default;
};

struct Service {
  std::string name;
  uint32_t id = 0;                          // 1..AC_MAX_SERVICES-1
  std::string anycast;                      // IPv4 prefix, e.g. 10.100.0.1/32
  Mark mark;
};

// FTC (docs/ftc.md, docs/config.md "ftc"): the top-level ftc: section holds the defaults and the
// node's FTC channel; a chain's ftc: (true, or a map overriding the defaults) makes it an FTC
// chain. Unset fields take the top-level value, then the built-in default (FtcChain below).
struct FtcParams {
  std::optional<uint32_t> f;                    // 1..4: failures a released packet survives
  std::optional<uint32_t> buffer_frames;        // egress buffer: frames held in all
  std::optional<uint32_t> buffer_per_partition; // egress buffer: frames held per partition
  std::optional<uint32_t> hold_timeout_ms;      // a held frame older than this is dropped
  std::optional<uint32_t> propagate_after_ms;   // pending logs not committed: propagating packet
  bool operator==(const FtcParams&) const = default;
};

inline constexpr uint16_t kFtcPortDefault = 4796;
struct FtcNode {
  FtcParams defaults;
  uint16_t port = kFtcPortDefault;              // the FTC channel (TCP, docs/ftc.md 4.4)
  std::string key_file;                         // its HMAC keys; empty: state.keys
  uint32_t detect_interval_ms = 100;            // heartbeats on the channel (docs/ftc.md 7.1)
  uint32_t detect_misses = 3;                   // silent intervals before a peer node is down
  // how long a withdrawn FTC instance's flows stay frozen (RECOVERING) waiting for its
  // replacement before they are placed again without state (docs/ftc.md 7.2)
  uint32_t recovery_hold_ms = 30000;
  // every built-in NF of this node (anychain-nf --replica-records, --reorder-wait-us; docs/ftc.md
  // 3.2, 4.3): its replica store's records, and how long a gap is held before it is re-requested
  uint32_t replica_records = 262144;  // = nf::kReplicaRecordsDefault (daemon_test's FromConfig holds them equal)
  uint32_t reorder_wait_us = 1000;
  bool operator==(const FtcNode&) const = default;
};

// A chain's FTC parameters with every default applied.
struct FtcChain {
  uint32_t f = 1;
  uint32_t buffer_frames = 65536;
  uint32_t buffer_per_partition = 4096;
  uint32_t hold_timeout_ms = 1000;
  uint32_t propagate_after_ms = 1;
};

struct Chain {
  std::string name;
  uint32_t spi = 0;                         // 1..2^24-1
  std::vector<std::string> services;        // SI 255 = services[0], 254 = services[1], ...
  std::optional<FtcParams> ftc;             // set: an FTC chain (ftc: true or a map)
  Mark mark;
};

struct Policy {
  std::string name;
  std::string chain;
  std::string src = "any";                  // prefix or any / any4 / any6
  std::string dst = "any";
  uint8_t proto = 0;                        // 0 = any
  uint16_t sport_lo = 0, sport_hi = 65535;
  uint16_t dport_lo = 0, dport_hi = 65535;
  std::optional<bool> symmetric;            // unset: node.symmetric_hash
  uint8_t md_type = 1;                      // 1 or 2
  Mark mark;
};

// A built-in network function's rule (firewall), as written in the file (docs/nf.md).
struct NfRule {
  bool drop = true;                         // action: drop or pass
  std::string src = "any", dst = "any";     // prefixes, "any" (either family), "any4", "any6"
  uint8_t proto = 0;                        // 0 = any
  uint16_t sport_lo = 0, sport_hi = 65535;
  uint16_t dport_lo = 0, dport_hi = 65535;
  Mark mark;
};

// The built-in network function an instance runs (`nf:`, docs/nf.md): anychaind creates its
// namespace and veth and runs anychain-nf for it.
inline constexpr const char* kNfKinds[] = {"nat", "monitor", "firewall", "ids", "ratelimit", "replica"};
inline constexpr const char* kNfKindsBuilt[] = {"nat", "monitor", "firewall", "ids", "ratelimit", "replica"};  // with a program
// The longest idle timeout of an NF on an FTC chain: other nodes reclaim their replicas of its
// records after this long (nf::kFtcDefaultPeerIdle, checked equal in the daemon), docs/ftc.md 6.2
inline constexpr uint32_t kFtcNfIdleMax = 300;

struct NfConfig {
  std::string kind;                         // one of kNfKindsBuilt
  bool restart = true;                      // restart: always (true) or never
  std::optional<uint32_t> idle_timeout_s;   // nat/monitor; unset: the kind's default
  std::string nat_address;                  // nat: the external IPv4 address (required)
  uint16_t nat_port_lo = 1024, nat_port_hi = 65535;
  bool fw_default_drop = false;             // firewall: the action when no rule matches
  std::vector<NfRule> fw_rules;             // firewall: in order, at most AC_NF_FW_RULES (64)
  // ids, ratelimit (docs/state.md 4): the window of their shared counts, the same on every instance
  uint32_t window_s = 10;
  uint32_t ids_threshold = 64;              // ids: distinct ports of a source in a window that flag it
  bool ids_drop = false;                    // ids: drop a flagged source's packets (else count only)
  uint32_t ids_filter_hashes = 3, ids_filter_cells = 65536;  // ids: pair filter (k x m)
  uint32_t ids_sketch_rows = 4, ids_sketch_width = 4096;     // ids: source sketch
  uint32_t ids_flagged = 4096;              // ids: flagged sources held
  uint32_t ids_flag_expire_s = 600;         // ids: a flag expires this long after its last add (0: never)
  uint64_t rl_limit = 0;                    // ratelimit: per window over every instance (required)
  bool rl_packets = false;                  // ratelimit: packets (else inner L3 bytes)
  // the instance's ftc: (docs/config.md "ftc"): its replica store and re-request wait; unset: the
  // top-level ftc: values of the node
  std::optional<uint32_t> replica_records, reorder_wait_us;
};

struct Instance {
  std::string name;
  uint32_t id = 0;                          // 1..AC_MAX_INSTANCES-1, network-wide unique
  std::string service;
  std::string veth;                         // host-side interface (nf: created by the daemon)
  std::optional<Mac> mac;                // the VNF's MAC; unset: learnt by the daemon
  uint64_t capacity = 0;                    // packets/s, > 0
  bool nsh_aware = true;
  std::string pid_file;                     // optional
  std::string cgroup;                       // optional
  std::optional<NfConfig> nf;               // a built-in network function run by the daemon
  // A standby (docs/ftc.md 7.3): the id of an FTC instance on another node that this entry
  // replaces when that node fails; the entry then runs as that instance (its id, id may be left
  // out). Until then nothing runs: the node only announces that it stands by.
  std::optional<uint32_t> standby_for;
  Mark mark;
};

// Where the daemon runs its built-in network functions (`nf:` section, docs/nf.md).
struct NfNode {
  std::string netns_prefix = AC_NF_NETNS_PREFIX;  // an instance's namespace: <prefix><name>
  std::string run_dir = AC_NF_RUN_DIR;            // anychain-nf publishes <name>.json here
  std::string program;                      // anychain-nf; empty: next to anychaind, then installed
  bool operator==(const NfNode&) const = default;
};

// Shared state replication (`state:` section, docs/state.md 3.9-3.10): the port, the interfaces
// it runs on, the HMAC keys and the protocol's timers. Keys are hex in the file (32..64 bytes);
// the keyring is swapped on reload without a restart (key rotation).
inline constexpr uint16_t kStatePortDefault = 4795;
struct StateKey {
  uint8_t id = 0;                           // 1..255
  std::string hex;                          // 64..128 hex digits (lower case after parsing)
  Mark mark;
  bool operator==(const StateKey& o) const { return id == o.id && hex == o.hex; }
};
struct State {
  uint16_t port = kStatePortDefault;        // UDP port of replication messages (AF_XDP or UDP)
  std::vector<std::string> interfaces;      // where AF_XDP runs; empty: every interface of interfaces:
  std::vector<StateKey> keys;               // 1..4, distinct ids
  uint8_t send_key = 0;                     // the key id used to send; 0: the only key
  uint32_t max_skew_s = 60;                 // wall-clock freshness of messages; 0 = not checked
  uint32_t scan_interval_ms = 1;            // change-log scan and protocol tick
  uint32_t keepalive_ms = 100;              // an idle peer gets an acknowledgement this often
  uint32_t peer_window_kb = 256;            // sent and not acknowledged per peer before it is lagging
  uint32_t window_s = 60;                   // a windowed object's generation (ids, ratelimit)
  uint32_t node_gone_grace_s = 30;          // an instance's node unreachable this long: its origin is gone
  Mark mark;
  // the send key's id (send_key, or the only key)
  uint8_t send_id() const { return send_key ? send_key : (keys.size() == 1 ? keys[0].id : 0); }
  bool operator==(const State& o) const {
    return port == o.port && interfaces == o.interfaces && keys == o.keys && send_key == o.send_key &&
           max_skew_s == o.max_skew_s && scan_interval_ms == o.scan_interval_ms && keepalive_ms == o.keepalive_ms &&
           peer_window_kb == o.peer_window_kb && window_s == o.window_s &&
           node_gone_grace_s == o.node_gone_grace_s;
  }
};

struct Config {
  Node node;
  std::vector<Interface> interfaces;
  Ospf ospf;
  Timers timers;
  Wcmp wcmp;
  NfNode nf;
  std::optional<State> state;               // absent: no replication (stateful NFs run alone)
  FtcNode ftc;
  std::vector<Service> services;
  std::vector<Chain> chains;
  std::vector<Policy> policies;             // ordered: first match wins
  std::vector<Instance> instances;

  const Service* find_service(std::string_view name) const;
  const Chain* find_chain(std::string_view name) const;
  // ch's FTC parameters with the defaults applied; nullopt for a chain without ftc:
  std::optional<FtcChain> ftc_of(const Chain& ch) const;
};

template <class T>
using Parsed = std::expected<T, Diagnostics>;

// Parse a whole config. `file` only names the source in diagnostics.
Parsed<Config> parse(std::string_view yaml, const std::string& file = "");
Parsed<Config> load_file(const std::string& path);

// Parse one list entry, with the same structural checks as in a file.
Parsed<Service> parse_service(const YAML::Node& n, const std::string& file = "");
Parsed<Chain> parse_chain(const YAML::Node& n, const std::string& file = "");
Parsed<Policy> parse_policy(const YAML::Node& n, const std::string& file = "");
Parsed<Instance> parse_instance(const YAML::Node& n, const std::string& file = "");

// Whole-config checks: duplicates, references, limits. Empty when valid.
Diagnostics validate(const Config& c, const std::string& file = "");

// Interfaces named in the config (interfaces: and instance veths) that do not exist now.
Diagnostics check_interfaces(const Config& c, const std::string& file = "");

// What `anychaind --check-config FILE` prints: parse + validate + check_interfaces.
// Empty when the file is good.
Diagnostics check_file(const std::string& path);

// Serialise (comments are not kept). parse(to_yaml(c)) gives back c (marks aside).
std::string to_yaml(const Config& c);
// Write to_yaml(c) to path atomically: a temporary file in the same directory, fsync, rename.
Result<void> save_file(const Config& c, const std::string& path);

// Text forms used by to_yaml, docs and the CLI.
std::string proto_name(uint8_t proto);                        // "any", "tcp", "udp", "icmp", "47"
std::string port_range(uint16_t lo, uint16_t hi);             // "", "80", "1000-2000"

}  // namespace anychain::config
