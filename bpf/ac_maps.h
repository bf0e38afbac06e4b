/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The fast path's maps. The loader pins them all under AC_PIN_ROOT (pinning by name). */
#ifndef AC_MAPS_H
#define AC_MAPS_H

#include "ac_common.h"
#include <anychain/ftc.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_config SEC(".maps");

/* The interfaces with an anychain role: slot = ifindex for ifindexes below AC_IFACE_DIRECT (an
 * array lookup, which the verifier inlines; flags 0 = no role), the rare larger ones in the hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_IFACE_DIRECT);
	__type(key, __u32);
	__type(value, struct ac_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AC_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct ac_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ifaces_hi SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct ac_policy_bank);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AC_MAX_PATHS);
	__type(key, __u32);
	__type(value, struct ac_path);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_MAX_INSTANCES);
	__type(key, __u32);
	__type(value, struct ac_instance);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_instances SEC(".maps");

/* Per service: a table of AC_WCMP_BUCKETS instance ids. The agent builds a new inner map and
 * swaps it in with one update of the outer slot, so a packet sees the old or the new table. */
struct ac_wcmp_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_WCMP_BUCKETS);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, AC_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ac_wcmp_table);
} ac_wcmp SEC(".maps");

/* Per-CPU set-associative flow cache, one plain array for every CPU: CPU c's sets are the
 * elements c * sets .. c * sets + sets - 1 (sets: a power of two, ac_config.flow_set_mask + 1;
 * max_entries = sets x possible CPUs, set by the loader), AC_FLOW_WAYS ways each. Not a
 * per-CPU array: there each set is an allocation of its own, reached through a pointer per set,
 * so a packet of a random flow paid two dependent memory reads (docs/performance.md). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, AC_FLOW_CACHE_DEFAULT / AC_FLOW_WAYS);
	__type(key, __u32);
	__type(value, struct ac_flow_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_flow_cache SEC(".maps");

/* The flows' shared placements, one per flow and (SPI, SI) (max_entries set by the loader from
 * its own option, affinity_entries: sized by placements, not like the per-CPU flow cache) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AC_AFFINITY_DEFAULT);
	__type(key, struct ac_affinity_key);
	__type(value, struct ac_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_affinity SEC(".maps");

/* Per-CPU next-hop cache (remote instances): FIB results, short-lived. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_NEXTHOP_SLOTS);
	__type(key, __u32);
	__type(value, struct ac_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_nexthop SEC(".maps");

/* Per-CPU last-hop cache (the end of a chain): FIB results, short-lived. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_LASTHOP_SLOTS);
	__type(key, __u32);
	__type(value, struct ac_lasthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_lasthop SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AC_PROXY_DEFAULT);
	__type(key, struct ac_proxy_key);
	__type(value, struct ac_proxy_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_proxy SEC(".maps");

/* The agent's AF_XDP sockets of state replication (docs/state.md 3.10): AC_XSK_SLOT(ifindex,
 * RX queue) */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AC_XSK_IFS * AC_XSK_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_state_xsk SEC(".maps");

/* The egress buffer's AF_XDP sockets (docs/ftc.md 5.1): AC_XSK_SLOT(ifindex, RX queue) */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AC_XSK_IFS * AC_XSK_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ftc_xsk SEC(".maps");

/* The forwarder's returned logs per partition (docs/ftc.md 5.2), written by the agent */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AC_FTC_PENDING_DEFAULT);
	__type(key, struct ac_ftc_pending_key);
	__type(value, struct ac_ftc_pending);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ftc_pending SEC(".maps");

/* What the egress buffer knows of each partition ending here (docs/ftc.md 5.1), written by the
 * agent: a chain's end releases a packet whose logs it covers without the buffer's round trip */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AC_FTC_EGRESS_DEFAULT);
	__type(key, struct ac_ftc_egress_key);
	__type(value, struct ac_ftc_egress);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ftc_egress SEC(".maps");

/* FTC packets a chain's end released itself (ac_ftc_committed), by the interface they arrived
 * on (ifindex < AC_XSK_IFS, as the buffer's sockets): the buffer's port reports them beside its
 * own releases */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_XSK_IFS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_ftc_end_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_ftc_staged);
} ac_ftc_staged SEC(".maps");

/* FIB lookup parameters, off the stack: the forwarder is a subprogram that calls others, and
 * the verifier bounds the stack of a whole call chain (512 bytes) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_fib_lookup);
} ac_fib_scratch SEC(".maps");

/* scratch space for a proxy entry (too large for the stack next to everything else) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_proxy_entry);
} ac_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_STAT_SLOTS);
	__type(key, __u32);
	__type(value, struct ac_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_MAX_PATHS);
	__type(key, __u32);
	__type(value, struct ac_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_path_stats SEC(".maps");

/* packets/bytes handed to each instance (local or remote): the VNF monitor's load input */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_MAX_INSTANCES);
	__type(key, __u32);
	__type(value, struct ac_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_inst_stats SEC(".maps");

/* packets/bytes of chain traffic that came back from each local instance on its veth: a held
 * flow's packet the proxy restores (NSH-unaware) or a valid NSH frame (NSH-aware); nothing else
 * the VNF's side sends (ARP, ND, LLDP, junk). Against ac_inst_stats, the agent's dataplane
 * liveness signal (docs/agent.md, "Liveness"). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_MAX_INSTANCES);
	__type(key, __u32);
	__type(value, struct ac_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ac_inst_returned SEC(".maps");

#endif
