/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in distributed rate limiter (docs/state.md 4.2, docs/nf.md): one limit per window
 * (bytes of inner L3 packet, or packets) over every instance of the service.
 *   - rl_count<g>: one windowed G-counter cell (generation g = window & 1,
 *     include/anychain/crdt.h); every instance adds what it passed to its own slot and reads the
 *     sum of every instance's slots (merged by the agent).
 *   - Per packet: if the merged count has reached the limit the packet is dropped (rl_dropped,
 *     DROP_FILTERED; in an FTC chain it leaves as a propagating packet), else its size (or 1) is
 *     added and it passes (rl_passed).
 * The overshoot is bounded by the aggregate rate times the replication delay: what the other
 * instances passed and this one has not merged yet.
 */
#include "nf_common.h"
#include "nf_crdt.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_rl_cfg);
} nf_rl_cfg SEC(".maps");

#define RL_ARRAY(name)                                                                           \
	struct {                                                                                 \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                \
		__uint(max_entries, 1);                                                          \
		__type(key, __u32);                                                              \
		__type(value, struct ac_gcounter);                                               \
	} name SEC(".maps")

RL_ARRAY(rl_count0);
RL_ARRAY(rl_count1);

/* One generation's counter: 1 to drop (its merged value reached the limit), else the packet
 * is added to the own slot. One lookup of the cell for the read and the add, and a constant map
 * at each call site: the verifier inlines an array lookup only when the map is known there (a
 * map pointer chosen at run time costs a helper call through the map's ops on every packet). */
AC_INLINE int rl_take(void *count, __u8 object, const struct ac_nf_rl_cfg *cfg, __u64 n)
{
	__u32 k0 = 0;
	struct ac_gcounter *c = bpf_map_lookup_elem(count, &k0);

	if (!c)
		return 0;
	if (ac_gc_value(c) >= cfg->limit) {
		ac_nf_count(AC_NF_RL_DROPPED);
		return 1;
	}
	ac_gc_add_own(c, n);
	ac_crdt_log(&c->touch, ac_crdt_epoch(), object, &k0, sizeof(k0));
	ac_nf_count(AC_NF_RL_PASSED);
	return 0;
}

/* 1 to drop the packet: the window's merged count has reached the limit. */
AC_INLINE int rl_work(const struct ac_nf_rl_cfg *cfg, const struct ac_nf_inner *in)
{
	int gen = ac_crdt_win_gen();
	__u64 n = cfg->unit == AC_NF_RL_PACKETS ? 1 : in->len;

#ifdef AC_NF_BENCH_NO_OBJECTS
	/* benchmark ablation only (bench/nf_state_*_noobj.bpf.c): the same NF without its object */
	ac_nf_count(AC_NF_RL_PASSED);
	return 0;
#endif
	if (gen < 0) {
		ac_nf_count(AC_NF_RL_NO_WINDOW);
		return 0;
	}
	if (gen)
		return rl_take(&rl_count1, AC_NF_RL_OBJ_COUNT1, cfg, n);
	return rl_take(&rl_count0, AC_NF_RL_OBJ_COUNT0, cfg, n);
}

SEC("xdp")
int nf_ratelimit(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ac_nf_rl_cfg *cfg = bpf_map_lookup_elem(&nf_rl_cfg, &k0);
	struct ac_ftc_hop hop;
	struct ac_nf_inner in;
	enum ac_ftc_verdict v;
	int r;

	ac_nf_bench_rewind(ctx);
	r = ac_nf_begin(ctx, cfg != 0, &hop, &v, &in);
	if (r != AC_NF_WORK)
		return r;
	if (!in.family) {
		/* not IP: still limited, by the frame's inner bytes */
		in.len = (__u32)((__u64)ctx->data_end - (__u64)ctx->data) - ETH_HLEN - (hop.nsh_len & 0xff);
		ac_nf_count(AC_NF_NOT_IP);
	}
	return ac_nf_finish(ctx, &hop, v, rl_work(cfg, &in));
}

/* ---- the merge program (docs/state.md 2.2): records carry their window ---- */

AC_INLINE int rl_apply(const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	if (op->object != AC_NF_RL_OBJ_COUNT0 && op->object != AC_NF_RL_OBJ_COUNT1)
		return AC_CRDT_APPLY_BAD;
	__u32 gen = op->object - AC_NF_RL_OBJ_COUNT0;

	if (!ac_crdt_win_holds(gen, op->epoch))
		return AC_CRDT_APPLY_STALE;
	return ac_crdt_apply_gc_idx(gen ? (void *)&rl_count1 : (void *)&rl_count0, op, key, val);
}

AC_INLINE int rl_fold(__u8 object, struct ac_crdt_fold_ctx *f)
{
	if (object == AC_NF_RL_OBJ_COUNT0)
		ac_crdt_fold_object(&rl_count0, AC_CRDT_GCOUNTER, f);
	else if (object == AC_NF_RL_OBJ_COUNT1)
		ac_crdt_fold_object(&rl_count1, AC_CRDT_GCOUNTER, f);
	else
		return -1;
	return 0;
}

AC_CRDT_MERGE_PROGRAM(nf_ratelimit_merge, rl_apply, rl_fold)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
