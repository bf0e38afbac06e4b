// The dataplane library: RAII owner of the fast path's BPF object, typed writers for its maps
// (pinned under a bpffs directory and adopted on restart), and XDP attach/detach via libxdp.
//
//   loader.cc    open the object, reuse or create the pins, bpffs and privilege checks
//   maps.cc      writers: config, interfaces, policies, paths, instances, WCMP tables, flushes
//   readers.cc   counters, paths, flow cache decoding (shared with the read-only PinnedMaps)
//   reasons.cc   the names and kinds of the counter slots
//   attach.cc    libxdp attach/detach, and attach_interface() used by anychaind and the CLI
//   jiffies.cc   the kernel tick and jiffies (/proc/timer_list), for flow ages and timeouts
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anychain/maps.h"
#include "anychain/nsh.h"
#include "common/error.h"
#include "common/net.h"
#include "dataplane/reasons.h"
#include "dataplane/wcmp_table.h"

struct anychain_bpf;  // the libbpf skeleton (build/bpf/anychain.skel.h)

namespace anychain::dataplane {

// The net values of common/net.h under the names the fast path's users have long used.
using anychain::Mac;
using anychain::parse_prefix;
using anychain::parse_xdp_mode;
using anychain::PolicyRule;
using anychain::Prefix;
using anychain::to_string;
using anychain::XdpMode;

struct Options {
  std::string pin_root = AC_PIN_ROOT;
  // per CPU: a power of two >= AC_FLOW_CACHE_MIN, in sets of AC_FLOW_WAYS entries
  uint32_t flow_cache_entries = AC_FLOW_CACHE_DEFAULT;
  uint32_t proxy_entries = AC_PROXY_DEFAULT;
  // ac_affinity, shared by all CPUs: one placement per flow and chain position (SPI, SI), so
  // flows x (services on their chains) of them; >= AC_AFFINITY_MIN. Too small, and the LRU
  // evicts live placements (a re-placed flow may move instance).
  uint32_t affinity_entries = AC_AFFINITY_DEFAULT;
};

struct Config {
  in_addr local_endpoint{};       // this node's NSH endpoint
  bool symmetric_hash = false;    // default for policies without their own flag
  uint64_t flow_timeout_ns = 60'000'000'000ULL;
  // A remote instance's FIB result (egress, MACs) is reused for this long (0: a FIB lookup per
  // packet); route and neighbour changes take effect within it, instance changes at once.
  uint64_t nexthop_ttl_ns = AC_NEXTHOP_TTL_DEFAULT;
  uint16_t gpe_port = AC_VXLAN_GPE_PORT;
  uint8_t default_ttl = AC_NSH_DEFAULT_TTL;
  bool oam_forward = false;       // forward NSH with the O bit set (default: drop, counted)
  uint32_t slow_ifindex = 0;      // fast-path end of the agent's slow path (0: none)
  uint16_t state_port = 0;        // UDP port of state replication to local_endpoint (0: off)
};

// The fast path's encoding of a rule (masks from the prefix lengths, flags).
Result<ac_policy> encode_policy(const PolicyRule& r);

struct Instance {
  uint32_t id = 0;                // 1..AC_MAX_INSTANCES-1
  bool local = false;
  bool nsh_aware = true;
  uint32_t ifindex = 0;           // local: host-side veth
  Mac mac{};                      // local: the VNF's MAC
  Mac if_mac{};                   // local: the host-side veth's MAC
  in_addr endpoint{};             // remote: NSH endpoint of its node
  uint32_t vni = 0;               // remote: VNI naming it to its node (0: its id)
  uint32_t service_id = 0;        // the service it serves
  uint16_t mtu = 0;               // local: the veth's MTU (0: not checked)
};

// One CPU's way for a flow.
struct FlowCpuEntry {
  int cpu = 0;
  uint32_t instance_id = 0;
  uint32_t generation = 0;
  uint64_t last_seen = 0;
  bool valid = true;              // its instance is live with that generation (else stale: not used)
};

struct FlowEntry {
  uint32_t spi;
  uint8_t si;
  uint32_t hash;
  uint32_t instance_id;
  uint32_t generation;
  uint64_t last_seen;             // jiffies (the kernel's tick counter), newest over CPUs
  int cpus;                       // CPUs holding the entry
  uint32_t set;                   // flow cache set the entry lives in
  double age_s;                   // since last_seen (-1 if the kernel's jiffies are not readable)
  std::vector<FlowCpuEntry> per_cpu{};  // every CPU's way, by CPU
  // The flow's shared placement (ac_affinity), when read with annotate_placements().
  std::optional<FlowCpuEntry> placement{};  // cpu -1
  // The CPUs' ways or the placement name different instances or generations.
  bool disagree = false;
  // Two usable choices differ (two CPUs, or a CPU and the placement, on live instances): the flow
  // is split across instances, which the shared placement exists to prevent; a bug.
  bool split = false;
};

// One (SPI, SI) entry of ac_paths: which service serves it, or the end of the chain. The one
// path record of the agent: chain_paths() computes them, Dataplane::paths() reads them back,
// PinnedMaps::path_stats() pairs them with their counters.
struct PathEntry {
  uint32_t spi = 0;
  uint8_t si = 0;
  uint32_t service_id = 0;  // 0 on the last hop
  bool last_hop = false;
  bool operator==(const PathEntry&) const = default;
};

// A path with its counter (summed over CPUs).
struct PathCounter {
  PathEntry path;
  ac_counter counter;
};

struct Attachment {
  std::string ifname;
  int ifindex;
  XdpMode mode;
  uint32_t prog_id;
  bool dispatcher = true;  // behind libxdp's dispatcher (shareable); false: attached alone, as on
                           // kernels that refuse freplace programs
};

class Dataplane {
 public:
  // Load the fast path's object, reusing maps already pinned under opts.pin_root (so a
  // restarted agent adopts the running state) or pinning new ones. Mounts bpffs if needed.
  static Result<Dataplane> open(const Options& opts = {});

  Dataplane(Dataplane&&) noexcept;
  Dataplane& operator=(Dataplane&&) noexcept;
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;
  ~Dataplane();

  Result<void> set_config(const Config& c);
  Result<Config> config() const;

  // Describe an interface of this node: its MAC (the program acts only on frames for it) and
  // its roles (AC_IF_CLASSIFY, AC_IF_VNF, AC_IF_SLOW_PATH; 0 = none). attach() writes the entry
  // of the interfaces it attaches to, keeping their roles.
  Result<void> set_interface(uint32_t ifindex, uint32_t flags, uint32_t instance_id, const Mac& mac);
  Result<void> del_interface(uint32_t ifindex);

  // Replace the whole ordered rule set.
  Result<void> set_policies(std::span<const PolicyRule> rules);

  Result<void> set_path(uint32_t spi, uint8_t si, uint32_t service_id, bool last_hop);
  Result<void> del_path(uint32_t spi, uint8_t si);

  // Create or update; returns the generation now in force. Changing where an instance is
  // bumps its generation, so flow cache entries pointing to the old placement are not used.
  Result<uint32_t> set_instance(const Instance& inst);
  Result<void> del_instance(uint32_t id);  // withdraw: cached flows are re-balanced
  // An FTC instance failed and is being recovered (docs/ftc.md 7.2): not live, generation kept,
  // AC_INST_RECOVERING: flows placed on it keep their placement and their packets are dropped
  // (drop_ftc_recovering) until set_instance() makes it (its replacement) live again.
  Result<void> set_instance_recovering(uint32_t id);
  // FTC recovery (docs/ftc.md 7.5), on ac_affinity, the flows' shared placements:
  // - the replacement of a RECOVERING instance is about to be made live by set_instance(), which
  //   gives it the next generation: every placement naming (id, its generation now) is re-pointed
  //   to (id, generation + 1) first, so that its frozen flows resume on it with their state.
  //   Returns how many were re-pointed; EINVAL if the instance is not RECOVERING.
  Result<size_t> repoint_affinity(uint32_t id);
  // - how many placements name the instance at its current generation (what a withdrawal of a
  //   recovering instance abandons: each is a flow placed again without state).
  Result<size_t> count_affinity(uint32_t id) const;
  // - the replacement's node writes where each of its partitions went next (the successor that
  //   held its head record) as that flow's placement at (spi, si): (id, its current generation).
  //   Written whether or not the flow is placed already. EINVAL for an instance that is not live.
  Result<void> set_affinity(uint32_t spi, uint8_t si, uint32_t hash, uint32_t id);
  // The forwarder's returned logs of partition (spi, hash) (docs/ftc.md 5.2): whole TLVs, a
  // multiple of 4 bytes, at most AC_FTC_PENDING_MAX; the classifier piggybacks them on every
  // packet of the partition after the control TLV. Empty: delete the entry.
  Result<void> set_ftc_pending(uint32_t spi, uint32_t hash, std::span<const uint8_t> tlvs);
  // A live local instance's veth MTU changed: packets longer than it go to the slow path (0: not
  // checked). Not a change of where it is: its generation stays. Nothing to do for an instance
  // that is not live and local.
  Result<void> set_instance_mtu(uint32_t id, uint16_t mtu);

  // The SFC proxy holds a flow's NSH under (veth, flow key); fragments of a datagram come back
  // keyed by (veth, datagram key) (bpf/ac_proxy.h). Hold the flow's NSH under the datagram's key
  // too, for fragments the slow path makes. Returns false when the flow's NSH is not held.
  Result<bool> hold_proxy_for_fragments(uint32_t ifindex, uint32_t flow_key, uint32_t datagram_key);

  // Swap in a new bucket table (exactly AC_WCMP_BUCKETS entries) for a service, atomically (a
  // table equal to the one in force is left as it is). Returns the fraction of buckets whose
  // instance changed against the table it replaced.
  Result<double> set_wcmp_table(uint32_t service_id, std::span<const uint32_t> buckets);
  Result<std::vector<uint32_t>> wcmp_table(uint32_t service_id) const;
  // Fill the service's table from raw weights (consistent Maglev-style fill) and swap it in.
  // With a table already in force, only the buckets that must move are moved (rebalance);
  // returns the fraction of buckets that moved.
  Result<double> set_wcmp_weights(uint32_t service_id, std::span<const WcmpMember> members);
  Result<void> del_wcmp_table(uint32_t service_id);

  Result<std::vector<PathEntry>> paths() const;
  Result<std::vector<uint32_t>> live_instances() const;      // ids of live instance entries
  Result<std::vector<ac_counter>> stats() const;  // AC_STAT_SLOTS, by slot (dataplane/reasons.h)
  Result<ac_counter> path_stats(uint32_t spi, uint8_t si) const;
  Result<ac_counter> instance_stats(uint32_t id) const;     // handed to the instance (ac_inst_stats)
  Result<ac_counter> instance_returned(uint32_t id) const;  // chain traffic back from it (ac_inst_returned)
  // Flow cache ways that hold an instance choice (ways holding only a last hop's path data are
  // not listed).
  Result<std::vector<FlowEntry>> flows(size_t limit = SIZE_MAX) const;
  Result<void> flush_flows();
  uint32_t flow_sets() const;  // sets per CPU
  // Forget every cached FIB result, remote endpoints' and chains' last hops (e.g. after a route
  // change, instead of waiting for the TTL).
  Result<void> flush_nexthops();

  int prog_fd() const;
  int map_fd(std::string_view name) const;
  uint32_t map_id(std::string_view name) const;  // the kernel's id of a map (0: none)
  const std::string& pin_root() const { return opts_.pin_root; }

  // XDP attach through libxdp (coexists with other programs via its dispatcher).
  Result<Attachment> attach(const std::string& ifname, XdpMode mode);
  static Result<void> detach(const std::string& ifname);
  static Result<std::vector<Attachment>> attached(const std::vector<std::string>& ifnames);
  // The id of the XDP program the kernel runs first on ifindex (libxdp's dispatcher, or ours
  // alone), 0 for none: one netlink query, no libxdp objects (querying those opens a file
  // descriptor per program, which libxdp 1.3 does not all give back).
  static Result<uint32_t> xdp_entry_id(int ifindex);

  // Remove every pin under pin_root (the fast path on interfaces keeps its own references).
  static Result<void> unpin_all(const std::string& pin_root);

 private:
  // set_wcmp_table with the table in force already read (nullptr: none)
  Result<double> swap_wcmp_table(uint32_t service_id, std::span<const uint32_t> buckets,
                                 const std::vector<uint32_t>* current);
  Dataplane(std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel, Options opts);
  Result<void> load_path_slots();
  Result<void> describe_attached(const std::string& ifname, int ifindex);
  Result<void> init_config();
  Result<void> bump_path_epoch();
  // Read ac_config, let edit change it, write it back (fields edit leaves alone are kept).
  Result<void> modify_config(const std::function<void(ac_config&)>& edit, const char* what);

  std::unique_ptr<::anychain_bpf, void (*)(::anychain_bpf*)> skel_;
  Options opts_;
  std::vector<bool> path_slot_used_;
};

Result<Mac> interface_mac(const std::string& ifname);  // of an interface of this netns

// Attach the fast path to ifname and, with classify, give it the classifier role (its MAC
// written with it). The one attach of anychaind (its configured interfaces) and of the CLI's
// direct mode (no daemon running).
Result<Attachment> attach_interface(Dataplane& dp, const std::string& ifname, XdpMode mode, bool classify);

// ---- readers.cc: decoders that work on plain map fds (Dataplane's or PinnedMaps') ----
// Sum of a per-CPU ac_counter (fd: a per-CPU array of ac_counter).
Result<ac_counter> read_percpu_counter(int fd, uint32_t key, const char* what);
// Every named ac_stats slot summed over CPUs (AC_STAT_SLOTS entries; unnamed slots are 0).
Result<std::vector<ac_counter>> read_stats(int fd);
// Every ac_paths entry with its ac_path_stats counter, sorted by SPI, then SI descending.
Result<std::vector<PathCounter>> read_path_counters(int paths_fd, int path_stats_fd);
// Decode the flow cache (fd: ac_flow_cache, nsets of AC_FLOW_WAYS ways per CPU): one entry per
// (SPI, SI, hash), its newest choice over the CPUs; optionally of one SPI only.
Result<std::vector<FlowEntry>> read_flow_sets(int fd, uint32_t nsets, size_t limit,
                                              std::optional<uint32_t> spi = std::nullopt);
// Fill each entry's placement from ac_affinity (affinity_fd), mark stale ways and placements
// against ac_instances (instances_fd), and set disagree and split.
Result<void> annotate_placements(std::vector<FlowEntry>& flows, int affinity_fd, int instances_fd);

// ---- jiffies.cc ----
// The kernel's tick length (the resolution of CLOCK_MONOTONIC_COARSE and of jiffies), and a
// duration in ns as jiffies, rounded up (0 stays 0).
uint64_t tick_ns();
uint64_t ns_to_jiffies(uint64_t ns);
// The kernel's jiffies now (from /proc/timer_list; root only).
Result<uint64_t> current_jiffies();

// ---- loader.cc ----
// Privilege and bpffs checks with errors that say what to do.
Result<void> require_root();
Result<void> ensure_bpffs(const std::string& dir);

}  // namespace anychain::dataplane
