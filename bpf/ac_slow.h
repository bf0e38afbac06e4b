/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The agent's slow path (docs/slow-path.md): what XDP cannot do with a packet goes there. */
#ifndef AC_SLOW_H
#define AC_SLOW_H

#include <anychain/slowpath.h>
#include "ac_counters.h"

/* A packet too big for its next hop, laid out as it would be sent (its Ethernet header at
 * ctx->data, the inner IP header at inner_off): to the agent, which fragments it (IPv4 without
 * DF) or tells the sender (ICMP), with the next hop's room for the inner packet (mtu). Without
 * a slow path it is dropped. to_ifindex: the local interface it was for, 0 = another node. */
static __noinline int ac_slow_too_big(struct xdp_md *ctx, __u32 slow_ifindex, __u32 to_ifindex,
				      __u32 mtu, __u32 inner_off)
{
	const struct ac_iface *slow = slow_ifindex < AC_IFACE_DIRECT ?
					      bpf_map_lookup_elem(&ac_ifaces, &slow_ifindex) : NULL;

	if (!slow || !(slow->flags & AC_IF_SLOW_PATH))
		return ac_drop(ctx, AC_DROP_TOO_BIG);
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct ethhdr) + sizeof(struct ac_slow_hdr))))
		return ac_drop(ctx, AC_DROP_NO_ROOM);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ac_slow_hdr *h = (void *)(eth + 1);

	if ((void *)(h + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	__builtin_memset(eth->h_dest, 0xff, ETH_ALEN);
	ac_copy_mac(eth->h_source, slow->mac);
	eth->h_proto = bpf_htons(AC_ETH_P_SLOW);
	__builtin_memset(h, 0, sizeof(*h));
	h->version = AC_SLOW_VERSION;
	h->reason = AC_SLOW_TOO_BIG;
	h->mtu = bpf_htons((__u16)mtu);
	h->to_ifindex = bpf_htonl(to_ifindex);
	h->inner_off = bpf_htons((__u16)inner_off);
	return ac_redirect(ctx, AC_FWD_SLOW_PATH, slow_ifindex);
}

#endif
