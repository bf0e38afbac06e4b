/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fast path's slow path (docs/slow-path.md): what XDP cannot do with a packet, it hands to
 * the agent through a veth pair, prefixed with this header. Layout of such a frame:
 *
 *   [ethhdr: dst = the agent end's MAC, src = the fast-path end's, type AC_ETH_P_SLOW]
 *   [struct ac_slow_hdr]
 *   [the packet as the fast path would have sent it, from its Ethernet header on]
 *
 * Shared by the BPF fast path and the agent. Multi-byte fields are in network byte order.
 */
#ifndef ANYCHAIN_SLOWPATH_H
#define ANYCHAIN_SLOWPATH_H

#include <linux/types.h>

#define AC_ETH_P_SLOW 0x88B5 /* IEEE 802 "local experimental" EtherType: never leaves the node */
#define AC_SLOW_VERSION 1

/* Why the packet is here */
enum ac_slow_reason {
	/* Too big for its next hop. The packet that follows is complete and ready to send:
	 * to_ifindex != 0: an Ethernet frame for that local interface (a VNF veth), carrying
	 *   [NSH][inner] (NSH-aware VNF) or the bare inner packet (proxied VNF);
	 * to_ifindex == 0: [IPv4][UDP][VXLAN-GPE][NSH][inner] for another node (outer headers as
	 *   the fast path wrote them; the FIB gave no next hop because of the size).
	 * mtu is the largest inner packet (IP header included) that fits the next hop. */
	AC_SLOW_TOO_BIG = 1,
};

struct ac_slow_hdr {
	__u8 version;       /* AC_SLOW_VERSION */
	__u8 reason;        /* enum ac_slow_reason */
	__be16 mtu;         /* AC_SLOW_TOO_BIG: largest inner packet that fits */
	__be32 to_ifindex;  /* AC_SLOW_TOO_BIG: local egress interface, 0 = another node */
	__be16 inner_off;   /* offset of the inner IP header in the packet that follows */
	__u8 pad[6];
} __attribute__((packed));

#endif /* ANYCHAIN_SLOWPATH_H */
