/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: every verdict is counted under its reason; no silent drops.
 * A helper that can fail returns 0 or an enum ac_drop_reason and leaves the verdict to its
 * caller (as Cilium's DROP_* codes); only the functions below turn a reason into a verdict. */
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

AC_INLINE void ac_count(struct xdp_md *ctx, __u32 slot)
{
	ac_counter_add(&ac_stats, slot, ac_pkt_len(ctx));
}

/* work done on the way (not an outcome) */
AC_INLINE void ac_note(struct xdp_md *ctx, enum ac_note note)
{
	ac_count(ctx, note);
}

/* A drop counted with bytes given by the caller (a frame counted as it would be after a change
 * not made, e.g. outer headers not removed) */
AC_INLINE int ac_drop_bytes(enum ac_drop_reason reason, __u64 bytes)
{
	ac_counter_add(&ac_stats, reason, bytes);
	return XDP_DROP;
}

AC_INLINE int ac_drop(struct xdp_md *ctx, enum ac_drop_reason reason)
{
	return ac_drop_bytes(reason, ac_pkt_len(ctx));
}

AC_INLINE int ac_pass(struct xdp_md *ctx, enum ac_verdict_reason reason)
{
	ac_count(ctx, reason);
	return XDP_PASS;
}

/* bpf_redirect()'s verdict (XDP_REDIRECT, or XDP_ABORTED for bad flags), counted */
AC_INLINE int ac_redirect(struct xdp_md *ctx, enum ac_verdict_reason reason, __u32 ifindex)
{
	ac_count(ctx, reason);
	return bpf_redirect(ifindex, 0);
}

#endif
