/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Instance selection: flow cache first, the service's WCMP table on a miss. */
#ifndef AC_SELECT_H
#define AC_SELECT_H

#include "ac_counters.h"

AC_INLINE const struct ac_instance *ac_instance(__u32 id)
{
	const struct ac_instance *inst = bpf_map_lookup_elem(&ac_instances, &id);

	return inst && (inst->flags & AC_INST_LIVE) ? inst : NULL;
}

/* Returns the instance for (SPI, SI, hash) and its id in *id, or NULL. A cached entry is used
 * only while its instance lives with the same generation and the entry has not idled out. */
AC_INLINE const struct ac_instance *ac_select(struct xdp_md *ctx, const struct ac_config *cfg,
					      __u32 service_id, const struct ac_nsh_info *ni,
					      __u32 *id)
{
	struct ac_flow_key key = { .spi_si = ni->spsi, .hash = ni->hash };
	struct ac_flow *f = bpf_map_lookup_elem(&ac_flow_cache, &key);
	__u64 now = cfg->flow_timeout_ns ? bpf_ktime_get_coarse_ns() : 0;
	const struct ac_instance *inst;

	if (f) {
		inst = ac_instance(f->instance_id);
		if (inst && inst->generation == f->generation &&
		    (!now || now - f->last_seen_ns < cfg->flow_timeout_ns)) {
			f->last_seen_ns = now;
			*id = f->instance_id;
			ac_note(ctx, AC_R_CACHE_HIT);
			return inst;
		}
		ac_note(ctx, AC_R_CACHE_STALE);
	} else {
		ac_note(ctx, AC_R_CACHE_MISS);
	}

	void *table = bpf_map_lookup_elem(&ac_wcmp, &service_id);

	if (!table)
		return NULL;
	__u32 bucket = ni->hash % AC_WCMP_BUCKETS;
	__u32 *slot = bpf_map_lookup_elem(table, &bucket);

	if (!slot || !*slot)
		return NULL;
	inst = ac_instance(*slot);
	if (!inst)
		return NULL;

	struct ac_flow nf = { .instance_id = *slot, .generation = inst->generation,
			      .last_seen_ns = now };

	bpf_map_update_elem(&ac_flow_cache, &key, &nf, BPF_ANY);
	*id = *slot;
	return inst;
}

#endif
