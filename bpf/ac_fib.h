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

/* Zeroed FIB lookup parameters (per-CPU scratch; the lookup is inlined by the verifier), or
 * NULL, which cannot happen for an array's key 0 but must be handled. */
AC_INLINE struct bpf_fib_lookup *ac_fib_params(void)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *p = bpf_map_lookup_elem(&ac_fib_scratch, &zero);

	if (p)
		__builtin_memset(p, 0, sizeof(*p));
	return p;
}

/* FIB lookup for the frame whose Ethernet header is at ctx->data. On success the header gets
 * the next hop's MACs, p->ifindex is the egress interface and nh (if not NULL) gets the result;
 * otherwise the frame is addressed to this host (rx_dmac), so that the stack can take it.
 * Returns the helper's BPF_FIB_LKUP_RET_* code, or -1 for a frame shorter than Ethernet. */
AC_INLINE long ac_fib_resolve(struct xdp_md *ctx, struct bpf_fib_lookup *p, const __u8 *rx_dmac,
			      struct ac_nexthop *nh)
{
	long rc = bpf_fib_lookup(ctx, p, sizeof(*p), 0);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		ac_copy_mac(eth->h_dest, rx_dmac);
		return rc;
	}
	if (nh) {
		/* the caller sets the key fields and, once the frame is sent, the expiry */
		nh->ifindex = p->ifindex;
		nh->mtu = p->mtu_result; /* output on success since Linux 5.12 */
		ac_copy_mac_w(nh->smac, p->smac);
		ac_copy_mac_w(nh->dmac, p->dmac);
	}
	ac_copy_mac_w(eth->h_dest, p->dmac);
	ac_copy_mac_w(eth->h_source, p->smac);
	return rc;
}

#endif
