/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: every verdict is counted under its reason; no silent drops. */
#ifndef AC_COUNTERS_H
#define AC_COUNTERS_H

#include "ac_maps.h"

AC_INLINE void ac_counter_add(void *map, __u32 idx, __u64 bytes)
{
	struct ac_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

AC_INLINE __u64 ac_pkt_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

AC_INLINE void ac_note(struct xdp_md *ctx, __u32 reason)
{
	ac_counter_add(&ac_stats, reason, ac_pkt_len(ctx));
}

/* count the packet under reason and return verdict */
AC_INLINE int ac_verdict(struct xdp_md *ctx, __u32 reason, int verdict)
{
	ac_note(ctx, reason);
	return verdict;
}

#define AC_DROP(ctx, reason) ac_verdict(ctx, reason, XDP_DROP)
#define AC_PASS(ctx, reason) ac_verdict(ctx, reason, XDP_PASS)

#endif
