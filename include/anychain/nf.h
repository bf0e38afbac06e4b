/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in network functions (docs/nf.md): what their XDP programs (bpf/nf_<kind>.bpf.c)
 * and the agent (agent/nf/, anychain-nf, `anychain state`) share: the configuration each NF
 * reads, the layouts of its maps and state keys, and its counters. Host order in maps unless a
 * field says otherwise; state keys and values inside the NF state records (bpf/nf_state.h) are
 * big-endian byte strings, as they travel in FTC logs.
 */
#ifndef ANYCHAIN_NF_H
#define ANYCHAIN_NF_H

#include <linux/types.h>

#include "anychain/flow_hash.h"
#include "anychain/ftc.h"

#define AC_NF_RUN_DIR "/run/anychain/nf"  /* <name>.json: what anychain-nf publishes */
#define AC_NF_NETNS_PREFIX "acnf-"       /* an instance's network namespace: acnf-<name> */
#define AC_NF_IFNAME "eth0"              /* the NF side of the instance's veth */
/* The veth's MTU: a full-size inner packet (1500) with the largest NSH (252) */
#define AC_NF_VETH_MTU 1752

/* NF counters (nf_stats: a per-CPU array of __u64, AC_NF_STAT_SLOTS). Every frame the program
 * sees is counted once under AC_NF_RX and ends as exactly one of TX, DROP_* or HOLD. */
enum ac_nf_stat {
	AC_NF_RX = 0,            /* frames seen */
	AC_NF_TX,                /* returned to the fast path (SI - 1, MACs swapped, XDP_TX) */
	AC_NF_DROP_BAD_NSH,      /* not NSH, truncated, version, MD type or length, SI 0 */
	AC_NF_DROP_BAD_INNER,    /* inner IPv4/IPv6 header truncated or malformed */
	AC_NF_DROP_FILTERED,     /* filtered by the NF (firewall rule, NAT without mapping or port) */
	AC_NF_DROP_FTC,          /* dropped by the FTC hop (the reason is in nf_ftc_stats) */
	AC_NF_HOLD,              /* handed to the hold queue by the FTC hop (a gap) */
	AC_NF_NOT_IP,            /* returned unprocessed: the inner packet is not IPv4 or IPv6 */
	AC_NF_PROPAGATING,       /* FTC propagating packets forwarded (no inner packet, NF not run) */
	/* firewall */
	AC_NF_FW_PASSED = 16,    /* passed by a rule or the default */
	AC_NF_FW_DROPPED,        /* dropped by a rule or the default (also counted DROP_FILTERED) */
	/* monitor */
	AC_NF_MON_COUNTED = 24,  /* packets added to a flow's counters */
	AC_NF_MON_NEW_FLOW,      /* flows seen first (or again after their idle timeout) */
	AC_NF_MON_UNCOUNTED,     /* packets whose flow could not be recorded (partition full): passed */
	/* nat */
	AC_NF_NAT_NEW = 32,      /* mappings created */
	AC_NF_NAT_OUT,           /* packets translated inside -> outside (source rewritten) */
	AC_NF_NAT_IN,            /* packets translated outside -> inside (destination rewritten) */
	AC_NF_NAT_NO_PORT,       /* dropped: no free port in the pool */
	AC_NF_NAT_REV_MISS,      /* dropped: to the external address, no mapping */
	AC_NF_NAT_UNSUPPORTED,   /* dropped: not TCP, UDP or ICMP echo, or a non-first fragment */
	AC_NF_NAT_NOT_IPV4,      /* returned untranslated: IPv6 (the NAT is NAPT44) */
	AC_NF_NAT_STORE_FULL,    /* dropped: no state record or slot for the flow */
	AC_NF_NAT_PORT_RACE,     /* another CPU mapped the flow first: the port taken is given back */
	AC_NF_NAT_IN_SHARED,     /* replies translated by a mapping another instance made (nat_shared;
				  * also counted NAT_IN) */
	AC_NF_NAT_SHARED_FULL,   /* a new mapping not shared: nat_shared or nat_fwd full (counted in
				  * ac_crdt_stats too) */
	AC_NF_NAT_OUT_SHARED,    /* outbound packets translated by a mapping another instance made
				  * (nat_fwd; also counted NAT_OUT) */
	/* ids (port-scan detector) */
	AC_NF_IDS_NEW_PAIR = 48, /* (source, protocol, destination port) pairs no replica had seen */
	AC_NF_IDS_SCAN_FLAGGED,  /* sources this instance flagged (the estimate reached the threshold) */
	AC_NF_IDS_SCAN_PACKETS,  /* packets from flagged sources (with action drop: also DROP_FILTERED) */
	AC_NF_IDS_NO_WINDOW,     /* packets not counted: no window set up (the process is rolling it) */
	AC_NF_IDS_FLAG_FULL,     /* a source to flag, but the flagged set is full */
	AC_NF_IDS_NO_PORTS,      /* TCP/UDP-less packets (ICMP, fragments): only the flag is checked */
	AC_NF_IDS_FULL_ESTIMATE, /* packets whose source's first sketch row was at or over the
				  * threshold, so the other rows were read too (a source reaching it,
				  * a row inflated by other sources, a flag retried: FLAG_FULL) */
	/* ratelimit */
	AC_NF_RL_PASSED = 56,    /* packets under the global limit: counted and passed */
	AC_NF_RL_DROPPED,        /* packets over it (the merged count reached the limit): dropped */
	AC_NF_RL_NO_WINDOW,      /* packets passed uncounted: no window set up */
	AC_NF_STAT_END
};
#define AC_NF_STAT_SLOTS 64

/* State tables inside the NF's partition records (bpf/nf_state.h, table ids of the FTC log) */
#define AC_NF_TABLE_FLOW 1       /* monitor: flow counters; nat: the flow's mapping */

/* Idle timeouts are nf_ftc_cfg's idle_jiffies (include/anychain/ftc.h): a record idle longer is
 * reset by its next transaction (monitor: the flow counts from 0 again; NAT: the flow gets a new
 * mapping), and anychain-nf reclaims records idle longer than that plus 30 s. */

/* A flow key (FTC log key): IPv4 5-tuple, 13 bytes, or an IPv6 flow's 16-byte digest */
#define AC_NF_KEY4_LEN 13        /* src (4), dst (4), proto (1), sport (2), dport (2), big-endian */
#define AC_NF_KEY6_LEN 16        /* digest of the IPv6 5-tuple (nf_mon_v6 names it) */

/* The digest key of an IPv6 flow (addresses and ports as on the wire): two chained SplitMix64
 * finalisers over the addresses, then protocol and ports, written big-endian. */
AC_INLINE void ac_nf_digest6(const __u32 *src, const __u32 *dst, __u8 proto, __u16 sport, __u16 dport, __u8 *out)
{
	__u64 x = 0x6e66u, y, z;

	for (int i = 0; i < 4; i++)
		x = ac_mix64(x ^ (((__u64)src[i] << 32) | dst[i]));
	y = ac_mix64(x ^ (((__u64)proto << 32) | ((__u32)sport << 16) | dport));
	z = ac_mix64(y ^ AC_HASH_M1);
	for (int i = 0; i < 8; i++) {
		out[i] = (__u8)(y >> (56 - 8 * i));
		out[8 + i] = (__u8)(z >> (56 - 8 * i));
	}
}

/* ---- firewall (bpf/nf_firewall.bpf.c) ---- */
#define AC_NF_FW_RULES 64
#define AC_NF_FW_PASS 0
#define AC_NF_FW_DROP 1
struct ac_nf_fw_rule {
	__be32 src[4];           /* prefix, masked; IPv4 in [0] */
	__be32 dst[4];
	__be32 src_mask[4];
	__be32 dst_mask[4];
	__u8 family;             /* 4, 6, or 0: both (src and dst are then "any") */
	__u8 proto;              /* 0 = any */
	__u8 action;             /* AC_NF_FW_PASS or AC_NF_FW_DROP */
	__u8 pad;
	__u16 sport_lo, sport_hi; /* inclusive, host order (only with proto TCP or UDP) */
	__u16 dport_lo, dport_hi;
	__u32 pad2;
};
/* nf_fw_cfg[0] */
struct ac_nf_fw_cfg {
	__u32 nrules;            /* rules in use, in order: the first match decides */
	__u32 default_action;    /* when no rule matches */
};
/* nf_fw_hits: per-CPU array of AC_NF_FW_RULES + 1 counters; the last is the default action */
struct ac_nf_counter {
	__u64 packets;
	__u64 bytes;             /* inner (L3) bytes */
};

/* ---- monitor (bpf/nf_monitor.bpf.c) ---- */
/* A flow's value in table AC_NF_TABLE_FLOW: packets (8), bytes (8), big-endian */
#define AC_NF_MON_VAL_LEN 16
/* nf_mon_v6: the IPv6 flows behind their digests (an LRU hash, for `anychain state`) */
struct ac_nf_flow6 {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport, dport;      /* host order */
	__u8 proto;
	__u8 pad[3];
};

/* ---- NAT (bpf/nf_nat.bpf.c): NAPT44 with a port pool on one external address ---- */
/* A mapping's value in table AC_NF_TABLE_FLOW: external address (4), external port (2), 0 (2) */
#define AC_NF_NAT_VAL_LEN 8
#define AC_NF_NAT_POOL_WORDS 1024 /* nf_nat_ports: 65536 bits, one per port; 1 = taken or outside
				   * the pool (anychain-nf sets the bits outside lo..hi at start) */
/* nf_nat_cfg[0] */
struct ac_nf_nat_cfg {
	__be32 address;          /* the external address */
	__u16 port_lo, port_hi;  /* the pool, inclusive, host order */
};
/* nf_nat_rev: reply traffic -> the flow (derived from the mappings, never replicated) */
struct ac_nf_nat_rkey {
	__be32 remote;           /* the peer's address (the reply's source) */
	__be16 remote_port;      /* the reply's source port (0 for ICMP) */
	__be16 port;             /* the external port (the reply's destination port, ICMP id) */
	__u8 proto;
	__u8 pad[3];
};
struct ac_nf_nat_rval {
	__be32 inside;           /* the inside address and port the reply goes back to */
	__be16 inside_port;
	__u16 pad;
	__u32 spi_si;            /* the mapping's partition (nf_head key) */
	__u32 hash;
};

/* ---- FTC inside an NF (bpf/nf_state.h) and the anychain-nf process around it ---- */

/* A record of the ring buffer nf_overflow: a whole log whose STUB went on the packet (docs/ftc.md
 * 2.6), with what anychain-nf needs to send it at once in a propagating packet of the same
 * partition out of eth0. The first part is ftc.h's record, unchanged. */
struct ac_nf_overflow {
	struct ac_ftc_overflow o; /* partition (SI at this hop), f, the log's value bytes */
	__u32 ingress;           /* the control TLV's ingress endpoint (IPv4, host order) */
	__u8 eth[14];            /* the packet's Ethernet header as it arrived: destination this NF,
				  * source the fast path's side of the veth */
	__u8 next_proto;         /* the NSH's next protocol */
	__u8 pad;
};

/* anychain-nf's own counters (nf_proc_stats: an array of __u64 in every NF object, written by the
 * process, read by `anychain state`): the hold queue (docs/ftc.md 4.2), the overflow sender (2.6),
 * reclaiming (6.2) and the FTC control file (docs/nf.md, "FTC control"). */
enum ac_nf_proc_stat {
	AC_NF_PS_HOLD_QUEUED = 0,   /* frames taken into the hold queue */
	AC_NF_PS_HOLD_RELEASED,     /* held frames re-run (live frames) once their gap closed */
	AC_NF_PS_HOLD_FULL,         /* frames dropped: the queue (or the partition's share) was full */
	AC_NF_PS_HOLD_EXPIRED,      /* held frames dropped: held longer than the hold timeout */
	AC_NF_PS_HOLD_RERUN_FAILED, /* re-runs the kernel refused (the frame is lost) */
	AC_NF_PS_HOLD_BAD,          /* frames in the queue's socket that are not held FTC packets */
	AC_NF_PS_HOLD_RING_DROPPED, /* frames the kernel dropped before the queue: its socket's RX
				     * ring or fill ring was empty or full (XDP_STATISTICS) */
	AC_NF_PS_HOLD_DEPTH,        /* frames held now (a gauge) */
	AC_NF_PS_HOLD_PARTITIONS,   /* partitions with held frames now (a gauge) */
	AC_NF_PS_OVERFLOW_SENT,     /* propagating packets sent for stubbed logs */
	AC_NF_PS_OVERFLOW_FAILED,   /* stubbed logs that could not be sent (no TX frame, too big) */
	AC_NF_PS_HEAD_RECLAIMED,    /* idle head records deleted */
	AC_NF_PS_REPLICA_RECLAIMED, /* idle replica records deleted */
	AC_NF_PS_CONTROL_LOADS,     /* FTC control file versions applied */
	AC_NF_PS_CONTROL_ERRORS,    /* FTC control file versions refused (the previous one stays) */
	AC_NF_PS_RESYNC_ASKED,      /* re-requests of a gap's record sent to the agent (docs/ftc.md 4.3) */
	AC_NF_PS_RESYNC_LIMITED,    /* re-requests not sent: over the rate limit */
	AC_NF_PS_RESYNC_UNSENT,     /* re-requests the agent's socket did not take (no agent, full) */
	AC_NF_PS_NAT_PORTS_HELD,    /* NAT: ports whose mapping this instance no longer holds but the
				     * shared table still does (another instance's flow uses it, or
				     * not expired yet): kept, not given back (a gauge; docs/state.md 4.3) */
	AC_NF_PS_END
};
#define AC_NF_PROC_STAT_SLOTS 32

/* ---- shared-state NFs (docs/state.md 4.1, 4.2; bpf/nf_crdt.h) ---- */
/* ids (bpf/nf_ids.bpf.c): its objects (ids of the replication schema, agent/nf/crdt.*). The
 * pairs filter and the ports sketch are windowed: generation g of each is the map ids_<obj><g>. */
#define AC_NF_IDS_OBJ_PAIRS0 1   /* counting Bloom filter over (source, protocol, port): k x m */
#define AC_NF_IDS_OBJ_PAIRS1 2
#define AC_NF_IDS_OBJ_PORTS0 3   /* count-min sketch over sources: distinct ports, rows x width */
#define AC_NF_IDS_OBJ_PORTS1 4
#define AC_NF_IDS_OBJ_FLAGGED 5  /* add-wins set of flagged sources (struct ac_nf_ids_src) */
#define AC_NF_IDS_PASS 0
#define AC_NF_IDS_DROP 1
/* nf_ids_cfg[0] */
struct ac_nf_ids_cfg {
	__u32 threshold;         /* distinct ports in a window that flag a source */
	__u32 action;            /* AC_NF_IDS_PASS (count only) or AC_NF_IDS_DROP */
	__u32 pairs_mask;        /* filter cells - 1 (a power of two) */
	__u32 pairs_hashes;      /* k, 1..8 */
	__u32 ports_mask;        /* sketch width - 1 (a power of two) */
	__u32 ports_rows;        /* 1..8 */
};
/* A source host: the flagged set's key */
struct ac_nf_ids_src {
	__be32 addr[4];          /* IPv4 in addr[0], the rest 0 */
	__u8 family;             /* 4 or 6 */
	__u8 pad[3];
};
/* The sketch's key hash of a source, and the filter's of a (source, protocol, port) pair */
AC_INLINE __u64 ac_nf_ids_src_hash(const struct ac_nf_ids_src *s)
{
	__u64 h = ac_mix64((((__u64)s->addr[0] << 32) | s->addr[1]) ^ ((__u64)s->family * AC_HASH_M1));

	return ac_mix64(h ^ (((__u64)s->addr[2] << 32) | s->addr[3]));
}
AC_INLINE __u64 ac_nf_ids_pair_hash(__u64 src_hash, __u8 proto, __u16 dport)
{
	return ac_mix64(src_hash + (((__u64)proto << 16) | dport) * AC_HASH_M1 + 1);
}

/* ratelimit (bpf/nf_ratelimit.bpf.c): one windowed G-counter cell, generation g = object g + 1 */
#define AC_NF_RL_OBJ_COUNT0 1
#define AC_NF_RL_OBJ_COUNT1 2
#define AC_NF_RL_BYTES 0
#define AC_NF_RL_PACKETS 1
/* nf_rl_cfg[0] */
struct ac_nf_rl_cfg {
	__u64 limit;             /* per window, over every instance of the service */
	__u32 unit;              /* AC_NF_RL_BYTES (inner L3 bytes) or AC_NF_RL_PACKETS */
	__u32 pad;
};

/* nat_shared (docs/state.md 4.3): every instance's mappings, a deterministic-winner map replicated
 * between the NAT instances of a service (object AC_NF_NAT_OBJ_SHARED), keyed like nf_nat_rev
 * (struct ac_nf_nat_rkey), the register's data a struct ac_nf_nat_shared (its first bytes, the
 * external address and port, rank concurrent writers), seen a CLOCK_TAI time in ns */
#define AC_NF_NAT_OBJ_SHARED 1
#define AC_NF_NAT_SHARED_SEEN_NS 1000000000ULL /* seen replicated when it moved by more than 1 s */
struct ac_nf_nat_shared {
	__be32 external;
	__be16 external_port;
	__be16 inside_port;
	__be32 inside;
};
/* nat_fwd (docs/state.md 4.3): the same mappings keyed by the inside flow, so that an outbound
 * packet of a flow another instance mapped is translated with that mapping (object
 * AC_NF_NAT_OBJ_FWD, data a struct ac_nf_nat_shared as nat_shared's, seen alike) */
#define AC_NF_NAT_OBJ_FWD 2
struct ac_nf_nat_fkey {
	__be32 inside;           /* the flow's inside source */
	__be32 remote;           /* its destination */
	__be16 inside_port;      /* source port (ICMP: the echo id) */
	__be16 remote_port;      /* destination port (ICMP: 0) */
	__u8 proto;
	__u8 pad[3];
};

#ifdef __cplusplus
static_assert(AC_NF_PS_END <= AC_NF_PROC_STAT_SLOTS, "anychain-nf counters overflow their map");
static_assert(AC_NF_STAT_END <= AC_NF_STAT_SLOTS, "NF counters overflow their map");
static_assert(sizeof(struct ac_nf_fw_rule) == 80, "firewall rule layout");
static_assert(sizeof(struct ac_nf_nat_rkey) == 12 && sizeof(struct ac_nf_nat_rval) == 16, "NAT reverse layout");
static_assert(sizeof(struct ac_nf_nat_fkey) == 16, "NAT forward key layout");
static_assert(sizeof(struct ac_nf_ids_src) == 20 && sizeof(struct ac_nf_ids_cfg) == 24, "ids layouts");
#else
_Static_assert(AC_NF_PS_END <= AC_NF_PROC_STAT_SLOTS, "anychain-nf counters overflow their map");
_Static_assert(AC_NF_STAT_END <= AC_NF_STAT_SLOTS, "NF counters overflow their map");
_Static_assert(sizeof(struct ac_nf_fw_rule) == 80, "firewall rule layout");
_Static_assert(sizeof(struct ac_nf_nat_rkey) == 12 && sizeof(struct ac_nf_nat_rval) == 16, "NAT reverse layout");
_Static_assert(sizeof(struct ac_nf_nat_fkey) == 16, "NAT forward key layout");
#endif

#endif /* ANYCHAIN_NF_H */
