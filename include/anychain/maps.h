/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Keys and values of anychain's BPF maps. Included by the BPF fast path and by the C++ agent;
 * tests/bpf/btf_layout_test.cc checks every size and offset here against the built object's BTF.
 * Addresses and the SPI/SI word are in network byte order; everything else is host order.
 */
#ifndef ANYCHAIN_MAPS_H
#define ANYCHAIN_MAPS_H

#include <linux/types.h>

#define AC_PIN_ROOT "/sys/fs/bpf/anychain"

#define AC_MAX_POLICIES 64       /* classifier rules, evaluated in index order */
/* The policy array holds two banks of AC_MAX_POLICIES rules. The writer fills the idle bank,
 * then publishes bank and count in ac_config.policies with one 32-bit store. */
#define AC_POLICY_WORD(bank, count) ((((__u32)(bank) & 1) << 16) | ((__u32)(count) & 0xffff))
#define AC_POLICY_BANK(w) (((w) >> 16) & 1)
#define AC_POLICY_COUNT(w) ((w) & 0xffff)
#define AC_MAX_PATHS 16384       /* (SPI, SI) entries */
#define AC_MAX_SERVICES 1024     /* service ids 1..AC_MAX_SERVICES-1 */
#define AC_MAX_INSTANCES 16384   /* instance ids 1..; 0 means "none" */
#define AC_IFACE_DIRECT 4096     /* ifindexes below: a slot of the ac_ifaces array (no hashing) */
#define AC_MAX_IFACES 256        /* interfaces with a larger ifindex (ac_ifaces_hi, a hash) */
#define AC_WCMP_BUCKETS 4093     /* buckets per service table (prime, Maglev) */
#define AC_FLOW_CACHE_DEFAULT 65536 /* per-CPU flow cache entries (ways); resized by the loader */
#define AC_FLOW_WAYS 4           /* flow cache: ways per set (the set is the LRU unit) */
#define AC_FLOW_CACHE_MIN 1024   /* smallest flow cache (entries per CPU, a power of two) */
/* ac_affinity holds one placement per flow AND chain position (SPI, SI): sized by placements, not
 * like the flow cache (10,000 flows through a chain of 10 services are 100,000+ placements) */
#define AC_AFFINITY_DEFAULT 262144 /* shared placements (all CPUs); resized by the loader */
#define AC_AFFINITY_MIN 1024     /* smallest ac_affinity */
#define AC_NEXTHOP_TTL_DEFAULT 1000000000ULL /* next-hop cache lifetime, ns (1 s) */
#define AC_NEXTHOP_SLOTS 16384   /* next-hop cache entries per CPU, a power of two */
#define AC_LASTHOP_SLOTS 16384   /* last-hop cache entries per CPU, a power of two */
#define AC_PROXY_DEFAULT 16384
#define AC_PROXY_NSH_MAX 252     /* NSH bytes the SFC proxy keeps per flow (largest NSH) */
/* The node's AF_XDP sockets in XSKMAPs (ac_state_xsk: state replication, docs/state.md 3.10;
 * ac_ftc_xsk: the FTC egress buffer, docs/ftc.md 5.1). A socket is bound to one interface's RX
 * queue and the kernel drops a frame redirected to a socket of another device, so each map has
 * one slot per (interface, RX queue): AC_XSK_SLOT(ifindex, queue), for ifindexes below
 * AC_XSK_IFS and queues below AC_XSK_QUEUES (other frames: no socket, as the map's user says). */
#define AC_XSK_QUEUES 16
#define AC_XSK_IFS 1024
#define AC_XSK_SLOT(ifindex, queue) ((__u32)(ifindex) * AC_XSK_QUEUES + (__u32)(queue))
#define AC_FTC_PENDING_MAX 224   /* ac_ftc_pending: bytes of returned logs per partition (the room
				  * of an FTC NSH after its base, flow hash and control TLVs) */
#define AC_FTC_PENDING_DEFAULT 65536 /* ac_ftc_pending entries (partitions with returned logs) */
#define AC_FTC_EGRESS_DEFAULT 65536  /* ac_ftc_egress entries (partitions at this node's chain ends) */

/* ac_config: the single entry of the config array */
#define AC_CFG_SYMMETRIC_HASH (1u << 0) /* default for policies without their own flag */
#define AC_CFG_OAM_FORWARD (1u << 1)    /* forward NSH packets with the O bit set (RFC 8300 sec. 2.2:
					 * an SFF without OAM support SHOULD discard them: the default) */
struct ac_config {
	__be32 local_endpoint;  /* this node's NSH endpoint (VXLAN-GPE outer source) */
	__u32 flags;
	__u32 policies;         /* live rule set: AC_POLICY_BANK() and AC_POLICY_COUNT() */
	__u16 gpe_port;         /* UDP port of VXLAN-GPE, host order (4790) */
	__u8 default_ttl;       /* NSH TTL pushed by the classifier */
	__u8 pad;
	__u32 flow_set_mask;    /* flow cache sets - 1 (a power of two - 1); written by the loader */
	__u32 path_epoch;       /* bumped on every ac_paths change: cached path data of another
				 * epoch is re-read from ac_paths */
	/* Times in jiffies (bpf_jiffies64(), which the verifier inlines: no helper call), so their
	 * resolution is one scheduler tick; the library converts from ns, rounding up. */
	__u64 flow_timeout_jiffies; /* idle timeout of flow cache entries, 0 = never */
	__u64 nexthop_ttl_jiffies;  /* lifetime of a cached FIB result (a remote instance's
				     * endpoint, a chain's last hop), 0 = a FIB lookup per packet */
	__u32 slow_ifindex;     /* the agent's slow path (docs/slow-path.md): packets too big for
				 * their next hop go there; 0 = none, they are dropped */
	__u16 state_port;       /* UDP port of state replication (docs/state.md 3.10), host order:
				 * IPv4/UDP to local_endpoint on it goes to the agent's AF_XDP socket
				 * of its interface and RX queue (ac_state_xsk); 0 = replication off */
	__u16 fib_gen;          /* FIB generation: bumped when a route, rule, neighbour or link
				 * changes; a cached FIB result (ac_nexthop, ac_lasthop) of another
				 * generation is not used. 16 bits: the library empties both caches
				 * every AC_FIB_GEN_FLUSH bumps, so a generation never comes back
				 * while an entry stamped with it is still in a cache */
};
#define AC_FIB_GEN_FLUSH 0x8000u

/* ac_ifaces: ifindex -> what the fast path knows of that interface. The program acts only on
 * frames addressed to the interface's own unicast MAC; an interface without AC_IF_ATTACHED is
 * unknown and its frames go to the stack untouched. */
#define AC_IF_CLASSIFY (1u << 0)  /* plain IP arriving here is classified */
#define AC_IF_VNF (1u << 1)       /* host side of a local VNF's veth */
#define AC_IF_ATTACHED (1u << 2)  /* the entry is valid: mac is this interface's */
#define AC_IF_SLOW_PATH (1u << 3) /* the fast-path end of the agent's slow path: what arrives here
				   * was re-injected by the agent */
struct ac_iface {
	__u32 flags;
	__u32 instance_id;       /* AC_IF_VNF: the instance behind this veth */
	__u8 mac[6];             /* this interface's own MAC */
	__u8 pad[2];
};

/* ac_policy: classifier rule; prefixes in network order, IPv4 in addr[0] */
#define AC_POL_SYMMETRIC (1u << 0) /* hash both directions of a flow alike */
#define AC_POL_MD2 (1u << 1)       /* push MD type 2 (flow hash as a TLV) instead of MD type 1 */
#define AC_POL_FTC (1u << 2)       /* an FTC chain (docs/ftc.md 2.1): MD type 2 with the control TLV
				    * (ftc_f, this node's endpoint) and the partition's returned logs
				    * (ac_ftc_pending) after the flow hash TLV */
struct ac_policy {
	__be32 src[4];           /* prefix, already masked */
	__be32 dst[4];
	__be32 src_mask[4];      /* the prefix length as a mask per word (the program only ANDs) */
	__be32 dst_mask[4];
	__u8 family;             /* 4 or 6 */
	__u8 ftc_f;              /* AC_POL_FTC: f, 1..4 (the control TLV's) */
	__u8 pad;
	__u8 proto;              /* 0 = any */
	__u16 sport_lo, sport_hi; /* inclusive, host order */
	__u16 dport_lo, dport_hi;
	__u32 spi;               /* 24 bits */
	__u32 flags;
};

/* ac_policies: one bank of rules per array slot (AC_POLICY_BANK() of ac_config.policies is live):
 * one lookup per classified packet, then the rules in order */
struct ac_policy_bank {
	struct ac_policy rule[AC_MAX_POLICIES];
};

/* ac_paths: key is AC_SPI_SI(spi, si) in network order (the NSH word as read) */
#define AC_PATH_LAST_HOP (1u << 0) /* this SI ends the chain: pop NSH and route */
struct ac_path {
	__u32 service_id;        /* 0 with AC_PATH_LAST_HOP */
	__u32 flags;
	__u32 stats_idx;         /* slot of this (SPI, SI) in ac_path_stats, < AC_MAX_PATHS */
};

/* ac_instances: instance id -> where it is */
#define AC_INST_LOCAL (1u << 0)     /* behind a local veth (ifindex) */
#define AC_INST_NSH_AWARE (1u << 1) /* gets NSH over Ethernet; else served through the proxy */
#define AC_INST_LIVE (1u << 2)      /* cleared on withdrawal; the generation is kept */
#define AC_INST_RECOVERING (1u << 3) /* an FTC instance that failed and is being recovered (not
				      * live, docs/ftc.md 7.2): flows placed on it keep their
				      * placement and their packets are dropped (drop_ftc_recovering)
				      * instead of being placed elsewhere without their state */
struct ac_instance {
	__u32 ifindex;           /* local: host-side veth */
	__be32 endpoint;         /* remote: NSH endpoint of its node (VXLAN-GPE outer dst) */
	__u8 mac[6];             /* local: the VNF's MAC */
	__u8 flags;
	__u8 pad;
	__u32 generation;        /* changes whenever the id is reused or the instance changes */
	__u32 vni;               /* remote: VXLAN-GPE VNI, 24 bits: names the instance to its node */
	__u8 if_mac[6];          /* local: MAC of the host-side veth (source of frames to it) */
	__u16 service_id;        /* the service it serves */
	__u16 mtu;               /* local: the veth's MTU (L3 bytes a frame may carry after its
				  * Ethernet header); 0 = not known, not checked */
	__u16 pad2;
};

/* ac_flow_cache: every CPU's sets in one array (CPU c's set i: element c * sets + i), AC_FLOW_WAYS ways each. (SPI, SI, flow hash) selects a
 * set (ac_flow_set_of) and is compared against every way's key; a miss replaces the set's least
 * recently used way. A way caches the chosen instance and, tagged with the path epoch, what the
 * forwarder needs from ac_paths, so a hit needs neither the path nor the WCMP lookup. */
struct ac_flow {
	__u64 last_seen;         /* jiffies (bpf_jiffies64()): idle timeout and the set's LRU
				  * order; 0 = never used */
	__u32 spi_si;            /* network order; 0 = empty way (SI 0 is never forwarded) */
	__u32 hash;              /* flow hash */
	__u32 instance_id;       /* 0 for a last-hop (SPI, SI) */
	__u32 generation;        /* must equal the instance's, else the entry is stale */
	__u32 path_epoch;        /* service_id and path_slot are valid while this equals
				  * ac_config.path_epoch */
	__u16 service_id;        /* the path's service; 0 = last hop */
	__u16 path_slot;         /* the path's ac_path_stats slot */
};
struct ac_flow_set {
	struct ac_flow way[AC_FLOW_WAYS];
};

/* ac_affinity: the one placement of a flow at an (SPI, SI) that every CPU uses, in an LRU hash
 * shared by the CPUs and consulted on a per-CPU cache miss. The first CPU to place a flow wins
 * (an insert that must not exist); a placement whose instance died or changed is replaced by
 * the first CPU that notices, with a compare-and-swap on the whole word, so two CPUs never keep
 * two placements. Sized like the per-CPU flow cache (entries, not ways per CPU). */
struct ac_affinity_key {
	__u32 spi_si;            /* network order */
	__u32 hash;
};
struct ac_affinity {
	__u64 pick;              /* AC_AFFINITY(instance id, its generation) */
};
#define AC_AFFINITY(id, gen) (((__u64)(gen) << 32) | (__u32)(id))
#define AC_AFFINITY_ID(p) ((__u32)(p))
#define AC_AFFINITY_GEN(p) ((__u32)((p) >> 32))

/* Set of (SPI/SI word as on the wire, flow hash) in a cache of mask + 1 sets (BPF and C++).
 * The SI is the word's top byte on a little-endian load: the fold brings it down to the low
 * bits, so the SIs of one flow spread over sets too. */
static inline __u32 ac_flow_set_of(__u32 spi_si, __u32 hash, __u32 mask)
{
	__u32 x = spi_si * 0x9e3779b1u;

	x ^= x >> 16;
	return (hash ^ x) & mask;
}

/* ac_nexthop: per-CPU, direct-mapped by (instance id, ingress interface) (ac_nexthop_slot): the
 * FIB result for a remote instance's endpoint. The key is kept and compared; a collision only
 * costs a FIB lookup. */
struct ac_nexthop {
	__u64 expires;           /* jiffies; the entry is used only before this; 0 = empty */
	__u32 instance_id;
	__u32 generation;        /* the instance's generation when it was filled */
	__u32 in_ifindex;        /* ingress interface the FIB was asked for */
	__u32 ifindex;           /* egress interface */
	__be32 saddr;            /* outer source (local endpoint) the FIB was asked for */
	__u8 smac[6];
	__u8 dmac[6];
	__u16 mtu;               /* the FIB's MTU for the route: longer packets ask the FIB */
	__u16 fib_gen;           /* ac_config.fib_gen when it was filled */
	__u32 pad2;
};

static inline __u32 ac_nexthop_slot(__u32 instance_id, __u32 in_ifindex)
{
	__u32 x = instance_id * 0x9e3779b1u ^ in_ifindex * 0x85ebca6bu;

	return (x ^ (x >> 15)) & (AC_NEXTHOP_SLOTS - 1);
}

/* ac_lasthop: per-CPU, direct-mapped by the inner packet's addresses and ingress interface
 * (ac_lasthop_slot): the FIB result for the end of a chain, so that a chain's last hop does not
 * ask the FIB for every packet. Everything the lookup was asked with except the ports is kept
 * and compared (a collision costs a lookup): with the kernel's default L3 multipath hash the
 * answer depends on nothing else. Valid until it expires (ac_config.nexthop_ttl_jiffies) or the
 * agent bumps ac_config.fib_gen on a route, rule, neighbour or link change. */
struct ac_lasthop {
	__u64 expires;           /* jiffies; the entry is used only before this; 0 = empty */
	__be32 src[4];           /* inner source and destination; IPv4 in [0], the rest 0 */
	__be32 dst[4];
	__u32 in_ifindex;        /* ingress interface the FIB was asked for */
	__u32 ifindex;           /* egress interface */
	__u8 smac[6];
	__u8 dmac[6];
	__u16 mtu;               /* the FIB's MTU for the route: longer packets ask the FIB */
	__u8 family;             /* AF_INET or AF_INET6 */
	__u8 tos;                /* IPv4 TOS the FIB was asked with (0 for IPv6) */
	__u8 l4_protocol;
	__u8 pad;
	__u16 fib_gen;           /* ac_config.fib_gen when it was filled */
	__u8 pad2[4];
};

static inline __u32 ac_lasthop_slot(const __be32 *src, const __be32 *dst, __u32 in_ifindex)
{
	__u32 x = in_ifindex * 0x85ebca6bu;

	for (int i = 0; i < 4; i++)
		x = (x ^ src[i]) * 0x9e3779b1u ^ dst[i] * 0xc2b2ae35u;
	return (x ^ (x >> 15)) & (AC_LASTHOP_SLOTS - 1);
}

/* ac_proxy: NSH held by the SFC proxy while an NSH-unaware VNF has the packet */
struct ac_proxy_key {
	__u32 ifindex;           /* host-side veth of the VNF */
	__u32 hash;              /* directional hash of the inner 5-tuple */
};
struct ac_proxy_entry {
	__u8 nsh[AC_PROXY_NSH_MAX];
	__u16 len;               /* bytes of nsh[] in use, multiple of 4, >= 8 */
	__u16 pad;
};

/* ac_stats: per-CPU counters, one slot per reason. Every packet the program sees ends under
 * exactly one verdict reason (passed to the stack or sent on) or one drop reason; notes count
 * work done on the way and are not outcomes (a packet can have several, or none). The three
 * kinds are separate enums, so the compiler refuses one where another is expected
 * (-Wenum-conversion), and each has a fixed range of slots, so a reason added later moves no
 * other slot and the pinned map keeps its size. */
#define AC_STAT_VERDICT_BASE 0
#define AC_STAT_DROP_BASE 32
#define AC_STAT_NOTE_BASE 96
#define AC_STAT_SLOTS 128

enum ac_verdict_reason {
	/* XDP_PASS: not ours, handed to the stack untouched */
	AC_PASS_NOT_OURS = AC_STAT_VERDICT_BASE, /* not NSH, not VXLAN-GPE to us, not from a VNF,
						   * no policy */
	AC_PASS_NO_CONFIG,       /* the agent has not written the config yet */
	/* XDP_REDIRECT: chain packets sent on */
	AC_FWD_LOCAL_NSH,        /* to a local NSH-aware VNF, NSH over Ethernet */
	AC_FWD_LOCAL_PROXY,      /* to a local NSH-unaware VNF, NSH held by the proxy */
	AC_FWD_REMOTE,           /* VXLAN-GPE to another node */
	AC_FWD_LAST_HOP,         /* NSH popped, inner packet routed by FIB */
	/* XDP_PASS: chain packets the stack finishes */
	AC_PASS_NO_NEIGH,        /* FIB knows the route but no neighbour: the stack resolves it */
	AC_PASS_LAST_HOP,        /* last hop, inner packet handed to the stack to route */
	AC_PASS_PROXY_MISS,      /* IP from a VNF veth with no held NSH (not chain traffic) */
	AC_PASS_NO_IFACE,        /* an interface the agent has not described (AC_IF_ATTACHED) */
	AC_PASS_OTHER_HOST,      /* a frame for another unicast MAC (promiscuous NIC, bridge port) */
	AC_PASS_MULTICAST,       /* a frame for a group MAC (broadcast, multicast): never chained */
	AC_PASS_GPE_FRAGMENT,    /* an IPv4 fragment of UDP to our endpoint: the stack reassembles
				  * it for the agent's VXLAN-GPE socket, which re-injects it */
	AC_FWD_SLOW_PATH,        /* too big for its next hop: to the agent, which fragments it
				  * (IPv4 without DF) or answers ICMP (docs/slow-path.md) */
	AC_FWD_STATE_XSK,        /* state replication datagram to the agent's AF_XDP socket of
				  * its interface and RX queue (docs/state.md 3.10) */
	AC_PASS_STATE_NO_XSK,    /* state replication datagram on a queue without an AF_XDP socket
				  * (or beyond AC_XSK_IFS / AC_XSK_QUEUES): to the stack, where the
				  * agent's UDP socket receives it */
	AC_FWD_FTC_BUFFER,       /* an FTC packet (control TLV) at its chain's end: to the egress
				  * buffer's AF_XDP socket with its NSH (docs/ftc.md 5.1) */
	AC_VERDICT_END
};

enum ac_drop_reason {
	AC_DROP_NONE = 0,        /* not a reason: what a step that can fail returns when it did not */
	AC_DROP_TRUNCATED = AC_STAT_DROP_BASE, /* outer Ethernet/IP/UDP/VXLAN-GPE shorter than
						 * its header */
	AC_DROP_NSH_TRUNCATED,   /* NSH length beyond the packet */
	AC_DROP_NSH_VERSION,
	AC_DROP_NSH_MD_TYPE,     /* unknown MD type, or length inconsistent with it */
	AC_DROP_NSH_TLV,         /* MD2 TLV overruns the NSH header */
	AC_DROP_NSH_NEXT_PROTO,  /* next protocol unknown, or not servable on this path */
	AC_DROP_TTL,             /* NSH TTL expired */
	AC_DROP_SI_ZERO,
	AC_DROP_NO_PATH,         /* (SPI, SI) unknown */
	AC_DROP_NO_INSTANCE,     /* service without table, empty bucket or dead instance */
	AC_DROP_GPE_NEXT_PROTO,  /* VXLAN-GPE whose next protocol is not NSH */
	AC_DROP_GPE_FLAGS,       /* VXLAN-GPE with P bit clear or an unknown version */
	AC_DROP_NO_ROOM,         /* bpf_xdp_adjust_head failed */
	AC_DROP_FIB,             /* no route to the next node's NSH endpoint */
	AC_DROP_TOO_BIG,         /* too big for its next hop and no slow path to fragment it or
				  * answer ICMP (agent not running) */
	AC_DROP_OAM,             /* NSH O bit set and OAM forwarding not enabled */
	AC_DROP_INSTANCE_GONE,   /* VXLAN-GPE naming a local instance that is no longer live: the
				  * sending node owns the choice and places the flow again; this node
				  * never re-places it (a moved flow moves once) */
	AC_DROP_FTC_RECOVERING,  /* placed on an FTC instance under recovery (AC_INST_RECOVERING):
				  * held back until its replacement has the flow's state */
	AC_DROP_FTC_NO_BUFFER,   /* an FTC packet at its chain's end with no buffer socket for its
				  * interface and RX queue: never released uncommitted */
	AC_DROP_FTC_PROXY,       /* an FTC packet for an NSH-unaware instance: the SFC proxy keeps
				  * one NSH per flow, per-packet logs cannot cross it */
	AC_DROP_END
};

enum ac_note {
	AC_NOTE_CLASSIFIED = AC_STAT_NOTE_BASE, /* policy matched, NSH assigned (then forwarded) */
	AC_NOTE_GPE_DECAP,       /* VXLAN-GPE from another node, outer headers removed */
	AC_NOTE_PROXY_RETURN,    /* back from an NSH-unaware VNF, NSH restored with SI - 1 */
	AC_NOTE_CACHE_HIT,
	AC_NOTE_CACHE_MISS,
	AC_NOTE_CACHE_STALE,     /* cached instance withdrawn or changed: WCMP chose again */
	AC_NOTE_FROM_SLOW_PATH,  /* re-injected by the agent (reassembled VXLAN-GPE) */
	AC_NOTE_AFFINITY_HIT,    /* a per-CPU miss answered by the flow's shared placement */
	AC_NOTE_AFFINITY_NEW,    /* a flow placed by WCMP (first packet, or its instance died) */
	AC_NOTE_AFFINITY_LOST_RACE, /* another CPU placed the flow first: its choice was taken */
	AC_NOTE_FTC_COMMITTED,   /* an FTC packet at its chain's end whose logs its partition's
				  * commit vector covers (ac_ftc_egress), nothing of the partition
				  * held: released here, not through the egress buffer (docs/ftc.md 5.1) */
	AC_NOTE_FTC_PENDING_NO_ROOM, /* a classified FTC packet without headroom for its partition's
				      * returned logs: sent with the control TLV only, the logs left
				      * to the next packet or the forwarder's propagating packet */
	AC_NOTE_END
};

#ifdef __cplusplus
#define AC_STATIC_ASSERT static_assert
#else
#define AC_STATIC_ASSERT _Static_assert
#endif
AC_STATIC_ASSERT(AC_VERDICT_END <= AC_STAT_DROP_BASE, "verdict reasons overflow their range");
AC_STATIC_ASSERT(AC_DROP_END <= AC_STAT_NOTE_BASE, "drop reasons overflow their range");
AC_STATIC_ASSERT(AC_NOTE_END <= AC_STAT_SLOTS, "notes overflow their range");

/* ac_ftc_pending (docs/ftc.md 5.2): the forwarder's returned logs of a partition, written by
 * the agent of the chain's ingress node; the classifier copies the first len bytes (whole TLVs)
 * into every packet of the partition after the control TLV. */
struct ac_ftc_pending_key {
	__u32 spi;               /* host order, 24 bits */
	__u32 hash;              /* flow hash */
};

struct ac_ftc_pending {
	__u16 len;               /* bytes of tlvs in use: a multiple of 4, <= AC_FTC_PENDING_MAX */
	__u16 pad;
	__u8 tlvs[AC_FTC_PENDING_MAX];
};

/* Per-CPU scratch of the classifier (not pinned): the FTC TLVs it assigned to the packet in
 * flight (the control TLV, then the pending logs), written into the NSH at delivery. */
struct ac_ftc_staged {
	__u32 len;               /* bytes of tlvs: 12 + the pending logs' */
	__u8 tlvs[12 + AC_FTC_PENDING_MAX];
};

struct ac_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* ANYCHAIN_MAPS_H */
