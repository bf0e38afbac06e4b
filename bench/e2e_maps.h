/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Map values of bench/e2e.bpf.c, shared with bench/e2e_topo.cc and bench/e2e_bench.cc. */
#ifndef E2E_MAPS_H
#define E2E_MAPS_H

#include <linux/types.h>

#define E2E_HDR_LEN 42      /* Ethernet + IPv4 + UDP, the part the generator writes */
#define E2E_SPORT_OFF 34    /* UDP source port in that template */
#define E2E_FWD_SLOTS 4096  /* the forwarder's table: ingress ifindexes below this */

struct e2e_count {
	__u64 packets;
	__u64 bytes;
};

struct e2e_gen_cfg {
	__u8 hdr[E2E_HDR_LEN];
	__u16 base_port;    /* flow i has UDP source port base_port + i (host order) */
	__u32 flows;        /* >= 1 */
	__u32 ifindex;      /* the source veth */
	__u64 ns_per_pkt;   /* paced: at most one frame sent per this many ns (the rest dropped,
			     * not counted); 0: every frame sent */
};

struct e2e_fwd_entry {
	__u32 ifindex;      /* 0: no entry (the frame is passed to the stack) */
	__u8 dmac[6];
	__u8 smac[6];
};

#endif
