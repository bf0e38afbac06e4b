/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Routing through the kernel FIB (filled by zebra from OSPF) with bpf_fib_lookup. */
#ifndef AC_FIB_H
#define AC_FIB_H

#include "ac_counters.h"

/* IPv4 TTL decrement with the incremental checksum update of RFC 1624 */
AC_INLINE void ac_ipv4_dec_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* Outcome of a FIB lookup for a packet whose Ethernet header is at ctx->data. A successful
 * result is also written to nh (if not NULL) with its expiry; other results never are. */
AC_INLINE int ac_fib_redirect(struct xdp_md *ctx, struct bpf_fib_lookup *p, __u32 fwd_reason,
			      __u32 no_neigh_reason, __u32 fail_reason, const __u8 *rx_dmac,
			      struct ac_nexthop *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	long rc = bpf_fib_lookup(ctx, p, sizeof(*p), 0);

	if ((void *)(eth + 1) > data_end)
		return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (nh) {
			/* the caller sets the key fields and, on XDP_REDIRECT, the expiry */
			nh->ifindex = p->ifindex;
			nh->mtu = p->mtu_result; /* output on success since Linux 5.12 */
			ac_copy_mac(nh->smac, p->smac);
			ac_copy_mac(nh->dmac, p->dmac);
		}
		ac_copy_mac(eth->h_dest, p->dmac);
		ac_copy_mac(eth->h_source, p->smac);
		return ac_verdict(ctx, fwd_reason, bpf_redirect(p->ifindex, 0));
	}
	/* No neighbour entry yet (or a route the stack must handle): give the packet to the
	 * stack addressed to this host, which resolves the neighbour and sends it. */
	ac_copy_mac(eth->h_dest, rx_dmac);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return ac_verdict(ctx, no_neigh_reason, XDP_PASS);
	if (fail_reason == AC_R_PASS_LAST_HOP)
		return ac_verdict(ctx, fail_reason, XDP_PASS);
	return AC_DROP(ctx, fail_reason);
}

#endif
