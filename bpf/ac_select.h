/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Flow cache (per-CPU, set-associative, per-set LRU) and instance selection by WCMP on a miss. */
#ifndef AC_SELECT_H
#define AC_SELECT_H

#include "ac_counters.h"
#include "ac_ftc.h"

AC_INLINE const struct ac_instance *ac_instance(__u32 id)
{
	const struct ac_instance *inst = bpf_map_lookup_elem(&ac_instances, &id);

	return inst && (inst->flags & AC_INST_LIVE) ? inst : NULL;
}

/* Set number set (ac_flow_set_of) of this CPU's flow cache, or NULL if out of range */
AC_INLINE struct ac_flow_set *ac_flow_set_get(const struct ac_config *cfg, __u32 set)
{
	__u32 idx = bpf_get_smp_processor_id() * (cfg->flow_set_mask + 1) + set;

	return bpf_map_lookup_elem(&ac_flow_cache, &idx);
}

/* The way of set holding (spsi, hash), or NULL */
AC_INLINE struct ac_flow *ac_flow_find(struct ac_flow_set *set, __u32 spsi, __u32 hash)
{
#pragma unroll
	for (int i = 0; i < AC_FLOW_WAYS; i++) {
		struct ac_flow *w = &set->way[i];

		if (w->spi_si == spsi && w->hash == hash)
			return w;
	}
	return NULL;
}

/* The way a new key replaces: the least recently used one (an empty way has last_seen 0) */
AC_INLINE struct ac_flow *ac_flow_victim(struct ac_flow_set *set)
{
	struct ac_flow *v = &set->way[0];

#pragma unroll
	for (int i = 1; i < AC_FLOW_WAYS; i++) {
		struct ac_flow *w = &set->way[i];

		if (w->last_seen < v->last_seen)
			v = w;
	}
	return v;
}

/* A flow-cache lookup made in front of the forwarder (ac_gpe_rx() reads the NSH behind the outer
 * headers and looks the flow up before it decides whether the packet is at its last hop): this
 * CPU's set for (SPI, SI, hash), NULL if out of range, and the way holding the key in it, NULL if
 * none. The forwarder takes it as its own lookup's result instead of looking up again. */
struct ac_flow_at {
	struct ac_flow_set *set;
	struct ac_flow *way;
};

/* What the forwarder needs from ac_paths for one (SPI, SI) */
struct ac_fwd_path {
	__u32 service_id;        /* 0: last hop */
	__u32 slot;              /* ac_path_stats slot */
};

/* Flow cache lookup for (SPI, SI, hash) and, unless the way holds the path data of the current
 * path epoch, the ac_paths lookup. Returns the way (found or just claimed; NULL if the set is
 * out of range) in *fp, or -1 if (SPI, SI) has no path. *cached is set when the way's
 * instance choice was made for this path's service and may be used. at: the flow-cache lookup
 * already made for this packet (see struct ac_flow_at), or NULL to make it here. */
AC_INLINE int ac_flow_path(const struct ac_config *cfg, const struct ac_nsh_info *ni, __u64 now,
			   const struct ac_flow_at *at, struct ac_flow **fp, struct ac_fwd_path *out,
			   int *cached)
{
	/* read the epoch before ac_paths: a path written after this read is re-read next time */
	__u32 epoch = cfg->path_epoch;
	__u32 spsi = ni->spsi, hash = ni->hash;
	struct ac_flow_set *set;
	struct ac_flow *f;

	if (at) {
		set = at->set;
		f = at->way;
	} else {
		set = ac_flow_set_get(cfg, ac_flow_set_of(spsi, hash, cfg->flow_set_mask));
		f = set ? ac_flow_find(set, spsi, hash) : NULL;
	}

	*fp = f;
	*cached = 0;
	if (f && f->path_epoch == epoch) {
		out->service_id = f->service_id;
		out->slot = f->path_slot;
		*cached = 1;
		return 0;
	}
	const struct ac_path *path = bpf_map_lookup_elem(&ac_paths, &spsi);

	if (!path) {
		if (f)
			f->spi_si = 0; /* free the way */
		return -1;
	}
	out->service_id = (path->flags & AC_PATH_LAST_HOP) ? 0 : path->service_id;
	out->slot = path->stats_idx;
	if (f) {
		/* a path change keeps the instance choice only for the same service; for another
		 * service it is forgotten, so a failed pick cannot leave it behind */
		*cached = f->service_id == out->service_id;
		if (!*cached)
			f->instance_id = 0;
	} else if (set) {
		f = ac_flow_victim(set);
		f->spi_si = spsi;
		f->hash = hash;
		f->instance_id = 0;
		f->generation = 0;
		f->last_seen = now;
		*fp = f;
	}
	if (f) {
		f->path_epoch = epoch;
		f->service_id = (__u16)out->service_id;
		f->path_slot = (__u16)out->slot;
	}
	return 0;
}

/* The instance of a placement word if it still serves service_id with the same generation */
AC_INLINE const struct ac_instance *ac_affinity_valid(__u64 pick, __u32 service_id, __u32 *id)
{
	const struct ac_instance *inst = ac_instance(AC_AFFINITY_ID(pick));

	if (!inst || inst->generation != AC_AFFINITY_GEN(pick) || inst->service_id != service_id)
		return NULL;
	*id = AC_AFFINITY_ID(pick);
	return inst;
}

/* The service's WCMP bucket for hash */
AC_INLINE const struct ac_instance *ac_wcmp_pick(__u32 service_id, __u32 hash, __u32 *id)
{
	void *table = bpf_map_lookup_elem(&ac_wcmp, &service_id);

	if (!table)
		return NULL;
	__u32 bucket = hash % AC_WCMP_BUCKETS;
	__u32 *slot = bpf_map_lookup_elem(table, &bucket);

	if (!slot || !*slot)
		return NULL;
	*id = *slot;
	return ac_instance(*id);
}

/* The flow's placement shared by every CPU (ac_affinity), made by WCMP when there is none or
 * its instance is gone; its notes count frame bytes. Kept out of line: it runs on per-CPU
 * misses only. */
static __noinline const struct ac_instance *ac_place(__u64 frame, __u32 service_id,
						     __u32 spsi, __u32 hash, __u32 *id)
{
	struct ac_affinity_key key = {.spi_si = spsi, .hash = hash};
	struct ac_affinity *a = bpf_map_lookup_elem(&ac_affinity, &key);
	const struct ac_instance *inst;
	__u64 seen = 0;

	if (a) {
		seen = *(volatile __u64 *)&a->pick;
		inst = ac_affinity_valid(seen, service_id, id);
		if (inst) {
			ac_counter_add(&ac_stats, AC_NOTE_AFFINITY_HIT, frame);
			return inst;
		}
		/* placed on an FTC instance under recovery: keep the placement, wait */
		if (ac_ftc_frozen(AC_AFFINITY_ID(seen), AC_AFFINITY_GEN(seen), service_id, 0)) {
			*id = AC_FTC_FROZEN_ID;
			return NULL;
		}
	}
	*id = 0;
	inst = ac_wcmp_pick(service_id, hash, id);
	if (!inst) {
		/* WCMP keeps a recovering instance's buckets: a new flow there waits too */
		if (*id && ac_ftc_frozen(*id, 0, service_id, 1))
			*id = AC_FTC_FROZEN_ID;
		return NULL;
	}
	__u64 mine = AC_AFFINITY(*id, inst->generation);

	if (a) {
		/* replace the dead placement unless another CPU already did */
		__u64 prev = __sync_val_compare_and_swap(&a->pick, seen, mine);

		if (prev != seen) {
			const struct ac_instance *won = ac_affinity_valid(prev, service_id, id);

			if (won) {
				ac_counter_add(&ac_stats, AC_NOTE_AFFINITY_LOST_RACE, frame);
				return won;
			}
			*id = AC_AFFINITY_ID(mine);
		}
	} else {
		struct ac_affinity v = {.pick = mine};

		if (bpf_map_update_elem(&ac_affinity, &key, &v, BPF_NOEXIST)) {
			/* another CPU inserted it between our lookup and insert: its choice wins */
			a = bpf_map_lookup_elem(&ac_affinity, &key);
			const struct ac_instance *won =
				a ? ac_affinity_valid(*(volatile __u64 *)&a->pick, service_id, id) : NULL;

			if (won) {
				ac_counter_add(&ac_stats, AC_NOTE_AFFINITY_LOST_RACE, frame);
				return won;
			}
			*id = AC_AFFINITY_ID(mine);
		}
	}
	ac_counter_add(&ac_stats, AC_NOTE_AFFINITY_NEW, frame);
	return inst;
}

/* Instance for the flow of way f (may be NULL) on service_id: the cached choice while its
 * instance lives with the same generation and the way has not idled past the timeout, else the
 * flow's shared placement (ac_place), remembered in f. Counts cache_hit, cache_miss or
 * cache_stale with frame bytes (the frame as the forwarder counts it, see ac_forward_body()). */
AC_INLINE const struct ac_instance *ac_select(__u64 frame, const struct ac_config *cfg,
					      __u32 service_id, __u32 spsi, __u32 hash,
					      struct ac_flow *f, int cached, __u64 now, __u32 *id)
{
	const struct ac_instance *inst;

	if (f && cached && f->instance_id) {
		__u64 timeout = cfg->flow_timeout_jiffies;

		inst = ac_instance(f->instance_id);
		if (inst && inst->generation == f->generation &&
		    (!timeout || now - f->last_seen < timeout)) {
			f->last_seen = now;
			*id = f->instance_id;
			ac_counter_add(&ac_stats, AC_NOTE_CACHE_HIT, frame);
			return inst;
		}
		ac_counter_add(&ac_stats, AC_NOTE_CACHE_STALE, frame);
	} else {
		ac_counter_add(&ac_stats, AC_NOTE_CACHE_MISS, frame);
	}

	inst = ac_place(frame, service_id, spsi, hash, id);
	if (!inst)
		return NULL;
	if (f) {
		f->instance_id = *id;
		f->generation = inst->generation;
		f->last_seen = now;
	}
	return inst;
}

#endif
